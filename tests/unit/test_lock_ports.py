"""lifecycle/ports.py and lifecycle/lock.py: real sockets on 127.0.0.1, real child processes."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import select
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from lifecycle.lock import (
    ForceError,
    ForceRefused,
    InstanceLock,
    LockHeld,
    audit,
    audit_path,
    force_free_port,
    force_takeover_lock,
    is_gateway_process,
    lock_path,
    pid_alive,
)
from lifecycle.ports import (
    BindError,
    PortInUse,
    bind_listeners,
    bind_sockets,
    find_listener_pid,
    first_lan_ipv4,
    first_tailnet_ipv4,
    is_local_address,
    listen_addresses,
    local_addresses,
    process_command,
)

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc"),
]

ROOT = Path(__file__).resolve().parents[2]

# Children print "ready [...]" once set up, then sleep until killed.
LISTENER = """import socket, time
s = socket.socket()
s.bind(('127.0.0.1', 0))
s.listen()
print('ready', s.getsockname()[1], flush=True)
time.sleep(60)
"""
STUBBORN = """import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print('ready', flush=True)
time.sleep(60)
"""
SLEEPER = """import time
print('ready', flush=True)
time.sleep(60)
"""
LOCK_HOLDER = """import sys, time
from lifecycle.lock import InstanceLock
InstanceLock(sys.argv[1]).acquire(timeout_ms=2000, info={'port': 1234})
print('ready', flush=True)
time.sleep(60)
"""

AUDIT_RE = re.compile(r"^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d "
                      r"event=(?P<event>\S+) pid=(?P<pid>\d+) port=(?P<port>\S+) reason=(?P<reason>.*)$")

Spawn = Callable[..., "tuple[subprocess.Popen[str], list[str]]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start `python -c CODE *args`, wait for its ready line; every child is killed at teardown."""
    procs: list[subprocess.Popen[str]] = []
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def start(code: str, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                                text=True, cwd=ROOT, env=env)
        procs.append(proc)
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline().split() if ready else []
        assert line[:1] == ["ready"], f"child did not start: {line!r}"
        return proc, line[1:]

    yield start
    for proc in procs:
        if proc.poll() is None:  # already reaped by the code under test → returncode set
            proc.kill()
        try:
            proc.wait(timeout=5)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass
        proc.stdout.close()


def audit_lines(state: Path) -> list[re.Match[str]]:
    lines = audit_path(state).read_text().splitlines()
    matches = [AUDIT_RE.match(line) for line in lines]
    assert all(matches), lines
    return matches  # type: ignore[return-value]


# ---------------------------------------------------------------------------- ports


def test_listener_of_child_is_identified_and_bind_fails(spawn: Spawn) -> None:
    child, (port,) = spawn(LISTENER)
    port_n = int(port)
    assert find_listener_pid("127.0.0.1", port_n) == child.pid
    assert find_listener_pid("0.0.0.0", port_n) == child.pid  # a wildcard bind conflicts too
    command = process_command(child.pid)
    assert command is not None and command.startswith(f"{sys.executable} -c import socket")
    assert len(command) <= 200

    with pytest.raises(PortInUse) as exc:
        bind_sockets("127.0.0.1", port_n)
    assert str(exc.value) == f"port 127.0.0.1:{port_n} is already in use by pid {child.pid} ({command})"
    assert (exc.value.pid, exc.value.command, exc.value.port) == (child.pid, command, port_n)
    assert isinstance(exc.value, BindError)


def test_port_zero_binds_nonblocking_without_reuseport() -> None:
    socks = bind_sockets("127.0.0.1", 0)
    try:
        assert len(socks) == 1
        sock = socks[0]
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
        assert sock.getblocking() is False
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        assert find_listener_pid("127.0.0.1", port) == os.getpid()
        with pytest.raises(PortInUse, match=rf"^port 127\.0\.0\.1:{port} is already in use by pid {os.getpid()} \("):
            bind_sockets("127.0.0.1", port)  # a second gateway must fail, not share the port
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        for s in socks:
            s.close()


