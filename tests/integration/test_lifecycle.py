"""The gateway process lifecycle (cli-config §4.1, §7, §8.1-§8.2; protocol §7.2, §11, §21.2):
startup refusals, the single-instance lock and port checks, `--force`, the generated token,
logging, `--dev`, signals and the graceful stop. Every test runs the real `openclaw gateway`
on an ephemeral loopback port; nothing binds beyond loopback."""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import OPENCLAW, TOKEN, GatewayProcess, connect_params, free_port, open_client, wait_until

CONFIG = {"gateway": {"auth": {"mode": "token", "token": TOKEN}}}
TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def no_ambient_gateway_env(monkeypatch):
    """The gateways inherit this process's environment: keep a developer's shell settings
    (a supervised shell, an exported token) out of what these tests expect."""
    for suffix in ("SERVICE", "GATEWAY_TOKEN", "GATEWAY_PASSWORD", "CONFIG_PATH", "LOG_LEVEL",
                   "GATEWAY_PORT"):
        monkeypatch.delenv(f"OPENCLAW_{suffix}", raising=False)
        monkeypatch.delenv(f"CLAWDBOT_{suffix}", raising=False)


def spawn(gw: GatewayProcess, stdin) -> GatewayProcess:
    """Like `gw.start(wait_ready=False)` but with the given stdin (e.g. a pty)."""
    cmd = [OPENCLAW, "gateway", "--port", str(gw.port), *gw.args]
    with open(gw.stdout_path, "wb") as out, open(gw.stderr_path, "wb") as err:
        gw.proc = subprocess.Popen(cmd, env=gw.env, stdin=stdin, stdout=out, stderr=err,
                                   start_new_session=True)
    return gw


def run_to_exit(gw: GatewayProcess, timeout: float = 15.0) -> int:
    """Start a gateway that is expected to exit by itself; its exit code."""
    gw.start(wait_ready=False)
    try:
        return gw.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"gateway still running after {timeout}s: {gw.stderr()}") from None


def ready_status(gw: GatewayProcess) -> tuple[int, dict] | None:
    try:
        resp = httpx.get(f"{gw.http}/readyz", timeout=1)
    except httpx.HTTPError:
        return None
    return resp.status_code, resp.json()


def serving(gw: GatewayProcess) -> bool:
    """Alive, ready, and a client completes the handshake."""
    assert gw.proc.poll() is None, f"gateway exited {gw.proc.returncode}: {gw.stderr()}"
    assert ready_status(gw) == (200, {"ok": True, "status": "ready"})
    client = open_client(gw.url)
    try:
        assert client.hello["type"] == "hello-ok"
    finally:
        client.close()
    return True


def lock_file(state_dir: Path) -> Path:
    return state_dir / "locks" / "gateway.lock"


