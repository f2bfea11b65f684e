"""The loop side of a config reload (cli-config §5.7). The ConfigActor owns the config and the
reload plan (actors/config/actor.py): it loads, validates, diffs, classifies, decides under
`gateway.reload.mode`, adopts, writes the audit line and hands hot keys to their owners. Here,
on the event loop, the plan it returns is carried out for the transport: logging set up again,
the auth limiter, channel reload hooks, the restart scheduler, and the `configReload` status.

Used by the config watcher, SIGHUP, and the RPC write path (config.set/patch/apply call
`GatewayState.apply_config`, installed here, after a successful write; its result is the
`restart` object of protocol §10.5). Reloads take `state.reload_lock`, so none lands halfway
through an in-process restart.

`state.snapshot` is the loop's read-only copy of the applied config, pushed by the actor
(`make_config_mirror`) together with `config.get`'s encoded answer. A bad edit never stops the
gateway: it is reported in `configReload` and the next good edit recovers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from functools import partial
from pathlib import Path
from typing import Awaitable, Callable

import msgspec
import pykka

from actors import logs
from actors.agents.manager import AGENTS, AgentManager
from actors.base import send
from actors.channels.router import CHANNEL_ROUTER, ChannelRouter
from actors.channels.supervisor import CHANNEL_SUPERVISOR, ChannelSupervisor
from actors.config.actor import CONFIG, ConfigActor, ConfigView
from actors.config.load import ConfigSnapshot
from actors.config.plan import ReloadPlan, invalid_summary
from actors.config.settings import AuthSettings, dropped_config_secret
from actors.config.watcher import KnownHash
from actors.health import HEALTH, HealthActor
from actors.sessions.defaults import session_defaults, session_reset_policy
from actors.sessions.store import SESSIONS, SessionStore
from actors.tools.executor import TOOLS, ToolExecutor, workspace_dir
from lifecycle.lock import audit_soon
from lifecycle.logsetup import configure_logging
from lifecycle.startup import RunOptions, load_for_boot
from transport import bridge
from transport.state import GatewayState

__all__ = ["apply_snapshot", "config_actor_factory", "credential_refusal", "install", "invalid_summary",
           "make_on_change", "reload_from_file", "set_reload_status"]

log = logging.getLogger("openclaw.gateway")

AUDIT_WAIT_S = 2.0  # the config actor waits this long for its audit line to be on disk


def set_reload_status(state: GatewayState, **changes: object) -> None:
    """Update `configReload` on the loop and hand it to the HealthActor (`health`, `status`)."""
    state.reload_status.update(changes)
    bridge.tell(HEALTH, HealthActor.set_config_reload, dict(state.reload_status))


def install(state: GatewayState) -> None:
    """Give the RPC write path its way into the reload (transport never imports lifecycle)."""
    async def apply_config(snapshot: ConfigSnapshot, reason: str, delay_ms: int) -> dict | None:
        return await apply_snapshot(state, snapshot, reason, delay_ms=delay_ms)

    state.apply_config = apply_config


async def reload_from_file(state: GatewayState, reason: str, mode: str | None = None) -> dict | None:
    """A file edit or SIGHUP: the config actor reads the file (off the loop) and plans it."""
    async with state.reload_lock:
        plan = await _plan(bridge.ask(CONFIG, ConfigActor.reload, reason, mode), reason)
        return await carry_out(state, plan) if plan is not None else None


async def apply_snapshot(state: GatewayState, snapshot: ConfigSnapshot, reason: str,
                         mode: str | None = None, delay_ms: int = 0) -> dict | None:
    """Apply `snapshot` (just written) under `mode` (default: its own `gateway.reload.mode`).
    Returns the protocol §10.5 `restart` object, or None when nothing waits for a restart.
    Never raises for a bad config."""
    async with state.reload_lock:
        plan = await _plan(bridge.ask(CONFIG, ConfigActor.plan, snapshot, reason, mode), reason)
        return await carry_out(state, plan, delay_ms) if plan is not None else None


async def _plan(ask: Awaitable[ReloadPlan], reason: str) -> ReloadPlan | None:
    try:
        return await ask
    except bridge.ActorUnavailable as exc:  # mid-restart: the next boot starts with the file
        log.error("config reload (%s) not applied: the config actor did not plan it: %s", reason, exc)
        return None


async def carry_out(state: GatewayState, plan: ReloadPlan, delay_ms: int = 0) -> dict | None:
    """The transport's part of `plan`, which the actor has already adopted (its pushed copy
    reached `state.snapshot` before the plan reached us: both travel the loop's FIFO)."""
    if plan.action == "skip":
        set_reload_status(state, status="error", lastError=f"invalid config: {plan.summary}")
        return None
    now_ms = int(time.time() * 1000)
    if plan.action == "defer":  # mode off: nothing applies until a restart or SIGHUP
        if plan.pending:
            log.warning("config change requires restart: %s", ", ".join(plan.pending))
        set_reload_status(state, mode=plan.mode, status="pending-restart" if plan.pending else "ok",
                          lastError=None, pendingRestart=plan.pending)
        return _unscheduled(plan) if plan.pending else None
    if plan.action == "restart":  # mode restart: every change restarts
        if plan.refused:
            log.error("config change not applied: %s", plan.refused)
            set_reload_status(state, mode=plan.mode, status="error", lastReloadAt=now_ms,
                              lastError=plan.refused, pendingRestart=plan.pending)
            return _unscheduled(plan)
        scheduled = _schedule(state, plan.reason, plan.restart, delay_ms)
        set_reload_status(state, mode=plan.mode, status="pending-restart", lastReloadAt=now_ms,
                          lastError=None, pendingRestart=plan.pending)
        return scheduled
    error = await _apply_live(state, plan) if plan.hot or plan.channel else None
    restart: dict | None = None
    if plan.refused:
        log.error("config change not applied: %s", plan.refused)
        error = "; ".join(filter(None, [error, plan.refused]))
        restart = _unscheduled(plan)
    elif plan.restart:
        restart = _schedule(state, plan.reason, plan.restart, delay_ms)
    elif plan.pending:
        log.warning("config change requires restart: %s", ", ".join(plan.pending))
        restart = _unscheduled(plan)
    set_reload_status(state, mode=plan.mode, status="error" if error else
                      ("pending-restart" if plan.pending else "ok"),
                      lastReloadAt=now_ms, lastError=error, pendingRestart=plan.pending)
    if plan.paths:
        log.info("config reloaded (%s): %s", plan.reason, ", ".join(plan.paths))
    return restart


