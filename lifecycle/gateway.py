"""One running gateway on bound sockets (cli-config §7.4 steps 5-6, §7.5): the actor tree
behind a start barrier, readiness, signals, the in-process restart, and the graceful stop."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import platform
import shutil
import signal
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from actors import logs, registry, testhooks
from actors.agents.manager import AGENTS, AgentManager
from actors.channels.pairing import PAIRING_STORE, PairingStore
from actors.channels.router import CHANNEL_ROUTER, ChannelRouter, route
from actors.channels.supervisor import CHANNEL_SUPERVISOR, ChannelSupervisor
from actors.config.actor import CONFIG
from actors.config.settings import StartupRefusal
from actors.config.watcher import WATCHER, WatcherActor
from actors.events import EVENT_HUB, EventHub
from actors.health import HEALTH, HealthActor, default_reload_status
from actors.sessions.defaults import session_defaults, session_reset_policy
from actors.sessions.store import SESSIONS, SessionStore
from actors.supervisor import ChildSpec, Supervisor
from actors.tools.executor import TOOLS, ToolExecutor, workspace_dir
from lifecycle import ports
from lifecycle.lock import InstanceLock, audit_async, flush_audit
from lifecycle.logsetup import configure_logging
from lifecycle.reload import (
    config_actor_factory,
    credential_refusal,
    install,
    invalid_summary,
    make_on_change,
    reload_from_file,
    set_reload_status,
)
from lifecycle.restart import RESTART_EXPECTED_MS, RestartRequest, RestartScheduler
from lifecycle.startup import Plan, RunOptions, load_for_boot, plan
from transport import bridge, methods
from transport.app import make_deliver, make_health_mirror, make_server
from transport.loopstats import LoopProbe
from transport.protocol import PROJECT_VERSION, SERVER_VERSION, encoder
from transport.state import DRAINING, READY, STARTING, GatewayState

if TYPE_CHECKING:
    import pykka
    from tornado.httpserver import HTTPServer

log = logging.getLogger("openclaw.gateway")

EXIT_OK, EXIT_FAIL = 0, 1
FORCED_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
STOP_BUDGET_S = 5.0  # steps 3-4 of a graceful stop (§7.5)
CLOSE_WAIT_S = 1.0  # how long step 3 waits for clients to answer the 1012 close


def instance_id(state_dir: Path) -> str:
    """A UUID kept in the state dir: the gateway's presence identity across restarts."""
    path = state_dir / "gateway.instance"
    try:
        return str(uuid.UUID(path.read_text().strip()))
    except (OSError, ValueError):
        value = str(uuid.uuid4())
        path.write_text(value + "\n")
        return value


def self_presence(state_dir: Path) -> dict:
    entry = {"host": socket.gethostname(), "version": SERVER_VERSION,
             "platform": f"{sys.platform} {platform.release()}",
             "deviceFamily": platform.system(), "instanceId": instance_id(state_dir)}
    ip = ports.first_lan_ipv4()
    if ip:
        entry["ip"] = ip
    return entry


