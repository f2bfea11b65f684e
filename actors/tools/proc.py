"""One exec'd shell command: its own session and process group, merged stdout+stderr kept up
to a cap (newest output wins), a timeout with SIGTERM -> SIGKILL escalation on the whole
group, stdin writes, and queries for the tools actor's `process` actions.

Threads: a reader thread per process (pipe -> buffer -> on_output, then exit bookkeeping and
on_exit), a timer for the timeout and for each SIGKILL escalation, a stdin writer thread only
when something is written, and one shared spawner thread (see `_Spawner`). Every public
method may be called from any thread.

"Group gone" means no *live* member is left: zombies count as gone, because on a host whose
init does not reap orphans (some container and VM inits) they stay forever while being
harmless, and `killpg(pgid, 0)` keeps succeeding on them.
"""

from __future__ import annotations

import codecs
import logging
import os
import queue
import select
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from signal import SIGKILL, SIGTERM, Signals
from typing import TYPE_CHECKING, Callable

from actors.tools.fs import ToolError
from actors.tools.reaper import OWNER_ENV
from actors.tools.spawn import LAUNCHER, SPAWNER, group_alive

if TYPE_CHECKING:
    from actors.tools.reaper import Reaper

log = logging.getLogger("openclaw.tools")

READ_CHUNK = 64 * 1024
TERM_GRACE_S = 5.0
POLL_MS = 1000  # how often a quiet reader checks whether only escaped processes hold the pipe
KILL_SETTLE_S = 2.0  # how long a SIGKILL pass waits for the group's members to die


class ProcError(ToolError):
    """A refused process operation (a ToolError: str() is what the model and the client see)."""


# -- output -------------------------------------------------------------------------------

class _OutputBuffer:
    """The newest `cap` characters of a stream, as chunks; positions count every character
    ever appended, so a reader can ask for "everything since position p"."""

    def __init__(self, cap: int) -> None:
        self.cap = max(0, cap)
        self.chunks: deque[str] = deque()
        self.size = 0  # characters kept
        self.dropped = 0  # characters dropped from the front
        self.total = 0  # characters ever appended

    def append(self, text: str) -> None:
        self.chunks.append(text)
        self.size += len(text)
        self.total += len(text)
        while self.size > self.cap:
            first = self.chunks[0]
            excess = self.size - self.cap
            if len(first) <= excess:
                self.chunks.popleft()
                cut = len(first)
            else:
                self.chunks[0] = first[excess:]
                cut = excess
            self.size -= cut
            self.dropped += cut

    def text(self) -> str:
        return "".join(self.chunks)

    def tail(self, n: int) -> str:
        return self.since(max(self.total - n, self.dropped))[0] if n > 0 else ""

    def since(self, pos: int) -> tuple[str, int]:
        """(text from position pos on, characters after pos already dropped)."""
        lost = max(0, self.dropped - pos)
        start = max(pos, self.dropped)
        need = self.total - start
        parts: list[str] = []
        for chunk in reversed(self.chunks):
            if need <= 0:
                break
            parts.append(chunk[-need:] if len(chunk) > need else chunk)
            need -= len(chunk)
        return "".join(reversed(parts)), lost


# -- the process --------------------------------------------------------------------------

