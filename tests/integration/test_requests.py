"""Requests after the handshake (protocol §3, §6.3, §8.1) and the answers of the system and config
methods (§9, §10.2), against the real gateway process."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import TOKEN, log_records, read_until_closed, wait_until

API_KEY = "sk-live-a1b2c3d4e5f6-very-secret"
ENV_SECRET = "env-secret-9f8e7d6c5b4a"
REDACTED = "__OPENCLAW_REDACTED__"
READ_SATISFIERS = ["operator.read", "operator.write", "operator.admin"]
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return module_gateway_factory(
        {"gateway": {"auth": {"mode": "token", "token": TOKEN}},
         "models": {"providers": {"x": {"apiKey": API_KEY, "baseUrl": "https://x.example",
                                        "api": "openai-completions", "models": [{"id": "m"}]},
                                  "y": {"apiKey": "${OPENCLAW_TEST_PROVIDER_KEY}", "api": "ollama",
                                        "baseUrl": "http://127.0.0.1:11434", "models": [{"id": "m"}]}}},
         "agents": {"defaults": {"model": "x/m"}},
         "channels": {"telegram": {"botToken": "123456:tg-bot-token-value"}}},
        env={"OPENCLAW_TEST_PROVIDER_KEY": ENV_SECRET}, name="requests")


@pytest.fixture
def client(gw, ws_clients):
    return ws_clients(gw.url)


def error_of(res: dict) -> dict:
    assert res["type"] == "res" and res["ok"] is False and "payload" not in res, res
    return res["error"]


# --- frame handling (§3.2) -----------------------------------------------------------------------


def test_unknown_method_keeps_the_socket_open(client):
    res = client.request("nosuch", req_id="5")
    assert res == {"type": "res", "id": "5", "ok": False,
                   "error": {"code": "INVALID_REQUEST", "message": "unknown method: nosuch"}}
    assert client.request("health")["ok"] is True


def test_unknown_method_wins_over_missing_scopes(gw, ws_clients):
    client = ws_clients(gw.url, scopes=[])
    assert error_of(client.request("nosuch.method"))["message"] == "unknown method: nosuch.method"


def test_omitted_params_mean_empty_object(client):
    client.send({"type": "req", "id": "2:omitted", "method": "health"})
    res = client.response("2:omitted")
    assert res["ok"] is True and res["payload"]["ok"] is True


@pytest.mark.parametrize("params", [5, "x", [1], True, None])
def test_non_object_params(client, params):
    client.send({"type": "req", "id": "np", "method": "health", "params": params})
    assert error_of(client.response("np")) == {
        "code": "INVALID_REQUEST", "message": "invalid health params: params must be an object"}


@pytest.mark.parametrize("params, message", [
    ({"timeoutMs": "soon"}, "invalid health params: timeoutMs: expected int, got str"),
    ({"timeoutMs": -1}, "invalid health params: timeoutMs: expected int >= 0"),
    ({"probe": "yes"}, "invalid health params: probe: expected bool, got str"),
])
def test_malformed_params(client, params, message):
    assert error_of(client.request("health", params)) == {"code": "INVALID_REQUEST", "message": message}


def test_read_methods_ignore_unknown_params(client):
    assert client.request("health", {"newerClientField": 1})["ok"] is True
    assert client.request("status", {"includeChannelSummary": False, "x": [1]})["ok"] is True


def test_status_params_type(client):
    assert error_of(client.request("status", {"includeChannelSummary": "no"}))["message"] == \
        "invalid status params: includeChannelSummary: expected bool, got str"


@pytest.mark.parametrize("frame, reason", [
    ({"type": "req", "id": "x"}, "method: required"),
    ({"type": "req", "id": "x", "method": ""}, "method: expected str of length >= 1"),
    ({"type": "req", "id": "x", "method": 5}, "method: expected str, got int"),
    ({"id": "x", "method": "health"}, "type: required"),
    ({"type": "request", "id": "x", "method": "health"}, "type: invalid value 'request'"),
    ({"type": "req", "id": "x", "method": "health", "traceparent": "0" * 129},
     "traceparent: expected str of length <= 128"),
])
def test_invalid_request_frame_with_id(client, frame, reason):
    client.send(frame)
    res = client.response("x")
    assert error_of(res) == {"code": "INVALID_REQUEST", "message": f"invalid request frame: {reason}"}
    assert client.request("health")["ok"] is True


def test_overlong_id_is_an_invalid_frame(client):
    long_id = "i" * 257
    client.send({"type": "req", "id": long_id, "method": "health"})
    assert error_of(client.response(long_id))["message"] == \
        "invalid request frame: id: expected str of length <= 256"
    ok_id = "j" * 256
    assert client.request("health", req_id=ok_id)["ok"] is True


def test_frames_over_64k_are_fine_after_hello(client):
    client.send({"type": "req", "id": "big", "method": "health", "params": {"pad": "x" * 1_000_000}})
    assert client.response("big")["ok"] is True


def test_frame_over_max_payload_after_hello_closes_1009(gw, ws_clients):
    client = ws_clients(gw.url)
    frame = json.dumps({"type": "req", "id": "huge", "method": "health",
                        "params": {"pad": "x" * (26214400 + 1)}})
    try:  # the server closes as soon as it has read the header: the send may fail midway
        client.send(frame)
    except ConnectionClosed as exc:
        code, reason = exc.rcvd.code, exc.rcvd.reason
    else:
        _, code, reason = read_until_closed(client, timeout=15)
    assert (code, reason) == (1009, "payload too large")
    assert ws_clients(gw.url).request("health")["ok"] is True


def test_response_id_is_echoed_byte_for_byte(client):
    odd = '3:ä😀 "quoted" \\ \u2028'
    res = client.request("health", req_id=odd)
    assert res["id"] == odd and res["ok"] is True


def test_traceparent_and_unknown_top_level_fields_are_accepted(client):
    client.send({"type": "req", "id": "tp", "method": "health", "extra": {"a": 1},
                 "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    assert client.response("tp")["ok"] is True


def test_non_json_and_client_res_event_frames_are_dropped(gw, client):
    client.send("{not json")
    client.send("[1, 2, 3]")
    client.send({"type": "res", "id": "r1", "ok": True, "payload": {}})
    client.send({"type": "event", "event": "tick", "payload": {"ts": 1}})
    client.send({"type": "req", "id": "after", "method": "health"})
    frame = client.recv()
    while frame["type"] == "event":
        frame = client.recv()
    assert frame["id"] == "after" and frame["ok"] is True  # nothing was answered before it

    def logged() -> bool:
        return any("invalid request frame" in r.get("msg", r.get("message", "")) and
                   client.hello["server"]["connId"] in json.dumps(r) for r in log_records(gw.log_path))

    wait_until(logged, 5, what="the dropped frame in the log")


def test_concurrent_requests_are_matched_by_id(client):
    methods = ["health", "status", "system-presence", "config.get"]
    ids = {f"{i}:{uuid.uuid4()}": methods[i % len(methods)] for i in range(60)}
    for req_id, method in ids.items():
        client.send({"type": "req", "id": req_id, "method": method})
    seen: dict[str, dict] = {}
    while len(seen) < len(ids):
        frame = client.recv()
        if frame["type"] == "res":
            assert frame["id"] in ids and frame["id"] not in seen
            seen[frame["id"]] = frame
    for req_id, method in ids.items():
        res = seen[req_id]
        assert res["ok"] is True, res
        if method == "system-presence":
            assert isinstance(res["payload"], list)
        elif method == "health":
            assert res["payload"]["ok"] is True
        elif method == "status":
            assert res["payload"]["runtimeVersion"] == "2026.9.6"
        else:
            assert "configRevisionHash" in res["payload"]


def test_duplicate_in_flight_ids_are_each_answered(client):
    for _ in range(3):
        client.send({"type": "req", "id": "dup", "method": "health"})
    answers = 0
    while answers < 3:
        frame = client.recv()
        if frame["type"] == "res":
            assert frame["id"] == "dup" and frame["ok"] is True
            answers += 1


def test_client_disconnecting_mid_request(gw, ws_clients):
    observer = ws_clients(gw.url)
    for _ in range(5):
        leaver = ws_clients(gw.url)
        for i in range(20):
            leaver.send({"type": "req", "id": f"l{i}", "method": "config.get" if i % 2 else "status"})
        leaver.ws.socket.shutdown(socket.SHUT_RDWR)  # vanish without a close handshake
        leaver.ws.socket.close()
        assert observer.request("health")["ok"] is True
    assert httpx.get(f"{gw.http}/health").status_code == 200
    assert gw.proc.poll() is None
    assert ws_clients(gw.url).request("status")["ok"] is True


# --- authorization (§6) ---------------------------------------------------------------------------


def test_missing_scope(gw, ws_clients):
    client = ws_clients(gw.url, scopes=["operator.approvals"])
    for method in ("health", "status", "system-presence", "config.get"):
        res = client.request(method, req_id=f"ms-{method}")
        assert res == {"type": "res", "id": f"ms-{method}", "ok": False, "error": {
            "code": "FORBIDDEN", "message": "missing scope: operator.read",
            "details": {"code": "MISSING_SCOPE", "missingScope": "operator.read",
                        "requiredScopes": READ_SATISFIERS}}}


@pytest.mark.parametrize("scopes", [["operator.read"], ["operator.write"], ["operator.admin"]])
def test_read_satisfied_by_read_write_admin(gw, ws_clients, scopes):
    client = ws_clients(gw.url, scopes=scopes)
    assert client.request("health")["ok"] is True


def test_missing_scope_checked_before_params(gw, ws_clients):
    client = ws_clients(gw.url, scopes=["operator.pairing"])
    assert error_of(client.request("health", 5))["code"] == "FORBIDDEN"


# --- health (§9.1) --------------------------------------------------------------------------------


def test_health_shape(gw, client):
    before = int(time.time() * 1000)
    payload = client.request("health")["payload"]
    assert set(payload) >= {"ok", "ts", "durationMs", "channels", "channelOrder", "channelLabels",
                            "heartbeatSeconds", "defaultAgentId", "agents", "sessions", "configReload"}
    assert payload["ok"] is True
    assert isinstance(payload["ts"], int) and payload["ts"] >= before - 60_000
    assert isinstance(payload["durationMs"], int) and payload["durationMs"] >= 0
    assert isinstance(payload["channels"], dict) and isinstance(payload["channelOrder"], list)
    assert isinstance(payload["channelLabels"], dict)
    assert payload["heartbeatSeconds"] == 0 and payload["defaultAgentId"] == "main"
    store = str(gw.state_dir / "agents" / "main" / "sessions.sqlite")
    sessions = payload["sessions"]
    assert sessions["path"] == store and isinstance(sessions["count"], int)
    assert isinstance(sessions["recent"], list) and len(sessions["recent"]) <= 5
    agent = payload["agents"][0]
    assert agent["agentId"] == "main" and agent["isDefault"] is True
    assert agent["heartbeat"] == {"enabled": False, "every": "disabled", "everyMs": None}
    assert agent["sessions"]["path"] == store
    assert payload["configReload"] == {"mode": "hybrid", "status": "ok", "lastReloadAt": None,
                                       "lastError": None, "pendingRestart": []}


def test_health_timeout_param(client):
    assert client.request("health", {"timeoutMs": 0})["ok"] is True
    assert client.request("health", {"probe": True, "timeoutMs": 2000})["ok"] is True


# --- status (§9.2) --------------------------------------------------------------------------------


def test_status_shape_for_admin(gw, client):
    res = client.request("status", {"includeChannelSummary": False})
    payload = res["payload"]
    assert set(payload) >= {"runtimeVersion", "heartbeat", "channelSummary", "queuedSystemEvents",
                            "tasks", "taskAudit", "sessions", "gateway", "pid", "processMemory"}
    assert payload["runtimeVersion"] == "2026.9.6"
    assert payload["heartbeat"] == {"defaultAgentId": "main", "agents": [
        {"agentId": "main", "enabled": False, "every": "disabled", "everyMs": None}]}
    assert payload["channelSummary"] == [] and payload["queuedSystemEvents"] == []
    assert payload["tasks"]["total"] == 0 and set(payload["tasks"]["byStatus"]) == {
        "queued", "running", "succeeded", "failed", "timed_out", "cancelled", "lost"}
    assert set(payload["tasks"]["byRuntime"]) == {"subagent", "acp", "cli", "cron"}
    assert set(payload["taskAudit"]["byCode"]) == {"stale_queued", "stale_running", "lost", "delivery_failed",
                                                    "missing_cleanup", "inconsistent_timestamps"}
    store = str(gw.state_dir / "agents" / "main" / "sessions.sqlite")
    sessions = payload["sessions"]
    assert sessions["paths"] == [store] and isinstance(sessions["count"], int)
    assert set(sessions) >= {"paths", "count", "defaults", "recent", "byAgent"}
    assert sessions["byAgent"][0]["agentId"] == "main" and sessions["byAgent"][0]["path"] == store
    gateway = payload["gateway"]
    assert set(gateway) == {"version", "uptimeMs", "bind", "port", "authMode", "configReload"}
    assert gateway["version"] == "0.1.0" and gateway["bind"] == "loopback"
    assert gateway["port"] == gw.port and gateway["authMode"] == "token"
    assert isinstance(gateway["uptimeMs"], int) and gateway["uptimeMs"] > 0
    assert gateway["configReload"]["mode"] == "hybrid"
    assert payload["pid"] == gw.proc.pid
    assert isinstance(payload["processMemory"]["rssBytes"], int) and payload["processMemory"]["rssBytes"] > 10 << 20
    if "eventLoop" in payload:
        loop = payload["eventLoop"]
        assert {"degraded", "degradedSinceMs", "reasons", "intervalMs"} <= set(loop)
        assert loop["intervalMs"] == 1000


def test_status_hides_pid_and_memory_from_non_admin(gw, ws_clients):
    for scopes in (["operator.read"], ["operator.write", "operator.approvals"]):
        payload = ws_clients(gw.url, scopes=scopes).request("status")["payload"]
        assert "pid" not in payload and "processMemory" not in payload, scopes
        assert payload["runtimeVersion"] == "2026.9.6" and "gateway" in payload
        assert payload["sessions"]["paths"]  # store paths stay for every caller


def test_status_channel_summary_default_true(client):
    payload = client.request("status")["payload"]
    assert isinstance(payload["channelSummary"], list)
    assert all(isinstance(line, str) for line in payload["channelSummary"])


# --- system-presence (§9.3) -----------------------------------------------------------------------


def test_system_presence_self_entry(gw, client):
    payload = client.request("system-presence")["payload"]
    assert isinstance(payload, list) and payload
    me = payload[0]
    assert me["reason"] == "self" and me["mode"] == "gateway"
    assert me["host"] == socket.gethostname() and me["version"] == "2026.9.6"
    assert UUID_RE.match(me["instanceId"])
    assert (gw.state_dir / "gateway.instance").read_text().strip() == me["instanceId"]
    assert isinstance(me["ts"], int)
    ip = f" ({me['ip']})" if "ip" in me else ""
    assert me["text"] == f"Gateway: {me['host']}{ip} · app 2026.9.6 · mode gateway · reason self"
    if "ip" in me:
        assert not me["ip"].startswith("127.")


def test_system_presence_client_entries(gw, ws_clients):
    instance = f"Inst-{uuid.uuid4()}"
    ui = ws_clients(gw.url, scopes=["operator.read"],
                    client={"id": "openclaw-control-ui", "version": "2026.9.6", "platform": "web",
                            "mode": "ui", "displayName": "My Browser", "instanceId": instance,
                            "deviceFamily": "Browser"})
    time.sleep(0.01)  # not a wait: the two entries need distinct millisecond `ts`
    later = ws_clients(gw.url, client={"id": "webchat", "version": "1.2.3", "platform": "web",
                                       "mode": "webchat"})
    payload = later.request("system-presence")["payload"]
    assert payload[0]["reason"] == "self"
    ts = [e["ts"] for e in payload[1:]]
    assert ts == sorted(ts, reverse=True)  # newest first after self
    mine = [e for e in payload if e.get("instanceId") == instance]
    assert len(mine) == 1
    entry = mine[0]
    assert entry["host"] == "My Browser" and entry["mode"] == "ui" and entry["reason"] == "connect"
    assert entry["roles"] == ["operator"] and entry["scopes"] == ["operator.read"]
    assert entry["version"] == "2026.9.6" and entry["platform"] == "web"
    assert entry["deviceFamily"] == "Browser"
    assert "ip" not in entry  # loopback
    assert entry["text"] == "Client: My Browser · app 2026.9.6 · mode ui · reason connect"
    webchat = [e for e in payload if e.get("host") == "webchat"]
    assert webchat and webchat[0]["text"] == "Client: webchat · app 1.2.3 · mode webchat · reason connect"
    # the same instance id, another case: one entry
    ws_clients(gw.url, client={"id": "openclaw-control-ui", "version": "2026.9.6", "platform": "web",
                               "mode": "ui", "instanceId": instance.upper()})
    payload = later.request("system-presence")["payload"]
    assert len([e for e in payload if e.get("instanceId", "").lower() == instance.lower()]) == 1
    assert ui.request("health")["ok"] is True


def test_system_presence_ignores_unknown_params(client):
    assert isinstance(client.request("system-presence", {"x": 1})["payload"], list)


# --- config.get (§10.2) -----------------------------------------------------------------------------


def test_config_get_redacts_every_secret(gw, ws_clients):
    client = ws_clients(gw.url, scopes=["operator.read"])
    client.send({"type": "req", "id": "cfg", "method": "config.get", "params": {}})
    frame = None
    while True:
        text = client.ws.recv(timeout=5)
        frame = json.loads(text)
        if frame.get("id") == "cfg":
            break
    for secret in (API_KEY, ENV_SECRET, TOKEN, "123456:tg-bot-token-value"):
        assert secret not in text, secret
    payload = frame["payload"]
    assert set(payload) == {"path", "exists", "raw", "parsed", "resolved", "config", "valid", "issues",
                            "warnings", "legacyIssues", "hash", "configRevisionHash", "appliedConfigHash"}
    assert payload["path"] == str(gw.config_path) and payload["exists"] is True
    assert payload["valid"] is True and payload["issues"] == [] and payload["legacyIssues"] == []
    assert payload["warnings"] == []
    assert isinstance(payload["raw"], str) and f'"apiKey": "{REDACTED}"' in payload["raw"]
    assert "${OPENCLAW_TEST_PROVIDER_KEY}" not in payload["raw"]  # the reference is redacted too
    for key in ("parsed", "resolved", "config"):
        doc = payload[key]
        assert doc["models"]["providers"]["x"]["apiKey"] == REDACTED, key
        assert doc["models"]["providers"]["x"]["baseUrl"] == "https://x.example", key
        assert doc["models"]["providers"]["y"]["apiKey"] == REDACTED, key
        assert doc["gateway"]["auth"]["token"] == REDACTED, key
        assert doc["channels"]["telegram"]["botToken"] == REDACTED, key
    assert payload["config"]["gateway"]["port"] == 18789  # defaults filled in
    assert payload["config"]["gateway"]["auth"]["rateLimit"]["maxAttempts"] == 10
    raw_bytes = gw.config_path.read_bytes()
    import base64
    import hashlib
    digest = base64.urlsafe_b64encode(hashlib.sha256(raw_bytes).digest()).rstrip(b"=").decode()
    assert payload["hash"] == f"sha256:v1:{digest}"
    assert payload["configRevisionHash"] == payload["appliedConfigHash"]
    assert payload["appliedConfigHash"] == client.hello["snapshot"]["appliedConfigHash"]


def test_config_get_with_no_file(gateway_factory, ws_clients):
    ngw = gateway_factory(None, args=["--token", TOKEN])
    payload = ws_clients(ngw.url).request("config.get")["payload"]
    assert payload["exists"] is False and payload["raw"] is None
    assert payload["parsed"] == {} and payload["resolved"] == {}
    import base64
    import hashlib
    empty = base64.urlsafe_b64encode(hashlib.sha256(b"").digest()).rstrip(b"=").decode()
    assert payload["hash"] == f"sha256:v1:{empty}"
    assert payload["config"]["gateway"]["port"] == 18789
    assert TOKEN not in json.dumps(payload)


def test_config_get_stays_fast_with_a_large_string(gateway_factory, ws_clients):
    """Redacting `raw` must not re-parse every literal (that cost seconds per 256 KiB)."""
    big = "".join(chr(0x61 + (i % 26)) for i in range(256 * 1024))
    lgw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}},
                           "agents": {"defaults": {"systemPrompt": big}}}, wait_ready=False)
    lgw.wait_ready(timeout=60)
    client = ws_clients(lgw.url)
    started = time.monotonic()
    for _ in range(2):
        payload = client.request("config.get", timeout=30)["payload"]
    assert payload["parsed"]["agents"]["defaults"]["systemPrompt"] == big
    assert (time.monotonic() - started) / 2 < 1.0
