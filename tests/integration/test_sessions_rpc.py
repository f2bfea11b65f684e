"""Session methods (protocol §13.1-§13.6), chat.history (§14.2) and `sessions.changed` (§7.5)
against a real gateway process."""

from __future__ import annotations

import pytest

from tests.conftest import TOKEN, error, ok, wait_until

READ_ONLY = ["operator.read"]
WRITE_ONLY = ["operator.write"]


def test_patch_creates_session_and_other_client_sees_changed(gateway, client_factory):
    admin, watcher = client_factory(), client_factory(scopes=READ_ONLY)
    assert "sessions.changed" in admin.hello["features"]["events"]
    payload = ok(admin.request("sessions.patch", {"key": "work", "label": "Work"}))
    assert payload["ok"] is True and payload["key"] == "agent:main:work"
    assert payload["path"] == str(gateway.state_dir / "agents" / "main" / "sessions.sqlite")
    entry = payload["entry"]
    assert entry["key"] == "agent:main:work" and entry["label"] == "Work"
    assert {"key", "kind", "sessionId", "updatedAt"} <= set(entry)
    assert set(payload["resolved"]) == {"modelProvider", "model"}

    event = watcher.event("sessions.changed")["payload"]
    assert event["key"] == "agent:main:work" and event["reason"] == "patch"
    assert isinstance(event["ts"], int) and event["session"]["label"] == "Work"
    assert event["session"]["sessionId"] == entry["sessionId"]

    # null clears an override; model splits into provider/model
    payload = ok(admin.request("sessions.patch", {"key": "agent:main:work", "label": None,
                                                  "model": "openai/gpt-5"}))
    assert "label" not in payload["entry"]
    assert payload["resolved"] == {"modelProvider": "openai", "model": "gpt-5"}


def test_list_paging_and_filters(gateway, client_factory):
    client = client_factory()
    for i in range(5):
        ok(client.request("sessions.patch", {"key": f"s{i}", "label": f"L{i}"}))
    page = ok(client.request("sessions.list", {"limit": 2}))
    assert page["count"] == 2 and page["totalCount"] == 5 and page["limitApplied"] == 2
    assert page["hasMore"] is True and page["nextOffset"] == 2
    everything = ok(client.request("sessions.list"))["sessions"]
    assert everything == sorted(everything, key=lambda r: (-r["updatedAt"], r["key"]))  # newest first
    keys = [r["key"] for r in everything]
    assert sorted(keys) == [f"agent:main:s{i}" for i in range(5)]
    assert [r["key"] for r in page["sessions"]] == keys[:2]
    last = ok(client.request("sessions.list", {"limit": 2, "offset": 4}))
    assert [r["key"] for r in last["sessions"]] == keys[4:]
    assert last["hasMore"] is False and last["nextOffset"] is None
    assert ok(client.request("sessions.list", {"label": "L2"}))["sessions"][0]["key"] == "agent:main:s2"
    assert ok(client.request("sessions.list", {"search": "l3"}))["totalCount"] == 1
    assert ok(client.request("sessions.list", {"unknownField": 1}))["totalCount"] == 5  # read: ignored
    assert error(client.request("sessions.list", {"limit": 0}))["code"] == "INVALID_REQUEST"


def test_label_must_be_unique(gateway, client_factory):
    client = client_factory()
    ok(client.request("sessions.patch", {"key": "a", "label": "Inbox"}))
    err = error(client.request("sessions.patch", {"key": "b", "label": "Inbox"}))
    assert err["code"] == "INVALID_REQUEST" and err["message"] == "label already in use: Inbox"
    err = error(client.request("sessions.patch", {"key": "b", "label": "x" * 65}))
    assert err["code"] == "INVALID_REQUEST" and err["message"].startswith("invalid sessions.patch params")
    err = error(client.request("sessions.patch", {"key": "b", "bogus": 1}))
    assert err["code"] == "INVALID_REQUEST"


def test_scopes(gateway, client_factory):
    admin = client_factory()
    ok(admin.request("sessions.patch", {"key": "x"}))
    reader = client_factory(scopes=READ_ONLY)
    assert ok(reader.request("sessions.list"))["totalCount"] == 1
    ok(reader.request("chat.history", {"sessionKey": "x"}))
    for method, params in (("sessions.patch", {"key": "x", "label": "L"}),
                           ("sessions.reset", {"key": "x"}), ("sessions.delete", {"key": "x"})):
        err = error(reader.request(method, params))
        assert err["code"] == "FORBIDDEN", (method, err)
    writer = client_factory(scopes=WRITE_ONLY)
    ok(writer.request("sessions.patch", {"key": "x", "label": "L"}))
    err = error(writer.request("sessions.patch", {"key": "x", "thinkingLevel": "high"}))
    assert err["code"] == "FORBIDDEN" and err["message"] == "missing scope: operator.admin"
    # the scope comes before validation: an invalid level value is still FORBIDDEN
    err = error(writer.request("sessions.patch", {"key": "x", "fastMode": "nope"}))
    assert err["code"] == "FORBIDDEN"
    assert error(writer.request("sessions.reset", {"key": "x"}))["code"] == "FORBIDDEN"
    entry = ok(admin.request("sessions.patch", {"key": "x", "thinkingLevel": "high"}))["entry"]
    assert entry["thinkingLevel"] == "high"


