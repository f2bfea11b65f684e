"""The reaper: a small watchdog process that kills every tool process group when the gateway
dies without cleaning up (kill -9, OOM killer, crash).

PR_SET_PDEATHSIG only reaches the shell the gateway forked, not the shell's children, and a
group's members are reparented to init when their shell dies. So the gateway starts this
process (its own session, no PDEATHSIG: it must outlive the gateway by a moment) with a pipe
on its stdin, and tells it each tool process group: `+<pgid>` to watch, `-<pgid>` to forget,
`stop` for a clean stop (the gateway killed its groups itself). EOF on stdin means the gateway
is gone: the reaper SIGKILLs every watched group, then, as a second net for processes that
left their group (setsid, double fork), every process whose environment carries
`OPENCLAW_TOOL_OWNER=<token>`, the token being its argv[1]. Then it exits.

`python -m actors.tools.reaper <token>` runs `main()`. Stdlib only, so it starts fast.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

OWNER_ENV = "OPENCLAW_TOOL_OWNER"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
STOP_WAIT_S = 2.0


class Reaper:
    """The gateway's handle on its reaper process. watch/forget may be called from any thread."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_hex(16)
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def env_marker(self) -> tuple[str, str]:
        """(name, value) to put into every tool process environment for the /proc net."""
        return OWNER_ENV, self.token

    @property
    def running(self) -> bool:
        """False once the reaper process died (the gateway may start a new one)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != OWNER_ENV}  # never a target itself
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = f"{PROJECT_ROOT}{os.pathsep}{path}" if path else str(PROJECT_ROOT)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "actors.tools.reaper", self.token],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=PROJECT_ROOT, env=env, start_new_session=True, close_fds=True, bufsize=0)

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def stop(self) -> None:
        """Clean stop: the reaper exits without killing anything."""
        proc = self._proc
        if proc is None:
            return
        self._send("stop\n")
        assert proc.stdin is not None  # started with stdin=PIPE
        with self._lock:
            try:
                proc.stdin.close()
            except OSError:
                pass
        try:
            proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _send(self, line: str) -> None:
        proc = self._proc
        if proc is None:
            return
        assert proc.stdin is not None  # started with stdin=PIPE
        with self._lock:  # one line per write, never interleaved
            try:
                proc.stdin.write(line.encode("ascii"))
            except (BrokenPipeError, ValueError, OSError):
                pass  # the reaper is gone or stopped; nothing left to tell it


# -- the reaper process -------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    token = argv[0] if argv else ""
    watched: set[int] = set()
    # Ctrl-C or a hangup go to the terminal's foreground group; the gateway may survive
    # them, and if it does not, its death shows here as EOF: ignore both.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # SIGTERM is someone stopping everything (systemd kills the whole cgroup): reap, then go.
    signal.signal(signal.SIGTERM, lambda *_: _reap_and_exit(watched, token))
    for raw in sys.stdin.buffer:
        line = raw.strip()
        if line == b"stop":
            return 0
        if line[:1] in (b"+", b"-") and line[1:].isdigit():
            pgid = int(line[1:])
            (watched.add if line[:1] == b"+" else watched.discard)(pgid)
    reap(watched, token)  # EOF: the gateway is gone
    return 0


def _reap_and_exit(watched: set[int], token: str) -> None:
    reap(watched, token)
    os._exit(0)


def reap(watched: set[int], token: str) -> None:
    """SIGKILL every watched group, then every marked process group (twice, for forks that
    were in flight during the first pass)."""
    for pgid in list(watched):
        _killpg(pgid)
    if not token:
        return
    marker = f"{OWNER_ENV}={token}".encode()
    for attempt in range(2):
        for pid in marked_pids(marker):
            _kill_marked(pid)
        if attempt == 0:
            time.sleep(0.1)


def marked_pids(marker: bytes) -> list[int]:
    """Processes whose initial environment holds exactly the entry `marker`."""
    found: list[int] = []
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                entries = fh.read().split(b"\0")
        except OSError:
            continue  # gone, or another user's
        if marker in entries:
            found.append(int(name))
    return found


def _kill_marked(pid: int) -> None:
    own_group = os.getpgrp()
    try:
        pgid = os.getpgid(pid)
    except OSError:
        return
    if pgid != own_group and pgid > 1:
        _killpg(pgid)
    try:
        os.kill(pid, signal.SIGKILL)  # also when its group is ours or unknown
    except OSError:
        pass


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
