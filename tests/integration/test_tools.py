"""The tool execution environment end to end (issue 6): the real gateway with its
ToolExecutor, real tool processes, `tools.invoke` over WebSocket, `POST /tools/invoke`, the
exec approval flow, and an agent turn against the local model stand-in that calls a tool."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import json5
import pytest

from tests.conftest import TOKEN, chat_events, ok, wait_until
from tests.fakes.model_server import Stream, anthropic_text, anthropic_tool_use, openai_text, openai_tool_calls
from tests.procfs import stdin_unread

AUTH = {"gateway": {"auth": {"mode": "token", "token": TOKEN}}}
FULL = {**AUTH, "tools": {"exec": {"security": "full", "ask": "off"}}}
WRITER = ["operator.read", "operator.write"]  # no approvals scope: not an approver
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def with_model(server, api: str = "openai-completions") -> dict:
    """FULL with the local model stand-in as the agent's model."""
    base = server.url if api == "anthropic-messages" else server.url + "/v1"
    return {**FULL, "models": {"providers": {"fake": {
        "api": api, "baseUrl": base, "apiKey": "sk-test",
        "timeoutSeconds": 5, "models": [{"id": "m1"}]}}}, "agents": {"defaults": {"model": "fake/m1"}}}


def invoke(client, name: str, args: dict, timeout: float = 15.0, **extra) -> dict:
    return ok(client.request("tools.invoke", {"name": name, "args": args, **extra}, timeout=timeout))


