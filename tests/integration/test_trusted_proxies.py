"""`gateway.trustedProxies` (issue 11, defect 3): behind a reverse proxy the failed-auth
lockout keys on the forwarded client address, never on the proxy's own; forwarded headers
from a peer that is not a trusted proxy are ignored (the socket address keys the lockout)."""

from __future__ import annotations

import json

import httpx

from tests.conftest import TOKEN, connect_params, read_until_closed

RPC = "/api/v1/admin/rpc"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOCKED = "AUTH_RATE_LIMITED"


def _config(trusted: list[str] | None) -> dict:
    gateway: dict = {"auth": {"mode": "token", "token": TOKEN}}
    if trusted is not None:
        gateway["trustedProxies"] = trusted
    return {"gateway": gateway}


def _connect(url: str, ws_clients, xff: str, token: str) -> dict:
    """One connect through the 'proxy' (the test, on 127.0.0.1): the response frame."""
    client = ws_clients(url, handshake=False, headers={"X-Forwarded-For": xff})
    client.send({"type": "req", "id": "c1", "method": "connect", "params": connect_params(token=token)})
    res = client.response("c1")
    if not res["ok"]:
        read_until_closed(client)
    return res


def _fail_ten(url: str, ws_clients, xff: str) -> None:
    for i in range(10):
        res = _connect(url, ws_clients, xff, "wrong")
        assert res["error"]["details"]["code"] == "AUTH_TOKEN_MISMATCH", (i, res)


def test_ws_lockout_keys_on_the_forwarded_client(gateway_factory, ws_clients):
    gw = gateway_factory(_config(["127.0.0.1"]))
    _fail_ten(gw.url, ws_clients, "203.0.113.5")
    locked = _connect(gw.url, ws_clients, "203.0.113.5", TOKEN)
    assert locked["error"]["details"]["code"] == LOCKED, locked
    # another client behind the same proxy, with the right token, is not locked out
    other = _connect(gw.url, ws_clients, "203.0.113.6", TOKEN)
    assert other["ok"] is True, other
    # a chain: the right-most address that is not a trusted proxy is the client; what the
    # client itself put on the left cannot move it out of its lockout
    chained = _connect(gw.url, ws_clients, "198.51.100.1, 203.0.113.5, 127.0.0.1", TOKEN)
    assert chained["error"]["details"]["code"] == LOCKED, chained
    spoof = _connect(gw.url, ws_clients, "203.0.113.6, 203.0.113.5", TOKEN)
    assert spoof["error"]["details"]["code"] == LOCKED, spoof


def test_ws_forwarded_header_from_an_untrusted_peer_is_ignored(gateway_factory, ws_clients):
    gw = gateway_factory(_config(None))
    _fail_ten(gw.url, ws_clients, "203.0.113.5")
    # the socket address (127.0.0.1) is locked: a new forwarded address does not escape it
    res = _connect(gw.url, ws_clients, "203.0.113.6", TOKEN)
    assert res["error"]["details"]["code"] == LOCKED, res


def test_presence_shows_the_forwarded_client(gateway_factory, ws_clients):
    gw = gateway_factory(_config(["127.0.0.0/8"]))
    client = ws_clients(gw.url, headers={"X-Forwarded-For": "203.0.113.9"})
    entries = client.request("system-presence")["payload"]
    assert any(e.get("ip") == "203.0.113.9" for e in entries), entries


def test_http_lockout_keys_on_the_forwarded_client(gateway_factory):
    gw = gateway_factory(_config(["::1", "127.0.0.1"]))
    url = f"{gw.http}{RPC}"
    with httpx.Client(timeout=10) as client:
        bad = {"X-Forwarded-For": "203.0.113.5", "Authorization": "Bearer nope"}
        for i in range(10):
            assert client.post(url, json={"method": "health"}, headers=bad).status_code == 401, i
        locked = client.post(url, json={"method": "health"}, headers={"X-Forwarded-For": "203.0.113.5", **AUTH})
        assert locked.status_code == 429
        other = client.post(url, json={"method": "health"}, headers={"X-Forwarded-For": "203.0.113.6", **AUTH})
        assert other.status_code == 200, other.text


def test_http_forwarded_header_from_an_untrusted_peer_is_ignored(gateway_factory):
    gw = gateway_factory(_config(["10.0.0.1"]))  # trusted proxies, but not this peer
    url = f"{gw.http}{RPC}"
    with httpx.Client(timeout=10) as client:
        bad = {"X-Forwarded-For": "203.0.113.5", "Authorization": "Bearer nope"}
        for i in range(10):
            assert client.post(url, json={"method": "health"}, headers=bad).status_code == 401, i
        res = client.post(url, json={"method": "health"}, headers={"X-Forwarded-For": "203.0.113.6", **AUTH})
        assert res.status_code == 429


def test_real_ip_is_used_only_with_allow_real_ip_fallback(gateway_factory):
    config = _config(["127.0.0.1"])
    config["gateway"]["allowRealIpFallback"] = True
    gw = gateway_factory(config)
    url = f"{gw.http}{RPC}"
    with httpx.Client(timeout=10) as client:
        bad = {"X-Real-IP": "203.0.113.5", "Authorization": "Bearer nope"}
        for i in range(10):
            assert client.post(url, json={"method": "health"}, headers=bad).status_code == 401, i
        assert client.post(url, json={"method": "health"},
                           headers={"X-Real-IP": "203.0.113.5", **AUTH}).status_code == 429
        assert client.post(url, json={"method": "health"},
                           headers={"X-Real-IP": "203.0.113.6", **AUTH}).status_code == 200


def test_trusted_proxies_hot_reload(gateway_factory, ws_clients):
    """The key is applied without a restart: set at runtime, the next connect uses it."""
    gw = gateway_factory(_config(None))
    admin = ws_clients(gw.url)
    boot = admin.hello["server"]["bootId"]
    base = admin.request("config.get")["payload"]["hash"]
    raw = json.dumps({"gateway": {"trustedProxies": ["127.0.0.0/8", "::1"]}})
    res = admin.request("config.patch", {"raw": raw, "baseHash": base}, timeout=15)
    assert res["ok"] is True and res["payload"]["restart"] is None, res
    _fail_ten(gw.url, ws_clients, "203.0.113.5")
    other = _connect(gw.url, ws_clients, "203.0.113.6", TOKEN)
    assert other["ok"] is True, other
    assert other["payload"]["server"]["bootId"] == boot
