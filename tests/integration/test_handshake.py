"""The WebSocket handshake (protocol §5, §2.3, §2.4, §19.1) against the real gateway process."""

from __future__ import annotations

import json
import re
import time
import uuid

import httpx
import pytest

from tests.conftest import TOKEN, connect_params, read_until_closed, wait_until

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
HASH_RE = re.compile(r"^sha256:v1:[A-Za-z0-9_-]{43}$")
ALLOWED_ORIGIN = "https://ui.example.test"
DEFAULT_SCOPES = ["operator.admin", "operator.read", "operator.write", "operator.approvals",
                  "operator.pairing"]
LOCKOUT_MESSAGE = "unauthorized: too many failed authentication attempts (retry later)"
LOCKOUT_DETAILS = {"code": "AUTH_RATE_LIMITED", "authReason": "rate_limited",
                   "recommendedNextStep": "wait_then_retry"}


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    """One gateway for every test here that needs no config of its own."""
    return module_gateway_factory({"gateway": {
        "auth": {"mode": "token", "token": TOKEN},
        "controlUi": {"allowedOrigins": [ALLOWED_ORIGIN]}}}, name="handshake")


def connect_req(params: dict, req_id: str = "c1") -> dict:
    return {"type": "req", "id": req_id, "method": "connect", "params": params}


def refused(client, params: dict, req_id: str = "c1") -> tuple[dict, int | None, str, list]:
    """Send `connect` and expect its error response followed by the server's close."""
    client.send(connect_req(params, req_id))
    frames, code, reason = read_until_closed(client)
    responses = [f for f in frames if f.get("type") == "res"]
    assert len(responses) == 1, frames
    res = responses[0]
    assert res["id"] == req_id and res["ok"] is False and "payload" not in res, res
    return res["error"], code, reason, frames


# --- connect.challenge and hello-ok -----------------------------------------------------------


def test_challenge_is_the_first_frame(gw, ws_clients):
    before = int(time.time() * 1000)
    client = ws_clients(gw.url, handshake=False)
    frame = client.challenge
    assert set(frame) == {"type", "event", "payload"}  # no seq on the challenge
    assert frame["type"] == "event" and frame["event"] == "connect.challenge"
    assert set(frame["payload"]) == {"nonce", "ts"}
    assert UUID_RE.match(frame["payload"]["nonce"])
    ts = frame["payload"]["ts"]
    assert isinstance(ts, int) and not isinstance(ts, bool)
    assert before - 1000 <= ts <= int(time.time() * 1000) + 1000
    other = ws_clients(gw.url, handshake=False)
    assert other.challenge["payload"]["nonce"] != frame["payload"]["nonce"]


