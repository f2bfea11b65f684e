"""Deeply nested JSON (issue 11, defect 5): refused with the error the protocol prescribes for
an invalid frame, before and after the handshake, never an uncaught RecursionError, against
the real gateway process."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import TOKEN, read_until_closed, wait_until

DEEP = 100_000  # after hello-ok (a 200 KB frame)
DEEP_FIRST = 30_000  # before hello-ok: the frame must stay under 64 KiB
TOO_DEEP = "invalid request frame: JSON nested too deeply"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return module_gateway_factory(
        {"gateway": {"auth": {"mode": "token", "token": TOKEN},
                     "http": {"endpoints": {"chatCompletions": {"enabled": True}}}}}, name="deep")


@pytest.fixture(autouse=True)
def no_traceback(gw):
    """Every test here: the gateway logs no traceback (file and stderr) for these frames."""
    sizes = {p: (p.stat().st_size if p.exists() else 0) for p in (gw.log_path, gw.stderr_path)}
    yield
    for path, size in sizes.items():
        text = path.read_bytes()[size:].decode("utf-8", "replace") if path.exists() else ""
        assert "Traceback" not in text and "RecursionError" not in text, text[-3000:]
    assert gw.proc.poll() is None


@pytest.mark.parametrize("where", ["params", "envelope"])
def test_first_frame_too_deep_is_an_invalid_handshake(gw, ws_clients, where):
    client = ws_clients(gw.url, handshake=False)
    head = '{"type":"req","id":"c1","method":"connect",'
    body = '"params":' + nested(DEEP_FIRST) if where == "params" else \
        '"params":{},"pad":' + nested(DEEP_FIRST)
    client.send(head + body + "}")
    frames, code, reason = read_until_closed(client)
    assert frames == [{"type": "res", "id": "c1", "ok": False, "error": {
        "code": "INVALID_REQUEST", "message": "invalid handshake: first request must be connect"}}]
    assert (code, reason) == (1008, "invalid handshake: first request must be connect")


def test_first_frame_too_deep_with_the_id_last(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    client.send('{"type":"req","method":"connect","params":' + nested(DEEP_FIRST) + ',"id":"late"}')
    frames, code, _ = read_until_closed(client)
    assert [f["id"] for f in frames] == ["late"] and code == 1008


def test_first_frame_too_deep_without_an_id(gw, ws_clients):
    client = ws_clients(gw.url, handshake=False)
    client.send(nested(DEEP_FIRST))
    frames, code, reason = read_until_closed(client)
    assert frames == [] and (code, reason) == (1008, "invalid handshake: first request must be connect")


@pytest.mark.parametrize("where", ["params", "envelope", "params-object"])
def test_request_too_deep_is_answered_and_the_socket_stays(gw, ws_clients, where):
    client = ws_clients(gw.url)
    value = nested(DEEP) if where != "params-object" else '{"a":' * DEEP + "1" + "}" * DEEP
    field = "params" if where.startswith("params") else "pad"
    client.send('{"type":"req","id":"d1","method":"health","' + field + '":' + value + "}")
    res = client.response("d1", timeout=10)
    assert res == {"type": "res", "id": "d1", "ok": False,
                   "error": {"code": "INVALID_REQUEST", "message": TOO_DEEP}}
    assert client.request("health")["ok"] is True


def test_request_too_deep_without_an_id_is_dropped(gw, ws_clients):
    client = ws_clients(gw.url)
    client.send(nested(DEEP))
    client.send('{"id":' + nested(DEEP) + "}")
    assert client.request("health", req_id="after")["ok"] is True


def test_deep_json_below_the_frame_limit_but_in_a_string_param(gw, ws_clients):
    """config.patch parses its `raw` string itself: a deep document there is a params error."""
    client = ws_clients(gw.url)
    base = client.request("config.get")["payload"]["hash"]
    raw = '{"a":' * 3000 + "1" + "}" * 3000
    res = client.request("config.patch", {"raw": raw, "baseHash": base}, timeout=10)
    assert res["ok"] is False and res["error"] == {
        "code": "INVALID_REQUEST", "message": "invalid config.patch params: raw: nested too deeply"}
    assert client.request("health")["ok"] is True


def test_moderate_nesting_is_fine(gw, ws_clients):
    client = ws_clients(gw.url)
    client.send(json.dumps({"type": "req", "id": "m", "method": "health",
                            "params": {"pad": json.loads(nested(100))}}))
    assert client.response("m")["ok"] is True


@pytest.mark.parametrize("path, body", [
    ("/api/v1/admin/rpc", '{"id":"h1","method":"health","params":' + nested(DEEP) + "}"),
    ("/tools/invoke", '{"tool":"read","args":' + '{"a":' * DEEP + "1" + "}" * DEEP + "}"),
    ("/v1/chat/completions", '{"model":"openclaw","messages":[],"pad":' + nested(DEEP) + "}"),
])
def test_http_bodies_too_deep_are_400(gw, path, body):
    res = httpx.post(f"{gw.http}{path}", content=body, timeout=10,
                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert res.status_code == 400, res.text
    assert "invalid request body: JSON nested too deeply" in res.text, res.text


# --- the config file (the operator's JSON, parsed by the C JSON parser or JSON5) ----------------

DEEP_CONFIG = '{"gateway":{"auth":{"mode":"token","token":"%s"}},"x":%s}' % (TOKEN, nested(5000))


def test_deep_config_file_refuses_start_with_a_message(gateway_factory):
    gw = gateway_factory(None, start=False)
    gw.config_path.write_text(DEEP_CONFIG)
    gw.start(wait_ready=False)
    assert gw.wait(20) == 78, gw.stderr()
    lines = gw.stderr().splitlines()
    assert lines[:2] == [f"Invalid config at {gw.config_path}:", f"  - {gw.config_path}: nested too deeply"]
    assert "Traceback" not in gw.stderr()


def test_deep_config_edit_is_a_reload_error(gateway_factory, ws_clients):
    gw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}})
    client = ws_clients(gw.url)
    gw.config_path.write_text(DEEP_CONFIG)

    def reload_error() -> str | None:
        status = client.request("health")["payload"]["configReload"]
        return status["status"] == "error" and status["lastError"]

    assert "nested too deeply" in wait_until(reload_error, 15, what="a reload error")
    assert client.request("health")["ok"] is True
    text = gw.log_path.read_text() + gw.stderr()
    assert "Traceback" not in text and "RecursionError" not in text
