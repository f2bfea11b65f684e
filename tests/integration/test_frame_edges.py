"""Frame edge cases found by fuzzing (issue 11, defect 8): a request with `id: ""`, and a
text frame that is not UTF-8, against the real gateway process."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

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


# --- invalid UTF-8 in a text frame (8c): close 1007, not an abort ----------------------------

BAD_UTF8 = [b'{"type":"req","id":"u","method":"health","params":{"x":"\xff\xfe"}}',
            b"\xc3\x28", b'{"id":"\xed\xa0\x80"}']  # a lone byte, a bad continuation, a surrogate


@pytest.mark.parametrize("data", BAD_UTF8, ids=["0xff", "bad-continuation", "surrogate"])
@pytest.mark.parametrize("handshake", [False, True], ids=["before-hello", "after-hello"])
def test_invalid_utf8_text_frame_closes_1007(gw, ws_clients, data, handshake):
    client = ws_clients(gw.url, handshake=handshake)
    client.ws.send(data, text=True)  # the bytes as they are, in a text frame
    frames, code, reason = read_until_closed(client)
    assert (code, reason) == (1007, "invalid UTF-8")
    assert not [f for f in frames if f.get("type") == "res"], frames  # events may come first
    assert ws_clients(gw.url).request("health")["ok"] is True


def test_invalid_utf8_after_hello_answers_nothing_behind_it(gw, ws_clients):
    client = ws_clients(gw.url)
    client.ws.send(b'"\xff"', text=True)
    try:
        client.send({"type": "req", "id": "late", "method": "health"})
    except ConnectionClosed:
        pass  # the gateway closed first (a loaded machine): nothing went behind the bad frame
    frames, code, _ = read_until_closed(client)
    assert code == 1007 and not [f for f in frames if f.get("type") == "res"]