def test_bind_listeners_adds_loopback_alias_on_same_port() -> None:
    socks = bind_listeners("127.0.0.1", 0)
    try:
        assert [s.getsockname()[0] for s in socks] == ["127.0.0.1"]
    finally:
        for s in socks:
            s.close()


def test_other_bind_errors_are_bind_errors() -> None:
    local = set(local_addresses())
    foreign = next(ip for ip in ("203.0.113.77", "198.51.100.77", "192.0.2.254") if ip not in local)
    with pytest.raises(BindError) as exc:
        bind_sockets(foreign, 0)
    assert not isinstance(exc.value, PortInUse)
    assert str(exc.value) == f"failed to bind gateway socket on {foreign}:0: Cannot assign requested address"
    with pytest.raises(BindError, match=r"^failed to bind gateway socket on not-an-ip:1: "):
        bind_sockets("not-an-ip", 1)


def test_port_in_use_messages() -> None:
    assert str(PortInUse("::1", 18789, None, None)) == \
        "port [::1]:18789 is already in use by another process"
    assert str(PortInUse("127.0.0.1", 18789, 42, "openclaw gateway")) == \
        "port 127.0.0.1:18789 is already in use by pid 42 (openclaw gateway)"
    assert str(BindError("::", 1, "boom")) == "failed to bind gateway socket on [::]:1: boom"


def test_no_listener_means_no_pid() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert find_listener_pid("127.0.0.1", port) is None


@pytest.mark.parametrize("bind_host, expected", [
    ("0.0.0.0", ["0.0.0.0"]),
    ("::", ["::"]),
    ("127.0.0.1", ["127.0.0.1"]),
    ("192.168.1.5", ["192.168.1.5", "127.0.0.1"]),
    ("100.101.102.103", ["100.101.102.103", "127.0.0.1"]),
])
def test_listen_addresses(bind_host: str, expected: list[str]) -> None:
    assert listen_addresses(bind_host) == expected


def test_local_address_helpers() -> None:
    addrs = local_addresses()
    assert "127.0.0.1" in addrs and len(addrs) == len(set(addrs))
    for addr in addrs:
        ipaddress.ip_address(addr)
        assert is_local_address(addr)
    assert is_local_address("127.0.0.1") and is_local_address("0.0.0.0") and is_local_address("::")
    assert not is_local_address("not-an-ip")
    if "203.0.113.77" not in addrs:
        assert not is_local_address("203.0.113.77")
    lan = first_lan_ipv4()
    assert lan is None or (lan in addrs and not ipaddress.ip_address(lan).is_loopback)
    tailnet = first_tailnet_ipv4()
    assert tailnet is None or ipaddress.ip_address(tailnet) in ipaddress.ip_network("100.64.0.0/10")


# ---------------------------------------------------------------------------- lock


def test_lock_held_by_another_process_times_out(spawn: Spawn, tmp_path: Path) -> None:
    holder, _ = spawn(LOCK_HOLDER, str(tmp_path))
    lock = InstanceLock(tmp_path)
    started = time.monotonic()
    with pytest.raises(LockHeld) as exc:
        lock.acquire(timeout_ms=300)
    assert 0.25 <= time.monotonic() - started < 2
    assert exc.value.pid == holder.pid
    assert str(exc.value) == f"gateway already running (pid {holder.pid}); lock timeout after 300ms"
    assert lock.holder()["port"] == 1234

    holder.kill()  # a crashed owner leaves its file behind but no flock: taken over at once
    holder.wait(5)
    info = lock.acquire(timeout_ms=1000, info={"port": 1})
    try:
        assert lock.holder() == info and info["pid"] == os.getpid()
    finally:
        lock.release()


