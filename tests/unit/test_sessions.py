"""SessionStore on real SQLite and real pykka actors: keys, transcripts, rows, reset policy,
durability across stop/reopen and `kill -9`, and list timing with 10,000 sessions."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from actors import registry
from actors.base import GatewayActor
from actors.sessions.keys import SessionKeyError, agent_id_of, kind_of, normalize_key
from actors.sessions.store import SessionStore, db_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(state: Path):
    ref = SessionStore.start(str(state))
    proxy = ref.proxy()
    yield proxy
    if ref.is_alive():
        ref.stop(timeout=10)


def g(future):
    return future.get(timeout=10)


# --- keys -------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, canonical, agent, kind", [
    ("main", "agent:main:main", "main", "direct"),
    ("MAIN", "agent:main:main", "main", "direct"),
    (" agent:Main:Main ", "agent:main:main", "main", "direct"),
    ("telegram:direct:123", "agent:main:telegram:direct:123", "main", "direct"),
    ("agent:work:telegram:group:-100", "agent:work:telegram:group:-100", "work", "group"),
    ("discord:channel:42", "agent:main:discord:channel:42", "main", "group"),
    ("global", "global", "main", "global"),
    ("Unknown", "unknown", "main", "unknown"),
    ("agent:ops:main", "agent:ops:main", "ops", "direct"),
])
def test_key_normalization(raw, canonical, agent, kind):
    assert normalize_key(raw) == canonical
    assert agent_id_of(raw) == agent
    assert kind_of(raw) == kind


@pytest.mark.parametrize("bad", ["", "   ", "agent:", "agent:main", "agent:main:", "agent:b@d:x",
                                 "a::b", 7])
def test_bad_keys(bad):
    with pytest.raises(SessionKeyError):
        normalize_key(bad)


# --- rows and transcripts ---------------------------------------------------------------------

def test_create_append_history_order(store, state):
    row = g(store.get_or_create("main", channel="telegram", peer="123", display_name="Ann"))
    assert row["key"] == "agent:main:main" and row["kind"] == "direct"
    assert row["channel"] == "telegram" and row["peer"] == "123" and row["displayName"] == "Ann"
    assert uuid.UUID(row["sessionId"])
    assert os.path.exists(db_path(str(state), "main"))
    stored = [g(store.append("MAIN", {"role": "user" if i % 2 == 0 else "assistant",
                                      "content": f"m{i}", "runId": "r1"}))
              for i in range(5)]
    assert [m["__openclaw"]["seq"] for m in stored] == [1, 2, 3, 4, 5]
    assert stored[0]["content"] == [{"type": "text", "text": "m0"}] and stored[0]["runId"] == "r1"
    hist = g(store.history("agent:main:main", limit=3))
    assert hist["sessionId"] == row["sessionId"] and hist["hasMore"] is True
    assert [m["content"][0]["text"] for m in hist["messages"]] == ["m2", "m3", "m4"]
    older = g(store.history("main", limit=10, before=3))
    assert [m["__openclaw"]["seq"] for m in older["messages"]] == [1, 2]
    assert older["hasMore"] is False
    capped = g(store.history("main", max_chars=1))
    assert capped["messages"][0]["content"][0]["text"] == "m"
    assert g(store.history("nope")) == {"sessionKey": "agent:main:nope", "sessionId": None,
                                        "thinkingLevel": None, "hasMore": False,
                                        "inFlightRun": None, "messages": []}


def test_tool_calls_and_large_messages(store):
    call = {"type": "toolCall", "id": "c1", "name": "exec", "arguments": {"cmd": "ls"}}
    g(store.append("main", {"role": "assistant", "content": [call], "stopReason": "toolUse"}))
    g(store.append("main", {"role": "toolResult", "toolCallId": "c1", "toolName": "exec",
                            "content": "a b"}))
    g(store.append("main", {"role": "assistant", "content": "x" * 1_100_000}))
    msgs = g(store.history("main"))["messages"]
    assert msgs[0]["content"] == [call] and msgs[0]["stopReason"] == "toolUse"
    assert msgs[1]["role"] == "toolResult" and msgs[1]["toolCallId"] == "c1"
    assert msgs[2]["content"] == [{"type": "text", "text": "[chat.history omitted: message too large]"}]


def test_labels_unique_and_patch_clears(store):
    g(store.patch("a", {"label": "Inbox"}))
    with pytest.raises(ValueError, match="label already in use: Inbox"):
        g(store.patch("b", {"label": "Inbox"}))
    row = g(store.patch("a", {"label": "Inbox", "model": "openai/gpt-5", "thinkingLevel": "high",
                              "sendPolicy": "deny", "fastMode": True, "execHost": "sandbox"}))
    assert row["label"] == "Inbox" and row["model"] == "gpt-5" and row["modelProvider"] == "openai"
    assert row["thinkingLevel"] == "high" and row["sendPolicy"] == "deny"
    assert row["fastMode"] is True and row["execHost"] == "sandbox"
    row = g(store.patch("a", {"label": None, "model": None, "fastMode": None, "sendPolicy": None}))
    for gone in ("label", "model", "modelProvider", "fastMode", "sendPolicy"):
        assert gone not in row
    assert row["thinkingLevel"] == "high" and row["execHost"] == "sandbox"
    assert g(store.patch("b", {"label": "Inbox"}))["label"] == "Inbox"  # freed
    with pytest.raises(ValueError, match="invalid sendPolicy"):
        g(store.patch("a", {"sendPolicy": "maybe"}))
    with pytest.raises(ValueError, match="invalid label"):
        g(store.patch("a", {"label": "x" * 65}))
    with pytest.raises(ValueError, match="unknown field: bogus"):
        g(store.patch("a", {"bogus": 1}))
    # a missing session is created by patch
    assert g(store.row("c")) is None
    assert g(store.patch("c", {"verboseLevel": "on"}))["verboseLevel"] == "on"


def test_reset_keeps_old_messages(store):
    first = g(store.get_or_create("main"))["sessionId"]
    g(store.patch("main", {"model": "openai/auto"}, auto=True))
    g(store.patch("main", {"thinkingLevel": "low"}))
    g(store.append("main", {"role": "user", "content": "before", "usage": {"input": 5}}))
    row = g(store.reset("main"))
    assert row["sessionId"] != first and row["inputTokens"] == 0
    assert "model" not in row and row["thinkingLevel"] == "low"
    assert g(store.history("main"))["messages"] == []
    old = g(store.messages(first))
    assert [m["content"][0]["text"] for m in old] == ["before"]
    g(store.append("main", {"role": "user", "content": "after"}))
    assert [m["content"][0]["text"] for m in g(store.history("main"))["messages"]] == ["after"]
    ids = g(store.session_ids("main"))
    assert [i["sessionId"] for i in ids] == [first, row["sessionId"]]
    assert ids[0]["endReason"] == "reset" and ids[1]["endedAt"] is None
    with pytest.raises(ValueError, match="session not found: agent:main:ghost"):
        g(store.reset("ghost"))


def test_delete(store):
    with pytest.raises(ValueError, match=r"cannot delete the main session \(agent:main:main\)"):
        g(store.delete("main"))
    g(store.append("work", {"role": "user", "content": "x"}))
    old = g(store.row("work"))["sessionId"]
    g(store.reset("work"))
    g(store.append("work", {"role": "user", "content": "y"}))
    assert g(store.delete("work")) == {"ok": True, "key": "agent:main:work", "deleted": True,
                                      "archived": []}
    assert g(store.row("work")) is None and g(store.messages(old)) == []
    assert g(store.delete("work"))["deleted"] is False
    g(store.append("keep", {"role": "user", "content": "z"}))
    sid = g(store.row("keep"))["sessionId"]
    out = g(store.delete("keep", delete_transcript=False))
    assert out["archived"] == [sid]


def test_list_paging_filters_search(store):
    base = 1_800_000_000_000
    for i in range(25):
        g(store.get_or_create(f"telegram:direct:{i}", display_name=f"User {i}", now=base + i * 1000))
    g(store.get_or_create("global", now=base + 99_000))
    g(store.get_or_create("unknown", now=base + 98_000))
    g(store.patch("telegram:direct:3", {"label": "Ops Room"}, now=base + 50_000))
    page = g(store.list(limit=10, now=base + 100_000))
    assert page["count"] == 10 and page["totalCount"] == 25 and page["hasMore"] is True
    assert page["nextOffset"] == 10 and page["limitApplied"] == 10
    keys = [r["key"] for r in page["sessions"]]
    assert keys[0] == "agent:main:telegram:direct:3"  # patched last: newest updatedAt
    assert keys[1:3] == ["agent:main:telegram:direct:24", "agent:main:telegram:direct:23"]
    updated = [r["updatedAt"] for r in page["sessions"]]
    assert updated == sorted(updated, reverse=True)
    last = g(store.list(limit=10, offset=20, now=base + 100_000))
    assert last["count"] == 5 and last["hasMore"] is False and last["nextOffset"] is None
    seen = set()
    for offset in (0, 10, 20):
        seen |= {r["key"] for r in g(store.list(limit=10, offset=offset))["sessions"]}
    assert len(seen) == 25
    assert g(store.list(includeGlobal=True, includeUnknown=True))["totalCount"] == 27
    assert g(store.list(includeGlobal=True))["totalCount"] == 26
    assert [r["key"] for r in g(store.list(label="Ops Room"))["sessions"]] == \
        ["agent:main:telegram:direct:3"]
    assert g(store.list(search="ops room"))["totalCount"] == 1  # label, case-insensitive
    assert g(store.list(search="USER 1"))["totalCount"] == 11  # displayName 1, 10..19
    assert g(store.list(search="DIRECT:2"))["totalCount"] == 6  # key 2, 20..24
    assert g(store.list(search="%"))["totalCount"] == 0  # LIKE wildcards are literal
    assert g(store.list(activeMinutes=1, now=base + 100_000))["totalCount"] == 1  # patched at +50 s
    assert g(store.list(agentId="other"))["totalCount"] == 0
    g(store.append("agent:other:main", {"role": "user", "content": "hello other"}))
    assert g(store.list(agentId="other"))["totalCount"] == 1
    assert g(store.list(limit=1000))["totalCount"] == 26
    g(store.append("telegram:direct:5", {"role": "assistant", "content": "last words"},
                 now=base + 200_000))
    top = g(store.list(limit=1, includeLastMessage=True))["sessions"][0]
    assert top["key"] == "agent:main:telegram:direct:5" and top["lastMessagePreview"] == "last words"


def test_preview(store):
    for i in range(5):
        g(store.append("main", {"role": "user" if i % 2 == 0 else "assistant",
                                "content": f"message {i} " + "y" * 100}))
    g(store.append("main", {"role": "toolResult", "content": "out"}))
    g(store.append("main", {"role": "weird", "content": "?"}))
    g(store.get_or_create("empty"))
    out = g(store.preview(["main", "empty", "nope"], limit=3, maxChars=20))
    main, empty, missing = out["previews"]
    assert main["status"] == "ok" and [i["role"] for i in main["items"]] == ["user", "tool", "other"]
    assert main["items"][0]["text"] == "message 4 " + "y" * 9 + "…"
    assert len(main["items"][0]["text"]) == 20
    assert empty == {"key": "agent:main:empty", "status": "empty", "items": []}
    assert missing == {"key": "agent:main:nope", "status": "missing", "items": []}
    assert g(store.preview(["agent:"]))["previews"][0]["status"] == "error"


def _ms(*args) -> int:
    return int(dt.datetime(*args).timestamp() * 1000)  # naive = local time


def test_daily_reset_policy(store):
    policy = {"mode": "daily", "atHour": 4}
    g(store.get_or_create("main", now=_ms(2030, 5, 1, 10, 0)))
    first = g(store.row("main"))["sessionId"]
    assert g(store.apply_reset_policy("main", now=_ms(2030, 5, 1, 23, 0), policy=policy)) is False
    assert g(store.apply_reset_policy("main", now=_ms(2030, 5, 2, 3, 59), policy=policy)) is False
    assert g(store.apply_reset_policy("main", now=_ms(2030, 5, 2, 4, 1), policy=policy)) is True
    second = g(store.row("main"))["sessionId"]
    assert second != first
    assert g(store.apply_reset_policy("main", now=_ms(2030, 5, 2, 12, 0), policy=policy)) is False
    assert g(store.apply_reset_policy("main", now=_ms(2030, 5, 1, 12, 0),
                                      policy={"mode": "none"})) is False
    assert g(store.apply_reset_policy("ghost", now=_ms(2030, 5, 9, 12, 0), policy=policy)) is False


def test_idle_reset_policy(store):
    g(store.set_reset_policy({"mode": "idle", "idleMinutes": 30}))
    t0 = _ms(2030, 5, 1, 10, 0)
    g(store.get_or_create("main", now=t0))
    g(store.append("main", {"role": "user", "content": "hi"}, now=t0 + 60_000))
    g(store.append("main", {"role": "assistant", "content": "yo"}, now=t0 + 40 * 60_000))
    sid = g(store.row("main"))["sessionId"]
    # the assistant's later reply does not count as user interaction
    assert g(store.apply_reset_policy("main", now=t0 + 31 * 60_000)) is False
    assert g(store.apply_reset_policy("main", now=t0 + 32 * 60_000)) is True
    assert g(store.row("main"))["sessionId"] != sid
    assert g(store.apply_reset_policy("main", now=t0 + 33 * 60_000)) is False


def test_reopen_keeps_everything(state):
    ref = SessionStore.start(str(state))
    s = ref.proxy()
    g(s.patch("work", {"label": "Work", "thinkingLevel": "high"}))
    g(s.append("work", {"role": "user", "content": "remember me"}))
    g(s.append("agent:ops:main", {"role": "user", "content": "ops"}))
    before = g(s.row("work"))
    ref.stop(timeout=10)
    assert not os.path.exists(db_path(str(state)) + "-wal") or \
        os.path.getsize(db_path(str(state)) + "-wal") == 0
    ref = SessionStore.start(str(state))
    try:
        s = ref.proxy()
        assert g(s.row("work")) == before
        assert g(s.history("work"))["messages"][0]["content"][0]["text"] == "remember me"
        assert g(s.list(agentId="ops"))["totalCount"] == 1
        assert g(s.list())["totalCount"] == 2  # both agents' databases were found on start
        assert g(s.schema_version()) == 1
    finally:
        ref.stop(timeout=10)


class FakeHealth(GatewayActor):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list = []

    def set_sessions(self, agent_id, count, recent):
        self.calls.append((agent_id, count, recent))

    def seen(self):
        return list(self.calls)


def test_tells_health(state):
    health = FakeHealth.start()
    registry.register("health", health)
    ref = SessionStore.start(str(state))
    try:
        g(ref.proxy().append("main", {"role": "user", "content": "x"}))
        g(ref.proxy().get_or_create("b"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            calls = g(health.proxy().seen())
            if calls and calls[-1][1] == 2:
                break
            time.sleep(0.01)
        agent, count, recent = calls[-1]
        assert agent == "main" and count == 2
        assert {r["key"] for r in recent} == {"agent:main:main", "agent:main:b"}
        assert set(recent[0]) == {"key", "updatedAt", "age"}
    finally:
        ref.stop(timeout=10)
        registry.unregister("health", health)
        health.stop()


CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from actors.sessions.store import SessionStore
    store = SessionStore.start(sys.argv[1]).proxy()
    i = 0
    while True:
        i += 1
        store.append("main", {"role": "user", "content": f"msg {i}"}).get(timeout=10)
        sys.stdout.write(f"{i}\\n")
        sys.stdout.flush()
""")