def _unscheduled(plan: ReloadPlan) -> dict:
    return {"required": True, "scheduled": False, "delayMs": 0, "reason": plan.reason,
            "paths": plan.pending}


def credential_refusal(state: GatewayState, snapshot: ConfigSnapshot) -> str | None:
    """Why no restart may run on `snapshot`: it would replace the configured secret by the
    generated token. The caller logs it and reports it in `configReload`."""
    return _refusal(state.auth, state.opts, snapshot)


def _refusal(auth: AuthSettings, opts: RunOptions | None, snapshot: ConfigSnapshot) -> str | None:
    return dropped_config_secret(auth, snapshot, flag_token=getattr(opts, "token", None),
                                 flag_password=getattr(opts, "password", None))


def _schedule(state: GatewayState, reason: str, paths: list[str], delay_ms: int) -> dict:
    if state.restarts is None:  # not serving yet: the boot under way reads the file anyway
        return {"required": True, "scheduled": False, "delayMs": 0, "reason": reason, "paths": paths}
    log.info("config change restarts the gateway: %s", ", ".join(paths))
    result = state.restarts.request(f"config reload ({reason})", delay_ms=delay_ms, paths=paths)
    return {"required": True, "scheduled": True, "delayMs": result["delayMs"], "reason": reason,
            "paths": paths}


async def _apply_live(state: GatewayState, plan: ReloadPlan) -> str | None:
    """Logging, the auth limiter and the channel hooks for a live plan (the actor has given
    the other hot keys to their owners); the error text when one refused (the rest is still
    applied). controlUi.allowedOrigins is read from state.snapshot at each handshake."""
    error = None
    new = plan.snapshot
    if plan.logging and state.opts is not None:
        try:  # off the loop: it opens the log file
            await asyncio.get_running_loop().run_in_executor(
                None, configure_logging, state.opts, new, state.auth, Path(state.state_dir),
                state.state_dir_from_env)
        except (OSError, ValueError) as exc:
            error = f"logging: {exc}"
            log.error("config reload: logging not reconfigured: %s", exc)
    elif plan.secrets is not None:
        logs.set_secrets([state.auth.token, state.auth.password, *plan.secrets])
    limit = new.config.gateway.auth.rate_limit
    state.limiter.configure(limit.max_attempts, limit.window_ms, limit.lockout_ms)
    if plan.channel:
        log.info("channel restart: %s", ", ".join(plan.channel))
        for hook in list(state.channel_reload_hooks):
            try:
                hook(list(plan.channel))
            except Exception as exc:  # noqa: BLE001 - one hook must not stop the others
                log.error("channel reload hook failed: %s", exc)
                error = f"channel restart: {exc}"
    return error


