"""Single-instance lock, restart audit log and the `--force` takeover (cli-config spec §7.1, §7.2).

The lock is `fcntl.flock(LOCK_EX | LOCK_NB)` on `<state>/locks/gateway.lock`. The kernel drops a
flock when its holder dies, so the held flock is the only liveness test: the JSON inside the
file is informational, and a leftover file without a holder is simply taken over.
Standard library only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import json
import logging
import os
import signal
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from lifecycle.ports import BindError, bind_sockets, find_listener_pid, format_hostport, process_argv, process_command

__all__ = [
    "LockHeld", "ForceError", "ForceRefused", "InstanceLock", "audit", "audit_soon", "audit_async",
    "flush_audit", "lock_path",
    "audit_path", "pid_alive", "wait_for_exit", "is_gateway_process", "force_takeover_lock",
    "force_free_port",
]

log = logging.getLogger("openclaw.lock")

_POLL_S = 0.05          # exit polling interval
_KILL_WAIT_S = 5.0      # how long SIGKILL may take to show (uninterruptible sleep, NFS…)
_DIR_MODE = 0o700
_FILE_MODE = 0o600


def lock_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / "locks" / "gateway.lock"


def audit_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / "logs" / "gateway-restart.log"


def _ensure_dir(path: Path) -> Path:
    """Create `path` and any missing parents (the state dir itself, often) as 0700;
    existing directories are left as they are."""
    if not path.is_dir():
        _ensure_dir(path.parent)
        path.mkdir(mode=_DIR_MODE, exist_ok=True)
        os.chmod(path, _DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


# ---------------------------------------------------------------------------- errors


class LockHeld(Exception):
    """Another live process holds the lock (exit 1)."""

    def __init__(self, pid: int | None, timeout_ms: int) -> None:
        who = pid if pid is not None else "unknown"
        super().__init__(f"gateway already running (pid {who}); lock timeout after {timeout_ms}ms")
        self.pid, self.timeout_ms = pid, timeout_ms


class ForceError(Exception):
    """`--force` could not clear the way (exit 1)."""


class ForceRefused(ForceError):
    """A healthy gateway is spared when `--force` comes from a non-interactive shell."""


def _valid_pid(value: Any) -> int | None:
    """A pid that is safe to signal: 0, -1 and negatives would hit process groups."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 1:
        return value
    return None