def audit_lines(state_dir: Path) -> list[str]:
    path = state_dir / "logs" / "gateway-restart.log"
    return path.read_text().splitlines() if path.exists() else []


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def command_of(pid: int) -> str:
    """What `ps`/`lsof` would show as the command: argv joined by spaces."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0")
    return " ".join(" ".join(a.decode() for a in raw.split(b"\0")).split())


def refused(ws_client) -> tuple[dict, int | None]:
    """Send `connect` on an open socket; (response frame, close code)."""
    res = ws_client.request("connect", connect_params())
    with pytest.raises(ConnectionClosed) as closed:
        ws_client.recv(5)
    return res, closed.value.rcvd.code if closed.value.rcvd else None


class StalledClient:
    """A real WebSocket client that completes the protocol handshake and then stops reading
    (it never answers the server's close). It keeps a graceful stop in step 3 for the
    gateway's close wait, so the draining phase is observable from outside."""

    def __init__(self, port: int, token: str = TOKEN):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        assert self._frame()["event"] == "connect.challenge"
        self._send({"type": "req", "id": "c1", "method": "connect", "params": connect_params(token)})
        while True:
            frame = self._frame()
            if frame.get("type") == "res":
                assert frame["ok"], frame
                break

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buf += data

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _frame(self) -> dict:
        b0, b1 = self._take(2)
        size = b1 & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._take(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._take(8))[0]
        payload = self._take(size)
        assert b0 & 0x0F == 1, f"expected a text frame, got opcode {b0 & 0x0F}"
        return json.loads(payload)

    def _send(self, obj: dict) -> None:
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        assert len(data) < 65536
        head = bytes([0x81]) + (bytes([0x80 | len(data)]) if len(data) < 126
                                else bytes([0x80 | 126]) + struct.pack("!H", len(data)))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- graceful stop


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_gracefully(gateway_factory, sig):
    gw = gateway_factory(CONFIG)
    pid = gw.proc.pid
    client = open_client(gw.url)
    stalled = StalledClient(gw.port)
    try:
        gw.signal(sig)
        # §7.5 step 1: /readyz turns 503 draining (held observable by the stalled client).
        wait_until(lambda: ready_status(gw) == (503, {"ok": False, "status": "draining"}),
                   timeout=3, interval=0.01, what="/readyz 503 draining")
        # A new connection while draining gets a retryable UNAVAILABLE and close 1013.
        late = open_client(gw.url, handshake=False)
        res, code = refused(late)
        assert not res["ok"] and res["error"]["code"] == "UNAVAILABLE", res
        assert res["error"]["retryable"] is True
        assert code == 1013
        # Step 3: event shutdown with exactly this payload, then close 1012 `service restart`.
        event = client.event("shutdown")
        assert event["payload"] == {"reason": "gateway stopping", "restartExpectedMs": None}
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(5)
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1012, "service restart")
        assert gw.wait(10) == 0, gw.stderr()
    finally:
        stalled.close()
        client.close()
    assert not lock_file(gw.state_dir).exists()
    lines = audit_lines(gw.state_dir)
    assert re.fullmatch(rf"ts={TS} event=start pid={pid} port={gw.port} reason=\S.*", lines[0]), lines
    assert re.fullmatch(rf"ts={TS} event=stop pid={pid} port={gw.port} reason=\S.*", lines[-1]), lines
    messages = [r["message"] for r in records(gw.log_path)]
    assert f"received {sig.name}; shutting down" in messages
    assert messages[-1] == "gateway stopped"


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_second_signal_forces_exit_after_lock_cleanup(gateway_factory, sig, code):
    gw = gateway_factory(CONFIG)
    stalled = StalledClient(gw.port)  # holds the stop in step 3 for the close wait
    try:
        gw.signal(sig)
        wait_until(lambda: ready_status(gw) == (503, {"ok": False, "status": "draining"}),
                   timeout=3, interval=0.01, what="/readyz 503 draining")
        gw.signal(sig)
        assert gw.wait(5) == code, gw.stderr()
    finally:
        stalled.close()
    assert not lock_file(gw.state_dir).exists()
    assert f"second {sig.name}" in gw.stderr()


def test_signal_during_startup_stops_without_serving(gateway_factory):
    gw = gateway_factory(CONFIG, env={"OPENCLAW_TEST_STARTUP_DELAY_MS": "20000"}, wait_ready=False)
    wait_until(lambda: ready_status(gw) == (503, {"ok": False, "status": "starting"}),
               timeout=10, what="/readyz 503 starting")
    started = time.monotonic()
    gw.signal(signal.SIGTERM)
    assert gw.wait(5) == 0, gw.stderr()
    assert time.monotonic() - started < 3, "the stop waited for the startup delay"
    assert not lock_file(gw.state_dir).exists()
    assert "listening on" not in gw.stderr()


def test_sighup_and_sigusr1_do_not_kill(gateway_factory):
    # SIGHUP reloads, SIGUSR1 restarts in-process (tests/integration/test_reload.py and
    # test_restart.py check what they do); neither ends the process.
    gw = gateway_factory(CONFIG)
    for sig, line in ((signal.SIGHUP, "received SIGHUP; reloading the config"),
                      (signal.SIGUSR1, "received SIGUSR1; restarting in-process")):
        gw.signal(sig)
        wait_until(lambda line=line: any(r["message"] == line for r in records(gw.log_path)), timeout=5,
                   what=f"{sig.name} logged")
        gw.wait_ready()
    assert serving(gw) and gw.proc.poll() is None
    assert gw.stop() == 0