class ExecProcess:
    """One shell command in its own session and process group (pgid == pid).

    `start()` spawns it; the reader thread fills the output buffer, calls on_output(text) per
    decoded chunk and, at the end, on_exit(self) (both without any lock held), then sets the
    event `wait()` waits for. `env` is used as given, plus OPENCLAW_SHELL=exec and, with a
    reaper, OPENCLAW_TOOL_OWNER=<token> unless present. timeout_s 0 means no timeout.
    """

    def __init__(self, command: str, cwd: Path, env: dict[str, str], *, timeout_s: float,
                 output_cap: int, on_output: Callable[[str], None] | None = None,
                 on_exit: Callable[["ExecProcess"], object] | None = None,
                 reaper: "Reaper | None" = None, term_grace_s: float = TERM_GRACE_S,
                 kill_leftovers: bool = True) -> None:
        self.command = command
        self.cwd = Path(cwd)
        self.env = dict(env)
        self.env.setdefault("OPENCLAW_SHELL", "exec")
        if reaper is not None:
            self.env.setdefault(OWNER_ENV, reaper.token)  # the reaper's /proc net
        self.timeout_s = timeout_s
        self.term_grace_s = term_grace_s
        self.kill_leftovers = kill_leftovers  # after a natural exit, end what the command left
        self._on_output = on_output
        self._on_exit = on_exit
        self._reaper = reaper
        self._lock = threading.Lock()  # buffer, read position and exit state
        self._buf = _OutputBuffer(output_cap)
        self._read_pos = 0
        self._proc: subprocess.Popen | None = None
        self._pid: int | None = None
        self._exit_code: int | None = None
        self._signal: str | None = None
        self._ended = False
        self._timed_out = False
        self._kill_reason: str | None = None
        self._started_at: int | None = None
        self._ended_at: int | None = None
        self._t0 = 0.0
        self._duration_ms = 0
        self._done = threading.Event()
        self._timer: threading.Timer | None = None
        self._group_lock = threading.Lock()  # _group_gone and the reaper's forget
        self._group_gone = False
        self._stdin_lock = threading.Lock()
        self._stdin_closed = False
        self._stdin_jobs: queue.SimpleQueue | None = None

    # After start(): the process and its group id (the pid), for the methods that only run
    # once it is started.
    @property
    def _started_proc(self) -> subprocess.Popen:
        assert self._proc is not None, "start() first"
        return self._proc

    @property
    def _group(self) -> int:
        assert self._pid is not None, "start() first"
        return self._pid

    # -- start ----------------------------------------------------------------------------

    def start(self) -> "ExecProcess":
        """Spawn the command; OSError (missing cwd, no shell) propagates as raised."""
        if self._proc is not None:
            raise ProcError("process already started")
        proc = SPAWNER.run(self._popen)
        self._t0 = time.monotonic()
        self._started_at = int(time.time() * 1000)
        self._proc, self._pid = proc, proc.pid
        if self._reaper is not None:
            self._reaper.watch(proc.pid)
        threading.Thread(target=self._read_loop, name=f"exec-{proc.pid}", daemon=True).start()
        if self.timeout_s > 0:
            self._timer = threading.Timer(self.timeout_s, self._on_timeout)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _popen(self) -> subprocess.Popen:
        argv, preexec = LAUNCHER.argv_and_preexec(self.command)  # runs in the spawner thread
        return subprocess.Popen(
            argv, cwd=self.cwd, env=self.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            bufsize=0, close_fds=True, start_new_session=True, preexec_fn=preexec)

    # -- reading --------------------------------------------------------------------------

    def _read_loop(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        pipe = self._proc.stdout
        poller = select.poll()
        poller.register(pipe.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while data := self._read_chunk(poller, pipe.fileno()):
                self._emit(decoder.decode(data))
            self._emit(decoder.decode(b"", final=True))
        except Exception:
            log.exception("exec reader failed (pid %s)", self._pid)
        finally:
            pipe.close()
            self._finish()

    def _read_chunk(self, poller: select.poll, fd: int) -> bytes:
        """The next chunk, or b"" at EOF, or when the shell has exited and nothing of its
        group is left (then only a process that escaped the group holds the pipe)."""
        while True:
            if poller.poll(POLL_MS):
                try:
                    return os.read(fd, READ_CHUNK)
                except OSError:
                    return b""
            if self._started_proc.poll() is not None and not group_alive(self._group):
                return b""

    def _emit(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            self._buf.append(text)
        if self._on_output is not None:
            try:
                self._on_output(text)
            except Exception:
                log.exception("exec on_output callback failed (pid %s)", self._pid)

    def _finish(self) -> None:
        rc = self._started_proc.wait()
        if self._timer is not None:
            self._timer.cancel()
        self._close_stdin_at_exit()
        self._settle_group()
        with self._lock:
            self._ended = True
            self._ended_at = int(time.time() * 1000)
            self._duration_ms = int((time.monotonic() - self._t0) * 1000)
            if rc < 0:
                self._signal = _signal_name(-rc)
            else:
                self._exit_code = rc
        try:
            if self._on_exit is not None:
                self._on_exit(self)
        except Exception:
            log.exception("exec on_exit callback failed (pid %s)", self._pid)
        finally:
            self._done.set()

    def _settle_group(self) -> None:
        """After the shell exited: forget a group that is gone, end one the command left."""
        if not group_alive(self._group):
            self._mark_group_gone()
        elif self.kill_leftovers:
            self._terminate(self.term_grace_s)

    # -- killing --------------------------------------------------------------------------

    def _on_timeout(self) -> None:
        with self._lock:
            if self._ended:
                return
            self._timed_out = True
        self._terminate(self.term_grace_s)

    def kill(self, grace_s: float = TERM_GRACE_S, *, reason: str = "killed") -> None:
        """SIGTERM to the group now, SIGKILL to whatever is left after grace_s.

        reason is keyword-only so that kill(0.5) can only ever mean a grace period."""
        with self._lock:
            if self._kill_reason is None and not self._ended:
                self._kill_reason = reason
        self._terminate(grace_s)

    def kill_now(self) -> None:
        """SIGKILL to the group at once (gateway stop)."""
        self._signal_group(SIGKILL)

    def _terminate(self, grace_s: float) -> None:
        if not self._signal_group(SIGTERM):
            return
        timer = threading.Timer(grace_s, self._kill_until_gone)
        timer.daemon = True
        timer.start()

    def _kill_until_gone(self) -> None:
        """SIGKILL the group until nothing live is left in it (bounded by KILL_SETTLE_S)."""
        deadline = time.monotonic() + KILL_SETTLE_S
        while self._signal_group(SIGKILL):
            if not group_alive(self._group):
                self._mark_group_gone()
                return
            if time.monotonic() > deadline:
                log.warning("exec group %s still alive after SIGKILL", self._pid)
                return
            time.sleep(0.02)

    def _signal_group(self, sig: Signals) -> bool:
        """Send sig to the group; False when there is no group (any more) to signal.

        Never signals after the group was seen gone: its number may belong to someone else.
        """
        with self._group_lock:
            if self._pid is None or self._group_gone:
                return False
        try:
            os.killpg(self._pid, sig)
            return True
        except ProcessLookupError:
            self._mark_group_gone()
            return False
        except PermissionError:
            return False

    def _mark_group_gone(self) -> None:
        with self._group_lock:
            if self._group_gone:
                return
            self._group_gone = True
        if self._reaper is not None:
            self._reaper.forget(self._group)

    # -- stdin ----------------------------------------------------------------------------

    def write_stdin(self, data: str, eof: bool = False) -> None:
        """Queue data for the command's stdin (a writer thread blocks, the caller never does);
        eof closes stdin after it."""
        with self._stdin_lock:
            if self._proc is None:
                raise ProcError("process not started")
            if self._ended_or_ending():
                raise ProcError(f"process {self._pid} has exited")
            if self._stdin_closed:
                raise ProcError(f"stdin of process {self._pid} is closed")
            if self._stdin_jobs is None:
                self._stdin_jobs = queue.SimpleQueue()
                threading.Thread(target=self._stdin_loop, args=(self._stdin_jobs,),
                                 name=f"exec-stdin-{self._pid}", daemon=True).start()
            if data:
                self._stdin_jobs.put(data.encode("utf-8"))
            if eof:
                self._stdin_closed = True
                self._stdin_jobs.put(None)

    def _ended_or_ending(self) -> bool:
        return self._ended or self._started_proc.poll() is not None

    def _stdin_loop(self, jobs: queue.SimpleQueue) -> None:
        stdin = self._started_proc.stdin
        assert stdin is not None  # started with stdin=PIPE
        while (data := jobs.get()) is not None:
            try:
                view = memoryview(data)
                while view:
                    view = view[stdin.write(view):]
            except (OSError, ValueError):
                with self._stdin_lock:
                    self._stdin_closed = True  # the reader end is gone; later writes fail
        try:
            stdin.close()
        except OSError:
            pass

    def _close_stdin_at_exit(self) -> None:
        with self._stdin_lock:
            self._stdin_closed = True
            if self._stdin_jobs is not None:
                self._stdin_jobs.put(None)  # the writer closes it after what is queued
                return
        stdin = self._started_proc.stdin
        assert stdin is not None  # started with stdin=PIPE
        try:
            stdin.close()
        except OSError:
            pass

    # -- queries --------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def running(self) -> bool:
        with self._lock:
            return self._proc is not None and not self._ended

    @property
    def exit_code(self) -> int | None:
        with self._lock:
            return self._exit_code

    @property
    def signal(self) -> str | None:
        with self._lock:
            return self._signal

    @property
    def kill_reason(self) -> str | None:
        with self._lock:
            return self._kill_reason

    @property
    def started_at(self) -> int | None:
        return self._started_at

    @property
    def ended_at(self) -> int | None:
        with self._lock:
            return self._ended_at

    def output(self) -> str:
        """All kept output, headed by a truncation line when the cap dropped some."""
        with self._lock:
            text, dropped = self._buf.text(), self._buf.dropped
        return f"[output truncated: {dropped} chars dropped]\n{text}" if dropped else text

    def tail(self, n: int = 2000) -> str:
        """The newest n kept characters (no truncation line: a preview, not a result)."""
        with self._lock:
            return self._buf.tail(n)

    def read_new(self) -> str:
        """Output appended since the previous call, each character at most once."""
        with self._lock:
            text, lost = self._buf.since(self._read_pos)
            self._read_pos = self._buf.total
        return f"[... {lost} chars dropped ...]\n{text}" if lost else text

    def wait(self, timeout: float | None = None) -> bool:
        """True once the process ended and on_exit ran."""
        return self._done.wait(timeout)

    def result(self) -> dict:
        with self._lock:
            if not self._ended:
                raise ProcError(f"process {self._pid} is still running")
            exit_code, sig, timed_out = self._exit_code, self._signal, self._timed_out
            duration = self._duration_ms
        return {"exitCode": exit_code, "signal": sig, "timedOut": timed_out,
                "output": self.output(), "durationMs": duration}


def _signal_name(number: int) -> str:
    try:
        return Signals(number).name
    except ValueError:
        return f"SIG{number}"