def _read_info(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------------- the lock


class InstanceLock:
    """`<state>/locks/gateway.lock`, held for the life of the process (restarts included)."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)
        self.path = lock_path(state_dir)
        self._fd: int | None = None
        self._info: dict[str, Any] = {}

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def acquire(self, timeout_ms: int = 5000, info: Mapping[str, Any] | None = None, *,
                poll_ms: int = 100) -> dict[str, Any]:
        """Take the lock, retrying every `poll_ms` until `timeout_ms`; returns the info written.

        Raises LockHeld naming the holder's pid (from its JSON) when the time is up.
        """
        if self._fd is not None:
            raise RuntimeError("instance lock already held by this object")
        _ensure_dir(self.path.parent)
        deadline = time.monotonic() + timeout_ms / 1000
        while (fd := self._try_lock()) is None:
            if time.monotonic() >= deadline:
                holder = self.holder() or {}
                raise LockHeld(_valid_pid(holder.get("pid")), timeout_ms)
            time.sleep(min(poll_ms / 1000, max(deadline - time.monotonic(), 0.0)))
        self._fd = fd
        self._info = self._base_info() | dict(info or {})
        self._write()
        return self.info

    def _try_lock(self) -> int | None:
        """An fd holding the flock on the file currently at `self.path`, or None if busy."""
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            # The previous holder deletes the file before unlocking. If we locked that unlinked
            # inode, the next process would lock a fresh file beside us: reopen and try again.
            if self._is_current(fd):
                os.fchmod(fd, _FILE_MODE)  # a stale file may have been created with other modes
                return fd
            os.close(fd)
        return None

    def _is_current(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        own = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)

    @staticmethod
    def _base_info() -> dict[str, Any]:
        started = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        return {"pid": os.getpid(), "startedAt": started.replace("+00:00", "Z"), "port": None,
                "bind": None, "configPath": None, "version": None, "hostname": socket.gethostname()}

    def _write(self) -> None:
        """Rewrite the JSON in place: the flock belongs to this inode, so no rename-swap."""
        assert self._fd is not None
        data = (json.dumps(self._info, indent=2) + "\n").encode("utf-8")
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def update(self, **fields: Any) -> None:
        """Merge `fields` into the lock's JSON (e.g. the port, known only after binding)."""
        if self._fd is None:
            raise RuntimeError("instance lock not held")
        self._info.update(fields)
        self._write()

    def release(self) -> None:
        """Delete the file, then unlock. A no-op unless this object holds the lock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._is_current(fd):  # never delete a file some later holder created
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def holder(self) -> dict[str, Any] | None:
        """The JSON currently in the lock file; None when missing or garbled."""
        return _read_info(self.path)


# ---------------------------------------------------------------------------- audit


def audit(state_dir: str | os.PathLike[str], event: str, *, port: int | None, reason: str,
          pid: int | None = None) -> None:
    """Append `ts=… event=… pid=… port=… reason=…` to `<state>/logs/gateway-restart.log`,
    now, on the calling thread (the event loop uses `audit_soon`/`audit_async`).

    `pid` defaults to ours; an unknown port is written as `-`. Best effort: a failing audit
    write is logged, never raised, so it cannot take the gateway down.
    """
    _append(state_dir, _audit_line(event, port=port, reason=reason, pid=pid))


def _audit_line(event: str, *, port: int | None, reason: str, pid: int | None) -> str:
    ts = datetime.now().astimezone().isoformat(timespec="milliseconds")
    text = " ".join(str(reason).split())  # one record per line; reason stays last
    return (f"ts={ts} event={event} pid={pid if pid is not None else os.getpid()} "
            f"port={port if port is not None else '-'} reason={text}\n")


def _append(state_dir: str | os.PathLike[str], line: str) -> None:
    try:
        path = _ensure_dir(audit_path(state_dir).parent) / "gateway-restart.log"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        try:
            os.write(fd, line.encode("utf-8"))  # one O_APPEND write: lines never interleave
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("cannot write audit log in %s: %s", state_dir, exc)


# The audit file's owner for the event loop: one thread appends the lines in the order they were
# asked for, so the loop never waits on the disk and `start` never lands after `stop`.
_writer_lock = threading.Lock()
_writer: concurrent.futures.ThreadPoolExecutor | None = None


def _audit_writer() -> concurrent.futures.ThreadPoolExecutor:
    global _writer
    with _writer_lock:
        if _writer is None:
            # Its worker is joined at interpreter exit, so a queued line is never lost there.
            _writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="openclaw-audit")
        return _writer


def audit_soon(state_dir: str | os.PathLike[str], event: str, *, port: int | None, reason: str,
               pid: int | None = None) -> concurrent.futures.Future[None]:
    """`audit`, stamped now and written by the audit thread; the future ends once written."""
    line = _audit_line(event, port=port, reason=reason, pid=pid)
    return _audit_writer().submit(_append, state_dir, line)


async def audit_async(state_dir: str | os.PathLike[str], event: str, *, port: int | None,
                      reason: str, pid: int | None = None) -> None:
    """`audit_soon`, awaited: for a line that must be on disk before what the caller does next
    becomes visible (readiness, a reload status)."""
    await asyncio.wrap_future(audit_soon(state_dir, event, port=port, reason=reason, pid=pid))


def flush_audit(timeout_s: float = 2.0) -> None:
    """Wait (bounded) for the lines queued so far: for exits that skip the interpreter's own
    clean-up (`os._exit`)."""
    writer = _writer
    if writer is not None:
        try:
            writer.submit(lambda: None).result(timeout_s)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass  # stuck disk, or the writer already shut down: nothing more to wait for


# ---------------------------------------------------------------------------- processes


def _reaped(pid: int) -> bool:
    """Reap `pid` if it is our exited child, so it does not linger as a 'live' zombie."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (or already reaped elsewhere)
        return False
    return done == pid


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return False
    fields = stat.rpartition(")")[2].split()  # comm may contain spaces and parentheses
    return bool(fields) and fields[0] == "Z"


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a running (non-zombie) process."""
    if _valid_pid(pid) is None or _reaped(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return not _is_zombie(pid)


def wait_for_exit(pid: int, timeout_s: float) -> bool:
    """Poll until `pid` is gone; True if it exited within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def is_gateway_process(pid: int) -> bool:
    """Whether `pid`'s command line is an `openclaw gateway`: an argument whose file name
    contains `openclaw` plus a `gateway` argument (`/venv/bin/python /venv/bin/openclaw gateway`).

    Whole arguments, not substrings of the line, so `vim ~/openclaw/gateway.py` does not qualify.
    """
    argv = process_argv(pid) or (process_command(pid) or "").split()
    names = [os.path.basename(arg).lower() for arg in argv]
    if any(name.startswith("openclaw-gateway") for name in names):  # e.g. a renamed process title
        return True
    return any("openclaw" in name for name in names) and "gateway" in argv


def _signal(pid: int, sig: signal.Signals, *, what: str, state_dir: str | os.PathLike[str],
            port: int | None, why: str) -> bool:
    """Send `sig` and record it (log + `force-kill` audit). False if the pid was already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError as exc:
        raise ForceError(f"cannot signal pid {pid} ({what}): {exc.strerror}") from exc
    log.warning("--force: sent %s to pid %d (%s): %s", sig.name, pid, what, why)
    audit(state_dir, "force-kill", port=port, pid=pid, reason=f"{sig.name} {what}: {why}")
    return True


def _terminate(pid: int, grace_s: float, *, what: str, state_dir: str | os.PathLike[str],
               port: int | None) -> None:
    """SIGTERM, up to `grace_s` to exit, then SIGKILL; ForceError if it survives even that."""
    if not _signal(pid, signal.SIGTERM, what=what, state_dir=state_dir, port=port, why="--force"):
        return
    if wait_for_exit(pid, grace_s):
        return
    why = f"--force, still running {int(grace_s * 1000)}ms after SIGTERM"
    if not _signal(pid, signal.SIGKILL, what=what, state_dir=state_dir, port=port, why=why):
        return
    if not wait_for_exit(pid, _KILL_WAIT_S):
        raise ForceError(f"pid {pid} ({what}) did not exit after SIGKILL")


def _answers_health(health_ok: Callable[[int], bool], port: int) -> bool:
    try:
        return bool(health_ok(port))
    except Exception:  # a probe that blows up is a gateway that did not answer
        log.debug("health probe of port %d failed", port, exc_info=True)
        return False


# ---------------------------------------------------------------------------- --force


def force_takeover_lock(lock_info: Mapping[str, Any] | None, *, state_dir: str | os.PathLike[str],
                        drain_timeout_ms: int, interactive: bool,
                        health_ok: Callable[[int], bool], grace_ms: int = 5000) -> int | None:
    """§7.2 rule 1: stop the gateway holding the lock so this one can take it.

    The holder (pid from `lock_info`, the lock file's JSON) must be confirmed as an
    `openclaw gateway` by its command line. From a non-interactive shell a holder whose port
    answers `health_ok(port)` is spared (ForceRefused). Otherwise SIGTERM, up to
    `drain_timeout_ms + grace_ms` for its graceful stop, then SIGKILL. Returns the pid it
    stopped, or None if the holder was already gone; ForceError when it may not or cannot.
    """
    pid = _valid_pid((lock_info or {}).get("pid"))
    if pid is None:
        raise ForceError("cannot --force: the lock holder is unknown (unreadable lock file)")
    if pid == os.getpid():
        raise ForceError(f"the lock is held by this process (pid {pid}); not killing it")
    if not pid_alive(pid):
        return None
    command = process_command(pid) or "unknown command"
    if not is_gateway_process(pid):
        raise ForceError(f"lock holder pid {pid} is not an openclaw gateway ({command}); "
                         "not killing it")
    port = _valid_pid((lock_info or {}).get("port"))
    if not interactive and port is not None and _answers_health(health_ok, port):
        raise ForceRefused(f"refusing to kill running gateway (pid {pid}) from a non-interactive "
                           "shell; use openclaw gateway restart")
    _terminate(pid, (drain_timeout_ms + grace_ms) / 1000, what=f"lock holder {command}",
               state_dir=state_dir, port=port)
    return pid


def _port_free(host: str, port: int) -> bool:
    try:
        for sock in bind_sockets(host, port):
            sock.close()
    except BindError:
        return False
    return True


def force_free_port(host: str, port: int, *, state_dir: str | os.PathLike[str],
                    term_timeout_ms: int = 3000) -> int | None:
    """§7.2 rule 2: stop whatever listens on `host:port` (SIGTERM, 3 s, SIGKILL).

    Returns the pid stopped, or None if the port turned out to be free. ForceError when the
    listener cannot be identified or signalled, or is this very process.
    """
    where = format_hostport(host, port)
    pid = find_listener_pid(host, port)
    if pid is None:
        if _port_free(host, port):
            return None
        raise ForceError(f"port {where} is held by a process that cannot be identified; "
                         "stop it manually")
    if pid == os.getpid():
        raise ForceError(f"port {where} is held by this process (pid {pid}); not killing it")
    command = process_command(pid) or "unknown command"
    _terminate(pid, term_timeout_ms / 1000, what=f"listener on {where} {command}",
               state_dir=state_dir, port=port)
    return pid