class Gateway:
    """One running gateway on already bound sockets: a loop of boot cycles (start-up, then one
    per in-process restart) that ends with the graceful stop."""

    def __init__(self, startup: Plan, port: int, state_dir: Path, opts: RunOptions,
                 lock: InstanceLock, log_file: str, state_dir_from_env: bool = False) -> None:
        self.startup, self.port, self.state_dir, self.opts = startup, port, state_dir, opts
        self.lock, self.log_file = lock, log_file
        self.sockets: list[socket.socket] = []  # the listeners now; a restart may replace them
        self.state = GatewayState(
            snapshot=startup.snapshot, auth=startup.auth, state_dir=str(state_dir),
            config_path=startup.snapshot.path, port=port, bind_mode=startup.bind_mode,
            bind_host=startup.bind_host, dev=opts.dev, verbose=opts.verbose, opts=opts,
            state_dir_from_env=state_dir_from_env,
            reload_status=default_reload_status(startup.snapshot.config.gateway.reload.mode))
        install(self.state)
        self.state.known_hash.set(startup.snapshot.hash)
        limit = startup.snapshot.config.gateway.auth.rate_limit
        self.state.limiter.configure(limit.max_attempts, limit.window_ms, limit.lockout_ms)
        self._stop: asyncio.Future | None = None  # result: (exit code, reason)
        self._wake: asyncio.Event | None = None  # set when a restart request is due
        self._signals = 0
        self._draining: asyncio.Task | None = None  # the drain wait, while step 2 runs
        self._forced: int | None = None  # exit code set by a second signal
        self._server: HTTPServer | None = None
        self._root: pykka.ActorRef[Supervisor] | None = None
        self._tasks: set[asyncio.Task] = set()  # signal-started reloads, kept until done
        self._methods_loaded: asyncio.Future | None = None

    @property
    def _stopped(self) -> asyncio.Future:
        """The stop future; serve() makes it before anything reads it."""
        assert self._stop is not None
        return self._stop

    # --- lifecycle --------------------------------------------------------------------------

    async def serve(self, sockets: list[socket.socket]) -> int:
        loop = asyncio.get_running_loop()
        self.sockets = list(sockets)
        self._stop = loop.create_future()
        self._wake = asyncio.Event()
        self.state.restarts = RestartScheduler(
            self._wake.set, lambda: self.state.snapshot.config.gateway.reload.cooldown_ms)
        self._install_signals(loop)
        self._server = make_server(self.state, self.sockets)  # answers /readyz 503 from here on
        self.state.loop_probe = LoopProbe()
        self.state.loop_probe.start()
        await self._boot(loop, first=True)
        while not self._stop.done():
            request = await self._next_restart()
            if request is not None:
                await self._restart(loop, request)
        self.state.restarts.cancel()
        code, reason = self._stop.result()
        return await self._shutdown(self._server, self._root, code, reason)

    async def _boot(self, loop: asyncio.AbstractEventLoop, first: bool) -> None:
        """§7.4 steps 5-6: the actors behind the start barrier, then ready."""
        # The method modules load on first use: imported on the loop, they held the first
        # client's handshake for 50-150 ms. Here they load in a worker while the actors start.
        self._methods_loaded = loop.run_in_executor(None, methods.table)
        try:
            if await self._until_stopped(_test_startup_delay()):
                # Off the loop: it reads (first time: writes) the instance id file.
                presence = await loop.run_in_executor(None, self_presence, self.state_dir)
                root = self._root = Supervisor.start(
                    self._children(loop, presence), max_restarts=5, period=60.0,
                    on_escalate=lambda reason: self._escalate(loop, reason), name="core")
                await self._until_stopped(bridge.ask_within(60, root, Supervisor.start_children))
        except Exception as exc:  # noqa: BLE001 - a core actor could not start
            log.error("gateway failed to start: %s", exc)
            self._request_stop(EXIT_FAIL, f"startup failed: {exc}")
        if not self._stopped.done():
            await self._before_ready(loop, first)
            self._ready(first)

    async def _next_restart(self) -> RestartRequest | None:
        """Wait for a due restart request, or the stop (then None)."""
        assert self._wake is not None and self.state.restarts is not None  # made by serve()
        wake = asyncio.ensure_future(self._wake.wait())
        await asyncio.wait([wake, self._stopped], return_when=asyncio.FIRST_COMPLETED)
        wake.cancel()
        if self._stopped.done():
            return None
        self._wake.clear()
        return self.state.restarts.take()

    async def _until_stopped(self, work) -> bool:
        """Run `work` unless a stop comes first (a signal during startup); True if it ran."""
        task = asyncio.ensure_future(work)
        await asyncio.wait([task, self._stop], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises the start failure, if any
            return True
        task.cancel()
        return False

    def _children(self, loop: asyncio.AbstractEventLoop, presence: dict) -> list[ChildSpec]:
        snapshot, state_dir = self.startup.snapshot, str(self.state_dir)
        deliver = make_deliver(loop, self.state)
        mirror = make_health_mirror(loop, self.state)
        reload_cfg, status = snapshot.config.gateway.reload, dict(self.state.reload_status)
        reset_policy, defaults = session_reset_policy(snapshot.config), session_defaults(snapshot.config)
        max_concurrent = snapshot.config.agents.defaults.max_concurrent
        config = snapshot.config
        children = [
            ChildSpec(CONFIG.name, config_actor_factory(loop, self.state, snapshot, self.port)),
            ChildSpec(EVENT_HUB.name, lambda: EventHub.start(deliver, presence)),
            ChildSpec(HEALTH.name, lambda: HealthActor.start(state_dir, reload_cfg.mode, mirror=mirror,
                                                          reload_status=status)),
            # After health: the store tells the HealthActor its counts itself, and health
            # never waits on the store.
            ChildSpec(SESSIONS.name, lambda: SessionStore.start(state_dir, reset_policy, defaults)),
            ChildSpec(PAIRING_STORE.name, lambda: PairingStore.start(state_dir)),
            # Before agents: runs call tools; stopped after them, killing every tool group.
            ChildSpec(TOOLS.name, lambda: ToolExecutor.start(config.tools.exec,
                                                          workspace_dir(config, state_dir))),
            # After sessions: runs read and write transcripts; stopped first, so every run
            # is aborted while the store can still take its partial reply.
            ChildSpec(AGENTS.name, lambda: AgentManager.start(max_concurrent)),
            # Last: inbound messages need the store and the runtime; stopped first, so every
            # channel process group is gone before the rest stops.
            ChildSpec(CHANNEL_ROUTER.name, lambda: ChannelRouter.start(config)),
            ChildSpec(CHANNEL_SUPERVISOR.name, lambda: ChannelSupervisor.start(config, state_dir, route)),
        ]
        if reload_cfg.mode != "off":  # off: file edits wait for a restart or SIGHUP (§5.7)
            included = getattr(snapshot, "included_files", ()) or ()
            on_change, known = make_on_change(loop, self.state), self.state.known_hash
            children.insert(1, ChildSpec(WATCHER.name, lambda: WatcherActor.start(
                snapshot.path, included, reload_cfg.debounce_ms, known, on_change)))
        return children

    async def _before_ready(self, loop: asyncio.AbstractEventLoop, first: bool) -> None:
        """The file work of a successful start, done before /readyz says 200, off the loop."""
        if self._methods_loaded is not None:
            await self._methods_loaded
        await loop.run_in_executor(None, _save_last_good, self.startup.snapshot.path)
        if first:
            await audit_async(self.state_dir, "start", port=self.port, reason="startup")

    def _ready(self, first: bool) -> None:
        auth, reload_mode = self.startup.auth, self.startup.snapshot.config.gateway.reload.mode
        host = self.startup.bind_host
        url_host = f"[{host}]" if ":" in host else host
        log.info("openclaw %s listening on ws://%s:%d (bind=%s, auth=%s, reload=%s)", PROJECT_VERSION,
                 url_host, self.port, self.startup.bind_mode, auth.mode, reload_mode)
        log.info("config %s · state %s · log file %s", self.startup.snapshot.path, self.state_dir,
                 self.log_file or "(none)")
        if auth.generated and first:
            _announce_token(auth.token, self.state_dir)
        self.state.phase = READY  # last: /readyz 200 means every startup step is done (§7.4)

    # --- in-process restart (§7.5 last paragraph, protocol §11) -------------------------------

    async def _restart(self, loop: asyncio.AbstractEventLoop, request: RestartRequest) -> None:
        restarts = self.state.restarts
        assert restarts is not None  # made by serve()
        restarted = False
        try:
            async with self.state.reload_lock:  # no reload applies halfway through a cycle
                restarted = await self._restart_cycle(loop, request)
        except Exception as exc:  # noqa: BLE001 - a restart must never take the gateway down
            log.error("restart failed: %s", exc)
            set_reload_status(self.state, status="error", lastError=f"restart failed: {exc}")
        finally:
            restarts.finished(restarted)

    async def _restart_cycle(self, loop: asyncio.AbstractEventLoop, request: RestartRequest) -> bool:
        """Steps (1)-(7): validate, bind the new address first, drain, shutdown + 1012, actors
        down, then boot again. False (still running unchanged) when the new config is unusable."""
        await audit_async(self.state_dir, "restart-requested", port=self.port, reason=request.reason)
        snapshot = await loop.run_in_executor(None, load_for_boot, self.startup.snapshot.path, self.opts)
        if not snapshot.valid:
            self.state.known_hash.set(snapshot.hash)
            return self._abort(f"restart aborted (invalid config): {invalid_summary(snapshot)}",
                               f"invalid config: {invalid_summary(snapshot)}")
        refused = credential_refusal(self.state, snapshot)
        if refused:
            return self._abort(f"restart aborted: {refused}", refused)
        try:  # off the loop: it may create <state>/gateway.token
            new = await loop.run_in_executor(None, plan, snapshot, self.opts, str(self.state_dir))
        except StartupRefusal as exc:
            return self._abort(f"restart aborted: {exc}", str(exc))
        new_sockets = None
        if (new.bind_host, new.port) != (self.startup.bind_host, self.startup.port):
            try:  # before anything is torn down: a taken port leaves the gateway as it was
                new_sockets = await loop.run_in_executor(None, ports.bind_listeners, new.bind_host, new.port)
            except ports.BindError as exc:
                return self._abort(f"restart aborted: {exc}; still serving on port {self.port}", str(exc))
        log.info("restarting in-process (%s)", request.reason)
        await audit_async(self.state_dir, "restart", port=self.port, reason=request.reason)
        self.state.phase = DRAINING
        if not request.force:
            drain_ms = request.drain_ms
            if drain_ms is None:
                drain_ms = self.startup.snapshot.config.gateway.restart_drain_timeout_ms
            await self._until_stopped(self._drain(drain_ms / 1000))
        if self._stopped.done():
            # A stop signal during the drain: the graceful stop takes over with its own,
            # shorter budget (§7.5), so a supervisor's stop timeout is never reached first.
            for sock in new_sockets or ():
                sock.close()
            return False
        await self._close_connections({"reason": "gateway restarting",
                                       "restartExpectedMs": RESTART_EXPECTED_MS})
        if self._root is not None:
            await self._stop_actors(self._root)
            self._root = None
        if new_sockets is not None:
            self._swap_listeners(new_sockets)
        self._adopt_plan(new)
        await self._adopt_files(loop, new)
        await self._boot(loop, first=False)
        return True

    def _abort(self, message: str, error: str) -> bool:
        log.error(message)
        set_reload_status(self.state, status="error", lastError=error)
        return False

    def _swap_listeners(self, new_sockets: list[socket.socket]) -> None:
        """Serve on the new sockets; the old server stops listening and its sockets close."""
        old_server, old_sockets = self._server, self.sockets
        if old_server is not None:
            old_server.stop()
        for sock in old_sockets:
            sock.close()
        self.sockets = new_sockets
        self._server = make_server(self.state, new_sockets)

    def _adopt_plan(self, new: Plan) -> None:
        """The next boot's settings: same pid and lock, new snapshot and bootId."""
        self.startup, self.port = new, self.sockets[0].getsockname()[1]
        st = self.state
        # The new ConfigActor starts from this snapshot and pushes config.get's answer.
        st.snapshot, st.config_payload = new.snapshot, None
        st.auth, st.port, st.bind_mode, st.bind_host = new.auth, self.port, new.bind_mode, new.bind_host
        st.boot_id, st.phase = str(uuid.uuid4()), STARTING
        st.known_hash.set(new.snapshot.hash)
        limit = new.snapshot.config.gateway.auth.rate_limit
        st.limiter.configure(limit.max_attempts, limit.window_ms, limit.lockout_ms)
        st.reload_status = dict(default_reload_status(new.snapshot.config.gateway.reload.mode),
                                lastReloadAt=int(time.time() * 1000))

    async def _adopt_files(self, loop: asyncio.AbstractEventLoop, new: Plan) -> None:
        """The next boot's port in the lock file and its logging, off the loop (both write
        files; the lock file is synced)."""
        await loop.run_in_executor(None, functools.partial(self.lock.update, port=self.port))
        try:
            handle = await loop.run_in_executor(None, configure_logging, self.opts, new.snapshot,
                                                new.auth, self.state_dir, self.state.state_dir_from_env)
            self.log_file = str(handle.file_path or "")
        except (OSError, ValueError) as exc:  # keep the previous handlers
            log.error("restart: logging not reconfigured: %s", exc)

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in FORCED_EXIT:
            loop.add_signal_handler(sig, self._on_signal, sig)
        loop.add_signal_handler(signal.SIGUSR1, self._on_usr1)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("received %s; shutting down", sig.name)
            self._request_stop(EXIT_OK, sig.name)
            return
        code = FORCED_EXIT[sig]
        if self._draining is not None and not self._draining.done():
            # §7.5: a second signal skips the rest of the drain; steps 3-4 still run.
            log.warning("second %s; skipping the rest of the drain", sig.name)
            self._forced = code
            self._draining.cancel()
            return
        log.warning("second %s; exiting now", sig.name)
        self._exit_now(code)

    def _exit_now(self, code: int) -> None:
        """Forced exit: delete the lock file, flush the logs, and go."""
        try:
            self.lock.release()
        finally:
            flush_audit()
            logs.close()
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(code)

    def _request_stop(self, code: int, reason: str) -> None:
        if self._stop is not None and not self._stop.done():
            self._stop.set_result((code, reason))

    def _on_usr1(self) -> None:
        log.info("received SIGUSR1; restarting in-process")
        assert self.state.restarts is not None  # made by serve() before the signals
        self.state.restarts.request("SIGUSR1")

    def _on_hup(self) -> None:
        """Reload now with hybrid rules, even when gateway.reload.mode is off (§7.5)."""
        log.info("received SIGHUP; reloading the config")
        task = asyncio.ensure_future(reload_from_file(self.state, "SIGHUP", mode="hybrid"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _escalate(self, loop: asyncio.AbstractEventLoop, reason: str) -> None:
        """Called on an actor thread when a core actor restarted too often."""
        def stop() -> None:
            log.error("core actor failure past its restart intensity: %s; stopping", reason)
            self._request_stop(EXIT_FAIL, f"core actor failure: {reason}")
        try:
            loop.call_soon_threadsafe(stop)
        except RuntimeError:
            pass

    async def _shutdown(self, server, root, code: int, reason: str) -> int:
        """The graceful stop (§7.5): drain, shutdown event + 1012, actors, listeners."""
        self.state.phase = DRAINING
        await audit_async(self.state_dir, "stop", port=self.port, reason=reason)
        await self._drain(self.startup.snapshot.config.gateway.drain_timeout_ms / 1000)
        started = time.monotonic()
        await self._close_connections({"reason": "gateway stopping", "restartExpectedMs": None})
        if root is not None:
            await self._stop_actors(root, max(0.1, STOP_BUDGET_S - (time.monotonic() - started)))
        server.stop()
        if self.state.loop_probe is not None:
            self.state.loop_probe.stop()
        elapsed = time.monotonic() - started
        if self._forced is not None:
            log.warning("gateway stopped (forced, exit %d)", self._forced)
            return self._forced
        if elapsed > STOP_BUDGET_S:
            log.error("graceful stop took %.1fs, longer than %.0fs; exiting 1", elapsed, STOP_BUDGET_S)
            return EXIT_FAIL
        log.info("gateway stopped")
        return code

    async def _drain(self, budget_s: float) -> None:
        """Step 2: let requests already running finish, up to the drain budget; a second
        signal cancels the wait. `agent.wait` calls are answered `timeout` at once: they
        wait on runs, not on work the drain could let finish."""
        bridge.tell(AGENTS, AgentManager.end_waits)

        async def wait() -> None:
            deadline = time.monotonic() + budget_s
            while self.state.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.state.in_flight:
                log.warning("drain budget of %.0fs spent; %d request(s) still running",
                            budget_s, self.state.in_flight)

        self._draining = asyncio.ensure_future(wait())
        try:
            await self._draining
        except asyncio.CancelledError:
            if self._forced is None:  # not our cancel: the loop itself is going down
                raise
        finally:
            self._draining = None

    async def _close_connections(self, payload: dict) -> None:
        """Step 3: every socket gets the shutdown event, then close 1012 `service restart`."""
        data = encoder.encode(payload)
        for conn in list(self.state.connections.values()):
            conn.shutdown(data)
        deadline = time.monotonic() + CLOSE_WAIT_S
        while self.state.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def _stop_actors(self, root, budget_s: float = STOP_BUDGET_S) -> None:
        try:
            await bridge.ask_within(budget_s, root, Supervisor.stop_children)
        except Exception as exc:  # noqa: BLE001 - stop what is left below
            log.warning("actor stop incomplete: %s", exc)
        root.stop(block=False)  # its children are stopped; never wait on the loop thread
        registry.clear()


async def _test_startup_delay() -> None:
    """Test hook (actors/testhooks.py): hold the start barrier so tests can see /readyz 503
    and close 1013."""
    delay = testhooks.startup_delay_s()
    if delay is not None:
        await asyncio.sleep(delay)


def _save_last_good(config_path: str) -> None:
    """Each successful start keeps a copy of the config it started with (§5.4)."""
    source = Path(config_path)
    if not source.is_file():
        return
    target = source.with_name(source.name + ".last-good")
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except OSError as exc:
        log.warning("could not write %s: %s", target, exc.strerror)


def _announce_token(token: str | None, state_dir: Path) -> None:
    """The generated token goes to the terminal once, never through the logger (§4.1); off
    a terminal stdout gets only the token file's path."""
    path = state_dir / "gateway.token"
    if sys.stdout.isatty() and token:
        print(f"Gateway token (kept in {path}):\n  export OPENCLAW_GATEWAY_TOKEN={token}", flush=True)
    else:
        print(path, flush=True)
