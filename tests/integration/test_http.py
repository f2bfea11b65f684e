"""HTTP on the gateway port (protocol §21.1, §21.1a, §21.2, §19.1), against the real gateway
process with a real HTTP client."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import TOKEN

RPC = "/api/v1/admin/rpc"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_PAYLOAD = 26214400


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return module_gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}}, name="http")


@pytest.fixture(scope="module")
def http(gw):
    with httpx.Client(base_url=gw.http, timeout=30) as client:
        yield client


def rpc(http, body, headers=None, **kw) -> httpx.Response:
    return http.post(RPC, content=json.dumps(body), headers={"Content-Type": "application/json",
                                                              **(AUTH if headers is None else headers)}, **kw)


# --- health probes (§21.2) ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/healthz"])
def test_liveness(http, path):
    res = http.get(path)
    assert res.status_code == 200
    assert res.content == b'{"ok":true,"status":"live"}'
    assert res.headers["content-type"] == "application/json"
    head = http.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "application/json"


@pytest.mark.parametrize("path", ["/ready", "/readyz"])
def test_readiness(http, path):
    res = http.get(path)
    assert res.status_code == 200
    assert res.content == b'{"ok":true,"status":"ready"}'
    assert res.headers["content-type"] == "application/json"
    head = http.head(path)
    assert head.status_code == 200 and head.content == b""


def test_probes_need_no_auth_and_ignore_bad_credentials(http):
    res = http.get("/healthz", headers={"Authorization": "Bearer nonsense"})
    assert res.status_code == 200 and res.json() == {"ok": True, "status": "live"}


# --- routing and 404 (§21.1, §2.1) ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/v1/models", "/v1/chat/completions", "/api/v1/admin",
                                  "/healthzz", "/index.html"])
def test_unknown_paths_are_404_not_found(http, path):
    res = http.get(path, headers=AUTH)
    assert res.status_code == 404
    assert res.headers["content-type"].startswith("text/plain")
    assert res.text == "Not Found"


def test_v1_post_is_404(http):
    res = http.post("/v1/chat/completions", json={"model": "openclaw"}, headers=AUTH)
    assert res.status_code == 404 and res.text == "Not Found"


def test_root_without_upgrade_is_404(http):
    res = http.get("/")
    assert res.status_code == 404
    assert res.headers["content-type"].startswith("text/plain") and res.text == "Not Found"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_on_root_are_404(http, method):
    res = http.request(method, "/", headers=AUTH)
    assert res.status_code == 404
    assert res.headers["content-type"].startswith("text/plain") and res.text == "Not Found"


def test_head_on_unknown_path_and_root_is_404_without_body(http):
    for path in ("/", "/nope"):
        res = http.head(path)
        assert res.status_code == 404 and res.content == b""


def test_websocket_upgrade_on_another_path_is_404(gw):
    with pytest.raises(InvalidStatus) as info:
        connect(f"{gw.url}/ws", open_timeout=5)
    assert info.value.response.status_code == 404


def test_websocket_upgrade_on_root_with_query_is_accepted(gw):
    with connect(f"{gw.url}/?client=x", open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["event"] == "connect.challenge"


# --- HTTP RPC (§21.1a) ----------------------------------------------------------------------------


def test_rpc_without_bearer_is_401(http):
    res = rpc(http, {"method": "health"}, headers={})
    assert res.status_code == 401
    assert res.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("value", ["Bearer wrong-token", f"Basic {TOKEN}", "Bearer", f"Token {TOKEN}"])
def test_rpc_with_a_wrong_bearer_is_401(http, value):
    res = rpc(http, {"method": "health"}, headers={"Authorization": value})
    assert res.status_code == 401
    assert res.headers["www-authenticate"] == "Bearer"


def test_rpc_health(http):
    res = rpc(http, {"id": "h1", "method": "health"})
    assert res.status_code == 200 and res.headers["content-type"] == "application/json"
    body = res.json()
    assert set(body) == {"id", "ok", "payload"}
    assert body["id"] == "h1" and body["ok"] is True and body["payload"]["ok"] is True


def test_rpc_bearer_scheme_is_case_insensitive(http):
    res = rpc(http, {"id": "h2", "method": "health"}, headers={"Authorization": f"bearer {TOKEN}"})
    assert res.status_code == 200 and res.json()["ok"] is True


def test_rpc_with_params_and_full_operator_scopes(http, gw):
    res = rpc(http, {"id": "s1", "method": "status", "params": {"includeChannelSummary": False}})
    payload = res.json()["payload"]
    assert payload["runtimeVersion"] == "2026.9.6" and payload["channelSummary"] == []
    assert payload["pid"] == gw.proc.pid  # a valid bearer acts with the admin scope


def test_rpc_system_presence_payload_is_an_array(http):
    body = rpc(http, {"id": "p", "method": "system-presence"}).json()
    assert body["ok"] is True and body["payload"][0]["reason"] == "self"


def test_rpc_unknown_method(http):
    res = rpc(http, {"id": "u1", "method": "nosuch"})
    assert res.status_code == 200
    assert res.json() == {"id": "u1", "ok": False,
                          "error": {"code": "INVALID_REQUEST", "message": "unknown method: nosuch"}}


def test_rpc_invalid_params(http):
    res = rpc(http, {"id": "v", "method": "health", "params": 7})
    assert res.status_code == 200
    assert res.json()["error"] == {"code": "INVALID_REQUEST",
                                   "message": "invalid health params: params must be an object"}
    res = rpc(http, {"id": "v", "method": "health", "params": {"timeoutMs": "x"}})
    assert res.json()["error"]["message"] == "invalid health params: timeoutMs: expected int, got str"


def test_rpc_config_get_is_redacted(http):
    body = rpc(http, {"id": "c", "method": "config.get"}).json()
    assert body["ok"] is True
    assert body["payload"]["parsed"]["gateway"]["auth"]["token"] == "__OPENCLAW_REDACTED__"
    assert TOKEN not in json.dumps(body)


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_rpc_wrong_content_type_is_415(http, ctype):
    headers = dict(AUTH)
    if ctype:
        headers["Content-Type"] = ctype
    res = http.post(RPC, content=b'{"method":"health"}', headers=headers)
    assert res.status_code == 415
    assert res.json()["ok"] is False and res.json()["error"]["code"] == "INVALID_REQUEST"


def test_rpc_content_type_with_charset_is_accepted(http):
    res = http.post(RPC, content=b'{"method":"health"}',
                    headers={**AUTH, "Content-Type": "application/json; charset=utf-8"})
    assert res.status_code == 200 and res.json()["ok"] is True


@pytest.mark.parametrize("body, problem", [
    (b"not json", "not JSON"),
    (b"", "not JSON"),
    (b"[1,2]", "expected object, got array"),
    (b'"health"', "expected object, got str"),
    (b'{"id":"x"}', "method: required"),
    (b'{"method":5}', "method: expected str, got int"),
    (b'{"method":""}', "method: expected str of length >= 1"),
])
def test_rpc_bad_body_is_400(http, body, problem):
    res = http.post(RPC, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert res.status_code == 400 and res.headers["content-type"] == "application/json"
    assert res.json() == {"id": None, "ok": False,
                          "error": {"code": "INVALID_REQUEST", "message": f"invalid request body: {problem}"}}


def test_rpc_body_over_max_payload_is_413(http):
    body = b'{"method":"health","params":{"pad":"' + b"x" * MAX_PAYLOAD + b'"}}'
    res = http.post(RPC, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert res.status_code == 413
    assert res.json()["ok"] is False and res.json()["error"]["code"] == "INVALID_REQUEST"


def test_rpc_body_far_over_max_payload_is_413(http):
    body = b'{"method":"health","params":{"pad":"' + b"x" * (30 << 20) + b'"}}'
    res = http.post(RPC, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert res.status_code == 413


def test_rpc_body_at_max_payload_is_accepted(http):
    head, tail = b'{"method":"health","params":{"pad":"', b'"}}'
    body = head + b"x" * (MAX_PAYLOAD - len(head) - len(tail)) + tail
    assert len(body) == MAX_PAYLOAD
    res = http.post(RPC, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert res.status_code == 200 and res.json()["ok"] is True


def test_rpc_chunked_body_over_max_payload_is_413(http):
    def chunks():
        yield b'{"method":"health","params":{"pad":"'
        for _ in range(27):
            yield b"x" * (1 << 20)
        yield b'"}}'

    res = http.post(RPC, content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert res.status_code == 413


def test_rpc_keeps_the_connection_usable(http):
    for i in range(5):
        assert rpc(http, {"id": str(i), "method": "health"}).json()["id"] == str(i)


def test_rpc_get_is_not_allowed(http):
    res = http.get(RPC, headers=AUTH)
    assert res.status_code == 405


def test_rpc_disabled_is_404(gateway_factory):
    dgw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN},
                                       "http": {"endpoints": {"rpc": {"enabled": False}}}}})
    res = httpx.post(f"{dgw.http}{RPC}", json={"method": "health"}, headers=AUTH)
    assert res.status_code == 404
    assert res.headers["content-type"].startswith("text/plain") and res.text == "Not Found"
    assert httpx.get(f"{dgw.http}/healthz").status_code == 200


def test_rpc_in_password_mode_uses_the_password(gateway_factory):
    pgw = gateway_factory({"gateway": {"auth": {"mode": "password", "password": "pw-1234"}}})
    ok = httpx.post(f"{pgw.http}{RPC}", json={"method": "health"}, headers={"Authorization": "Bearer pw-1234"})
    assert ok.status_code == 200 and ok.json()["ok"] is True
    bad = httpx.post(f"{pgw.http}{RPC}", json={"method": "health"}, headers=AUTH)
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"


def test_rpc_in_mode_none_needs_no_bearer(gateway_factory):
    ngw = gateway_factory({"gateway": {"auth": {"mode": "none"}}})
    res = httpx.post(f"{ngw.http}{RPC}", json={"id": "n", "method": "health"})
    assert res.status_code == 200 and res.json()["ok"] is True


def test_wrong_bearers_are_rate_limited(gateway_factory):
    lgw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN,
                                                "rateLimit": {"exemptLoopback": False}}}})
    url = f"{lgw.http}{RPC}"
    with httpx.Client(timeout=10) as client:
        for _ in range(5):  # a missing bearer is not a wrong secret: it does not count
            assert client.post(url, json={"method": "health"}).status_code == 401
        for i in range(10):
            res = client.post(url, json={"method": "health"}, headers={"Authorization": f"Bearer wrong{i}"})
            assert res.status_code == 401, (i, res.status_code)
        locked = client.post(url, json={"method": "health"}, headers=AUTH)
        assert locked.status_code == 429
        retry_after = int(locked.headers["retry-after"])
        assert 290 <= retry_after <= 300
        assert locked.json() == {"ok": False, "error": {
            "code": "INVALID_REQUEST",
            "message": "unauthorized: too many failed authentication attempts (retry later)",
            "retryable": True, "retryAfterMs": locked.json()["error"]["retryAfterMs"],
            "details": {"code": "AUTH_RATE_LIMITED", "authReason": "rate_limited",
                        "recommendedNextStep": "wait_then_retry"}}}
        # the probes stay open
        assert client.get(f"{lgw.http}/healthz").status_code == 200


def test_forwarded_http_requests_are_not_loopback_exempt(gateway_factory):
    fgw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}})
    url = f"{fgw.http}{RPC}"
    fwd = {"X-Real-IP": "198.51.100.4"}
    with httpx.Client(timeout=10) as client:
        for _ in range(10):
            assert client.post(url, json={"method": "health"},
                               headers={**fwd, "Authorization": "Bearer nope"}).status_code == 401
        assert client.post(url, json={"method": "health"}, headers={**fwd, **AUTH}).status_code == 429
        # a direct loopback request is exempt
        assert client.post(url, json={"method": "health"}, headers=AUTH).status_code == 200


def test_http_and_websocket_share_the_port(gw, http):
    with connect(gw.url, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["event"] == "connect.challenge"
        assert http.get("/healthz").status_code == 200


def test_raw_http_10_request_gets_404(gw):
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(b"GET /nothing HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 404") and data.endswith(b"Not Found")
