"""Chat runs against a real gateway (protocol §7.3, §7.4, §14, §15.2-§15.3, §18): real WebSocket
clients, and a real local HTTP server speaking the OpenAI and Anthropic streaming formats in
place of the cloud APIs (tests/fakes/model_server.py)."""

from __future__ import annotations

import time
import uuid

from tests.conftest import TOKEN, chat_events, ok, wait_until
from tests.fakes.model_server import Hang, ModelServer, Status, Stream, anthropic_text, openai_text

AUTH = {"gateway": {"auth": {"mode": "token", "token": TOKEN}}}
NO_PROVIDER = "no model provider configured; set models.providers.<id> and agents.defaults.model"


def config_for(server: ModelServer, api: str = "openai-completions", **defaults) -> dict:
    path = "" if api == "anthropic-messages" else "/v1"
    return {**AUTH,
            "models": {"providers": {"fake": {"api": api, "baseUrl": server.url + path,
                                              "apiKey": "sk-test", "timeoutSeconds": 5,
                                              "models": [{"id": "m1"}]}}},
            "agents": {"defaults": {"model": "fake/m1", **defaults}}}


def send(client, message: str, key: str = "main", run_id: str | None = None, **extra) -> dict:
    run_id = run_id or str(uuid.uuid4())
    return client.request("chat.send", {"sessionKey": key, "message": message,
                                        "idempotencyKey": run_id, **extra})


def agent_events(client, run_id: str) -> list[dict]:
    return [f["payload"] for f in client.events
            if f["event"] == "agent" and f["payload"]["runId"] == run_id]


def history(client, key: str = "main") -> list[dict]:
    return ok(client.request("chat.history", {"sessionKey": key}))["messages"]


def texts(messages: list[dict]) -> list[tuple[str, str]]:
    return [(m["role"], "".join(p.get("text", "") for p in m["content"])) for m in messages]


# --- the basic round trip ------------------------------------------------------------------

def test_echo_round_trip_events_history_and_wait(gateway_factory, ws_clients):
    gw = gateway_factory({**AUTH, "agents": {"defaults": {"model": "offline/echo"}}})
    client = ws_clients(gw.url)
    assert {"chat", "agent"} <= set(client.hello["features"]["events"])
    assert ok(send(client, "hello there", run_id="r-1")) == {"runId": "r-1", "status": "started"}
    events = chat_events(client, "r-1")
    assert [e["seq"] for e in events] == list(range(len(events)))
    final = events[-1]
    assert final["state"] == "final" and final["sessionKey"] == "agent:main:main"
    assert final["message"]["content"] == [{"type": "text", "text": "hello there"}]
    assert "".join(e["deltaText"] for e in events[:-1]) == "hello there"
    assert final["usage"]["total"] == final["usage"]["input"] + final["usage"]["output"]

    lifecycle = [e["data"]["phase"] for e in agent_events(client, "r-1") if e["stream"] == "lifecycle"]
    assert lifecycle[0] == "start"
    wait = ok(client.request("agent.wait", {"runId": "r-1"}))
    assert wait["status"] == "ok" and wait["endedAt"] >= wait["startedAt"]
    assert texts(history(client)) == [("user", "hello there"), ("assistant", "hello there")]
    assert [m["runId"] for m in history(client)] == ["r-1", "r-1"]
    row = ok(client.request("sessions.list"))["sessions"][0]
    assert row["hasActiveRun"] is False and row["activeRunIds"] == []
    # the same idempotency key again: the first run's outcome, no second run
    assert ok(send(client, "hello there", run_id="r-1")) == {"runId": "r-1", "status": "ok"}
    assert len(history(client)) == 2


def test_no_provider_is_unavailable_and_records_nothing(gateway, client_factory):
    client = client_factory()
    res = send(client, "hi", key="work")
    assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE"
    assert res["error"]["message"] == NO_PROVIDER
    assert ok(client.request("sessions.list"))["totalCount"] == 0
    assert history(client, "work") == []
    res = client.request("agent", {"message": "hi", "idempotencyKey": "a-1"})
    assert res["error"]["code"] == "UNAVAILABLE" and res["error"]["message"] == NO_PROVIDER


