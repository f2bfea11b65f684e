"""Events (protocol §3.3, §5.11, §6.4, §7.2) and the slow-consumer guard (§20), against the real
gateway process."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
import time
import uuid

import httpx
import pytest

from tests.conftest import TOKEN, connect_params, log_records, wait_until

TICK_MS = 200


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return module_gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}},
                                  env={"OPENCLAW_TICK_INTERVAL_MS": str(TICK_MS)}, name="events")


def client_info(mode: str, instance: str | None = None, client_id: str = "test-client") -> dict:
    info = {"id": client_id, "version": "3.2.1", "platform": "linux", "mode": mode}
    if instance:
        info["instanceId"] = instance
    return info


def next_presence(client, timeout: float = 5.0) -> dict:
    return client.event("presence", timeout)


def entry_for(frame: dict, instance: str) -> dict | None:
    found = [e for e in frame["payload"]["presence"] if e.get("instanceId") == instance]
    assert len(found) <= 1, frame
    return found[0] if found else None


# --- tick and seq (§3.3, §7.2) ------------------------------------------------------------------


def test_ticks_are_numbered_from_one_without_gaps(gw, ws_clients):
    client = ws_clients(gw.url)
    assert client.hello["policy"]["tickIntervalMs"] == TICK_MS
    hello_at = time.monotonic()
    frames = [client.recv(timeout=2) for _ in range(5)]
    assert time.monotonic() - hello_at >= 4 * TICK_MS / 1000  # one tick per interval, not a burst
    ticks = [f for f in frames if f["event"] == "tick"]
    assert ticks, frames
    assert [f["seq"] for f in frames] == [1, 2, 3, 4, 5]
    for frame in ticks:
        assert set(frame) == {"type", "event", "payload", "seq"}
        assert set(frame["payload"]) == {"ts"} and isinstance(frame["payload"]["ts"], int)
    stamps = [f["payload"]["ts"] for f in ticks]
    assert stamps == sorted(stamps)


def test_seq_counts_every_event_kind_on_one_socket(gw, ws_clients):
    watcher = ws_clients(gw.url)
    for _ in range(3):
        other = ws_clients(gw.url, client=client_info("ui", f"seq-{uuid.uuid4()}"))
        other.close()
    seen: list[dict] = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        seen.append(watcher.recv(timeout=2))
    kinds = {f["event"] for f in seen}
    assert {"tick", "presence"} <= kinds, kinds
    assert [f["seq"] for f in seen] == list(range(1, len(seen) + 1))


def test_requests_do_not_take_seq_numbers(gw, ws_clients):
    client = ws_clients(gw.url)
    for _ in range(5):
        assert client.request("health")["ok"] is True
    events = list(client.events)
    client.events.clear()
    events.append(client.event("tick", 2))
    assert [f["seq"] for f in events] == list(range(1, len(events) + 1))


# --- presence events (§5.11, §7.2, §9.3) -------------------------------------------------------------


def test_presence_event_on_connect_and_disconnect(gw, ws_clients):
    watcher = ws_clients(gw.url, client=client_info("cli"))
    instance = f"ui-{uuid.uuid4()}"
    ui = ws_clients(gw.url, client=client_info("ui", instance, "openclaw-control-ui"))
    frame = next_presence(watcher)
    assert set(frame) == {"type", "event", "payload", "seq", "stateVersion"}
    assert set(frame["payload"]) == {"presence"}
    versions = frame["stateVersion"]
    assert set(versions) == {"presence", "health"} and all(isinstance(v, int) for v in versions.values())
    assert frame["payload"]["presence"][0]["reason"] == "self"
    entry = entry_for(frame, instance)
    assert entry["reason"] == "connect" and entry["mode"] == "ui"
    assert entry["host"] == "openclaw-control-ui" and entry["roles"] == ["operator"]
    assert entry["text"] == "Client: openclaw-control-ui · app 3.2.1 · mode ui · reason connect"
    assert ui.hello["snapshot"]["stateVersion"]["presence"] < versions["presence"]

    connected_ts = entry["ts"]
    ui.close()
    frame = next_presence(watcher)
    assert frame["stateVersion"]["presence"] == versions["presence"] + 1
    entry = entry_for(frame, instance)
    assert entry["reason"] == "disconnect" and entry["ts"] >= connected_ts
    assert entry["text"] == "Client: openclaw-control-ui · app 3.2.1 · mode ui · reason disconnect"
    # the disconnected entry stays listed (until it expires)
    listed = watcher.request("system-presence")["payload"]
    assert [e["reason"] for e in listed if e.get("instanceId") == instance] == ["disconnect"]


def test_new_client_sees_its_own_presence_event(gw, ws_clients):
    instance = f"self-{uuid.uuid4()}"
    client = ws_clients(gw.url, client=client_info("webchat", instance))
    frame = next_presence(client)
    assert entry_for(frame, instance)["reason"] == "connect"
    assert frame["seq"] >= 1


@pytest.mark.parametrize("mode", ["cli", "backend", "probe"])
def test_no_presence_for_untracked_modes(gw, ws_clients, mode):
    watcher = ws_clients(gw.url, client=client_info("cli"))
    first = f"a-{uuid.uuid4()}"
    ws_clients(gw.url, client=client_info("ui", first))
    base = next_presence(watcher)
    while entry_for(base, first) is None or entry_for(base, first)["reason"] != "connect":
        base = next_presence(watcher)
    untracked_instance = f"u-{uuid.uuid4()}"
    untracked = ws_clients(gw.url, client=client_info(mode, untracked_instance))
    assert untracked.request("health")["ok"] is True  # fully registered before the next one
    untracked.close()
    second = f"b-{uuid.uuid4()}"
    ws_clients(gw.url, client=client_info("node", second), role="node")
    frame = next_presence(watcher)
    # the very next presence change is the node's: the untracked client made none
    assert frame["stateVersion"]["presence"] == base["stateVersion"]["presence"] + 1
    assert entry_for(frame, second)["reason"] == "connect"
    assert entry_for(frame, second)["text"].startswith("Node: test-client · app 3.2.1 · mode node")
    assert entry_for(frame, untracked_instance) is None
    listed = watcher.request("system-presence")["payload"]
    assert not [e for e in listed if e.get("instanceId") == untracked_instance]


def test_node_role_still_receives_tick_and_presence(gw, ws_clients):
    node = ws_clients(gw.url, role="node", client=client_info("node", f"n-{uuid.uuid4()}"))
    assert node.event("tick", 2)["seq"] >= 1
    instance = f"ui-{uuid.uuid4()}"
    ws_clients(gw.url, client=client_info("ui", instance))
    deadline = time.monotonic() + 5
    while True:
        frame = node.event("presence", max(0.1, deadline - time.monotonic()))
        if entry_for(frame, instance):
            break
    assert entry_for(frame, instance)["reason"] == "connect"


def test_scopeless_operator_receives_tick_and_presence(gw, ws_clients):
    client = ws_clients(gw.url, scopes=[])
    assert client.event("tick", 2)["event"] == "tick"
    instance = f"ui-{uuid.uuid4()}"
    ws_clients(gw.url, client=client_info("ui", instance))
    deadline = time.monotonic() + 5
    while not entry_for(client.event("presence", max(0.1, deadline - time.monotonic())), instance):
        pass


def test_failed_handshake_gets_no_events_and_makes_no_presence(gw, ws_clients):
    watcher = ws_clients(gw.url, client=client_info("cli"))
    version = watcher.request("system-presence")  # settle: presence list as of now
    before = [e.get("instanceId") for e in version["payload"]]
    refused = ws_clients(gw.url, handshake=False)
    refused.send({"type": "req", "id": "c", "method": "connect",
                  "params": connect_params(token="wrong", client=client_info("ui", "refused-inst"))})
    assert refused.recv()["ok"] is False
    after = [e.get("instanceId") for e in watcher.request("system-presence")["payload"]]
    assert "refused-inst" not in after and "refused-inst" not in before


# --- slow consumers (§20) --------------------------------------------------------------------------


class RawWebSocket:
    """A minimal real WebSocket client on a plain socket with a small receive buffer, so the test
    controls exactly when (and whether) anything is read."""

    def __init__(self, port: int, rcvbuf: int = 65536):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, "connection closed during the upgrade"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_text(self, text: str) -> None:
        data = text.encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        elif len(data) < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", len(data))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)

    def _exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return bytes(out)

    def recv_frame(self) -> tuple[int, bytes]:
        b0, b1 = self._exact(2)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._exact(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._exact(8))[0]
        return b0 & 0x0F, self._exact(length)

    def recv_json(self) -> dict:
        opcode, data = self.recv_frame()
        assert opcode == 1, (opcode, data[:100])
        return json.loads(data)

    def drain(self, timeout: float) -> tuple[int, bool]:
        """Read whatever the server still sends: (bytes read, whether the stream ended)."""
        total, deadline = 0, time.monotonic() + timeout
        self.sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return total, True
            if not chunk:
                return total, True
            total += len(chunk)
        return total, False

    def close(self) -> None:
        self.sock.close()


def vm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_slow_consumer_is_closed_and_others_stay_served(gateway_factory, ws_clients):
    # A ~1 MiB `agents.defaults.systemPrompt` makes each config.get answer ~2 MiB (it appears in
    # `resolved` and `config`). It comes from eight `${VAR}`s of 128 KiB each (the kernel's limit
    # for one environment string), so the file itself stays small: a 1 MiB literal in the file
    # would take the pure-Python JSON5 parser seconds at startup and on every config.get.
    chunk = 128 * 1024 - 64
    names = [f"OPENCLAW_TEST_PROMPT_{i}" for i in range(8)]
    env = {name: chr(0x61 + i) * chunk for i, name in enumerate(names)}
    prompt_ref = "".join(f"${{{name}}}" for name in names)
    sgw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}},
                           "agents": {"defaults": {"systemPrompt": prompt_ref}}}, env=env)
    pid = sgw.proc.pid
    healthy = ws_clients(sgw.url)
    # warm up: one full config.get on a reading client, so the baseline includes the steady state
    payload = healthy.request("config.get", timeout=10)["payload"]
    assert payload["resolved"]["agents"]["defaults"]["systemPrompt"] == "".join(env[n] for n in names)
    assert len(json.dumps(payload)) > 2_000_000
    baseline = vm_rss(pid)

    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], vm_rss(pid))
            except (OSError, AssertionError):
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    slow = RawWebSocket(sgw.port)
    try:
        assert slow.recv_json()["event"] == "connect.challenge"
        slow.send_text(json.dumps({"type": "req", "id": "c", "method": "connect", "params": connect_params()}))
        hello = slow.recv_json()
        assert hello["ok"] is True
        conn_id = hello["payload"]["server"]["connId"]
        requests = 50
        for i in range(requests):
            slow.send_text(json.dumps({"type": "req", "id": f"big{i}", "method": "config.get"}))
        # never read; meanwhile another client keeps being answered quickly
        latencies = []
        flood_end = time.monotonic() + 3
        while time.monotonic() < flood_end:
            started = time.monotonic()
            assert healthy.request("health", timeout=5)["ok"] is True
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)
        assert max(latencies) < 1.5, latencies

        def closed_record() -> bool:
            return any("slow consumer" in json.dumps(r) and conn_id in json.dumps(r)
                       for r in log_records(sgw.log_path))

        wait_until(closed_record, 10, what="the slow-consumer close in the log")
        received, ended = slow.drain(timeout=10)
        assert ended, "the slow consumer's socket did not end"
        # what was queued for it was dropped with the socket, not flushed: only what already sat in
        # the kernel's buffers (a few MB) still arrives before the end
        assert received < 16 << 20, received
    finally:
        stop.set()
        sampler.join(2)
        slow.close()
    assert peak[0] < baseline + 150 * 1024 * 1024, (baseline, peak[0])
    assert sgw.proc.poll() is None
    assert healthy.request("health")["ok"] is True
    assert httpx.get(f"{sgw.http}/readyz").status_code == 200
