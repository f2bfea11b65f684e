"""Exec'd tool processes (actors/tools/proc.py) and the reaper (actors/tools/reaper.py) with
real processes: process groups, timeouts, kill escalation, output caps, stdin, parent death.

"Gone" for a process group means: no member left, or only zombies. On a host whose init
does not reap orphans (this test machine's PID 1 does not), orphaned group members stay
zombies forever and `killpg(pgid, 0)` keeps succeeding on them, though nothing runs.
Every process a test starts is SIGKILLed by the `cleanup` fixture, also on failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from functools import partial
from pathlib import Path
from typing import Iterator

import pytest

from actors.tools import spawn as spawn_mod
from actors.tools.fs import ToolError
from actors.tools.proc import ExecProcess, ProcError, _OutputBuffer
from actors.tools.reaper import OWNER_ENV, Reaper
from actors.tools.spawn import group_alive
from tests import conftest
from tests.procfs import catches, ignores, unread_bytes

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


wait_until = partial(conftest.wait_until, timeout=5.0, interval=0.02)


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of pid, or None when it does not exist."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()
    except OSError:
        return None
    return fields[0].decode(), int(fields[1]), int(fields[2])


def pid_gone(pid: int) -> bool:
    st = proc_stat(pid)
    return st is None or st[0] == "Z"


def group_members(pgid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st and st[2] == pgid:
                found.append(int(name))
    return found


def assert_group_gone(pgid: int) -> None:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return
    left = {pid: proc_stat(pid) for pid in group_members(pgid)}
    assert all(st is None or st[0] == "Z" for st in left.values()), f"group {pgid} alive: {left}"


class Cleanup:
    def __init__(self) -> None:
        self.pgids: list[int] = []
        self.pids: list[int] = []
        self.procs: list[ExecProcess] = []
        self.popens: list[subprocess.Popen] = []

    def exec(self, command: str, **kw) -> ExecProcess:
        kw.setdefault("timeout_s", 30)
        kw.setdefault("output_cap", 100_000)
        p = ExecProcess(command, Path("/tmp"), dict(kw.pop("env", ENV)), **kw)
        self.procs.append(p)
        p.start()
        self.pgids.append(p.pid)
        return p

    def kill_all(self) -> None:
        for p in self.procs:
            p.kill_now()
        for popen in self.popens:
            if popen.poll() is None:
                popen.kill()
            popen.wait(5)
        for pgid in self.pgids:
            if group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
        for pid in self.pids:
            if not pid_gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cleanup() -> Iterator[Cleanup]:
    c = Cleanup()
    try:
        yield c
    finally:
        c.kill_all()


# -- results ------------------------------------------------------------------------------

def test_echo_result(cleanup):
    p = cleanup.exec("echo hi; echo $OPENCLAW_SHELL")
    assert p.wait(5)
    r = p.result()
    assert r["output"] == "hi\nexec\n"
    assert (r["exitCode"], r["signal"], r["timedOut"]) == (0, None, False)
    assert 0 <= r["durationMs"] < 5000
    assert not p.running and p.exit_code == 0
    assert p.started_at <= p.ended_at
    assert_group_gone(p.pid)


def test_exit_code_and_merged_streams(cleanup):
    p = cleanup.exec("echo out; echo err >&2; exit 3")
    assert p.wait(5)
    r = p.result()
    assert r["exitCode"] == 3 and r["signal"] is None
    assert sorted(r["output"].splitlines()) == ["err", "out"]


def test_env_is_exactly_the_given_one(cleanup):
    p = cleanup.exec("env", env={"PATH": ENV["PATH"], "FOO": "bar", "OPENCLAW_SHELL": "mine"})
    assert p.wait(5)
    lines = set(p.output().splitlines())
    assert {"FOO=bar", "OPENCLAW_SHELL=mine"} <= lines
    assert not any(line.startswith(("HOME=", "PYTEST_")) for line in lines)


def test_callbacks_and_wait(cleanup):
    chunks: list[str] = []
    exited = threading.Event()
    seen: list[bool] = []

    def on_exit(p: ExecProcess) -> None:
        seen.append(p.running)
        exited.set()
    p = cleanup.exec("printf a; sleep 0.1; printf b", on_output=chunks.append, on_exit=on_exit)
    assert p.running and p.exit_code is None
    with pytest.raises(ProcError, match="still running"):
        p.result()
    assert p.wait(5) and exited.is_set()
    assert "".join(chunks) == "ab" and seen == [False]


def test_bad_cwd_raises_the_os_error_and_proc_errors_are_tool_errors():
    p = ExecProcess("true", Path("/nonexistent/dir"), ENV, timeout_s=0, output_cap=1000)
    with pytest.raises(FileNotFoundError):
        p.start()
    assert issubclass(ProcError, ToolError)


# -- timeout and kill ---------------------------------------------------------------------

def test_timeout_kills_the_whole_group(cleanup):
    p = cleanup.exec("sleep 300 & sleep 300 & wait", timeout_s=1)
    members = wait_until(lambda: len(group_members(p.pid)) == 3 and group_members(p.pid),
                         what="bash and two sleeps")
    assert p.wait(5), "not ended after the 1 s timeout"
    r = p.result()
    assert r["timedOut"] is True and r["signal"] == "SIGTERM" and r["exitCode"] is None
    assert 900 <= r["durationMs"] < 4000
    wait_until(lambda: all(pid_gone(pid) for pid in members), what="all members gone")
    assert_group_gone(p.pid)


def test_kill_of_a_long_process(cleanup):
    p = cleanup.exec("sleep 300")
    conftest.wait_until(lambda: b"sleep" in Path(f"/proc/{p.pid}/cmdline").read_bytes(),
                        what="the command to run")
    p.kill(grace_s=5, reason="stopped by the user")
    assert p.wait(3)
    r = p.result()
    assert r["signal"] == "SIGTERM" and r["timedOut"] is False
    assert p.kill_reason == "stopped by the user"
    assert_group_gone(p.pid)


def test_term_ignoring_grandchild_is_sigkilled_after_the_grace(cleanup):
    p = cleanup.exec("""bash -c 'trap "" TERM; sleep 300; echo never'""")
    wait_until(lambda: len(group_members(p.pid)) >= 2, what="the inner shell and sleep")
    members = group_members(p.pid)
    t0 = time.monotonic()
    p.kill(0.5)  # positional: the grace period
    time.sleep(0.3)  # not a wait: the point is that nothing ends within the grace
    assert p.running, "SIGTERM is ignored: still running within the grace"
    assert p.wait(3)
    assert 0.45 <= time.monotonic() - t0 < 2.5
    assert p.result()["signal"] == "SIGKILL"
    wait_until(lambda: all(pid_gone(pid) for pid in members), what="all members gone")
    assert_group_gone(p.pid)


def test_timeout_escalates_to_sigkill(cleanup):
    p = cleanup.exec("""trap "" TERM; sleep 300""", timeout_s=0.3, term_grace_s=0.3)
    assert p.wait(3)
    r = p.result()
    assert r["timedOut"] is True and r["signal"] == "SIGKILL"
    assert_group_gone(p.pid)


def test_group_killed_when_the_shell_exited_before_its_children(cleanup):
    # the shell is gone at once; its child keeps the pipe open, then the timeout kills it
    p = cleanup.exec("sleep 300 & exit 0", timeout_s=0.5)
    assert p.wait(3)
    assert p.result()["timedOut"] is True
    wait_until(lambda: not group_alive(p.pid), what="group gone")


def test_leftovers_of_a_finished_command_are_ended(cleanup):
    p = cleanup.exec("sleep 300 >/dev/null 2>&1 & echo $!")
    assert p.wait(3)
    child = int(p.output())
    cleanup.pids.append(child)
    assert p.result()["exitCode"] == 0
    wait_until(lambda: pid_gone(child), what="the background sleep ended")


def test_pipe_held_only_by_an_escaped_process_ends_the_run(cleanup):
    # setsid leaves the group but keeps stdout: the run still ends (poll check, ~1 s)
    p = cleanup.exec("setsid sleep 300 & echo $!")
    escaped = int(wait_until(lambda: p.output().strip(), what="the escaped pid"))
    cleanup.pids.append(escaped)
    assert p.wait(4)
    assert p.result()["exitCode"] == 0
    assert not pid_gone(escaped)  # outside the group: only the reaper's /proc net covers it


def test_kill_now(cleanup):
    p = cleanup.exec("sleep 300 & sleep 300 & wait")
    wait_until(lambda: len(group_members(p.pid)) == 3, what="three members")
    p.kill_now()
    assert p.wait(3)
    assert p.result()["signal"] == "SIGKILL"
    wait_until(lambda: not group_alive(p.pid), what="group gone")
    p.kill()  # after the end: a no-op, no stray signal to a recycled group number
    p.kill_now()


# -- output -------------------------------------------------------------------------------

def test_output_over_the_cap_keeps_the_newest(cleanup):
    p = cleanup.exec("for i in $(seq 1 1000); do printf '%04d|' $i; done", output_cap=1000)
    assert p.wait(5)
    newest = "".join(f"{i:04d}|" for i in range(801, 1001))
    assert p.output() == "[output truncated: 4000 chars dropped]\n" + newest
    assert p.result()["output"] == p.output()
    assert p.tail(10) == "0999|1000|"


def test_utf8_split_across_chunks_is_decoded(cleanup):
    chunks: list[str] = []
    p = cleanup.exec("printf '\\xc3'; sleep 0.1; printf '\\xa9\\xff'", on_output=chunks.append)
    assert p.wait(5)
    assert p.output() == "é\ufffd"
    assert "".join(chunks) == "é\ufffd"


def test_read_new_returns_each_part_once(cleanup):
    p = cleanup.exec("cat")
    assert p.read_new() == ""
    p.write_stdin("one\n")
    wait_until(lambda: p.tail() == "one\n", what="one")
    assert p.read_new() == "one\n"
    assert p.read_new() == ""
    p.write_stdin("two\n")
    wait_until(lambda: p.tail().endswith("two\n"), what="two")
    assert p.read_new() == "two\n"
    p.write_stdin("", eof=True)
    assert p.wait(3) and p.result()["exitCode"] == 0
    assert p.read_new() == "" and p.output() == "one\ntwo\n"


def test_read_new_after_the_cap_dropped_unread_output(cleanup):
    p = cleanup.exec("cat", output_cap=10)
    p.write_stdin("0123456789")
    wait_until(lambda: p.tail() == "0123456789", what="first part")
    assert p.read_new() == "0123456789"
    p.write_stdin("abcdefghijklmnopqrst")
    wait_until(lambda: p.tail() == "klmnopqrst", what="second part")
    assert p.read_new() == "[... 10 chars dropped ...]\nklmnopqrst"
    assert p.read_new() == ""
    assert p.output() == "[output truncated: 20 chars dropped]\nklmnopqrst"


def test_output_buffer_positions():
    buf = _OutputBuffer(5)
    for piece in ("ab", "cdefg", "h"):
        buf.append(piece)
    assert (buf.text(), buf.dropped, buf.total) == ("defgh", 3, 8)
    assert buf.since(0) == ("defgh", 3)
    assert buf.since(6) == ("gh", 0)
    assert buf.since(8) == ("", 0)
    assert buf.tail(2) == "gh" and buf.tail(50) == "defgh" and buf.tail(0) == ""
    buf.append("0123456789")  # one chunk larger than the cap
    assert (buf.text(), buf.dropped) == ("56789", 13)


# -- stdin --------------------------------------------------------------------------------

def test_write_stdin_to_head(cleanup):
    p = cleanup.exec("head -n1")
    p.write_stdin("hello\nworld\n")
    assert p.wait(3)
    assert p.result()["output"] == "hello\n"
    with pytest.raises(ProcError, match="has exited"):
        p.write_stdin("more\n")


def test_write_stdin_after_eof_is_refused(cleanup):
    p = cleanup.exec("cat; sleep 300")
    p.write_stdin("x", eof=True)
    with pytest.raises(ProcError, match="stdin of process .* is closed"):
        p.write_stdin("y")
    wait_until(lambda: p.tail() == "x", what="echo of x")
    p.kill(grace_s=1)
    assert p.wait(3)


def test_write_stdin_never_blocks_the_caller(cleanup):
    p = cleanup.exec("sleep 300")  # never reads: a blocking write would hang at 64 KiB
    t0 = time.monotonic()
    for _ in range(10):
        p.write_stdin("x" * 100_000)
    assert time.monotonic() - t0 < 1.0
    p.kill(grace_s=1)
    assert p.wait(3)


# -- parent death -------------------------------------------------------------------------

FAKE_PARENT = textwrap.dedent("""
    import os, sys, threading, time
    from pathlib import Path
    from actors.tools import proc, spawn
    if sys.argv[1] == "preexec":
        spawn.LAUNCHER._setpriv = None
    box = {}
    def spawn():  # from a short-lived thread: PDEATHSIG must not fire when it ends
        box["p"] = proc.ExecProcess("sleep 300", Path("/tmp"), {"PATH": os.environ["PATH"]},
                                    timeout_s=0, output_cap=1000).start()
    t = threading.Thread(target=spawn); t.start(); t.join()
    time.sleep(0.3)  # not a wait: a PDEATHSIG tied to the ended thread would have fired by now
    print(box["p"].pid, box["p"].running, flush=True)
    time.sleep(300)
