"""Request bodies and headers that trickle in are timed out (issue 11, defect 8e): a body sent
one byte every few seconds kept its connection open past 135 s. The whole body has a deadline
(30 s; OPENCLAW_HTTP_BODY_TIMEOUT_MS), and so do the headers (OPENCLAW_HTTP_HEADER_TIMEOUT_MS)."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.conftest import TOKEN

DEADLINE_MS = 1500


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return module_gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}},
                                  env={"OPENCLAW_HTTP_BODY_TIMEOUT_MS": str(DEADLINE_MS),
                                       "OPENCLAW_HTTP_HEADER_TIMEOUT_MS": str(DEADLINE_MS)},
                                  name="deadlines")


def trickle(port: int, head: bytes, drip: bytes, every: float = 0.3, limit: float = 8.0) -> tuple[float, bytes]:
    """Send `head`, then `drip` one byte at a time; (seconds until the server ended the
    connection, what it answered)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        started, answer = time.monotonic(), b""
        for i in range(len(drip)):
            if time.monotonic() - started > limit:
                break
            try:
                sock.sendall(drip[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started, answer
            sock.settimeout(every)
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return time.monotonic() - started, answer
            if not chunk:
                return time.monotonic() - started, answer
            answer += chunk
    raise AssertionError(f"connection still open after {limit}s of trickling (answer {answer!r})")


def test_trickled_body_is_cut_at_the_deadline(gw):
    body = b'{"method":"health"}' + b" " * 200
    head = (f"POST /api/v1/admin/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    took, answer = trickle(gw.port, head, body)
    assert DEADLINE_MS / 1000 - 0.5 < took < DEADLINE_MS / 1000 + 2.5, took
    assert answer in (b"",) or answer.startswith(b"HTTP/1.1 408"), answer


def test_trickled_headers_are_cut_at_the_deadline(gw):
    head = f"POST /api/v1/admin/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n".encode()
    took, _ = trickle(gw.port, head, b"X-Slow: " + b"a" * 200)
    assert took < DEADLINE_MS / 1000 + 2.5, took


def test_a_body_sent_in_time_is_answered(gw):
    res = httpx.post(f"{gw.http}/api/v1/admin/rpc", json={"method": "health"},
                     headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert res.status_code == 200 and res.json()["ok"] is True