# --- the config actor's wiring: what it needs from the process, injected ---------------------


def config_actor_factory(loop: asyncio.AbstractEventLoop, state: GatewayState, snapshot: ConfigSnapshot,
                         port: int) -> Callable[[], pykka.ActorRef[ConfigActor]]:
    """The ConfigActor's child factory for one boot, starting from `snapshot`."""
    auth, opts, state_dir = state.auth, state.opts, state.state_dir
    load = partial(load_for_boot, snapshot.path, opts) if opts is not None else None
    known: KnownHash = state.known_hash
    return lambda: ConfigActor.start(
        snapshot, load=load, known=known, refusal=partial(_refusal, auth, opts),
        audit=partial(_audit, state_dir, port), handover=partial(_hand_over, state_dir),
        publish=make_config_mirror(loop, state))


def _audit(state_dir: str, port: int, event: str, reason: str) -> None:
    """On the config actor's thread: through the one audit writer, waited for, so the line is
    on disk before the plan (and the status it leads to) reaches the loop."""
    try:
        audit_soon(state_dir, event, port=port, reason=reason).result(AUDIT_WAIT_S)
    except concurrent.futures.TimeoutError:
        log.warning("audit line %s not written within %.0fs", event, AUDIT_WAIT_S)


def _hand_over(state_dir: str, plan: ReloadPlan) -> None:
    """On the config actor's thread: hot keys to the actors that own what they set. Runs take
    the snapshot they were accepted under; the store and the agents actor hold what outlives
    one run."""
    new, hot = plan.snapshot.config, plan.hot
    if any(p.split(".")[0] in ("session", "agents", "models") for p in hot):
        send(SESSIONS, SessionStore.set_reset_policy, session_reset_policy(new))
        send(SESSIONS, SessionStore.set_defaults, session_defaults(new))
        send(AGENTS, AgentManager.configure, new.agents.defaults.max_concurrent)
    if any(p.split(".")[0] == "tools" or p.startswith("agents") for p in hot):
        send(TOOLS, ToolExecutor.set_config, new.tools.exec, workspace_dir(new, state_dir))
    if any(p.startswith("channels.") or p == "gateway.channelHeartbeatMs" for p in hot + plan.channel):
        send(CHANNEL_ROUTER, ChannelRouter.set_config, new)
        send(CHANNEL_SUPERVISOR, ChannelSupervisor.apply, new)


def make_config_mirror(loop: asyncio.AbstractEventLoop, state: GatewayState) -> Callable[[ConfigView], None]:
    """The ConfigActor's `publish`: keeps the loop's read-only copy. Called on the actor's
    thread; a push that cannot reach the loop is said out loud, never dropped silently."""

    def store(view: ConfigView) -> None:
        state.snapshot = view.applied
        state.config_payload = msgspec.Raw(view.payload)

    def publish(view: ConfigView) -> None:
        try:
            loop.call_soon_threadsafe(store, view)
        except RuntimeError as exc:  # the loop is closed: only while the gateway stops
            log.warning("config change not pushed to the event loop (%s); the gateway is stopping", exc)

    return publish


def make_on_change(loop: asyncio.AbstractEventLoop, state: GatewayState) -> Callable[[list[str]], None]:
    """The WatcherActor's `on_change`: called on an actor thread, reloads on the loop."""
    tasks: set[asyncio.Task] = set()

    def start() -> None:
        task = loop.create_task(reload_from_file(state, "watcher"))
        tasks.add(task)  # keep a reference until done: the loop holds tasks only weakly
        task.add_done_callback(tasks.discard)

    def on_change(_paths: list[str]) -> None:
        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop is gone: the gateway is stopping
            pass

    return on_change
