"""The reload glue (cli-config §5.7): a loaded snapshot → diff → reload class → action, on the
event loop. Used by the config watcher, SIGHUP, and the RPC write path (config.set/patch/apply
call `apply_snapshot` after a successful write; its result is the `restart` object of
protocol §10.5).

`state.snapshot` is the config applied now; `state.boot_snapshot` the one this boot started
with, so `pendingRestart` lists the restart-class keys that differ from what actually runs.
A bad edit never stops the gateway: it is reported in `configReload` and the next good edit
recovers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Callable

from actors import logs
from actors.agents.manager import AGENTS, AgentManager
from actors.channels.router import CHANNEL_ROUTER, ChannelRouter
from actors.channels.supervisor import CHANNEL_SUPERVISOR, ChannelSupervisor
from actors.config.actor import CONFIG, ConfigActor
from actors.config.load import ConfigSnapshot, secret_values
from actors.config.reload import changed_paths, classify
from actors.config.settings import dropped_config_secret
from actors.health import HEALTH, HealthActor
from actors.sessions.defaults import session_defaults, session_reset_policy
from actors.sessions.store import SESSIONS, SessionStore
from actors.tools.executor import TOOLS, ToolExecutor, workspace_dir
from lifecycle.lock import audit
from lifecycle.logsetup import configure_logging
from lifecycle.startup import load_for_boot
from transport import bridge
from transport.state import GatewayState

log = logging.getLogger("openclaw.gateway")


def set_reload_status(state: GatewayState, **changes: object) -> None:
    """Update `configReload` on the loop and hand it to the HealthActor (`health`, `status`)."""
    state.reload_status.update(changes)
    bridge.tell(HEALTH, HealthActor.set_config_reload, dict(state.reload_status))


def invalid_summary(snapshot: ConfigSnapshot) -> str:
    """`<first error with its path> (+N more)`."""
    first, more = snapshot.issues[0].line(), len(snapshot.issues) - 1
    return first + (f" (+{more} more)" if more else "")


async def reload_from_file(state: GatewayState, reason: str, mode: str | None = None) -> dict | None:
    """Load the config file off the loop, then `apply_snapshot` it."""
    snapshot = await asyncio.get_running_loop().run_in_executor(
        None, load_for_boot, state.config_path, state.opts)
    return await apply_snapshot(state, snapshot, reason, mode=mode)


async def apply_snapshot(state: GatewayState, snapshot: ConfigSnapshot, reason: str,
                         mode: str | None = None, delay_ms: int = 0) -> dict | None:
    """Apply `snapshot` under `mode` (default: its own `gateway.reload.mode`; SIGHUP passes
    `hybrid`). Returns the protocol §10.5 `restart` object, or None when nothing waits for a
    restart. Never raises for a bad config."""
    async with state.reload_lock:
        state.known_hash.set(snapshot.hash)
        if not snapshot.valid:
            _skip(state, snapshot, reason)
            # config.get shows the file as it is (valid:false, its issues); the gateway keeps
            # running on state.snapshot, and appliedConfigHash stays on the last good one.
            await _adopt(snapshot, applied=False)
            return None
        mode = mode or snapshot.config.gateway.reload.mode
        ignored = _ignored(state.snapshot) | _ignored(snapshot)
        paths = [p for p in changed_paths(state.snapshot.resolved, snapshot.resolved)
                 if not _under(p, ignored)]
        groups = classify(paths)
        live = groups["hot"] + groups["channel"]
        now_ms = int(time.time() * 1000)
        if mode == "off" or (mode == "restart" and (live or groups["restart"])):
            return await _defer_or_restart(state, snapshot, reason, mode, live + groups["restart"],
                                           now_ms, delay_ms)
        old = state.snapshot
        state.snapshot = snapshot
        error = _apply_live(state, old, snapshot, groups) if live else None
        if live or groups["restart"]:
            audit(state.state_dir, "reload", port=state.port, reason=f"{reason}: {', '.join(paths)}")
        pending = _pending_restart(state, snapshot)
        await _adopt(snapshot, applied=not pending)
        restart = None
        # Only what differs from the running boot needs a restart: an edit that puts back a
        # key whose change was refused (or not yet applied) restarts nothing.
        wants_restart = bool(groups["restart"] and mode == "hybrid" and pending)
        refused = credential_refusal(state, snapshot) if wants_restart else None
        if refused:
            log.error("config change not applied: %s", refused)
            error = "; ".join(filter(None, [error, refused]))
            restart = {"required": True, "scheduled": False, "delayMs": 0, "reason": reason,
                       "paths": pending}
        elif wants_restart:
            restart = _schedule(state, reason, groups["restart"], delay_ms)
        elif pending:
            log.warning("config change requires restart: %s", ", ".join(pending))
            restart = {"required": True, "scheduled": False, "delayMs": 0, "reason": reason,
                       "paths": pending}
        set_reload_status(state, mode=snapshot.config.gateway.reload.mode, status="error" if error else
                          ("pending-restart" if pending else "ok"),
                          lastReloadAt=now_ms, lastError=error, pendingRestart=pending)
        if paths:
            log.info("config reloaded (%s): %s", reason, ", ".join(paths))
        return restart


def _ignored(snapshot: ConfigSnapshot) -> set[str]:
    """Top-most paths the loader marks as OpenClaw-only (`snapshot.ignored`, when the loader
    has it): they have no effect here, so a change under them is class none."""
    return set(getattr(snapshot, "ignored", ()) or ())


def _under(path: str, roots: set[str]) -> bool:
    return any(path == r or path.startswith((r + ".", r + "[")) for r in roots)


def _skip(state: GatewayState, snapshot: ConfigSnapshot, reason: str) -> None:
    summary = invalid_summary(snapshot)
    log.error("config reload skipped (invalid config): %s", summary)
    for issue in snapshot.issues[1:]:
        log.error("  - %s", issue.line())
    audit(state.state_dir, "reload-skipped", port=state.port, reason=f"{reason}: {summary}")
    set_reload_status(state, status="error", lastError=f"invalid config: {summary}")
    return None


async def _defer_or_restart(state: GatewayState, snapshot: ConfigSnapshot, reason: str, mode: str,
                            paths: list[str], now_ms: int, delay_ms: int) -> dict | None:
    """`off`: nothing applies until a restart or SIGHUP; `restart`: every change restarts."""
    await _adopt(snapshot, applied=False)
    pending = list(dict.fromkeys(paths + _pending_restart(state, snapshot)))
    if mode == "restart":
        audit(state.state_dir, "reload", port=state.port, reason=f"{reason}: {', '.join(paths)}")
        refused = credential_refusal(state, snapshot)
        if refused:
            log.error("config change not applied: %s", refused)
            set_reload_status(state, mode=mode, status="error", lastReloadAt=now_ms,
                              lastError=refused, pendingRestart=pending)
            return {"required": True, "scheduled": False, "delayMs": 0, "reason": reason,
                    "paths": pending}
        restart = _schedule(state, reason, paths, delay_ms)
        set_reload_status(state, mode=mode, status="pending-restart", lastReloadAt=now_ms,
                          lastError=None, pendingRestart=pending)
        return restart
    if pending:
        log.warning("config change requires restart: %s", ", ".join(pending))
    set_reload_status(state, mode=mode, status="pending-restart" if pending else "ok",
                      lastError=None, pendingRestart=pending)
    return {"required": True, "scheduled": False, "delayMs": 0, "reason": reason,
            "paths": pending} if pending else None


def _pending_restart(state: GatewayState, snapshot: ConfigSnapshot) -> list[str]:
    """Restart-class keys that differ from what this boot runs with."""
    boot = state.boot_snapshot or state.snapshot
    ignored = _ignored(boot) | _ignored(snapshot)
    paths = [p for p in changed_paths(boot.resolved, snapshot.resolved) if not _under(p, ignored)]
    return classify(paths)["restart"]


def credential_refusal(state: GatewayState, snapshot: ConfigSnapshot) -> str | None:
    """Why no restart may run on `snapshot`: it would replace the configured secret by the
    generated token. The caller logs it and reports it in `configReload`."""
    opts = state.opts
    return dropped_config_secret(state.auth, snapshot, flag_token=getattr(opts, "token", None),
                                 flag_password=getattr(opts, "password", None))


def _schedule(state: GatewayState, reason: str, paths: list[str], delay_ms: int) -> dict:
    if state.restarts is None:  # not serving yet: the boot under way reads the file anyway
        return {"required": True, "scheduled": False, "delayMs": 0, "reason": reason, "paths": paths}
    log.info("config change restarts the gateway: %s", ", ".join(paths))
    result = state.restarts.request(f"config reload ({reason})", delay_ms=delay_ms, paths=paths)
    return {"required": True, "scheduled": True, "delayMs": result["delayMs"], "reason": reason,
            "paths": paths}


def _apply_live(state: GatewayState, old: ConfigSnapshot, new: ConfigSnapshot,
                groups: dict[str, list[str]]) -> str | None:
    """Hand hot keys to their live owners and channel keys to the channel hooks; the error
    text when an owner refused (the rest is still applied)."""
    error = None
    if any(p.split(".")[0] == "logging" for p in groups["hot"]) and state.opts is not None:
        try:
            configure_logging(state.opts, new, state.auth, Path(state.state_dir), state.state_dir_from_env)
        except (OSError, ValueError) as exc:
            error = f"logging: {exc}"
            log.error("config reload: logging not reconfigured: %s", exc)
    elif secret_values(old.resolved) != secret_values(new.resolved):
        logs.set_secrets([state.auth.token, state.auth.password, *secret_values(new.resolved)])
    limit = new.config.gateway.auth.rate_limit
    state.limiter.configure(limit.max_attempts, limit.window_ms, limit.lockout_ms)
    # controlUi.allowedOrigins is read from state.snapshot at each handshake: swapped already.
    # Runs take the snapshot they were accepted under; the store and the agents actor hold
    # what outlives one run.
    if any(p.split(".")[0] in ("session", "agents", "models") for p in groups["hot"]):
        bridge.tell(SESSIONS, SessionStore.set_reset_policy, session_reset_policy(new.config))
        bridge.tell(SESSIONS, SessionStore.set_defaults, session_defaults(new.config))
        bridge.tell(AGENTS, AgentManager.configure, new.config.agents.defaults.max_concurrent)
    if any(p.split(".")[0] == "tools" or p.startswith("agents") for p in groups["hot"]):
        bridge.tell(TOOLS, ToolExecutor.set_config, new.config.tools.exec,
                    workspace_dir(new.config, state.state_dir))
    if any(p.startswith("channels.") or p == "gateway.channelHeartbeatMs"
           for p in groups["hot"] + groups["channel"]):
        bridge.tell(CHANNEL_ROUTER, ChannelRouter.set_config, new.config)
        bridge.tell(CHANNEL_SUPERVISOR, ChannelSupervisor.apply, new.config)
    if groups["channel"]:
        log.info("channel restart: %s", ", ".join(groups["channel"]))
        for hook in list(state.channel_reload_hooks):
            try:
                hook(list(groups["channel"]))
            except Exception as exc:  # noqa: BLE001 - one hook must not stop the others
                log.error("channel reload hook failed: %s", exc)
                error = f"channel restart: {exc}"
    return error


async def _adopt(snapshot: ConfigSnapshot, applied: bool) -> None:
    try:
        await bridge.ask_within(5, CONFIG, ConfigActor.adopt, snapshot, applied=applied)
    except bridge.ActorUnavailable as exc:  # mid-restart: the next boot starts with the file
        log.debug("config actor did not adopt the reload: %s", exc)


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