# --------------------------------------------------------------------------- lock and port


def test_second_gateway_on_same_state_dir_times_out(gateway_factory):
    first = gateway_factory(CONFIG)
    second = gateway_factory(env={"OPENCLAW_STATE_DIR": str(first.state_dir)}, start=False)
    started = time.monotonic()
    assert run_to_exit(second) == 1
    assert time.monotonic() - started >= 4.9, "gave up before the 5000 ms lock timeout"
    assert (f"gateway already running (pid {first.proc.pid}); lock timeout after 5000ms"
            in second.stderr())
    assert serving(first)
    assert json.loads(lock_file(first.state_dir).read_text())["pid"] == first.proc.pid
    # A stop signal while waiting for the lock ends the wait: exit 0, the holder unharmed.
    waiting = gateway_factory(env={"OPENCLAW_STATE_DIR": str(first.state_dir)}, start=False)
    waiting.start(wait_ready=False)
    wait_until(lambda: f"is held by pid {first.proc.pid}; waiting up to 5000ms" in waiting.stderr(),
               timeout=5, what="the lock wait")
    started = time.monotonic()
    waiting.signal(signal.SIGTERM)
    assert waiting.wait(5) == 0, waiting.stderr()
    assert time.monotonic() - started < 2
    assert serving(first)
    assert json.loads(lock_file(first.state_dir).read_text())["pid"] == first.proc.pid


def test_second_gateway_on_same_port_fails_fast(gateway_factory):
    first = gateway_factory(CONFIG)
    second = gateway_factory(CONFIG, port=first.port, start=False)
    started = time.monotonic()
    assert run_to_exit(second) == 1
    assert time.monotonic() - started < 4, "a taken port must fail fast, without retries"
    expected = (f"port 127.0.0.1:{first.port} is already in use by pid {first.proc.pid} "
                f"({command_of(first.proc.pid)})")
    assert expected in second.stderr()
    assert not lock_file(second.state_dir).exists()
    # Supervised (§7.2): a healthy incumbent means exit 78, so the supervisor stops retrying.
    supervised = gateway_factory(CONFIG, port=first.port, env={"OPENCLAW_SERVICE": "supervisord"},
                                 start=False)
    assert run_to_exit(supervised) == 78
    assert (f"gateway already running and healthy (pid {first.proc.pid}); not starting a second one"
            in supervised.stderr())
    assert serving(first)


def test_force_from_terminal_takes_over_and_non_interactive_refuses(gateway_factory):
    first = gateway_factory(CONFIG)
    shared = {"OPENCLAW_STATE_DIR": str(first.state_dir)}
    # (b) stdin not a terminal, holder healthy: spared.
    polite = gateway_factory(args=["--force"], env=shared, port=first.port, start=False)
    assert run_to_exit(polite) == 1
    assert (f"refusing to kill running gateway (pid {first.proc.pid}) from a non-interactive shell; "
            "use openclaw gateway restart") in polite.stderr()
    assert serving(first)
    # (a) stdin on a pty: interactive, so the holder gets SIGTERM and stops gracefully.
    master, slave = pty.openpty()
    try:
        second = spawn(gateway_factory(args=["--force"], env=shared, port=first.port, start=False),
                       stdin=slave)
        os.close(slave)
        slave = None
        assert first.wait(40) == 0, first.stderr()
        second.wait_ready()
        assert serving(second)
        assert json.loads(lock_file(first.state_dir).read_text())["pid"] == second.proc.pid
        assert f"--force: sent SIGTERM to pid {first.proc.pid}" in second.stderr()
        assert any(f"event=force-kill pid={first.proc.pid} " in line
                   for line in audit_lines(first.state_dir))
        assert second.stop() == 0
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)


