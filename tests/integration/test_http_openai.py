"""The OpenAI-compatible endpoints (protocol §21.4) against a real gateway: raw HTTP for the
exact shapes, WebSocket clients watching the same runs, the official `openai` Python client,
and the local model stand-in (tests/fakes/model_server.py) for provider streams."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time

import httpx
import openai
import pytest

from tests.conftest import TOKEN, chat_events, open_client, wait_until
from tests.fakes.model_server import ModelServer, Status, Stream, openai_text

AUTH = {"gateway": {"auth": {"mode": "token", "token": TOKEN}}}
ENABLED = {"gateway": {**AUTH["gateway"], "http": {"endpoints": {"chatCompletions": {"enabled": True}}}}}
ECHO = {**ENABLED, "agents": {"defaults": {"model": "offline/echo"}}}
NO_PROVIDER = "no model provider configured; set models.providers.<id> and agents.defaults.model"
MODEL_IDS = ["openclaw", "openclaw/default", "openclaw/main"]


def request(gw, method: str, path: str, body=None, token: str | None = TOKEN,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    try:
        head = {"Content-Type": "application/json", **(headers or {})}
        if token:
            head["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=head)
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


def complete(gw, body: dict, **kw) -> tuple[int, dict, bytes]:
    return request(gw, "POST", "/v1/chat/completions", {"model": "openclaw", **body}, **kw)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def sse(raw: bytes) -> list:
    """The `data:` payloads of an event stream, JSON-decoded except `[DONE]`."""
    out = []
    for block in raw.decode().split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            data = block[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def error_of(status: int, raw: bytes, kind: str) -> str:
    body = json.loads(raw)
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type"}, body
    assert body["error"]["type"] == kind, body
    return body["error"]["message"]


def history(client, key: str) -> list[tuple[str, str]]:
    res = client.request("chat.history", {"sessionKey": key})
    assert res["ok"], res
    return [(m["role"], "".join(p.get("text", "") for p in m["content"]))
            for m in res["payload"]["messages"]]


@pytest.fixture(scope="module")
def echo_gw(module_gateway_factory):
    return module_gateway_factory(ECHO, name="openai-echo")


def provider_config(server: ModelServer) -> dict:
    return {**ENABLED,
            "models": {"providers": {"fake": {"api": "openai-completions", "baseUrl": server.url + "/v1",
                                              "apiKey": "sk-test", "timeoutSeconds": 5,
                                              "models": [{"id": "m1"}]}}},
            "agents": {"defaults": {"model": "fake/m1"}}}


# --- enablement and auth --------------------------------------------------------------------

def test_disabled_answers_plain_404_until_enabled(gateway):
    for method, path, body in [("GET", "/v1/models", None), ("GET", "/v1/models/openclaw", None),
                               ("POST", "/v1/chat/completions", {"messages": user("hi")}),
                               ("GET", "/v1/chat/completions", None), ("GET", "/v1/other", None)]:
        status, headers, raw = request(gateway, method, path, body)
        assert (status, headers["content-type"], raw) == (404, "text/plain", b"Not Found"), path
    client = open_client(gateway.url)
    try:
        base = client.request("config.get", {})["payload"]["hash"]
        res = client.request("config.patch", {
            "raw": '{gateway: {http: {endpoints: {chatCompletions: {enabled: true}}}}}',
            "baseHash": base}, timeout=15)
        assert res["ok"], res
    finally:
        client.close()
    wait_until(lambda: _status(gateway, "/v1/models") == 200, timeout=20, what="/v1/models enabled")


def _status(gw, path: str) -> int:
    try:
        return request(gw, "GET", path)[0]
    except OSError:
        return 0


def test_bearer_is_required(echo_gw):
    for token in (None, "wrong-token"):
        for method, path, body in [("GET", "/v1/models", None), ("GET", "/v1/models/openclaw", None),
                                   ("POST", "/v1/chat/completions", {"messages": user("hi")})]:
            status, headers, raw = request(echo_gw, method, path, body, token=token)
            assert status == 401 and headers["www-authenticate"] == "Bearer", (path, token)
            assert error_of(status, raw, "authentication_error") == "Unauthorized"


# --- models ---------------------------------------------------------------------------------

def test_models_list_and_entries(echo_gw):
    status, headers, raw = request(echo_gw, "GET", "/v1/models")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(raw) == {"object": "list", "data": [
        {"id": m, "object": "model", "created": 0, "owned_by": "openclaw"} for m in MODEL_IDS]}
    status, _, raw = request(echo_gw, "GET", "/v1/models/openclaw/main")
    assert status == 200 and json.loads(raw) == {"id": "openclaw/main", "object": "model",
                                                 "created": 0, "owned_by": "openclaw"}
    status, _, raw = request(echo_gw, "GET", "/v1/models/gpt-4o")
    assert status == 404 and error_of(status, raw, "not_found_error") == "model not found: gpt-4o"
    status, _, raw = request(echo_gw, "POST", "/v1/models", {})
    assert status == 405 and error_of(status, raw, "invalid_request_error")


# --- completions over raw HTTP --------------------------------------------------------------

def test_completion_shape(echo_gw):
    before = int(time.time())
    status, headers, raw = complete(echo_gw, {"messages": user("hello there")})
    assert status == 200 and headers["content-type"] == "application/json"
    body = json.loads(raw)
    assert body["id"].startswith("chatcmpl-") and len(body["id"]) > len("chatcmpl-")
    assert before <= body["created"] <= int(time.time())
    usage = body.pop("usage")
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert body == {"id": body["id"], "object": "chat.completion", "created": body["created"],
                    "model": "openclaw",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello there"},
                                 "finish_reason": "stop"}]}


def test_streaming_shape(echo_gw):
    status, headers, raw = complete(echo_gw, {"model": "openclaw/main", "stream": True,
                                              "messages": user("stream me please")})
    assert status == 200 and headers["content-type"] == "text/event-stream"
    events = sse(raw)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    run_ids = {c["id"] for c in chunks}
    assert len(run_ids) == 1 and run_ids.pop().startswith("chatcmpl-")
    for c in chunks:
        assert c["object"] == "chat.completion.chunk" and c["model"] == "openclaw/main"
        assert isinstance(c["created"], int) and len(c["choices"]) == 1
        assert c["choices"][0]["index"] == 0
    deltas = [c["choices"][0] for c in chunks]
    assert deltas[0]["delta"]["role"] == "assistant"
    assert all("role" not in d["delta"] for d in deltas[1:])
    assert all(d["finish_reason"] is None for d in deltas[:-1])
    assert deltas[-1] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert "".join(d["delta"].get("content", "") for d in deltas) == "stream me please"


def test_stream_usage_chunk_when_asked(echo_gw):
    _, _, raw = complete(echo_gw, {"stream": True, "stream_options": {"include_usage": True},
                                   "messages": user("count me")})
    events = sse(raw)
    assert events[-1] == "[DONE]" and events[-2]["choices"] == []
    assert events[-2]["usage"]["total_tokens"] > 0
    assert events[-3]["choices"][0]["finish_reason"] == "stop"


def test_session_header_lands_in_the_session_and_ws_sees_the_run(echo_gw):
    watcher = open_client(echo_gw.url, scopes=["operator.read"])
    try:
        status, _, raw = complete(echo_gw, {"messages": user("via http")},
                                  headers={"x-openclaw-session-key": "openai-test"})
        assert status == 200
        run_id = json.loads(raw)["id"].removeprefix("chatcmpl-")
        events = chat_events(watcher, run_id)
        assert events[-1]["state"] == "final"
        assert events[-1]["sessionKey"] == "agent:main:openai-test"
        assert history(watcher, "agent:main:openai-test") == [("user", "via http"),
                                                              ("assistant", "via http")]
        # streaming into the same session: the watcher sees that run too
        status, _, raw = complete(echo_gw, {"stream": True, "messages": user("again")},
                                  headers={"x-openclaw-session-key": "agent:main:openai-test"})
        run_id = sse(raw)[0]["id"].removeprefix("chatcmpl-")
        assert chat_events(watcher, run_id)[-1]["state"] == "final"
        assert history(watcher, "openai-test")[-2:] == [("user", "again"), ("assistant", "again")]
    finally:
        watcher.close()


def test_user_field_session_and_context_only_for_a_new_session(echo_gw):
    messages = [{"role": "system", "content": "be brief"},
                {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                {"role": "user", "content": [{"type": "text", "text": "q2"}]}]
    assert complete(echo_gw, {"user": "Alice", "messages": messages})[0] == 200
    client = open_client(echo_gw.url)
    try:
        key = "agent:main:openai-user:alice"
        assert history(client, key) == [("user", "q1"), ("assistant", "a1"), ("user", "q2"),
                                        ("assistant", "q2")]
        assert complete(echo_gw, {"user": "Alice", "messages": messages + [
            {"role": "assistant", "content": "q2"}, {"role": "user", "content": "q3"}]})[0] == 200
        assert history(client, key)[4:] == [("user", "q3"), ("assistant", "q3")]
        # without a user or a session header: a new session per call
        before = client.request("sessions.list", {})["payload"]["count"]
        complete(echo_gw, {"messages": user("one")})
        complete(echo_gw, {"messages": user("two")})
        rows = client.request("sessions.list", {})["payload"]["sessions"]
        assert len(rows) == before + 2
        assert sum(r["key"].startswith("agent:main:openai:") for r in rows) >= 2
    finally:
        client.close()


def test_model_aliases_and_agent_header(echo_gw):
    for model in ("openclaw/default", "openclaw:main", "agent:main", "OpenClaw"):
        status, _, raw = complete(echo_gw, {"model": model, "messages": user("x")})
        assert status == 200 and json.loads(raw)["model"] == model
    status, _, raw = complete(echo_gw, {"messages": user("x")}, headers={"x-openclaw-agent-id": "main"})
    assert status == 200
    status, _, raw = complete(echo_gw, {"messages": user("x")}, headers={"x-openclaw-agent-id": "nobody"})
    assert status == 400 and error_of(status, raw, "invalid_request_error") == "unknown agent: nobody"
    status, _, raw = complete(echo_gw, {"model": "gpt-4o", "messages": user("x")})
    assert status == 404 and error_of(status, raw, "not_found_error") == "model not found: gpt-4o"


def test_invalid_requests_are_400(echo_gw):
    for key in ("subagent:x", "cron:nightly", "acp:1", "agent:main:cron:job"):
        status, _, raw = complete(echo_gw, {"messages": user("x")},
                                  headers={"x-openclaw-session-key": key})
        assert status == 400 and "reserved session key" in error_of(status, raw, "invalid_request_error")
    cases = [
        (b"not json", "invalid request body: not JSON"),
        (json.dumps({"model": "openclaw"}).encode(), "invalid request body: "),
        (json.dumps({"messages": [{"role": "system", "content": "s"}]}).encode(),
         "messages: no user message"),
        (json.dumps({"messages": user("   ")}).encode(), "messages: the last user message is empty"),
    ]
    for body, message in cases:
        status, _, raw = request(echo_gw, "POST", "/v1/chat/completions", body)
        assert status == 400 and error_of(status, raw, "invalid_request_error").startswith(message)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    many = [{"role": "user", "content": [{"type": "text", "text": "look"}] + [image] * 9}]
    status, _, raw = complete(echo_gw, {"messages": many})
    assert status == 400 and "too many image_url parts" in error_of(status, raw, "invalid_request_error")


def test_images_are_stored_as_parts(echo_gw):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 64).decode()
    content = [{"type": "text", "text": "what is this"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]
    status, _, raw = complete(echo_gw, {"messages": [{"role": "user", "content": content}]},
                              headers={"x-openclaw-session-key": "openai-image"})
    assert status == 200
    client = open_client(echo_gw.url)
    try:
        stored = client.request("chat.history", {"sessionKey": "openai-image"})["payload"]["messages"]
        parts = stored[0]["content"]
        assert parts == [{"type": "text", "text": "what is this"},
                         {"type": "image", "mimeType": "image/png", "fileName": "image-1"}]
    finally:
        client.close()
    remote = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]
    status, _, raw = complete(echo_gw, {"messages": remote})
    assert status == 400 and "data: URLs" in error_of(status, raw, "invalid_request_error")


def test_body_over_20_mb_is_413(echo_gw):
    big = json.dumps({"messages": user("x" * (20 * 1024 * 1024 + 10))}).encode()
    status, _, raw = request(echo_gw, "POST", "/v1/chat/completions", big)
    assert status == 413 and error_of(status, raw, "invalid_request_error")
    assert complete(echo_gw, {"messages": user("still fine")})[0] == 200


# --- the official openai client -------------------------------------------------------------

def test_official_openai_client(echo_gw):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{echo_gw.port}/v1", api_key=TOKEN,
                           max_retries=0, timeout=20)
    assert [m.id for m in client.models.list()] == MODEL_IDS
    assert client.models.retrieve("openclaw/main").owned_by == "openclaw"
    reply = client.chat.completions.create(model="openclaw", messages=[
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi from openai"}])
    assert reply.choices[0].message.content == "hi from openai"
    assert reply.choices[0].finish_reason == "stop" and reply.usage.total_tokens > 0
    stream = client.chat.completions.create(model="openclaw", stream=True,
                                            messages=[{"role": "user", "content": "streamed words"}])
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "streamed words"
    bad = openai.OpenAI(base_url=f"http://127.0.0.1:{echo_gw.port}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_official_client_sees_no_provider_error(gateway_factory):
    gw = gateway_factory(ENABLED)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key=TOKEN, max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="openclaw", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 503 and NO_PROVIDER in str(info.value)
    assert info.value.body == {"message": NO_PROVIDER, "type": "api_error"}
    with pytest.raises(openai.APIStatusError):  # streaming too, before any chunk
        client.chat.completions.create(model="openclaw", stream=True, user="bob",
                                       messages=[{"role": "user", "content": "q"},
                                                 {"role": "assistant", "content": "a"},
                                                 {"role": "user", "content": "hi"}])
    ws = open_client(gw.url)
    try:
        assert ws.request("sessions.list", {})["payload"]["count"] == 0  # nothing recorded
    finally:
        ws.close()


# --- provider streams -----------------------------------------------------------------------

def test_provider_stream_relays_deltas_and_sends_context(gateway_factory, model_server):
    model_server.script(Stream(openai_text(["Hel", "lo", " there"]), delay=0.2))
    gw = gateway_factory(provider_config(model_server))
    status, _, raw = complete(gw, {"stream": True, "messages": [
        {"role": "system", "content": "Speak like a pirate."},
        {"role": "user", "content": "earlier q"}, {"role": "assistant", "content": "earlier a"},
        {"role": "user", "content": "now"}]})
    chunks = sse(raw)[:-1]
    pieces = [c["choices"][0]["delta"].get("content", "") for c in chunks]
    assert len([p for p in pieces if p]) >= 2 and "".join(pieces) == "Hello there"
    sent = model_server.requests[-1]["body"]["messages"]
    assert "Speak like a pirate." in sent[0]["content"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "earlier q"), ("assistant", "earlier a"), ("user", "now")]


def test_provider_error_is_api_error(gateway_factory, model_server):
    model_server.script(Status(401, {"error": {"message": "bad key"}}),
                        Status(401, {"error": {"message": "bad key"}}))
    gw = gateway_factory(provider_config(model_server))
    status, _, raw = complete(gw, {"messages": user("hi")})
    assert status == 500 and "401" in error_of(status, raw, "api_error")
    status, _, raw = complete(gw, {"stream": True, "messages": user("hi")})
    events = sse(raw)
    assert status == 200 and events[-1] == "[DONE]" and "401" in events[-2]["error"]["message"]


def _open_completion(gw, stream: bool) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    body = json.dumps({"model": "openclaw", "stream": stream, "messages": user("long")}).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    return sock


@pytest.mark.parametrize("stream", [True, False])
def test_client_disconnect_aborts_the_run(gateway_factory, model_server, stream):
    model_server.script(Stream(openai_text(["first"] + [" more"] * 60), delay=0.2))
    gw = gateway_factory(provider_config(model_server))
    watcher = open_client(gw.url, scopes=["operator.read"])
    try:
        sock = _open_completion(gw, stream)
        if stream:
            seen = b""
            while b"first" not in seen:
                seen += sock.recv(65536)
            run_id = seen.split(b'"id":"chatcmpl-')[1].split(b'"')[0].decode()
        else:
            run_id = watcher.event("chat", timeout=10)["payload"]["runId"]
        sock.close()
        events = chat_events(watcher, run_id)
        assert events[-1]["state"] == "aborted"
        assert model_server.client_closed.wait(5)
    finally:
        watcher.close()
    assert httpx.get(f"{gw.http}/healthz").status_code == 200
    assert "Traceback" not in gw.stderr() + gw.stdout()


def test_gateway_stop_ends_the_stream(gateway_factory, model_server):
    model_server.script(Stream(openai_text(["first"] + [" more"] * 100), delay=0.2))
    config = provider_config(model_server)
    config["gateway"]["drainTimeoutMs"] = 1000
    gw = gateway_factory(config)
    sock = _open_completion(gw, stream=True)
    seen = b""
    while b"first" not in seen:
        seen += sock.recv(65536)
    gw.signal(15)
    while data := sock.recv(65536):
        seen += data
    sock.close()
    assert b'data: {"error":{"message":"gateway is stopping","type":"api_error"}}' in seen
    assert b"data: [DONE]\n\n" in seen and seen.endswith(b"\r\n0\r\n\r\n")  # chunked end
    assert gw.wait(15) == 0