""")


@pytest.mark.parametrize("launcher", ["setpriv", "preexec"])
def test_command_dies_with_the_gateway_not_with_the_spawning_thread(cleanup, launcher):
    if launcher == "setpriv" and spawn_mod._find_setpriv() is None:
        pytest.skip("no setpriv with --pdeathsig here")
    gw = subprocess.Popen([sys.executable, "-c", FAKE_PARENT, launcher], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    cleanup.popens.append(gw)
    pid_text, running = gw.stdout.readline().split()
    pid = int(pid_text)
    cleanup.pgids.append(pid)
    assert running == "True" and not pid_gone(pid)
    gw.kill()
    gw.wait(5)
    wait_until(lambda: pid_gone(pid), what="the command killed by PDEATHSIG")


# -- reaper -------------------------------------------------------------------------------

FAKE_GATEWAY = textwrap.dedent("""
    import os, sys, threading, time
    from pathlib import Path
    from actors.tools.proc import ExecProcess
    from actors.tools.reaper import Reaper
    reaper = Reaper()
    reaper.start()
    seen = threading.Event()
    out = []
    def on_output(text):
        out.append(text)
        if "escaped=" in "".join(out):
            seen.set()
    p = ExecProcess(
        "setsid sleep 301 >/dev/null 2>&1 </dev/null & echo escaped=$!; sleep 300 & sleep 300 & wait",
        Path("/tmp"), {"PATH": os.environ["PATH"]}, timeout_s=0, output_cap=1000,
        on_output=on_output, reaper=reaper)
    if sys.argv[1] == "no-marker":  # only the watched pgid can save us
        del p.env["OPENCLAW_TOOL_OWNER"]
    p.start()
    seen.wait(5)
    escaped = "".join(out).split("escaped=")[1].split()[0]
    from tests.procfs import unread_bytes
    while unread_bytes(reaper._proc.stdin.fileno()):  # the reaper has read the watch line
        time.sleep(0.005)
    print(p.pid, reaper.pid, escaped, flush=True)
    time.sleep(300)