LISTENER = ("import socket,sys,time;s=socket.socket();s.bind(('127.0.0.1',int(sys.argv[1])));"
            "s.listen();print('up',flush=True);time.sleep(60)")


def test_force_kills_plain_listener(gateway_factory):
    port = free_port()
    child = subprocess.Popen([sys.executable, "-c", LISTENER, str(port)], stdout=subprocess.PIPE,
                             start_new_session=True)
    try:
        assert child.stdout.readline() == b"up\n"
        plain = gateway_factory(CONFIG, port=port, start=False)
        assert run_to_exit(plain) == 1
        assert (f"port 127.0.0.1:{port} is already in use by pid {child.pid} ({command_of(child.pid)})"
                in plain.stderr())
        gw = gateway_factory(CONFIG, args=["--force"], port=port, start=False)
        gw.start()
        assert child.wait(5) == -signal.SIGTERM
        assert serving(gw)
        assert any(f"event=force-kill pid={child.pid} port={port} " in line
                   for line in audit_lines(gw.state_dir))
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(5)


# --------------------------------------------------------------------------- refusals (exit 78)


def _refusal(gateway_factory, config, args=(), env=None) -> GatewayProcess:
    return expect_refusal(gateway_factory(config, args=list(args), env=env or {}, start=False))


def expect_refusal(gw: GatewayProcess) -> GatewayProcess:
    """Run `gw` and check it exits 78 without serving or keeping the lock."""
    # Anything that got as far as binding would collide with this loopback listener (a
    # 0.0.0.0 bind included), so a refusal that comes too late fails instead of serving.
    with socket.socket() as guard:
        guard.bind(("127.0.0.1", gw.port))
        guard.listen()
        code = run_to_exit(gw)
    assert code == 78, gw.stderr()
    assert not lock_file(gw.state_dir).exists()
    return gw


def test_invalid_config_refused(gateway_factory):
    gw = _refusal(gateway_factory, {"gateway": {"port": "abc"}})
    lines = gw.stderr().splitlines()
    assert lines[0] == f"Invalid config at {gw.config_path}:"
    assert any(line.startswith("  - gateway.port: ") for line in lines[1:]), lines


def test_invalid_config_message_wording(gateway_factory):
    gw = _refusal(gateway_factory, {"gateway": {"port": "abc"}})
    assert '  - gateway.port: expected integer, got string "abc"' in gw.stderr().splitlines()


def test_unparseable_config_refused_with_position(gateway_factory):
    gw = gateway_factory(None, start=False)
    gw.config_path.write_text('{\n  gateway: {\n    port: ,\n  }\n}\n')
    expect_refusal(gw)
    lines = gw.stderr().splitlines()
    assert lines[0] == f"Invalid config at {gw.config_path}:"
    assert re.fullmatch(rf"  - {re.escape(str(gw.config_path))}:3:11: \S.*", lines[1]), lines


def test_empty_config_refused_without_generating_a_token(gateway_factory):
    # A truncated file is no all-defaults config: starting on it would switch to a generated token.
    gw = gateway_factory(None, start=False)
    gw.config_path.write_text("\n")
    expect_refusal(gw)
    assert gw.stderr().splitlines()[1] == (f"  - {gw.config_path}: the file is empty (truncated while "
                                           "being written?); write {} for an all-defaults config")
    assert not (gw.state_dir / "gateway.token").exists()


def test_remote_mode_refused_unless_allowed(gateway_factory):
    config = {"gateway": {"mode": "remote", "auth": {"mode": "token", "token": TOKEN}}}
    gw = _refusal(gateway_factory, config)
    assert ('Gateway start blocked: gateway.mode is "remote" (set gateway.mode=local or pass '
            "--allow-unconfigured)") in gw.stderr()
    allowed = gateway_factory(config, args=["--allow-unconfigured"])
    assert serving(allowed)


@pytest.mark.parametrize("config,args", [
    ({"gateway": {"auth": {"mode": "none"}}}, ["--bind", "lan"]),
    ({"gateway": {"bind": "lan", "auth": {"mode": "none"}}}, []),
], ids=["flag", "config"])
def test_lan_without_auth_refused_before_binding(gateway_factory, config, args):
    gw = _refusal(gateway_factory, config, args)
    lines = gw.stderr().splitlines()
    assert "refusing to bind gateway to 0.0.0.0 without auth" in lines
    assert any("set gateway.auth.mode to token or password" in line for line in lines)