def test_params_are_checked(gateway_factory, ws_clients):
    gw = gateway_factory({**AUTH, "agents": {"defaults": {"model": "offline/echo"}}})
    client = ws_clients(gw.url)
    res = client.request("chat.send", {"sessionKey": "main", "message": "x"})
    assert res["error"]["message"] == "invalid chat.send params: idempotencyKey: required"
    res = send(client, "x", bogus=1)
    assert res["error"]["code"] == "INVALID_REQUEST" and "bogus" in res["error"]["message"]
    res = send(client, "x", sessionId="not-the-current-one")
    assert res["error"]["message"] == "session changed; reload history"
    res = send(client, "look", attachments=[{"mimeType": "image/png", "fileName": "big.png",
                                             "content": "QUFB" * 2_100_000}])
    assert res["error"]["message"] == "attachment too large: big.png"
    assert history(client) == []
    res = client.request("chat.abort", {"sessionKey": "main", "runId": "nope"})
    assert ok(res) == {"ok": True, "aborted": False, "runIds": []}
    reader = ws_clients(gw.url, scopes=["operator.read"])
    assert reader.request("chat.send", {"sessionKey": "main", "message": "x",
                                        "idempotencyKey": "k"})["error"]["code"] == "FORBIDDEN"


# --- streaming from a provider -------------------------------------------------------------

def test_two_watchers_see_every_delta_in_order(gateway_factory, ws_clients, model_server):
    parts = ["One", " two", " three", " four", " five"]
    model_server.script(Stream(openai_text(parts), delay=0.2))
    gw = gateway_factory(config_for(model_server))
    sender, watcher = ws_clients(gw.url), ws_clients(gw.url, scopes=["operator.read"])
    ok(send(sender, "count", run_id="r-stream"))
    seen = [chat_events(c, "r-stream") for c in (sender, watcher)]
    assert seen[0] == seen[1]
    deltas = [e for e in seen[0] if e["state"] == "delta"]
    assert [e["deltaText"] for e in deltas] == parts  # 200 ms apart: nothing coalesced
    assert [e["message"]["content"][0]["text"] for e in deltas] == [
        "".join(parts[:i + 1]) for i in range(len(parts))]
    assert seen[0][-1]["state"] == "final" and seen[0][-1]["usage"] == {"input": 11, "output": 7, "total": 18}
    body = model_server.requests[0]["body"]
    assert body["model"] == "m1" and body["stream"] is True
    assert body["messages"][-1] == {"role": "user", "content": "count"}
    assert model_server.requests[0]["headers"]["authorization"] == "Bearer sk-test"


def test_fast_deltas_are_coalesced(gateway_factory, ws_clients, model_server):
    parts = [f"w{i} " for i in range(40)]
    model_server.script(Stream(openai_text(parts), delay=0.01))
    gw = gateway_factory(config_for(model_server))
    client = ws_clients(gw.url)
    ok(send(client, "go", run_id="r-fast"))
    events = chat_events(client, "r-fast")
    deltas = [e for e in events if e["state"] == "delta"]
    assert "".join(e["deltaText"] for e in deltas) == "".join(parts)
    assert len(deltas) <= 6  # ~0.45 s of stream at one delta per 150 ms at most


