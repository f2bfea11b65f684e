"""The gateway process before and after its event loop (cli-config §7.2, §7.4 steps 1-4):
config and startup refusals, logging, the state-dir lock, the listener sockets, and signals
outside the loop. `run(opts)` returns the process exit code; `lifecycle/gateway.py` serves."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import sys
from pathlib import Path

from actors import logs
from actors.config.settings import StartupRefusal
from actors.paths import ensure_private_dir, env, resolve_config_path, resolve_state_dir
from lifecycle import loopguard, ports
from lifecycle.gateway import FORCED_EXIT, Gateway
from lifecycle.lock import ForceError, InstanceLock, LockHeld, force_free_port, force_takeover_lock
from lifecycle.logsetup import configure_logging
from lifecycle.startup import Plan, RunOptions, load_for_boot, plan
from transport.protocol import PROJECT_VERSION

log = logging.getLogger("openclaw.gateway")

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 78
LOCK_TIMEOUT_MS = 5000


class _Interrupted(Exception):
    """SIGTERM/SIGINT before the event loop serves: nothing to drain, stop right there."""

    def __init__(self, sig: signal.Signals) -> None:
        super().__init__(sig.name)
        self.sig = sig


def _interrupt(signum: int, _frame) -> None:
    raise _Interrupted(signal.Signals(signum))


def run(opts: RunOptions) -> int:
    # Until the loop installs its own handlers, a stop signal unwinds whatever runs (config
    # load, the 5 s lock wait, a --force takeover) through its cleanup: lock and sockets freed.
    previous = {sig: signal.signal(sig, _interrupt) for sig in FORCED_EXIT}
    try:
        return _run(opts)
    except _Interrupted as stop:
        print(f"received {stop.sig.name} before the gateway was serving; exiting", file=sys.stderr)
        return EXIT_OK
    finally:
        logs.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(opts: RunOptions) -> int:
    os.umask(0o077)
    state_dir, state_src = resolve_state_dir(opts.dev)
    config_path, _ = resolve_config_path(state_dir)
    snapshot = load_for_boot(config_path, opts)
    if not snapshot.valid:
        _print_invalid(config_path, snapshot)
        return EXIT_CONFIG
    if opts.dev:
        ensure_private_dir(state_dir / "workspace")
    ensure_private_dir(state_dir)
    try:
        startup = plan(snapshot, opts, str(state_dir))
    except StartupRefusal as refusal:
        print(str(refusal), file=sys.stderr)
        if refusal.hint:
            print(f"hint: {refusal.hint}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        handle = _setup_logging(opts, startup, state_dir, state_src == "env")
    except OSError as exc:
        # An unusable logging.file is a config problem: exit 78 so no supervisor loops on it.
        where = startup.snapshot.config.logging.file or exc.filename
        print(f"logging.file: cannot open {where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    return _run_locked(opts, startup, state_dir, handle, state_src == "env")


def _print_invalid(path: Path, snapshot) -> None:
    print(f"Invalid config at {path}:", file=sys.stderr)
    for issue in snapshot.issues:
        print(f"  - {issue.line()}", file=sys.stderr)


def _setup_logging(opts: RunOptions, startup: Plan, state_dir: Path, from_env: bool):
    return configure_logging(opts, startup.snapshot, startup.auth, state_dir, from_env)


def _run_locked(opts: RunOptions, startup: Plan, state_dir: Path, handle, from_env: bool) -> int:
    lock = InstanceLock(state_dir)
    info = {"port": startup.port, "bind": startup.bind_mode, "configPath": startup.snapshot.path,
            "version": PROJECT_VERSION}
    try:
        _acquire(lock, opts, startup, state_dir, info)
        sockets = _bind(opts, startup, state_dir)
    except (LockHeld, ports.BindError, ForceError) as exc:
        if lock.held:
            lock.release()
        return _conflict(exc, startup.port, lock)
    except BaseException:
        lock.release()
        raise
    late = _LateSignals()
    try:
        port = sockets[0].getsockname()[1]
        lock.update(port=port)
        _raise_fd_limit()
        gateway = Gateway(startup, port, state_dir, opts, lock, log_file=str(handle.file_path or ""),
                          state_dir_from_env=from_env)
        loopguard.install()  # a test knob; off in normal runs
        code = asyncio.run(gateway.serve(sockets))
        sockets = gateway.sockets  # an in-process restart may have moved to new ones
        # The loop's signal handlers are gone with it; a stop signal from here on must not
        # kill the process before the lock file is deleted.
        late.install()
        return late.code if late.code is not None else code
    finally:
        late.install()
        for sock in sockets:
            sock.close()
        lock.release()


class _LateSignals:
    """After the loop: a second stop signal only changes the exit code of the cleanup."""

    def __init__(self) -> None:
        self.code: int | None = None

    def install(self) -> None:
        for sig in FORCED_EXIT:
            signal.signal(sig, self._record)

    def _record(self, signum: int, _frame) -> None:
        self.code = FORCED_EXIT[signal.Signals(signum)]


def _acquire(lock: InstanceLock, opts: RunOptions, startup: Plan, state_dir: Path, info: dict) -> None:
    """§7.2: the lock, retried for 5000 ms; with --force the holder is stopped first."""
    try:
        lock.acquire(0, info)
        return
    except LockHeld as held:
        if opts.force:
            force_takeover_lock(lock.holder(), state_dir=state_dir,
                                drain_timeout_ms=startup.snapshot.config.gateway.drain_timeout_ms,
                                interactive=sys.stdin.isatty(), health_ok=_health_ok)
        else:
            log.info("gateway lock %s is held by pid %s; waiting up to %dms", lock.path,
                     held.pid or "unknown", LOCK_TIMEOUT_MS)
    try:
        lock.acquire(LOCK_TIMEOUT_MS, info)
    except LockHeld as held:
        raise LockHeld(held.pid, LOCK_TIMEOUT_MS) from None


def _bind(opts: RunOptions, startup: Plan, state_dir: Path) -> list[socket.socket]:
    try:
        return ports.bind_listeners(startup.bind_host, startup.port)
    except ports.PortInUse as exc:
        if not opts.force:
            raise
        force_free_port(exc.host, exc.port, state_dir=state_dir)
        return ports.bind_listeners(startup.bind_host, startup.port)


def _health_ok(port: int) -> bool:
    import urllib.request  # only when the port is taken: kept out of every start-up

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _conflict(exc: Exception, port: int, lock: InstanceLock) -> int:
    """Lock or port conflict: exit 1, or 78 when supervised and a healthy gateway runs (§7.2)."""
    if env("OPENCLAW_SERVICE") and not isinstance(exc, ForceError):
        holder = lock.holder() or {}
        pid = getattr(exc, "pid", None) or holder.get("pid")
        # The lock holder may serve on another port than ours: probe both.
        candidates = [p for p in (port, holder.get("port")) if isinstance(p, int) and p > 0]
        if any(_health_ok(p) for p in dict.fromkeys(candidates)):
            log.error("gateway already running and healthy (pid %s); not starting a second one",
                      pid if pid else "unknown")
            return EXIT_CONFIG
    log.error(str(exc))
    return EXIT_FAIL


FD_LIMIT_WARN = 4096  # below this many descriptors, say how few connections fit
FD_RESERVE = 64  # descriptors the gateway itself uses: logs, databases, pipes, listeners


def _raise_fd_limit() -> None:
    """Thousands of sockets need more than the common soft limit of 1024 descriptors: the soft
    limit goes up to the hard one, and a low result is reported (each connection is one
    descriptor; past the limit new connections wait in the listen backlog)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft < FD_LIMIT_WARN:
        log.warning("open file limit is %d (hard limit %s): about %d WebSocket connections fit; "
                    "raise it (ulimit -n, systemd LimitNOFILE=) to hold more", soft,
                    "unlimited" if hard == resource.RLIM_INFINITY else hard, max(0, soft - FD_RESERVE))


