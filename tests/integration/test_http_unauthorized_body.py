"""An unauthenticated POST with a big body is answered 401 with the endpoint's JSON error
before its body is read (issue 11, defect 8d): a 10 MB POST /tools/invoke got a bare 400
with an empty body (Tornado's own answer to a body over the size cap)."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.conftest import TOKEN

TEN_MB = 10 * 1024 * 1024
ENDPOINTS = {
    "/tools/invoke": {"ok": False, "error": {"type": "unauthorized", "message": "Unauthorized"}},
    "/api/v1/admin/rpc": {"ok": False, "error": {"code": "INVALID_REQUEST", "message": "Unauthorized"}},
    "/v1/chat/completions": {"error": {"message": "Unauthorized", "type": "authentication_error"}},
}


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return module_gateway_factory({"gateway": {
        "auth": {"mode": "token", "token": TOKEN},
        "http": {"endpoints": {"chatCompletions": {"enabled": True}}}}}, name="unauth-body")


@pytest.mark.parametrize("path", list(ENDPOINTS))
@pytest.mark.parametrize("bearer", [None, "wrong"])
def test_big_unauthenticated_post_is_401_with_the_json_error(gw, path, bearer):
    headers = {"Content-Type": "application/json"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    res = httpx.post(f"{gw.http}{path}", content=b"x" * TEN_MB, headers=headers, timeout=20)
    assert res.status_code == 401, (res.status_code, res.text[:200])
    assert res.headers["content-type"].startswith("application/json")
    assert res.headers["www-authenticate"] == "Bearer"
    assert res.json() == ENDPOINTS[path]


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_the_401_comes_before_the_body(gw, path):
    """Only the headers are sent: the answer must not wait for the 10 MB that never come."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {TEN_MB}\r\n\r\n").encode())
        sock.sendall(b"x" * 65536)
        started, data = time.monotonic(), b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 20:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        assert time.monotonic() - started < 3
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 401 "), head
    assert b"connection: close" in head.lower()
    assert json.loads(body) == ENDPOINTS[path]


def test_small_unauthenticated_post_keeps_the_connection(gw):
    with httpx.Client(timeout=10) as client:
        for _ in range(3):
            res = client.post(f"{gw.http}/tools/invoke", json={"tool": "x"})
            assert res.status_code == 401 and res.json() == ENDPOINTS["/tools/invoke"]
        res = client.post(f"{gw.http}/tools/invoke", json={"tool": "nope"},
                          headers={"Authorization": f"Bearer {TOKEN}"})
        assert res.status_code == 404


def test_big_authorized_post_is_still_413(gw):
    res = httpx.post(f"{gw.http}/tools/invoke", content=b"x" * TEN_MB, timeout=20,
                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert res.status_code == 413
    assert res.json()["error"]["type"] == "payload_too_large"
