"""`openclaw chat` as a subprocess against the real gateway (cli-config §4.14): streamed
deltas, the --json document, run errors, no provider, --timeout and Ctrl-C."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
import uuid

from tests.conftest import OPENCLAW, TOKEN, free_port
from tests.fakes.model_server import ModelServer, Status, Stream, openai_text
from tests.integration.test_cli import cli

AUTH = {"gateway": {"auth": {"mode": "token", "token": TOKEN}}}
ECHO = {**AUTH, "agents": {"defaults": {"model": "offline/echo"}}}
NO_PROVIDER = "no model provider configured; set models.providers.<id> and agents.defaults.model"


def env_for(gw) -> dict:
    return {"OPENCLAW_STATE_DIR": str(gw.state_dir), "OPENCLAW_GATEWAY_PORT": str(gw.port)}


def fake_model(server: ModelServer) -> dict:
    return {**AUTH, "models": {"providers": {"fake": {
        "api": "openai-completions", "baseUrl": server.url + "/v1", "apiKey": "sk-test",
        "timeoutSeconds": 5, "models": [{"id": "m1"}]}}},
        "agents": {"defaults": {"model": "fake/m1"}}}


def history(client, key: str = "main") -> dict:
    res = client.request("chat.history", {"sessionKey": key})
    assert res["ok"], res
    return res["payload"]


def spawn_chat(*args: str, env: dict, home) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_"))}
    return subprocess.Popen([OPENCLAW, "chat", *args], env={**base, **env, "HOME": str(home)},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_until(proc: subprocess.Popen, text: str, timeout: float = 15.0) -> str:
    """Stdout read as it arrives, until it holds `text` (the process still running)."""
    seen, deadline = b"", time.monotonic() + timeout
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {text!r} on stdout within {timeout}s: {seen!r}"
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, f"stdout closed before {text!r}: {seen!r}"
            seen += chunk
    return seen.decode()


def test_echo_reply_is_printed_and_stored(gateway_factory, ws_clients, tmp_path):
    gw = gateway_factory(ECHO)
    res = cli("chat", "hello there", env=env_for(gw), home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hello there\n"
    messages = history(ws_clients(gw.url))["messages"]
    assert [(m["role"], m["content"][0]["text"]) for m in messages] == [
        ("user", "hello there"), ("assistant", "hello there")]


def test_json_document(gateway_factory, tmp_path):
    gw = gateway_factory(ECHO)
    res = cli("chat", "ping", "--session", "work", "--json", "--url", gw.url, "--token", TOKEN, home=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert set(doc) == {"runId", "sessionKey", "text", "state"}
    assert doc["sessionKey"] == "agent:main:work" and doc["text"] == "ping" and doc["state"] == "final"
    assert str(uuid.UUID(doc["runId"])) == doc["runId"]  # a fresh uuid4 idempotency key


def test_no_provider_is_an_rpc_error(gateway, tmp_path):
    res = cli("chat", "hi", env=env_for(gateway), home=tmp_path)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip() == f"Error: UNAVAILABLE: {NO_PROVIDER}"
    res = cli("chat", "hi", "--json", env=env_for(gateway), home=tmp_path)
    assert res.returncode == 1
    assert json.loads(res.stdout) == {"ok": False, "error": {"type": "rpc_error", "message": NO_PROVIDER,
                                                             "code": "UNAVAILABLE"}}


def test_unreachable_and_unauthorized(gateway, tmp_path):
    res = cli("chat", "hi", "--port", str(free_port()), home=tmp_path)
    assert res.returncode == 69
    res = cli("chat", "hi", "--url", gateway.url, "--token", "wrong", home=tmp_path)
    assert res.returncode == 77


def test_deltas_stream_as_they_arrive(gateway_factory, model_server, tmp_path):
    model_server.script(Stream(openai_text(["Hel", "lo", " wor", "ld"]), delay=0.4))
    gw = gateway_factory(fake_model(model_server))
    proc = spawn_chat("hi", env=env_for(gw), home=tmp_path)
    try:
        first = read_until(proc, "Hel")
        assert proc.poll() is None and "world" not in first  # printed before the run ended
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert first + out.decode() == "Hello world\n"


def test_run_error_goes_to_stderr(gateway_factory, model_server, tmp_path):
    model_server.script(Status(401, {"error": {"message": "bad key", "type": "auth"}}))
    gw = gateway_factory(fake_model(model_server))
    res = cli("chat", "hi", env=env_for(gw), home=tmp_path)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip() == "Error: fake: HTTP 401: auth: bad key"
    model_server.script(Status(401, {"error": {"message": "bad key", "type": "auth"}}))
    res = cli("chat", "hi", "--json", env=env_for(gw), home=tmp_path)
    assert res.returncode == 1 and json.loads(res.stdout)["state"] == "error"


def test_timeout_aborts_the_run(gateway_factory, ws_clients, model_server, tmp_path):
    model_server.script(Stream(openai_text(["slow"] + [" more"] * 50), delay=0.3))
    gw = gateway_factory(fake_model(model_server))
    res = cli("chat", "hi", "--timeout", "1500", "--json", env=env_for(gw), home=tmp_path)
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["state"] == "aborted" and doc["text"].startswith("slow")
    assert "did not end within 1500ms; sent chat.abort" in res.stderr
    assert history(ws_clients(gw.url))["inFlightRun"] is None  # the gateway stopped the run


def test_ctrl_c_aborts_the_run_and_exits_130(gateway_factory, ws_clients, model_server, tmp_path):
    model_server.script(Stream(openai_text(["partial"] + [" more"] * 50), delay=0.3))
    gw = gateway_factory(fake_model(model_server))
    proc = spawn_chat("hi", env=env_for(gw), home=tmp_path)
    try:
        read_until(proc, "partial")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Interrupted: sent chat.abort" in err.decode()
    assert history(ws_clients(gw.url))["inFlightRun"] is None