def test_second_send_queues_behind_the_first(gateway_factory, ws_clients, model_server):
    model_server.script(Stream(openai_text(["first", " answer"]), delay=0.3),
                        Stream(openai_text(["second answer"])))
    gw = gateway_factory(config_for(model_server))
    client = ws_clients(gw.url)
    assert ok(send(client, "q1", run_id="r-a"))["status"] == "started"
    assert ok(send(client, "q2", run_id="r-b"))["status"] == "started"
    row = ok(client.request("sessions.list"))["sessions"][0]
    assert row["activeRunIds"] == ["r-a", "r-b"] and row["hasActiveRun"] is True
    first = chat_events(client, "r-a")
    second = chat_events(client, "r-b")
    assert first[-1]["state"] == "final" and second[-1]["state"] == "final"
    assert len(model_server.requests) == 2
    assert model_server.requests[1]["at"] >= model_server.requests[0]["at"] + 0.5  # after run 1 ended
    # the model reads question, answer, question: each reply follows its own turn
    sent = model_server.requests[1]["body"]["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "q1"), ("assistant", "first answer"), ("user", "q2")]
    assert texts(history(client)) == [("user", "q1"), ("user", "q2"), ("assistant", "first answer"),
                                      ("assistant", "second answer")]


def test_abort_mid_stream_closes_the_provider_stream(gateway_factory, ws_clients, model_server):
    model_server.script(Stream(openai_text(["partial"] + [" more"] * 50), delay=0.3))
    gw = gateway_factory(config_for(model_server))
    client, watcher = ws_clients(gw.url), ws_clients(gw.url, scopes=["operator.read"])
    ok(send(client, "long story", run_id="r-abort"))
    wait_until(lambda: any(f["event"] == "chat" for f in _drain(watcher)), what="first delta")
    streaming = ok(client.request("chat.history", {"sessionKey": "main"}))["inFlightRun"]
    assert streaming["runId"] == "r-abort" and streaming["text"].startswith("partial")
    started = time.monotonic()
    assert ok(client.request("chat.abort", {"sessionKey": "main"})) == {
        "ok": True, "aborted": True, "runIds": ["r-abort"]}
    events = chat_events(client, "r-abort")
    assert time.monotonic() - started < 2.0
    assert events[-1]["state"] == "aborted"
    assert events[-1]["message"]["content"][0]["text"].startswith("partial")
    assert model_server.client_closed.wait(3)  # the gateway closed the provider's socket
    end = client.event("agent")["payload"]
    while end["stream"] != "lifecycle" or end["data"]["phase"] == "start":
        end = client.event("agent")["payload"]
    assert end["data"]["phase"] == "error" and end["data"]["error"] == "aborted"
    assert history(client)[-1]["stopReason"] == "aborted"
    assert ok(client.request("agent.wait", {"runId": "r-abort"}))["status"] == "error"
    # the session stays usable
    ok(send(client, "again", run_id="r-after"))
    assert chat_events(client, "r-after")[-1]["state"] == "final"


def _drain(client) -> list[dict]:
    try:
        client.events.append(client.recv(0.1))
    except TimeoutError:
        pass
    return client.events


def test_abort_drops_queued_runs_and_checks_the_session(gateway_factory, ws_clients, model_server):
    model_server.script(Stream(openai_text(["slow"] * 40), delay=0.2))
    gw = gateway_factory(config_for(model_server))
    client = ws_clients(gw.url)
    ok(send(client, "one", run_id="q-1"))
    ok(send(client, "two", run_id="q-2"))
    res = client.request("chat.abort", {"sessionKey": "other", "runId": "q-1"})
    assert res["error"]["message"] == "runId does not match sessionKey"
    assert ok(client.request("chat.abort", {"sessionKey": "main", "runId": "q-2"}))["runIds"] == ["q-2"]
    assert chat_events(client, "q-2")[-1]["state"] == "aborted"
    assert ok(send(client, "/stop", run_id="stop-1"))["runIds"] == ["q-1"]
    assert chat_events(client, "q-1")[-1]["state"] == "aborted"
    # the dropped run never reached the provider (q-1 may have been stopped before it did)
    assert [r["body"]["messages"][-1]["content"] for r in model_server.requests] in ([], ["one"])


def test_provider_500_then_success_is_retried(gateway_factory, ws_clients, model_server):
    model_server.script(Status(500, {"error": {"message": "boom", "type": "server_error"}}),
                        Stream(openai_text(["recovered"])))
    gw = gateway_factory(config_for(model_server))
    client = ws_clients(gw.url)
    ok(send(client, "hi", run_id="r-retry"))
    events = chat_events(client, "r-retry")
    assert events[-1]["state"] == "final"
    assert events[-1]["message"]["content"][0]["text"] == "recovered"
    assert len(model_server.requests) == 2


def test_provider_error_names_provider_and_status(gateway_factory, ws_clients, model_server):
    model_server.script(Status(401, {"error": {"message": "bad key", "type": "auth"}}))
    gw = gateway_factory(config_for(model_server))
    client = ws_clients(gw.url)
    ok(send(client, "hi", run_id="r-401"))
    final = chat_events(client, "r-401")[-1]
    assert final["state"] == "error" and final["errorKind"] == "unknown"
    assert final["errorMessage"] == "fake: HTTP 401: auth: bad key"
    assert ok(send(client, "hi", run_id="r-401")) == {"runId": "r-401", "status": "error"}
    assert len(model_server.requests) == 1


def test_provider_hang_times_out_and_session_stays_usable(gateway_factory, ws_clients, model_server):
    model_server.script(Hang(30))
    gw = gateway_factory(config_for(model_server))
    client = ws_clients(gw.url)
    started = time.monotonic()
    ok(send(client, "hello?", run_id="r-hang", timeoutMs=1000))
    final = chat_events(client, "r-hang")[-1]
    assert 0.9 < time.monotonic() - started < 4
    assert final["state"] == "error" and final["errorKind"] == "timeout"
    assert final["errorMessage"] == "agent run timed out after 1s"
    assert model_server.client_closed.wait(3)
    ok(send(client, "hello again", run_id="r-next"))
    assert chat_events(client, "r-next")[-1]["state"] == "final"


def test_idempotent_retry_after_reconnect_returns_the_first_run(gateway_factory, ws_clients, model_server):
    model_server.script(Stream(openai_text(["a", "b", "c", "d"]), delay=0.3))
    gw = gateway_factory(config_for(model_server))
    first = ws_clients(gw.url)
    ok(send(first, "once", run_id="r-idem"))
    first.close()
    again = ws_clients(gw.url)
    assert ok(send(again, "once", run_id="r-idem")) == {"runId": "r-idem", "status": "in_flight"}
    assert chat_events(again, "r-idem")[-1]["state"] == "final"
    assert ok(send(again, "once", run_id="r-idem")) == {"runId": "r-idem", "status": "ok"}
    assert len(model_server.requests) == 1
    assert texts(history(again)) == [("user", "once"), ("assistant", "abcd")]


def test_kill_9_during_stream_keeps_acknowledged_messages(gateway_factory, ws_clients, model_server):
    model_server.script(Stream(openai_text(["never"] * 100), delay=0.2))
    gw = gateway_factory(config_for(model_server))
    client = ws_clients(gw.url)
    ok(send(client, "first question", key="work", run_id="r-k1"))
    ok(send(client, "second question", key="work", run_id="r-k2"))
    chat_events_until_delta(client, "r-k1")
    gw.kill()
    gw.start()
    client = ws_clients(gw.url)
    stored = history(client, "work")
    assert texts(stored)[:2] == [("user", "first question"), ("user", "second question")]
    row = ok(client.request("sessions.list"))["sessions"][0]
    assert row["activeRunIds"] == []  # no run survives the process
    ok(send(client, "third", key="work", run_id="r-k3"))
    assert chat_events(client, "r-k3")[-1]["state"] == "final"


def chat_events_until_delta(client, run_id: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frame = client.recv(max(0.01, deadline - time.monotonic()))
        if frame.get("event") == "chat" and frame["payload"]["runId"] == run_id:
            return
    raise AssertionError("no delta")


def test_max_concurrent_caps_runs_across_sessions(gateway_factory, ws_clients, model_server):
    model_server.script(Stream(openai_text(["x", "y"]), delay=0.4), Stream(openai_text(["z"])))
    gw = gateway_factory(config_for(model_server, maxConcurrent=1))
    client = ws_clients(gw.url)
    ok(send(client, "a", key="s1", run_id="c-1"))
    ok(send(client, "b", key="s2", run_id="c-2"))
    chat_events(client, "c-1")
    chat_events(client, "c-2")
    assert model_server.requests[1]["at"] >= model_server.requests[0]["at"] + 1.0


def test_anthropic_provider_streams(gateway_factory, ws_clients, model_server):
    model_server.script(Stream(anthropic_text(["Bonjour", " !"])))
    gw = gateway_factory(config_for(model_server, api="anthropic-messages"))
    client = ws_clients(gw.url)
    ok(send(client, "salut", run_id="r-claude"))
    final = chat_events(client, "r-claude")[-1]
    assert final["state"] == "final" and final["message"]["content"][0]["text"] == "Bonjour !"
    assert model_server.requests[0]["path"] == "/v1/messages"
    assert model_server.requests[0]["headers"]["x-api-key"] == "sk-test"


def test_fallback_model_when_primary_fails_before_output(gateway_factory, ws_clients, model_server):
    model_server.script(Status(400, {"error": {"message": "model gone", "type": "invalid"}}),
                        Stream(openai_text(["from fallback"])))
    config = config_for(model_server)
    config["models"]["providers"]["fake"]["models"].append({"id": "m2"})
    config["agents"]["defaults"]["model"] = {"primary": "fake/m1", "fallbacks": ["fake/m2"]}
    gw = gateway_factory(config)
    client = ws_clients(gw.url)
    ok(send(client, "hi", run_id="r-fb"))
    assert chat_events(client, "r-fb")[-1]["message"]["content"][0]["text"] == "from fallback"
    assert [r["body"]["model"] for r in model_server.requests] == ["m1", "m2"]


def test_agent_crash_fails_only_its_run(gateway_factory, ws_clients):
    gw = gateway_factory({**AUTH, "agents": {"defaults": {"model": "offline/echo"}}},
                         env={"OPENCLAW_TEST_AGENT_CRASH": "crash now"})
    client = ws_clients(gw.url)
    ok(send(client, "crash now", run_id="r-crash"))
    final = chat_events(client, "r-crash")[-1]
    assert final["state"] == "error" and "agent crashed" in final["errorMessage"]
    ok(send(client, "still here", run_id="r-alive"))
    assert chat_events(client, "r-alive")[-1]["message"]["content"][0]["text"] == "still here"
    assert ok(client.request("health"))["ok"] is True


# --- agent, agent.wait ---------------------------------------------------------------------

def test_agent_ack_then_final_on_the_same_id(gateway_factory, ws_clients, model_server):
    model_server.script(Stream(openai_text(["All", " tests", " pass."]), delay=0.2))
    gw = gateway_factory(config_for(model_server))
    client = ws_clients(gw.url)
    client.send({"type": "req", "id": "a-req", "method": "agent",
                 "params": {"message": "run tests", "idempotencyKey": "r-agent", "label": "CI"}})
    ack = ok(client.response("a-req"))
    assert ack["runId"] == "r-agent" and ack["status"] == "accepted" and ack["acceptedAt"] > 0
    repeat = ok(client.request("agent", {"message": "run tests", "idempotencyKey": "r-agent"}))
    assert repeat == {"runId": "r-agent", "status": "in_flight"}
    final = ok(client.response("a-req", timeout=10))
    assert final["status"] == "ok" and final["summary"] == "completed"
    assert final["result"]["payloads"] == [{"text": "All tests pass."}]
    assert final["result"]["meta"]["model"] == "m1"
    streams = {e["stream"] for e in agent_events(client, "r-agent")}
    assert {"lifecycle", "assistant"} <= streams
    assert any(e["state"] == "final" for e in
               [f["payload"] for f in client.events if f["event"] == "chat"])
    cached = ok(client.request("agent", {"message": "run tests", "idempotencyKey": "r-agent"}))
    assert cached == final
    assert ok(client.request("sessions.list", {"label": "CI"}))["count"] == 1


def test_agent_timeout_is_an_error_response(gateway_factory, ws_clients, model_server):
    model_server.script(Hang(30))
    gw = gateway_factory(config_for(model_server))
    client = ws_clients(gw.url)
    client.send({"type": "req", "id": "t-req", "method": "agent",
                 "params": {"message": "wait", "idempotencyKey": "r-timeout", "timeout": 1}})
    assert ok(client.response("t-req"))["status"] == "accepted"
    final = client.response("t-req", timeout=10)
    assert final["ok"] is False and final["error"]["code"] == "AGENT_TIMEOUT"
    assert final["error"]["message"] == "agent run timed out after 1s"


def test_agent_wait_times_out_for_unknown_and_running_runs(gateway_factory, ws_clients, model_server):
    model_server.script(Stream(openai_text(["slow"] * 10), delay=0.3))
    gw = gateway_factory(config_for(model_server))
    client = ws_clients(gw.url)
    assert ok(client.request("agent.wait", {"runId": "nope", "timeoutMs": 200})) == {
        "runId": "nope", "status": "timeout"}
    ok(send(client, "go", run_id="r-w"))
    assert ok(client.request("agent.wait", {"runId": "r-w", "timeoutMs": 100}))["status"] == "timeout"
    done = ok(client.request("agent.wait", {"runId": "r-w", "timeoutMs": 10_000}, timeout=12))
    assert done["status"] == "ok"


# --- sessions.compact ----------------------------------------------------------------------

def test_compact_summarises_older_turns_with_the_model(gateway_factory, ws_clients, model_server):
    gw = gateway_factory(config_for(model_server))
    client = ws_clients(gw.url)
    for i in range(5):
        model_server.script(Stream(openai_text([f"answer {i}"])))
        ok(send(client, f"question {i}", run_id=f"r-c{i}"))
        chat_events(client, f"r-c{i}")
    model_server.script(Stream(openai_text(["They asked five questions."])))
    res = ok(client.request("sessions.compact", {"key": "main"}, timeout=10))
    assert res["ok"] is True and res["compacted"] is True
    assert res["result"]["tokensAfter"] < res["result"]["tokensBefore"]
    prompt = model_server.requests[-1]["body"]["messages"][-1]["content"]
    assert "question 0" in prompt and "question 4" not in prompt  # the recent turns stay
    stored = texts(history(client))
    assert stored[0][0] == "system" and "They asked five questions." in stored[0][1]
    assert stored[1:] == [(r, t) for i in (2, 3, 4) for r, t in
                          (("user", f"question {i}"), ("assistant", f"answer {i}"))]
    ok(send(client, "and now?", run_id="r-c5"))
    chat_events(client, "r-c5")
    assert "They asked five questions." in model_server.requests[-1]["body"]["messages"][0]["content"]
    assert ok(client.request("sessions.compact", {"key": "main", "maxLines": 2})) == {
        "ok": True, "key": "agent:main:main", "compacted": True, "kept": 2}
    assert ok(client.request("sessions.compact", {"key": "nope"}))["reason"] == "no-session"
    assert ok(client.request("sessions.compact", {"key": "main", "maxLines": 5}))["reason"] == "too-short"


def test_reset_aborts_the_running_turn(gateway_factory, ws_clients, model_server):
    model_server.script(Stream(openai_text(["slow"] * 40), delay=0.2))
    gw = gateway_factory(config_for(model_server))
    client = ws_clients(gw.url)
    ok(send(client, "long", run_id="r-reset"))
    chat_events_until_delta(client, "r-reset")
    before = ok(client.request("chat.history", {"sessionKey": "main"}))["sessionId"]
    entry = ok(client.request("sessions.reset", {"key": "main"}))["entry"]
    assert entry["sessionId"] != before
    assert chat_events(client, "r-reset")[-1]["state"] == "aborted"
    assert model_server.client_closed.wait(3)
    assert history(client) == []  # the partial reply stays with the transcript it answered


def test_model_config_is_hot(gateway, client_factory):
    """agents.defaults.model applied by config.patch: the next turn uses it, and sessions.list
    shows the new defaults (the store took them)."""
    client = client_factory()
    assert send(client, "hi")["error"]["code"] == "UNAVAILABLE"
    base = ok(client.request("config.get", {}))["hash"]
    res = ok(client.request("config.patch", {"raw": '{agents: {defaults: {model: "offline/echo"}}}',
                                             "baseHash": base}, timeout=15))
    assert res["restart"] is None
    wait_until(lambda: ok(client.request("sessions.list"))["defaults"].get("model") == "echo",
               what="store defaults reloaded")
    ok(send(client, "now it works", run_id="r-hot"))
    assert chat_events(client, "r-hot")[-1]["message"]["content"][0]["text"] == "now it works"


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


def test_idle_agent_actors_are_stopped(gateway_factory, ws_clients):
    """One agent actor per busy session and one thread per run; none stays once idle."""
    gw = gateway_factory({**AUTH, "agents": {"defaults": {"model": "offline/echo"}}})
    client = ws_clients(gw.url)
    ok(send(client, "warm up", run_id="warm"))
    chat_events(client, "warm")
    baseline = _threads(gw.proc.pid)
    for i in range(30):
        ok(send(client, f"hello {i}", key=f"s{i}", run_id=f"t-{i}"))
    for i in range(30):
        assert chat_events(client, f"t-{i}")[-1]["state"] == "final"
    wait_until(lambda: _threads(gw.proc.pid) <= baseline, what="agent threads gone")