def test_kill_9_keeps_acknowledged_messages(state, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    target = 40
    proc = subprocess.Popen([sys.executable, str(script), str(state), str(ROOT)],
                            stdout=subprocess.PIPE, text=True)
    try:
        acked = 0
        while acked < target:
            line = proc.stdout.readline()
            assert line, "child exited early"
            acked = int(line)
        os.kill(proc.pid, signal.SIGKILL)  # right after append #target returned
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    path = db_path(str(state))
    with sqlite3.connect(path) as raw:  # recovery of the WAL happens on open
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    ref = SessionStore.start(str(state))
    try:
        texts = [m["content"][0]["text"] for m in g(ref.proxy().history("main", limit=1000))["messages"]]
        assert texts[:target] == [f"msg {i}" for i in range(1, target + 1)]
        assert len(texts) in (target, target + 1)
    finally:
        ref.stop(timeout=10)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()


def test_list_10000_sessions_timing(state, capsys):
    ref = SessionStore.start(str(state))
    ref.stop(timeout=10)  # schema created; bulk-load rows directly in one transaction
    base = 1_800_000_000_000
    with sqlite3.connect(db_path(str(state))) as raw:
        raw.executemany(
            "INSERT INTO sessions (key, agent_id, session_id, kind, display_name, label, "
            "created_at, updated_at, started_at) VALUES (?, 'main', ?, 'direct', ?, ?, ?, ?, ?)",
            [(f"agent:main:telegram:direct:{i}", str(uuid.uuid4()), f"User {i}",
              f"label {i}" if i % 10 == 0 else None, base, base + i * 7 % 100_003, base)
             for i in range(10_000)])
        raw.executemany("INSERT INTO messages (session_id, seq, id, role, content, ts) "
                        "SELECT session_id, 1, session_id, 'user', '[{\"type\":\"text\",\"text\":\"hi\"}]', "
                        "updated_at FROM sessions WHERE key = ?",
                        [(f"agent:main:telegram:direct:{i}",) for i in range(0, 10_000, 3)])
    raw.close()
    ref = SessionStore.start(str(state))
    try:
        store = ref.proxy()
        figures = {}
        for name, kwargs in [("page 100", {}), ("page 100 offset 5000", {"offset": 5000}),
                             ("page 100 + lastMessage", {"includeLastMessage": True}),
                             ("search", {"search": "user 99"}), ("label", {"label": "label 500"}),
                             ("activeMinutes", {"activeMinutes": 1, "now": base + 100_000})]:
            g(store.list(limit=100, **kwargs))  # warm
            runs = []
            for _ in range(20):
                started = time.perf_counter()
                result = g(store.list(limit=100, **kwargs))
                runs.append((time.perf_counter() - started) * 1000)
            runs.sort()
            figures[name] = (runs[len(runs) // 2], runs[-1], result["totalCount"])
        assert figures["page 100"][2] == 10_000
        with capsys.disabled():
            print()
            for name, (median, worst, total) in figures.items():
                print(f"sessions.list 10k {name}: median {median:.2f} ms, max {worst:.2f} ms "
                      f"(totalCount {total}, via pykka proxy)")
    finally:
        ref.stop(timeout=10)