def test_preview_and_history_of_new_sessions(gateway, client_factory):
    client = client_factory()
    ok(client.request("sessions.patch", {"key": "p"}))
    payload = ok(client.request("sessions.preview", {"keys": ["p", "nope"]}))
    assert isinstance(payload["ts"], int)
    assert payload["previews"] == [{"key": "agent:main:p", "status": "empty", "items": []},
                                   {"key": "agent:main:nope", "status": "missing", "items": []}]
    assert error(client.request("sessions.preview", {"keys": []}))["code"] == "INVALID_REQUEST"

    history = ok(client.request("chat.history", {"sessionKey": "p"}))
    assert history["sessionKey"] == "agent:main:p" and history["messages"] == []
    assert history["hasMore"] is False and history["inFlightRun"] is None and history["sessionId"]
    unknown = ok(client.request("chat.history", {"sessionKey": "never"}))
    assert unknown["sessionId"] is None and unknown["messages"] == []
    err = error(client.request("chat.history", {}))
    assert err["code"] == "INVALID_REQUEST" and err["message"].startswith("invalid chat.history params")


def test_reset_and_delete(gateway, client_factory):
    client, watcher = client_factory(), client_factory(scopes=READ_ONLY)
    old = ok(client.request("sessions.patch", {"key": "r", "model": "openai/gpt-5"}))["entry"]
    watcher.event("sessions.changed")
    payload = ok(client.request("sessions.reset", {"key": "r", "reason": "new"}))
    assert payload["ok"] is True and payload["key"] == "agent:main:r"
    assert payload["entry"]["sessionId"] != old["sessionId"]
    assert payload["entry"]["model"] == "gpt-5"  # set by hand: kept
    event = watcher.event("sessions.changed")["payload"]
    assert event["reason"] == "reset" and event["session"]["sessionId"] == payload["entry"]["sessionId"]
    row = ok(client.request("sessions.list"))["sessions"][0]
    assert row["sessionId"] == payload["entry"]["sessionId"]
    err = error(client.request("sessions.reset", {"key": "gone"}))
    assert err == {**err, "code": "INVALID_REQUEST", "message": "session not found: agent:main:gone"}

    payload = ok(client.request("sessions.delete", {"key": "r"}))
    assert payload == {"ok": True, "key": "agent:main:r", "deleted": True, "archived": []}
    event = watcher.event("sessions.changed")["payload"]
    assert event["reason"] == "delete" and event["key"] == "agent:main:r" and event["session"] is None
    assert ok(client.request("sessions.list"))["totalCount"] == 0
    assert ok(client.request("sessions.delete", {"key": "r"}))["deleted"] is False
    err = error(client.request("sessions.delete", {"key": "main"}))
    assert err["message"] == "cannot delete the main session (agent:main:main)"


def test_health_count_follows_the_store(gateway, client_factory):
    client = client_factory()
    for key in ("h1", "h2"):
        ok(client.request("sessions.patch", {"key": key}))

    def counted() -> bool:
        health = ok(client.request("health"))
        recent = {r["key"] for r in health["sessions"]["recent"]}
        return health["sessions"]["count"] == 2 and recent == {"agent:main:h1", "agent:main:h2"}
    wait_until(counted, 5, what="health sessions.count 2")
    ok(client.request("sessions.delete", {"key": "h1"}))
    wait_until(lambda: ok(client.request("health"))["sessions"]["count"] == 1, 5,
               what="health sessions.count 1")


def test_sessions_survive_a_restart(gateway_factory, ws_clients):
    gw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}})
    client = ws_clients(gw.url)
    ok(client.request("sessions.patch", {"key": "keep", "label": "Kept"}))
    client.close()
    assert gw.stop() == 0
    gw.start()
    client = ws_clients(gw.url)
    rows = ok(client.request("sessions.list"))["sessions"]
    assert [(r["key"], r.get("label")) for r in rows] == [("agent:main:keep", "Kept")]
    wait_until(lambda: ok(client.request("health"))["sessions"]["count"] == 1, 5,
               what="health count after restart")


@pytest.mark.parametrize("method", ["sessions.patch", "sessions.reset", "sessions.delete"])
def test_mutating_methods_reject_unknown_fields(gateway, client_factory, method):
    err = error(client_factory().request(method, {"key": "x", "extra": True}))
    assert err["code"] == "INVALID_REQUEST" and err["message"].startswith(f"invalid {method} params")