def test_unresolved_token_placeholder_refused(gateway_factory):
    var = "OPENCLAW_LIFECYCLE_TEST_UNSET"
    gw = gateway_factory({"gateway": {"auth": {"token": "${%s}" % var}}}, start=False)
    gw.env.pop(var, None)
    gw.env.pop(var.replace("OPENCLAW_", "CLAWDBOT_"), None)
    expect_refusal(gw)
    assert f"gateway.auth.token: environment variable {var} is not set" in gw.stderr().splitlines()
    assert not (gw.state_dir / "gateway.token").exists()


def test_token_and_password_without_mode_refused(gateway_factory):
    gw = _refusal(gateway_factory, {"gateway": {"auth": {"token": TOKEN, "password": "pw-0123456789"}}})
    assert ("gateway.auth: both token and password are set; set gateway.auth.mode"
            in gw.stderr().splitlines())


def test_bogus_bind_is_usage_error(gateway_factory):
    gw = gateway_factory(CONFIG, args=["--bind", "bogus"], start=False)
    assert run_to_exit(gw) == 2
    assert "bogus" in gw.stderr()


# --------------------------------------------------------------------------- token


def test_generated_token_file(gateway_factory):
    gw = gateway_factory({})  # no secret anywhere
    path = gw.state_dir / "gateway.token"
    token = path.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert gw.stdout().strip() == str(path)  # stdout is no TTY: only the path
    config_bytes = gw.config_path.read_bytes()
    client = open_client(gw.url, token=token)
    assert client.hello["auth"]["method"] == "token"
    client.close()
    assert gw.stop() == 0
    # Reused on the next start.
    again = gateway_factory(env={"OPENCLAW_STATE_DIR": str(gw.state_dir)})
    assert path.read_text().strip() == token
    client = open_client(again.url, token=token)
    assert client.hello["type"] == "hello-ok"
    client.close()
    assert again.stop() == 0
    assert again.stdout().strip() == str(path)
    assert gw.config_path.read_bytes() == config_bytes
    for text in (config_bytes.decode(), gw.log_path.read_text(), gw.stderr(), again.stderr()):
        assert token not in text


def _accepts(gw: GatewayProcess, token: str) -> bool:
    client = open_client(gw.url, handshake=False)
    try:
        res = client.request("connect", connect_params(token))
        return bool(res["ok"])
    finally:
        client.close()


def test_token_precedence_flag_env_config(gateway_factory):
    config = {"gateway": {"auth": {"token": "config-token-0123456789"}}}
    by_env = gateway_factory(config, start=False)
    by_flag = gateway_factory(config, args=["--token", "flag-token-0123456789"], start=False)
    for gw in (by_env, by_flag):
        # Set after construction: GatewayProcess drops OPENCLAW_GATEWAY_TOKEN from its env.
        gw.env["OPENCLAW_GATEWAY_TOKEN"] = "env-token-0123456789"
        gw.start()
    assert _accepts(by_env, "env-token-0123456789")
    assert not _accepts(by_env, "config-token-0123456789")
    assert _accepts(by_flag, "flag-token-0123456789")
    assert not _accepts(by_flag, "env-token-0123456789")
    for gw in (by_env, by_flag):
        assert not (gw.state_dir / "gateway.token").exists()


# --------------------------------------------------------------------------- logging