def test_stale_lock_file_is_taken_over_and_release_deletes_it(tmp_path: Path) -> None:
    path = lock_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    lock = InstanceLock(tmp_path)
    assert lock.holder() is None
    info = lock.acquire(timeout_ms=200, info={"bind": "loopback", "version": "0.1.0"})
    try:
        assert set(info) == {"pid", "startedAt", "port", "bind", "configPath", "version", "hostname"}
        assert info["pid"] == os.getpid() and info["bind"] == "loopback" and info["port"] is None
        assert lock.holder() == info
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        lock.update(port=18789)
        assert lock.holder()["port"] == 18789 and lock.holder()["bind"] == "loopback"
    finally:
        lock.release()
    assert not path.exists() and not lock.held
    lock.release()  # idempotent


def test_new_dirs_are_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    lock = InstanceLock(state)
    lock.acquire(timeout_ms=100)
    try:
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "locks").stat().st_mode) == 0o700
    finally:
        lock.release()


def test_unreadable_holder_is_reported_as_unknown(tmp_path: Path) -> None:
    path = lock_path(tmp_path)
    path.parent.mkdir(parents=True)
    # A second open file description conflicts with flock even within one process.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"garbage")
        with pytest.raises(LockHeld, match=r"^gateway already running \(pid unknown\); lock timeout after 150ms$"):
            InstanceLock(tmp_path).acquire(timeout_ms=150)
    finally:
        os.close(fd)


def test_waiter_gets_the_fresh_file_after_release(tmp_path: Path) -> None:
    first, second = InstanceLock(tmp_path), InstanceLock(tmp_path)
    first.acquire(timeout_ms=100, info={"port": 1})
    outcome: list[object] = []
    waiter = threading.Thread(target=lambda: outcome.append(
        second.acquire(timeout_ms=3000, info={"port": 2}, poll_ms=20)))
    waiter.start()
    time.sleep(0.1)  # the waiter's first try failed: not observable (each try opens and closes the file)
    first.release()  # deletes the file; the waiter must lock the recreated one, not the old inode
    waiter.join(5)
    try:
        assert outcome and second.held
        assert lock_path(tmp_path).exists() and second.holder()["port"] == 2
        assert os.fstat(second._fd).st_ino == lock_path(tmp_path).stat().st_ino
    finally:
        second.release()


def test_audit_line_format(tmp_path: Path) -> None:
    audit(tmp_path, "start", port=18789, reason="gateway started")
    audit(tmp_path, "force-kill", port=None, pid=4242, reason="SIGKILL lock holder:\nstill running")
    first, second = audit_lines(tmp_path)
    assert first.group("event", "pid", "port", "reason") == \
        ("start", str(os.getpid()), "18789", "gateway started")
    assert second.group("event", "pid", "port", "reason") == \
        ("force-kill", "4242", "-", "SIGKILL lock holder: still running")
    assert stat.S_IMODE(audit_path(tmp_path).stat().st_mode) == 0o600


# ---------------------------------------------------------------------------- --force


def test_force_takeover_kills_stubborn_gateway(spawn: Spawn, tmp_path: Path) -> None:
    child, _ = spawn(STUBBORN, "openclaw", "gateway")
    argv = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
    assert b"openclaw" in argv and b"gateway" in argv
    assert is_gateway_process(child.pid)

    started = time.monotonic()
    killed = force_takeover_lock({"pid": child.pid, "port": 18789}, state_dir=tmp_path,
                                 drain_timeout_ms=300, grace_ms=0, interactive=False,
                                 health_ok=lambda port: False)
    elapsed = time.monotonic() - started
    assert killed == child.pid and not pid_alive(child.pid)
    assert 0.3 <= elapsed < 3
    lines = audit_lines(tmp_path)
    assert [m.group("event") for m in lines] == ["force-kill", "force-kill"]
    assert {m.group("pid") for m in lines} == {str(child.pid)}
    assert lines[0].group("reason").startswith("SIGTERM lock holder")
    assert lines[1].group("reason").startswith("SIGKILL lock holder")
    assert lines[0].group("port") == "18789"