def test_hello_ok_shape(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    res = client.request("connect", connect_params(), req_id="1:hello")
    assert res["id"] == "1:hello" and res["ok"] is True and "error" not in res
    hello = res["payload"]
    assert set(hello) == {"type", "protocol", "server", "features", "snapshot", "auth", "policy"}
    assert hello["type"] == "hello-ok" and hello["protocol"] == 4

    server = hello["server"]
    assert set(server) == {"version", "buildId", "bootId", "connId"}
    assert server["version"] == "2026.9.6"
    assert server["buildId"] == "openclaw-py 0.1.0"
    assert UUID_RE.match(server["bootId"]) and UUID_RE.match(server["connId"])

    assert set(hello["features"]) == {"methods", "events"}
    assert hello["features"]["methods"] == ["agent", "agent.wait", "channels.logout",
                                            "channels.start", "channels.status", "channels.stop",
                                            "chat.abort", "chat.history",
                                            "chat.send", "config.apply", "config.get",
                                            "config.patch", "config.schema", "config.set",
                                            "exec.approval.list", "exec.approval.resolve",
                                            "gateway.restart", "gateway.restart.request", "health",
                                            "models.list", "pairing.approve", "pairing.list",
                                            "send", "sessions.compact", "sessions.delete",
                                            "sessions.list", "sessions.patch", "sessions.preview",
                                            "sessions.reset", "status", "system-presence",
                                            "tools.invoke"]
    assert hello["features"]["events"] == ["connect.challenge", "tick", "presence", "health", "shutdown",
                                           "chat", "agent", "sessions.changed",
                                           "exec.approval.requested", "exec.approval.resolved"]

    snap = hello["snapshot"]
    assert {"presence", "health", "stateVersion", "uptimeMs"} <= set(snap)
    assert snap["presence"][0]["reason"] == "self" and snap["presence"][0]["mode"] == "gateway"
    assert isinstance(snap["presence"][0]["ts"], int)
    health = snap["health"]
    assert health["ok"] is True
    assert {"ok", "ts", "durationMs", "channels", "channelOrder", "channelLabels", "heartbeatSeconds",
            "defaultAgentId", "agents", "sessions", "configReload"} <= set(health)
    assert set(snap["stateVersion"]) == {"presence", "health"}
    assert all(isinstance(v, int) and v >= 1 for v in snap["stateVersion"].values())
    assert isinstance(snap["uptimeMs"], int) and snap["uptimeMs"] >= 0
    assert snap["configPath"] == str(gw.config_path)
    assert snap["stateDir"] == str(gw.state_dir)
    assert snap["sessionDefaults"] == {"defaultAgentId": "main", "mainKey": "main",
                                       "mainSessionKey": "agent:main:main"}
    assert snap["authMode"] == "token"
    assert HASH_RE.match(snap["appliedConfigHash"])

    assert hello["auth"] == {"method": "token", "role": "operator", "scopes": DEFAULT_SCOPES}
    assert hello["policy"] == {"maxPayload": 26214400, "maxBufferedBytes": 52428800,
                               "tickIntervalMs": 30000,
                               "attachments": {"maxBytes": 20971520, "maxImageBytes": 6291456}}


def test_conn_ids_differ_and_boot_id_is_shared(gw, ws_clients):
    a, b = ws_clients(gw.url), ws_clients(gw.url)
    assert a.hello["server"]["connId"] != b.hello["server"]["connId"]
    assert a.hello["server"]["bootId"] == b.hello["server"]["bootId"]


def test_features_methods_are_exactly_what_answers(gw, ws_clients):
    client = ws_clients(gw.url)
    for name in client.hello["features"]["methods"]:
        # A stray field makes a mutating method (gateway.restart) refuse its params instead of
        # restarting this module's gateway; read methods ignore it. Either way it answers.
        res = client.request(name, {"unexpectedField": True})
        assert res["ok"] is True or res["error"]["message"] != f"unknown method: {name}", res
    assert client.request("logs.tail")["error"]["message"] == "unknown method: logs.tail"


# --- roles and scopes (§5.9) -------------------------------------------------------------------


def test_requested_scopes_deduplicated_in_order_unknown_dropped(gw, ws_clients):
    client = ws_clients(gw.url, scopes=["operator.write", "bogus.scope", "operator.read",
                                         "operator.write", "operator.talk"])
    assert client.hello["auth"]["scopes"] == ["operator.write", "operator.read", "operator.talk"]


def test_empty_scope_list_is_kept_empty(gw, ws_clients):
    client = ws_clients(gw.url, scopes=[])
    assert client.hello["auth"]["scopes"] == []
    res = client.request("health")
    assert res["error"]["code"] == "FORBIDDEN"


def test_node_role_gets_no_scopes_and_operator_methods_are_forbidden(gw, ws_clients):
    client = ws_clients(gw.url, role="node", scopes=["operator.admin"],
                        client={"id": "node-host", "version": "1.0.0", "platform": "linux",
                                "mode": "node"})
    assert client.hello["auth"] == {"method": "token", "role": "node", "scopes": []}
    res = client.request("health", req_id="n1")
    assert res == {"type": "res", "id": "n1", "ok": False,
                   "error": {"code": "FORBIDDEN", "message": "unauthorized role: node"}}
    # unknown methods are still unknown, whatever the role (§6.3 step 2 before step 3)
    res = client.request("nosuch")
    assert res["error"] == {"code": "INVALID_REQUEST", "message": "unknown method: nosuch"}


def test_invalid_role(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    err, code, reason, _ = refused(client, connect_params(role="x"))
    assert err == {"code": "INVALID_REQUEST", "message": "invalid role: x"}
    assert (code, reason) == (1008, "invalid role: x")


# --- bad first frames (§5.4 steps 1-3) ---------------------------------------------------------


def test_non_json_first_frame_closes_without_response(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    client.send("this is not json {")
    frames, code, reason = read_until_closed(client)
    assert frames == []
    assert (code, reason) == (1008, "invalid handshake: first request must be connect")


def test_first_request_not_connect(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    client.send({"type": "req", "id": "h-1", "method": "health"})
    frames, code, reason = read_until_closed(client)
    assert frames == [{"type": "res", "id": "h-1", "ok": False, "error": {
        "code": "INVALID_REQUEST", "message": "invalid handshake: first request must be connect"}}]
    assert (code, reason) == (1008, "invalid handshake: first request must be connect")


def test_first_frame_an_event_with_id(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    client.send({"type": "event", "id": "e-1", "event": "connect"})
    frames, code, reason = read_until_closed(client)
    assert [f["error"]["message"] for f in frames] == ["invalid handshake: first request must be connect"]
    assert frames[0]["id"] == "e-1"
    assert code == 1008


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.pop("client"), "invalid connect params: client: required"),
    (lambda p: p["client"].pop("id"), "invalid connect params: client.id: required"),
    (lambda p: p.update(minProtocol="4"), "invalid connect params: minProtocol: expected int, got str"),
    (lambda p: p.update(minProtocol=0), "invalid connect params: minProtocol: expected int >= 1"),
    (lambda p: p.update(minProtocol=5, maxProtocol=4),
     "invalid connect params: minProtocol: must not exceed maxProtocol"),
    (lambda p: p.update(scopes="operator.read"), "invalid connect params: scopes: expected array, got str"),
    (lambda p: p["client"].update(mode="  "), "invalid connect params: client.mode: must not be empty"),
])
def test_invalid_connect_params(gw, ws_clients, mutate, message):
    params = connect_params()
    mutate(params)
    client = ws_clients(gw.url, handshake=False)
    err, code, reason, _ = refused(client, params)
    assert err == {"code": "INVALID_REQUEST", "message": message}
    assert (code, reason) == (1008, message)


def test_connect_params_not_an_object(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    client.send({"type": "req", "id": "c1", "method": "connect", "params": [1, 2]})
    frames, code, reason = read_until_closed(client)
    message = "invalid connect params: params must be an object"
    assert frames == [{"type": "res", "id": "c1", "ok": False,
                       "error": {"code": "INVALID_REQUEST", "message": message}}]
    assert (code, reason) == (1008, message)


def test_unknown_connect_fields_are_ignored(gw, ws_clients):
    params = connect_params(somethingNew={"x": 1}, locale="en-US", caps=["tool-events"])
    params["client"]["futureField"] = True
    client = ws_clients(gw.url, handshake=False)
    res = client.request("connect", params)
    assert res["ok"] is True, res


def test_frame_over_64k_before_hello_closes_1009(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    big = json.dumps(connect_req(connect_params(padding="x" * 70000)))
    assert len(big.encode()) > 65536
    client.send(big)
    frames, code, reason = read_until_closed(client)
    assert frames == []
    assert (code, reason) == (1009, "payload too large")


def test_frame_just_under_64k_before_hello_is_read(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    params = connect_params(padding="")
    size = len(json.dumps(connect_req(params)).encode())
    params["padding"] = "x" * (65536 - size)
    frame = json.dumps(connect_req(params))
    assert len(frame.encode()) == 65536
    client.send(frame)
    assert client.response("c1")["ok"] is True


def test_binary_frame_closes_1003(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    client.send(json.dumps(connect_req(connect_params())).encode())
    frames, code, reason = read_until_closed(client)
    assert frames == []
    assert (code, reason) == (1003, "binary frames not supported")


def test_binary_frame_after_hello_closes_1003(gw, ws_clients):
    client = ws_clients(gw.url)
    client.send(b"\x00\x01")
    _, code, reason = read_until_closed(client)
    assert (code, reason) == (1003, "binary frames not supported")


def test_close_reason_is_cut_to_123_bytes(gw, ws_clients):
    role = "é" * 100  # 200 bytes of UTF-8
    client = ws_clients(gw.url, handshake=False)
    err, code, reason, _ = refused(client, connect_params(role=role))
    assert err["message"] == f"invalid role: {role}"  # the error object keeps the whole text
    assert code == 1008
    assert len(reason.encode()) <= 123 and f"invalid role: {role}".startswith(reason)
    assert len(reason.encode()) >= 122  # cut at a character boundary, not shorter


def test_no_compression_and_pings_are_answered(gw, ws_clients):
    client = ws_clients(gw.url)  # the client offers permessage-deflate
    assert client.ws.response.headers.get("Sec-WebSocket-Extensions") is None
    assert client.ws.response.headers.get("Sec-WebSocket-Protocol") is None
    assert client.ws.ping(b"p").wait(5)


# --- protocol negotiation (§5.5) -----------------------------------------------------------------


def test_protocol_mismatch(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    err, code, reason, _ = refused(client, connect_params(minProtocol=5, maxProtocol=6))
    assert err == {"code": "INVALID_REQUEST", "message": "protocol mismatch",
                   "details": {"expectedProtocol": 4, "minProtocol": 5, "maxProtocol": 6}}
    assert (code, reason) == (1002, "protocol mismatch")


def test_operator_on_protocol_3_is_a_mismatch(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    err, code, _, _ = refused(client, connect_params(minProtocol=3, maxProtocol=3))
    assert err["details"] == {"expectedProtocol": 4, "minProtocol": 3, "maxProtocol": 3}
    assert code == 1002


def test_probe_on_protocol_3(gw, ws_clients):
    client = ws_clients(gw.url, minProtocol=3, maxProtocol=3,
                        client={"id": "probe", "version": "1", "platform": "linux", "mode": "probe"})
    assert client.hello["protocol"] == 3
    assert client.request("health")["ok"] is True


def test_node_on_protocol_3(gw, ws_clients):
    client = ws_clients(gw.url, minProtocol=3, maxProtocol=3, role="node",
                        client={"id": "node-host", "version": "1", "platform": "linux", "mode": "node"})
    assert client.hello["protocol"] == 3 and client.hello["auth"]["role"] == "node"


def test_range_including_4_negotiates_4(gw, ws_clients):
    client = ws_clients(gw.url, minProtocol=3, maxProtocol=9,
                        client={"id": "probe", "version": "1", "platform": "linux", "mode": "probe"})
    assert client.hello["protocol"] == 4


# --- shared-secret auth (§5.6) ---------------------------------------------------------------------


def _auth_details(code: str) -> dict:
    return {"code": code, "canRetryWithDeviceToken": False, "recommendedNextStep": "update_auth_credentials"}


def test_token_missing(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    err, code, reason, _ = refused(client, connect_params(token=None))
    assert err == {"code": "INVALID_REQUEST", "message": "unauthorized: gateway token missing",
                   "details": _auth_details("AUTH_TOKEN_MISSING")}
    assert (code, reason) == (1008, "unauthorized: gateway token missing")


def test_token_mismatch(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    err, code, reason, _ = refused(client, connect_params(token="wrong-token"))
    assert err == {"code": "INVALID_REQUEST", "message": "unauthorized: gateway token mismatch",
                   "details": _auth_details("AUTH_TOKEN_MISMATCH")}
    assert (code, reason) == (1008, "unauthorized: gateway token mismatch")


def test_password_in_token_mode_is_token_missing(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    err, _, _, _ = refused(client, connect_params(token=None, auth={"password": TOKEN}))
    assert err["details"]["code"] == "AUTH_TOKEN_MISSING"


def test_loopback_failures_are_exempt_by_default(gw, ws_clients):
    for _ in range(12):
        client = ws_clients(gw.url, handshake=False)
        err, _, _, _ = refused(client, connect_params(token="wrong"))
        assert err["details"]["code"] == "AUTH_TOKEN_MISMATCH"
    assert ws_clients(gw.url).hello["type"] == "hello-ok"


def test_password_mode(gateway_factory, ws_clients):
    secret = "pw-correct-horse"
    pgw = gateway_factory({"gateway": {"auth": {"mode": "password", "password": secret}}})
    ok = ws_clients(pgw.url, token=None, auth={"password": secret})
    assert ok.hello["auth"]["method"] == "password" and ok.hello["snapshot"]["authMode"] == "password"

    cases = [({}, "AUTH_PASSWORD_MISSING", "unauthorized: gateway password missing"),
             ({"token": secret}, "AUTH_PASSWORD_MISSING", "unauthorized: gateway password missing"),
             ({"password": "nope"}, "AUTH_PASSWORD_MISMATCH", "unauthorized: gateway password mismatch")]
    for auth, detail, message in cases:
        client = ws_clients(pgw.url, handshake=False)
        err, code, reason, _ = refused(client, connect_params(token=None, auth=auth))
        assert err == {"code": "INVALID_REQUEST", "message": message, "details": _auth_details(detail)}
        assert (code, reason) == (1008, message)


def test_password_not_configured(gateway_factory, ws_clients):
    pgw = gateway_factory({"gateway": {"auth": {"mode": "password"}}})
    client = ws_clients(pgw.url, handshake=False)
    err, code, reason, _ = refused(client, connect_params(token=None, auth={"password": "x"}))
    assert err == {"code": "INVALID_REQUEST", "message": "unauthorized: gateway password not configured",
                   "details": {"code": "AUTH_PASSWORD_NOT_CONFIGURED",
                               "recommendedNextStep": "update_auth_configuration"}}
    assert (code, reason) == (1008, "unauthorized: gateway password not configured")


# --- failed-auth rate limit (§19.1, §5.7) -----------------------------------------------------------


def _fail_n(url: str, ws_clients, n: int, headers: dict | None = None, **params) -> None:
    for i in range(n):
        client = ws_clients(url, handshake=False, headers=headers)
        err, code, _, _ = refused(client, connect_params(**params))
        assert err["details"]["code"] == "AUTH_TOKEN_MISMATCH", (i, err)
        assert code == 1008


def _assert_locked(err: dict, code: int | None, reason: str) -> None:
    assert set(err) == {"code", "message", "retryable", "retryAfterMs", "details"}
    assert err["code"] == "INVALID_REQUEST" and err["message"] == LOCKOUT_MESSAGE
    assert err["retryable"] is True
    assert isinstance(err["retryAfterMs"], int) and 290_000 <= err["retryAfterMs"] <= 300_000
    assert err["details"] == LOCKOUT_DETAILS
    assert (code, reason) == (1008, LOCKOUT_MESSAGE)


def test_lockout_after_ten_wrong_tokens(gateway_factory, ws_clients):
    lgw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN,
                                                "rateLimit": {"exemptLoopback": False}}}})
    # missing tokens do not count, and a success clears the failures so far
    for _ in range(12):
        err, _, _, _ = refused(ws_clients(lgw.url, handshake=False), connect_params(token=None))
        assert err["details"]["code"] == "AUTH_TOKEN_MISSING"
    _fail_n(lgw.url, ws_clients, 9, token="wrong")
    assert ws_clients(lgw.url).hello["type"] == "hello-ok"
    _fail_n(lgw.url, ws_clients, 10, token="wrong")
    # the 11th attempt is locked out without looking at the (right) token
    client = ws_clients(lgw.url, handshake=False)
    err, code, reason, _ = refused(client, connect_params())
    _assert_locked(err, code, reason)
    # the HTTP bearer is another credential class: not locked
    res = httpx.post(f"{lgw.http}/api/v1/admin/rpc", json={"method": "health"},
                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 200


def test_forwarded_request_from_loopback_is_not_exempt(gw, ws_clients):
    # a unique gateway-side key is not needed: the proxied attempts all key on 127.0.0.1
    headers = {"X-Forwarded-For": "203.0.113.7"}
    _fail_n(gw.url, ws_clients, 10, headers=headers, token="wrong")
    client = ws_clients(gw.url, handshake=False, headers=headers)
    err, code, reason, _ = refused(client, connect_params())
    _assert_locked(err, code, reason)
    # a direct loopback connection is still exempt and unaffected
    assert ws_clients(gw.url).hello["type"] == "hello-ok"


# --- device identity (§5.8) ----------------------------------------------------------------------


def test_device_nonce_mismatch(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    device = {"id": "dev-1", "publicKey": "pk", "signature": "sig", "signedAt": 1, "nonce": str(uuid.uuid4())}
    err, code, reason, _ = refused(client, connect_params(device=device))
    assert err == {"code": "INVALID_REQUEST", "message": "device nonce mismatch",
                   "details": {"code": "DEVICE_AUTH_NONCE_MISMATCH", "reason": "device-nonce-mismatch"}}
    assert (code, reason) == (1008, "device nonce mismatch")


def test_device_with_the_challenge_nonce_is_accepted(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    device_id = f"dev-{uuid.uuid4()}"
    device = {"id": device_id, "publicKey": "pk", "signature": "sig", "signedAt": 1,
              "nonce": client.challenge["payload"]["nonce"]}
    res = client.request("connect", connect_params(device=device, scopes=["operator.read"]))
    assert res["ok"] is True and res["payload"]["auth"]["scopes"] == ["operator.read"]
    presence = client.request("system-presence")["payload"]
    assert any(e.get("deviceId") == device_id for e in presence), presence


# --- browser origins (§5.6) ------------------------------------------------------------------------


def test_browser_origin_not_allowed(gw, ws_clients):
    origin = "http://evil.example"
    client = ws_clients(gw.url, handshake=False, headers={"Origin": origin})
    err, code, reason, _ = refused(client, connect_params())
    assert err == {"code": "INVALID_REQUEST", "message": "origin not allowed",
                   "details": {"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED", "origin": origin}}
    assert (code, reason) == (1008, "origin not allowed")


def test_browser_origin_of_the_host_is_allowed(gw, ws_clients):
    client = ws_clients(gw.url, headers={"Origin": f"http://127.0.0.1:{gw.port}"})
    assert client.hello["type"] == "hello-ok"


def test_browser_origin_listed_in_allowed_origins(gw, ws_clients):
    client = ws_clients(gw.url, headers={"Origin": ALLOWED_ORIGIN})
    assert client.hello["type"] == "hello-ok"


def test_browser_origin_other_port_is_not_the_host(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False, headers={"Origin": f"http://127.0.0.1:{gw.port + 1}"})
    err, code, _, _ = refused(client, connect_params())
    assert err["details"]["code"] == "CONTROL_UI_ORIGIN_NOT_ALLOWED" and code == 1008


# --- after hello-ok ----------------------------------------------------------------------------------


def test_second_connect_is_refused_and_socket_stays_usable(gw, ws_clients):
    client = ws_clients(gw.url)
    res = client.request("connect", connect_params(), req_id="again")
    assert res == {"type": "res", "id": "again", "ok": False, "error": {
        "code": "INVALID_REQUEST", "message": "connect is only valid as the first request"}}
    assert client.request("health")["ok"] is True


# --- startup barrier (§5.4 step 4, §21.2) --------------------------------------------------------------


def test_connect_before_startup_finished(gateway_factory, ws_clients):
    sgw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}},
                          env={"OPENCLAW_TEST_STARTUP_DELAY_MS": "3000"}, wait_ready=False)

    def live() -> bool:
        try:
            return httpx.get(f"{sgw.http}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(live, 10, what="/health 200")
    ready = httpx.get(f"{sgw.http}/readyz")
    assert ready.status_code == 503 and ready.content == b'{"ok":false,"status":"starting"}'
    assert ready.headers["content-type"] == "application/json"

    client = ws_clients(sgw.url, handshake=False)
    err, code, reason, _ = refused(client, connect_params())
    assert err["code"] == "UNAVAILABLE" and err["retryable"] is True
    assert isinstance(err["retryAfterMs"], int) and 0 <= err["retryAfterMs"] <= 5000
    assert err["details"] == {"reason": "startup-sidecars"}
    assert (code, reason) == (1013, "gateway starting")

    sgw.wait_ready()
    assert ws_clients(sgw.url).hello["type"] == "hello-ok"


# --- handshake deadline (§2.3) ------------------------------------------------------------------------


def test_handshake_timeout(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    started = time.monotonic()
    frames, code, reason = read_until_closed(client, timeout=20)
    elapsed = time.monotonic() - started
    assert frames == []
    assert (code, reason) == (1008, "handshake timeout")
    assert 14.0 <= elapsed <= 17.0, elapsed