""")


@pytest.mark.parametrize("marker", ["marker", "no-marker"])
def test_reaper_kills_the_tool_groups_when_the_gateway_is_killed(cleanup, marker):
    gw = subprocess.Popen([sys.executable, "-c", FAKE_GATEWAY, marker], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    cleanup.popens.append(gw)
    pgid, reaper_pid, escaped = map(int, gw.stdout.readline().split())
    cleanup.pgids.append(pgid)
    cleanup.pids += [reaper_pid, escaped]
    # bash starts the two sleeps after its echo: wait for them (the fake gateway only waited
    # for the echo and the reaper's read)
    sleeps = conftest.wait_until(lambda: len(s := [pid for pid in group_members(pgid) if pid != pgid]) >= 2
                                 and s, what="the two sleeps")
    assert len(sleeps) == 2
    assert proc_stat(escaped)[2] == escaped  # its own group: out of reach of killpg(pgid)
    assert proc_stat(reaper_pid)[2] == reaper_pid  # the reaper leads its own group too

    os.kill(gw.pid, signal.SIGKILL)
    gw.wait(5)
    wait_until(lambda: all(pid_gone(pid) for pid in sleeps), what="the group's sleeps reaped")
    assert_group_gone(pgid)
    wait_until(lambda: pid_gone(reaper_pid), what="the reaper exited")
    if marker == "marker":
        wait_until(lambda: pid_gone(escaped), what="the escaped, marked process reaped")
    else:
        assert not pid_gone(escaped)  # neither watched nor marked: the cleanup fixture's job


def test_reaper_clean_stop_kills_nothing(cleanup):
    reaper = Reaper()
    reaper.start()
    cleanup.pids.append(reaper.pid)
    p = cleanup.exec("sleep 300", reaper=reaper, timeout_s=0)
    assert p.env[OWNER_ENV] == reaper.token and reaper.env_marker() == (OWNER_ENV, reaper.token)
    assert reaper.running
    conftest.wait_until(lambda: unread_bytes(reaper._proc.stdin.fileno()) == 0,
                        what="the reaper to read its watch line")
    reaper.stop()
    assert reaper._proc.returncode == 0 and not reaper.running
    assert p.running and not pid_gone(p.pid)
    reaper.watch(p.pid)  # after stop: ignored, no BrokenPipeError
    p.kill_now()
    assert p.wait(3)


def test_reaper_ignores_sigint_and_reaps_on_sigterm(cleanup):
    reaper = Reaper()
    reaper.start()
    cleanup.pids.append(reaper.pid)
    p = cleanup.exec("sleep 300", reaper=reaper, timeout_s=0)
    conftest.wait_until(lambda: ignores(reaper.pid, signal.SIGINT) and catches(reaper.pid, signal.SIGTERM),
                        what="the reaper's signal handlers")
    os.kill(reaper.pid, signal.SIGINT)
    time.sleep(0.1)  # not a wait: an ignored SIGINT must leave it running
    assert reaper._proc.poll() is None
    os.kill(reaper.pid, signal.SIGTERM)
    assert p.wait(3)
    assert p.result()["signal"] == "SIGKILL"
    assert reaper._proc.wait(3) == 0
    reaper.stop()