def test_log_file_records_and_secrecy(gateway_factory):
    gw = gateway_factory(CONFIG, args=["--verbose"])
    client = open_client(gw.url)
    for method in ("health", "status", "config.get"):
        assert client.request(method, {})["ok"]
    client.close()
    resp = httpx.post(f"{gw.http}/api/v1/admin/rpc", json={"method": "health"},
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert resp.status_code == 200
    assert gw.stop() == 0
    text = gw.log_path.read_text()
    assert TOKEN not in text and TOKEN not in gw.stderr() and TOKEN not in gw.stdout()
    recs = records(gw.log_path)
    for rec in recs:
        assert {"time", "level", "subsystem", "message", "pid", "hostname"} <= rec.keys(), rec
        assert re.fullmatch(TS, rec["time"]), rec["time"]
        assert rec["pid"] == gw.proc.pid and rec["hostname"] == socket.gethostname()
    listening = (f"openclaw 0.1.0 listening on ws://127.0.0.1:{gw.port} "
                 "(bind=loopback, auth=token, reload=hybrid)")
    assert {"level": "info", "subsystem": "gateway", "message": listening}.items() <= next(
        r for r in recs if r["message"] == listening).items()
    # --verbose never changes the file level (§8.4): no debug records in the file.
    assert all(r["level"] != "debug" for r in recs)
    # The console got the debug lines, in the compact style (stderr is no TTY).
    stderr = gw.stderr().splitlines()
    assert any(re.fullmatch(rf"{TS} I gateway: {re.escape(listening)}", line) for line in stderr), stderr
    assert any(re.match(rf"{TS} D ", line) for line in stderr)


def test_console_style_json(gateway_factory):
    gw = gateway_factory({**CONFIG, "logging": {"consoleStyle": "json"}})
    assert gw.stop() == 0
    lines = [json.loads(line) for line in gw.stderr().splitlines() if line.strip()]
    assert lines and all({"time", "level", "subsystem", "message", "pid", "hostname"} <= r.keys()
                         for r in lines)
    assert any(r["message"].startswith("openclaw 0.1.0 listening on ") for r in lines)


# --------------------------------------------------------------------------- --dev, start


def test_dev_mode(gateway_factory, tmp_path):
    home = tmp_path / "home"
    dev_state = home / ".openclaw-dev"
    dev_state.mkdir(parents=True)
    log = tmp_path / "dev.log"
    (dev_state / "openclaw.json").write_text(json.dumps({"logging": {"file": str(log)}}))
    gw = gateway_factory(None, args=["--dev"], env={"HOME": str(home)})
    client = open_client(gw.url, token=None)
    try:
        assert client.hello["auth"]["method"] == "none"
        assert client.hello["snapshot"]["authMode"] == "none"
    finally:
        client.close()
    assert json.loads(lock_file(dev_state).read_text())["pid"] == gw.proc.pid
    assert (dev_state / "workspace").is_dir()
    assert not (home / ".openclaw").exists()
    assert list(gw.state_dir.iterdir()) == []  # OPENCLAW_STATE_DIR is not used under --dev
    assert gw.stop() == 0
    assert any(r["message"].endswith("(bind=loopback, auth=none, reload=hybrid)") for r in records(log))
    assert any(re.match(rf"{TS} D ", line) for line in gw.stderr().splitlines())  # console debug
    assert not (dev_state / "gateway.token").exists()
    assert json.loads((dev_state / "openclaw.json").read_text()) == {"logging": {"file": str(log)}}


def test_cold_start_and_last_good(gateway_factory):
    gw = gateway_factory(CONFIG, start=False)
    started = time.monotonic()
    gw.start(wait_ready=False)
    gw.wait_ready(timeout=10)
    elapsed = time.monotonic() - started
    print(f"\ncold start: spawn to /readyz 200 in {elapsed * 1000:.0f} ms")
    assert elapsed < 10
    last_good = gw.config_path.with_name("openclaw.json.last-good")
    assert last_good.read_bytes() == gw.config_path.read_bytes()
    assert stat.S_IMODE(last_good.stat().st_mode) == 0o600
    info = json.loads(lock_file(gw.state_dir).read_text())
    assert info.keys() == {"pid", "startedAt", "port", "bind", "configPath", "version", "hostname"}
    assert (info["pid"], info["port"], info["bind"], info["configPath"], info["version"]) == (
        gw.proc.pid, gw.port, "loopback", str(gw.config_path), "0.1.0")
    assert gw.stop() == 0
