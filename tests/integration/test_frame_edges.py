"""Frame edge cases found by fuzzing (issue 11, defect 8): a request with `id: ""`, against
the real gateway process."""

from __future__ import annotations

import pytest

from tests.conftest import TOKEN, connect_params, read_until_closed


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return module_gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}},
                                  name="edges")


# --- `id: ""` (8b): the id is a string, so the invalid frame is answered (§3.2) --------------


def test_empty_id_after_hello_is_answered(gw, ws_clients):
    client = ws_clients(gw.url)
    client.send({"type": "req", "id": "", "method": "health"})
    res = client.response("")
    assert res == {"type": "res", "id": "", "ok": False, "error": {
        "code": "INVALID_REQUEST", "message": "invalid request frame: id: expected str of length >= 1"}}
    assert client.request("health")["ok"] is True


def test_empty_id_in_an_otherwise_invalid_frame_is_answered(gw, ws_clients):
    client = ws_clients(gw.url)
    client.send({"type": "req", "id": "", "method": 5})
    assert client.response("")["error"]["code"] == "INVALID_REQUEST"


def test_empty_id_connect_is_refused_with_an_error_frame(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    client.send({"type": "req", "id": "", "method": "connect", "params": connect_params()})
    frames, code, reason = read_until_closed(client)
    assert frames == [{"type": "res", "id": "", "ok": False, "error": {
        "code": "INVALID_REQUEST", "message": "invalid handshake: first request must be connect"}}]
    assert (code, reason) == (1008, "invalid handshake: first request must be connect")