def test_force_takeover_from_terminal_stops_healthy_gateway(spawn: Spawn, tmp_path: Path) -> None:
    child, _ = spawn(SLEEPER, "openclaw", "gateway")  # exits on SIGTERM
    killed = force_takeover_lock({"pid": child.pid, "port": 18789}, state_dir=tmp_path,
                                 drain_timeout_ms=2000, interactive=True,
                                 health_ok=lambda port: True)
    assert killed == child.pid and not pid_alive(child.pid)
    assert [m.group("reason").split()[0] for m in audit_lines(tmp_path)] == ["SIGTERM"]


def test_force_takeover_spares_healthy_gateway_when_not_interactive(spawn: Spawn, tmp_path: Path) -> None:
    child, _ = spawn(SLEEPER, "openclaw", "gateway")
    probed: list[int] = []
    with pytest.raises(ForceRefused) as exc:
        force_takeover_lock({"pid": child.pid, "port": 18789}, state_dir=tmp_path,
                            drain_timeout_ms=100, interactive=False,
                            health_ok=lambda port: probed.append(port) or True)
    assert str(exc.value) == (f"refusing to kill running gateway (pid {child.pid}) from a "
                              "non-interactive shell; use openclaw gateway restart")
    assert probed == [18789] and pid_alive(child.pid)
    assert not audit_path(tmp_path).exists()


def test_force_takeover_refuses_non_gateway(spawn: Spawn, tmp_path: Path) -> None:
    child, _ = spawn(SLEEPER, "gateway")  # no `openclaw` argument
    assert not is_gateway_process(child.pid)
    with pytest.raises(ForceError, match=rf"^lock holder pid {child.pid} is not an openclaw gateway"):
        force_takeover_lock({"pid": child.pid, "port": 1}, state_dir=tmp_path, drain_timeout_ms=0,
                            interactive=True, health_ok=lambda port: False)
    assert pid_alive(child.pid)


def test_force_takeover_edge_cases(spawn: Spawn, tmp_path: Path) -> None:
    kwargs = dict(state_dir=tmp_path, drain_timeout_ms=0, interactive=True, health_ok=lambda p: False)
    with pytest.raises(ForceError, match="held by this process"):
        force_takeover_lock({"pid": os.getpid()}, **kwargs)
    for info in (None, {}, {"pid": "12"}, {"pid": 0}, {"pid": -1}, {"pid": True}):
        with pytest.raises(ForceError, match="lock holder is unknown"):
            force_takeover_lock(info, **kwargs)
    gone, _ = spawn(SLEEPER, "openclaw", "gateway")
    gone.kill()
    gone.wait(5)
    assert force_takeover_lock({"pid": gone.pid}, **kwargs) is None


def test_force_free_port_kills_plain_listener(spawn: Spawn, tmp_path: Path) -> None:
    child, (port,) = spawn(LISTENER)
    port_n = int(port)
    assert force_free_port("127.0.0.1", port_n, state_dir=tmp_path) == child.pid
    assert not pid_alive(child.pid)
    (line,) = audit_lines(tmp_path)
    assert line.group("event", "pid", "port") == ("force-kill", str(child.pid), port)
    assert line.group("reason").startswith(f"SIGTERM listener on 127.0.0.1:{port_n}")
    for sock in bind_sockets("127.0.0.1", port_n):  # the port is ours now
        sock.close()
    assert force_free_port("127.0.0.1", port_n, state_dir=tmp_path) is None  # nothing to do


def test_force_free_port_never_kills_us(tmp_path: Path) -> None:
    socks = bind_sockets("127.0.0.1", 0)
    try:
        port = socks[0].getsockname()[1]
        with pytest.raises(ForceError, match=rf"held by this process \(pid {os.getpid()}\)"):
            force_free_port("127.0.0.1", port, state_dir=tmp_path)
    finally:
        for sock in socks:
            sock.close()