def marked(tag: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line holds `tag`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if tag in cmdline and state != "Z" and "pytest" not in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture
def sleep_arg():
    """A unique `sleep` argument (seconds, up to ~2.8 h) that marks one test's tool processes;
    any still alive at the end (a failed test) are killed."""
    arg = f"{1000 + uuid.uuid4().int % 9000}.{uuid.uuid4().int % 1000}"
    yield arg
    for pid in marked(f"sleep {arg}"):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_exec_runs_in_the_workspace_and_reports_failure(gateway_factory, ws_clients):
    gw = gateway_factory(FULL)
    client = ws_clients(gw.url, scopes=WRITER)
    res = invoke(client, "exec", {"command": "echo hi; pwd; echo oops >&2"})
    assert res["ok"] is True and res["toolName"] == "exec"
    out = res["output"]
    assert out["status"] == "completed" and out["exitCode"] == 0
    lines = out["output"].splitlines()
    assert lines[0] == "hi" and Path(lines[1]) == (gw.state_dir / "workspace").resolve()
    assert "oops" in lines
    res = invoke(client, "exec", {"command": "exit 2"})
    assert res == {"ok": False, "toolName": "exec", "error": {
        "message": "command exited with code 2", "output": res["error"]["output"]}}
    assert res["error"]["output"]["exitCode"] == 2


def test_timeout_kills_the_whole_group_and_output_is_capped(gateway_factory, ws_clients, sleep_arg):
    gw = gateway_factory({**FULL, "tools": {"exec": {"security": "full", "ask": "off",
                                                      "outputCap": 1000}}})
    client = ws_clients(gw.url, scopes=WRITER)
    tag = sleep_arg
    res = invoke(client, "exec", {"command": f"sleep {tag} & sleep {tag} & wait", "timeout": 1})
    assert res["ok"] is False and res["error"]["message"] == "command timed out"
    wait_until(lambda: not marked(f"sleep {tag}"), 8, what="the timed-out group to be gone")
    res = invoke(client, "exec", {"command": "printf 'x%.0s' $(seq 5000)"})
    out = res["output"]["output"]
    assert out.startswith("[output truncated: 4000 chars dropped]\n") and out.endswith("x" * 1000)


def test_background_jobs_are_listed_polled_and_killed(gateway_factory, ws_clients):
    gw = gateway_factory(FULL)
    client = ws_clients(gw.url, scopes=WRITER)
    res = invoke(client, "exec", {"command": "echo started; read line; echo got $line; sleep 300",
                                  "yieldMs": 300})
    running = res["output"]
    assert running["status"] == "running" and running["sessionId"]
    sid = running["sessionId"]
    rows = invoke(client, "process", {"action": "list"})["output"]["sessions"]
    assert [r["sessionId"] for r in rows] == [sid] and rows[0]["status"] == "running"
    invoke(client, "process", {"action": "write", "sessionId": sid, "data": "ping\n"})
    seen = ""

    def polled() -> bool:
        nonlocal seen
        seen += invoke(client, "process", {"action": "poll", "sessionId": sid})["output"]["output"]
        return "got ping" in seen
    wait_until(polled, 5, what="the job's answer")
    assert seen.count("started") == 1  # poll returns new output only
    assert invoke(client, "process", {"action": "kill", "sessionId": sid})["ok"] is True
    wait_until(lambda: invoke(client, "process", {"action": "list"})["output"]["sessions"][0]["status"]
               == "exited", 8, what="the killed job to exit")
    res = invoke(client, "process", {"action": "poll", "sessionId": "nope"})
    assert res["ok"] is False and "no background session" in res["error"]["message"]


def test_file_tools_stay_in_the_workspace(gateway_factory, ws_clients, tmp_path):
    gw = gateway_factory(FULL)
    client = ws_clients(gw.url, scopes=WRITER)
    assert invoke(client, "write", {"path": "notes/a.txt", "content": "one two"})["ok"] is True
    assert invoke(client, "edit", {"path": "notes/a.txt", "oldText": "two", "newText": "2"})["ok"]
    assert invoke(client, "read", {"path": "notes/a.txt"})["output"]["content"] == "one 2"
    res = invoke(client, "read", {"path": "../openclaw.json"})
    assert res["ok"] is False and "escapes the workspace" in res["error"]["message"]
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (gw.state_dir / "workspace" / "link").symlink_to(outside)
    res = invoke(client, "read", {"path": "link"})
    assert res["ok"] is False and "escapes the workspace" in res["error"]["message"]
    res = client.request("tools.invoke", {"name": "read", "args": {"path": "a", "bogus": 1}})
    assert res["error"]["code"] == "INVALID_REQUEST"
    assert res["error"]["message"].startswith("invalid args for read:")
    res = client.request("tools.invoke", {"name": "nope"})
    assert res["error"] == {"code": "INVALID_REQUEST", "message": "tool not available: nope"}


def test_http_tools_invoke(gateway):
    url = f"http://127.0.0.1:{gateway.port}/tools/invoke"
    body = {"tool": "exec", "args": {"command": "true"}}
    assert httpx.post(url, json=body).status_code == 401
    res = httpx.post(url, json={"tool": "write", "args": {"path": "h.txt", "content": "x"}},
                     headers=BEARER)
    assert res.status_code == 200 and res.json() == {"ok": True, "result": {
        "path": "h.txt", "bytes": 1, "created": True}}
    res = httpx.post(url, json={"name": "nope"}, headers=BEARER)
    assert res.status_code == 404 and res.json()["error"]["type"] == "not_found"
    res = httpx.post(url, json={"tool": "read", "args": {"path": "missing.txt"}}, headers=BEARER)
    assert res.status_code == 400 and res.json()["error"]["type"] == "tool_error"
    res = httpx.post(url, json={"tool": "read", "args": {"nope": 1}}, headers=BEARER)
    assert res.status_code == 400 and res.json()["error"]["type"] == "invalid_request"
    assert httpx.get(url, headers=BEARER).status_code == 405
    res = httpx.post(url, content=b"{" + b" " * (2 * 1024 * 1024 + 10) + b"}", headers=BEARER)
    assert res.status_code == 413


def test_no_approver_means_the_fallback_denies(gateway_factory, ws_clients):
    gw = gateway_factory(AUTH)  # security allowlist, ask on-miss, askFallback deny
    client = ws_clients(gw.url, scopes=WRITER)
    res = invoke(client, "exec", {"command": "echo hi"})
    assert res["ok"] is False
    assert res["error"]["message"] == "exec denied: no approver connected (tools.exec.askFallback=deny)"


def _ask_in_thread(client, command: str) -> tuple[threading.Thread, list]:
    box: list = []
    thread = threading.Thread(target=lambda: box.append(invoke(client, "exec", {"command": command},
                                                               timeout=20)), daemon=True)
    thread.start()
    return thread, box


def test_approval_flow_over_websocket(gateway_factory, ws_clients):
    gw = gateway_factory(AUTH)
    approver = ws_clients(gw.url, scopes=["operator.approvals"], client={
        "id": "test", "displayName": "Ops laptop", "version": "1.0.0", "platform": "linux", "mode": "test"})
    client = ws_clients(gw.url, scopes=WRITER)
    # allow-once: the command runs
    thread, box = _ask_in_thread(client, "echo approved-once")
    asked = approver.event("exec.approval.requested", timeout=10)["payload"]
    assert asked["id"].startswith("ap_") and asked["request"]["command"] == "echo approved-once"
    assert asked["request"]["commandArgv"] == ["echo", "approved-once"]
    assert asked["request"]["host"] == "gateway" and asked["request"]["ask"] == "on-miss"
    listed = ok(approver.request("exec.approval.list"))["approvals"]
    assert [a["id"] for a in listed] == [asked["id"]]
    assert ok(approver.request("exec.approval.resolve", {"id": asked["id"][:8], "decision": "allow-once"}))
    resolved = approver.event("exec.approval.resolved")["payload"]
    assert resolved["id"] == asked["id"] and resolved["decision"] == "allow-once"
    assert resolved["resolvedBy"] == "Ops laptop"
    thread.join(10)
    assert box[0]["ok"] is True and box[0]["output"]["output"] == "approved-once\n"
    # deny: refused
    thread, box = _ask_in_thread(client, "echo nope")
    asked = approver.event("exec.approval.requested", timeout=10)["payload"]
    ok(approver.request("exec.approval.resolve", {"id": asked["id"], "decision": "deny"}))
    thread.join(10)
    assert box[0] == {"ok": False, "toolName": "exec", "error": {"message": "exec denied"}}
    res = approver.request("exec.approval.resolve", {"id": asked["id"], "decision": "deny"})
    assert res["error"]["code"] == "APPROVAL_NOT_FOUND"
    res = approver.request("exec.approval.resolve", {"id": "ap_x", "decision": "maybe"})
    assert res["error"]["message"] == "invalid decision"


def test_allow_always_extends_the_allowlist(gateway_factory, ws_clients):
    gw = gateway_factory(AUTH)
    approver = ws_clients(gw.url, scopes=["operator.approvals"])
    client = ws_clients(gw.url, scopes=WRITER)
    thread, box = _ask_in_thread(client, "uname")
    asked = approver.event("exec.approval.requested", timeout=10)["payload"]
    ok(approver.request("exec.approval.resolve", {"id": asked["id"], "decision": "allow-always"}))
    thread.join(10)
    assert box[0]["ok"] is True
    resolved_path = asked["request"]["resolvedPath"]
    wait_until(lambda: {"pattern": resolved_path} in (json5.loads(gw.config_path.read_text())
                                                       .get("tools", {}).get("exec", {}).get("allowlist", [])),
               10, what="the allowlist entry in the config file")
    # the next uname runs without asking (the reload is hot)
    wait_until(lambda: invoke(client, "exec", {"command": "uname"})["ok"], 10,
               what="uname to run from the allowlist")
    assert not [e for e in approver.events if e["event"] == "exec.approval.requested"]


def test_kill_9_of_the_gateway_leaves_no_tool_process(gateway_factory, ws_clients, sleep_arg):
    gw = gateway_factory(FULL)
    client = ws_clients(gw.url, scopes=WRITER)
    tag = sleep_arg
    res = invoke(client, "exec", {"command": f"sleep {tag} & sleep {tag} & wait", "background": True})
    assert res["output"]["status"] == "running"
    wait_until(lambda: len(marked(f"sleep {tag}")) >= 3, 5, what="bash and its two sleeps")
    os.kill(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait(5)
    wait_until(lambda: not marked(f"sleep {tag}"), 10, what="the tool processes to die with the gateway")


def reapers_of(pid: int) -> list[int]:
    """Live reaper processes started by the gateway `pid`."""
    found = []
    for child in marked("actors.tools.reaper"):
        try:
            if int((Path("/proc") / str(child) / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(child)
        except OSError:
            continue
    return found


def test_a_dead_reaper_is_replaced_before_the_next_exec(gateway_factory, ws_clients, sleep_arg):
    gw = gateway_factory(FULL)
    client = ws_clients(gw.url, scopes=WRITER)
    [first] = wait_until(lambda: reapers_of(gw.proc.pid), 5, what="the gateway's reaper")
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not reapers_of(gw.proc.pid), 5, what="the reaper to die")
    tag = sleep_arg
    # two children: PDEATHSIG reaches bash only, the reaper has to kill them
    res = invoke(client, "exec", {"command": f"sleep {tag} & sleep {tag} & wait", "background": True})
    assert res["output"]["status"] == "running"
    [second] = wait_until(lambda: reapers_of(gw.proc.pid), 5, what="a new reaper")
    assert second != first
    wait_until(lambda: len(marked(f"sleep {tag}")) >= 3, 5, what="bash and its two sleeps")
    wait_until(lambda: stdin_unread(second) == 0, 5, what="the new reaper to read its watch lines")
    os.kill(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait(5)
    wait_until(lambda: not marked(f"sleep {tag}"), 10, what="the sleeps to die with the gateway")


def test_agent_turn_calls_a_tool_and_answers(gateway_factory, ws_clients, model_server):
    model_server.script(
        Stream(openai_tool_calls([("call_1", "exec", ['{"command": "echo ', 'tool-output"}'])])),
        Stream(openai_text(["The command said ", "tool-output."])))
    gw = gateway_factory(with_model(model_server))
    client = ws_clients(gw.url, caps=["tool-events"])
    run_id = str(uuid.uuid4())
    ok(client.request("chat.send", {"sessionKey": "main", "message": "run echo", "idempotencyKey": run_id}))
    final = None
    tools = []
    deadline = time.monotonic() + 15
    while final is None and time.monotonic() < deadline:
        frame = client.recv(15)
        if frame.get("event") == "agent" and frame["payload"]["stream"] == "tool":
            tools.append(frame["payload"]["data"])
        if frame.get("event") == "chat" and frame["payload"]["state"] in ("final", "error"):
            final = frame["payload"]
    assert final is not None and final["state"] == "final", final
    assert "tool-output." in final["message"]["content"][0]["text"]
    assert {(t["name"], t["toolCallId"]) for t in tools} == {("exec", "call_1")}
    phases = [t["phase"] for t in tools]
    assert phases[0] == "start" and phases[-1] == "result" and set(phases[1:-1]) <= {"update"}
    assert "".join(t["partialResult"] for t in tools if t["phase"] == "update") == "tool-output\n"
    assert tools[-1]["isError"] is False and tools[-1]["result"]["output"] == "tool-output\n"
    # the model's second turn read the tool result
    second = model_server.requests[1]["body"]
    tool_msgs = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool_msgs == [{"role": "tool", "tool_call_id": "call_1", "content": "tool-output\n"}]
    assert any(t["function"]["name"] == "exec" for t in second["tools"])
    history = ok(client.request("chat.history", {"sessionKey": "main"}))["messages"]
    roles = [m["role"] for m in history]
    assert roles == ["user", "assistant", "toolResult", "assistant"], roles
    assert history[2]["toolCallId"] == "call_1" and history[2]["isError"] is False


def test_anthropic_tool_use_runs_the_tool_and_returns_a_tool_result(gateway_factory, ws_clients,
                                                                     model_server):
    model_server.script(
        Stream(anthropic_tool_use("Checking.", "toolu_1", "write",
                                  ['{"path": "note.txt", ', '"content": "from claude"}'])),
        Stream(anthropic_text(["Written."])))
    gw = gateway_factory(with_model(model_server, api="anthropic-messages"))
    client = ws_clients(gw.url)
    run_id = str(uuid.uuid4())
    ok(client.request("chat.send", {"sessionKey": "main", "message": "write a note", "idempotencyKey": run_id}))
    final = chat_events(client, run_id, timeout=15)[-1]
    assert final["state"] == "final" and final["message"]["content"][0]["text"] == "Checking.\n\nWritten."
    assert (Path(gw.state_dir) / "workspace" / "note.txt").read_text() == "from claude"
    first, second = (r["body"] for r in model_server.requests[:2])
    assert any(t["name"] == "write" and t["input_schema"]["type"] == "object" for t in first["tools"])
    assistant, results = second["messages"][-2:]
    assert assistant == {"role": "assistant", "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "write",
         "input": {"path": "note.txt", "content": "from claude"}}]}
    assert results["role"] == "user" and results["content"][0]["type"] == "tool_result"
    assert results["content"][0]["tool_use_id"] == "toolu_1" and "is_error" not in results["content"][0]


def test_a_failing_tool_goes_back_to_the_model(gateway_factory, ws_clients, model_server):
    model_server.script(
        Stream(openai_tool_calls([("call_9", "read", ['{"path": "missing.txt"}'])])),
        Stream(openai_text(["No such file, sorry."])))
    gw = gateway_factory(with_model(model_server))
    client = ws_clients(gw.url)
    run_id = str(uuid.uuid4())
    ok(client.request("chat.send", {"sessionKey": "main", "message": "read it", "idempotencyKey": run_id}))
    final = chat_events(client, run_id, timeout=15)[-1]
    assert final["state"] == "final"
    tool_msgs = [m for m in model_server.requests[1]["body"]["messages"] if m["role"] == "tool"]
    assert tool_msgs == [{"role": "tool", "tool_call_id": "call_9",
                          "content": "Error: no such file: missing.txt"}]
    history = ok(client.request("chat.history", {"sessionKey": "main"}))["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "toolResult", "assistant"]
    assert history[2]["isError"] is True


def test_abort_kills_the_running_tool(gateway_factory, ws_clients, model_server, sleep_arg):
    tag = sleep_arg
    model_server.script(Stream(openai_tool_calls(
        [("call_5", "exec", [json.dumps({"command": f"sleep {tag}"})])])))
    gw = gateway_factory(with_model(model_server))
    client = ws_clients(gw.url)
    ok(client.request("chat.send", {"sessionKey": "main", "message": "sleep",
                                    "idempotencyKey": str(uuid.uuid4())}))
    wait_until(lambda: marked(f"sleep {tag}"), 10, what="the tool's process")
    assert ok(client.request("chat.abort", {"sessionKey": "main"}))["aborted"] is True
    wait_until(lambda: not marked(f"sleep {tag}"), 5, what="the aborted tool's process to die")
    last = wait_until(lambda: (ok(client.request("chat.history", {"sessionKey": "main"}))["messages"]
                               or [{}])[-1].get("role") == "toolResult" and
                      ok(client.request("chat.history", {"sessionKey": "main"}))["messages"][-1], 5,
                      what="the aborted call's result in the transcript")
    assert last["isError"] is True and last["toolCallId"] == "call_5"
