"""Unit tests of the protocol's building blocks: transport/auth.py (loopback rules, secrets,
origins, the failed-auth limiter), actors/events.py (visibility, droppable events, the EventHub
actor with a capturing `deliver`), actors/config/load.py (redaction, `${VAR}`), and
transport/protocol.py (validation messages)."""

from __future__ import annotations

import json
import queue
import time
from typing import Any, Callable

import msgspec
import pytest
from tornado.httputil import HTTPHeaders

from actors.base import tell, tell_with_reply
from actors.config.load import load_config, redact, redact_raw, secret_values
from actors.config.schema import REDACTED, is_sensitive_key
from actors.config.settings import AuthSettings
from actors.events import EVENT_HUB, EventHub, Subscriber, droppable, visible, with_text
from tests.fakes.clock import FakeClock
from transport.auth import (
    FailedAuthLimiter,
    check_secret,
    is_loopback_ip,
    is_loopback_request,
    lockout_error,
    origin_allowed,
    secret_equal,
)
from transport.protocol import ConnectParams, RequestFrame, describe_validation_error

READ, WRITE, ADMIN = "operator.read", "operator.write", "operator.admin"
APPROVALS, PAIRING = "operator.approvals", "operator.pairing"


# --- loopback (§5.7) -------------------------------------------------------------------------------


@pytest.mark.parametrize("ip, expected", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("::ffff:127.1.2.3", True), ("10.0.0.1", False), ("192.168.1.2", False), ("::ffff:10.0.0.1", False),
    ("fe80::1%eth0", False), ("100.64.0.1", False), ("", False), (None, False), ("localhost", False),
    ("not an ip", False), ("0.0.0.0", False),
])
def test_is_loopback_ip(ip, expected):
    assert is_loopback_ip(ip) is expected


@pytest.mark.parametrize("header", ["X-Forwarded-For", "x-real-ip", "FORWARDED"])
def test_proxy_headers_make_a_loopback_peer_remote(header):
    headers = HTTPHeaders({header: "203.0.113.9"})
    assert is_loopback_request("127.0.0.1", headers) is False
    assert is_loopback_request("::1", headers) is False


def test_loopback_request_without_proxy_headers():
    headers = HTTPHeaders({"Host": "127.0.0.1:1", "Origin": "http://127.0.0.1:1", "X-Other": "1"})
    assert is_loopback_request("127.0.0.1", headers) is True
    assert is_loopback_request("10.1.1.1", HTTPHeaders()) is False


# --- shared secrets (§5.6) -------------------------------------------------------------------------


def test_secret_equal():
    assert secret_equal("abc", "abc") and not secret_equal("abc", "abd") and not secret_equal("ab", "abc")
    assert secret_equal("päss", "päss") and not secret_equal("pass", "päss")


def _shape(err) -> dict:
    return msgspec.to_builtins(err.shape)


def test_check_secret_token_mode():
    auth = AuthSettings("token", token="t0k")
    assert check_secret(auth, "t0k") == (False, None)
    wrong, err = check_secret(auth, "nope")
    assert wrong is True and _shape(err) == {
        "code": "INVALID_REQUEST", "message": "unauthorized: gateway token mismatch",
        "details": {"code": "AUTH_TOKEN_MISMATCH", "recommendedNextStep": "update_auth_credentials",
                    "canRetryWithDeviceToken": False}}
    for missing in (None, ""):
        wrong, err = check_secret(auth, missing)
        assert wrong is False and _shape(err)["details"]["code"] == "AUTH_TOKEN_MISSING"
        assert _shape(err)["message"] == "unauthorized: gateway token missing"


def test_check_secret_password_mode_and_not_configured():
    auth = AuthSettings("password", password="pw")
    assert check_secret(auth, "pw") == (False, None)
    assert _shape(check_secret(auth, "x")[1])["details"]["code"] == "AUTH_PASSWORD_MISMATCH"
    assert _shape(check_secret(auth, None)[1])["message"] == "unauthorized: gateway password missing"
    wrong, err = check_secret(AuthSettings("password"), "pw")
    assert wrong is False and _shape(err) == {
        "code": "INVALID_REQUEST", "message": "unauthorized: gateway password not configured",
        "details": {"code": "AUTH_PASSWORD_NOT_CONFIGURED", "recommendedNextStep": "update_auth_configuration"}}
    wrong, err = check_secret(AuthSettings("token"), "t")
    assert _shape(err)["details"]["code"] == "AUTH_TOKEN_NOT_CONFIGURED"


def test_check_secret_mode_none_accepts_anything():
    assert check_secret(AuthSettings("none"), None) == (False, None)
    assert check_secret(AuthSettings("none"), "whatever") == (False, None)


# --- browser origins (§5.6) ------------------------------------------------------------------------


@pytest.mark.parametrize("origin, host, allowed, expected", [
    ("http://127.0.0.1:18789", "127.0.0.1:18789", [], True),
    ("https://gw.example.com", "gw.example.com", [], True),
    ("http://GW.Example.com:8080", "gw.example.com:8080", [], True),
    ("http://127.0.0.1:18790", "127.0.0.1:18789", [], False),
    ("http://evil.example", "127.0.0.1:18789", [], False),
    ("http://evil.example", None, [], False),
    ("null", "127.0.0.1:18789", [], False),
    ("file://127.0.0.1:18789", "127.0.0.1:18789", [], False),
    ("https://ui.example", "127.0.0.1:18789", ["https://ui.example"], True),
    ("https://ui.example:444", "127.0.0.1:18789", ["https://ui.example"], False),
])
def test_origin_allowed(origin, host, allowed, expected):
    assert origin_allowed(origin, host, allowed) is expected


def test_lockout_error_shape():
    assert _shape(lockout_error(1234)) == {
        "code": "INVALID_REQUEST", "message": "unauthorized: too many failed authentication attempts (retry later)",
        "retryable": True, "retryAfterMs": 1234,
        "details": {"code": "AUTH_RATE_LIMITED", "authReason": "rate_limited",
                    "recommendedNextStep": "wait_then_retry"}}


# --- the failed-auth limiter (§19.1) ----------------------------------------------------------------


def test_limiter_locks_on_the_tenth_failure():
    limiter = FailedAuthLimiter()
    for _ in range(9):
        limiter.failure("k")
        assert limiter.retry_after_ms("k") is None
    limiter.failure("k")
    wait = limiter.retry_after_ms("k")
    assert wait is not None and 299_000 <= wait <= 300_000
    assert limiter.retry_after_ms("other") is None


def test_limiter_success_clears_failures():
    limiter = FailedAuthLimiter()
    for _ in range(9):
        limiter.failure("k")
    limiter.success("k")
    for _ in range(9):
        limiter.failure("k")
    assert limiter.retry_after_ms("k") is None


def test_limiter_window_and_lockout_expire():
    clock = FakeClock()
    limiter = FailedAuthLimiter(max_attempts=3, window_ms=200, lockout_ms=300, clock=clock)
    limiter.failure("k")
    limiter.failure("k")
    clock.advance(0.25)  # both fell out of the window
    limiter.failure("k")
    limiter.failure("k")
    assert limiter.retry_after_ms("k") is None
    limiter.failure("k")
    assert 0 < limiter.retry_after_ms("k") <= 300
    clock.advance(0.35)
    assert limiter.retry_after_ms("k") is None
    limiter.failure("k")  # a fresh window after the lockout
    assert limiter.retry_after_ms("k") is None


def test_limiter_configure():
    limiter = FailedAuthLimiter()
    limiter.configure(2, 60000, 5000)
    limiter.failure("k")
    limiter.failure("k")
    assert 4000 < limiter.retry_after_ms("k") <= 5000


def test_limiter_is_bounded():
    limiter = FailedAuthLimiter(max_attempts=10)
    for _ in range(9):
        limiter.failure("first")
    for i in range(10_000):
        limiter.failure(f"k{i}")
    limiter.failure("first")  # its earlier failures were the oldest entry and were dropped
    assert limiter.retry_after_ms("first") is None


# --- event visibility and droppability (§6.4, §20) ----------------------------------------------------


def sub(conn_id: str = "c", role: str = "operator", scopes=(), caps=(), key: str | None = None) -> Subscriber:
    return Subscriber(conn_id, role, frozenset(scopes), frozenset(caps), key)


@pytest.mark.parametrize("event", ["tick", "presence", "health", "shutdown"])
def test_everyone_sees_system_events(event):
    for s in (sub(), sub(role="node"), sub(scopes=[APPROVALS])):
        assert visible(s, event, {}) is True


@pytest.mark.parametrize("event", ["chat", "agent", "sessions.changed"])
def test_reader_events(event):
    for scopes in ([READ], [WRITE], [ADMIN], [READ, APPROVALS]):
        assert visible(sub(scopes=scopes), event, {"stream": "assistant"}) is True
    for scopes in ([], [APPROVALS], [PAIRING], ["operator.talk"]):
        assert visible(sub(scopes=scopes), event, {}) is False
    assert visible(sub(role="node", scopes=[ADMIN]), event, {}) is False


def test_tool_stream_needs_the_tool_events_cap():
    payload = {"stream": "tool", "data": {}}
    assert visible(sub(scopes=[READ]), "agent", payload) is False
    assert visible(sub(scopes=[READ], caps=["tool-events"]), "agent", payload) is True
    assert visible(sub(scopes=[], caps=["tool-events"]), "agent", payload) is False
    assert visible(sub(scopes=[READ]), "agent", {"stream": "lifecycle"}) is True


@pytest.mark.parametrize("event", ["exec.approval.requested", "exec.approval.resolved"])
def test_approval_events(event):
    assert visible(sub(scopes=[APPROVALS]), event, {}) is True
    assert visible(sub(scopes=[ADMIN]), event, {}) is True
    assert visible(sub(scopes=[READ, WRITE]), event, {}) is False
    assert visible(sub(role="node"), event, {}) is False


@pytest.mark.parametrize("event", ["connect.challenge", "config.changed", "whatever", ""])
def test_unknown_events_are_never_broadcast(event):
    assert visible(sub(scopes=[ADMIN, READ, WRITE, APPROVALS, PAIRING]), event, {}) is False


def test_droppable():
    for event in ("tick", "presence", "health", "agent", "sessions.changed", "exec.approval.requested",
                  "exec.approval.resolved"):
        assert droppable(event, {}) is True, event
    assert droppable("chat", {"state": "delta"}) is True
    for state in ("final", "aborted", "error"):
        assert droppable("chat", {"state": state}) is False
    assert droppable("shutdown", {}) is False


def test_presence_text():
    assert with_text({"host": "vm", "ip": "192.0.2.2", "version": "2026.9.6", "mode": "gateway",
                      "reason": "self"})["text"] == \
        "Gateway: vm (192.0.2.2) · app 2026.9.6 · mode gateway · reason self"
    assert with_text({"host": "pi", "version": "1.0", "mode": "node", "reason": "connect",
                      "roles": ["node"]})["text"] == "Node: pi · app 1.0 · mode node · reason connect"
    assert with_text({"host": "ui", "version": "1.0", "mode": "ui", "reason": "disconnect",
                      "roles": ["operator"]})["text"] == "Client: ui · app 1.0 · mode ui · reason disconnect"


# --- the EventHub actor ---------------------------------------------------------------------------------


class Captured:
    """A `deliver` callable that records what the hub hands to the loop."""

    def __init__(self) -> None:
        self.items: queue.Queue = queue.Queue()

    def __call__(self, recipients, event, payload, versions, is_droppable) -> None:
        self.items.put((tuple(recipients), event, json.loads(payload),
                        json.loads(versions) if versions is not None else None, is_droppable))

    def next(self, timeout: float = 2.0):
        return self.items.get(timeout=timeout)

    def none(self, wait: float = 0.1) -> bool:
        try:
            item = self.items.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected delivery: {item}")


def ask(ref, method: Callable[..., Any], *args: Any) -> Any:
    done: queue.Queue = queue.Queue()
    tell_with_reply(ref, lambda result, err: done.put((result, err)), method, *args)
    result, err = done.get(timeout=5)
    if err is not None:
        raise err
    return result


@pytest.fixture
def hub():
    captured = Captured()
    ref = EventHub.start(captured, {"host": "gw-host", "version": "2026.9.6", "instanceId": "inst-self"})
    try:
        yield ref, captured
    finally:
        ref.stop()


def presence_entry(host: str, mode: str = "ui", role: str = "operator") -> dict:
    return {"host": host, "version": "1.0", "platform": "linux", "mode": mode, "roles": [role], "scopes": []}


def test_hub_self_entry(hub):
    ref, _ = hub
    listed = ask(ref, EventHub.presence)
    assert len(listed) == 1
    me = listed[0]
    assert me["host"] == "gw-host" and me["mode"] == "gateway" and me["reason"] == "self"
    assert isinstance(me["ts"], int) and me["instanceId"] == "inst-self"
    assert me["text"] == "Gateway: gw-host · app 2026.9.6 · mode gateway · reason self"
    assert ask(ref, EventHub.state_version) == {"presence": 1, "health": 1}


def test_hub_presence_on_subscribe_and_unsubscribe(hub):
    ref, captured = hub
    ask(ref, EventHub.subscribe, sub("a", scopes=[READ]), None)
    assert captured.none()  # untracked: no presence change
    ask(ref, EventHub.subscribe, sub("b", key="inst-b"), presence_entry("b-host"))
    recipients, event, payload, versions, is_droppable = captured.next()
    assert set(recipients) == {"a", "b"} and event == "presence" and is_droppable is True
    assert versions == {"presence": 2, "health": 1}
    assert [e["reason"] for e in payload["presence"]] == ["self", "connect"]
    assert payload["presence"][1]["text"] == "Client: b-host · app 1.0 · mode ui · reason connect"

    ask(ref, EventHub.unsubscribe, "b")
    recipients, event, payload, versions, _ = captured.next()
    assert recipients == ("a",) and versions["presence"] == 3
    assert payload["presence"][1]["reason"] == "disconnect"
    assert ask(ref, EventHub.subscriber_count) == 1
    ask(ref, EventHub.unsubscribe, "a")
    assert captured.none()
    ask(ref, EventHub.unsubscribe, "never-subscribed")
    assert captured.none()


def test_hub_same_presence_key_two_sockets(hub):
    ref, captured = hub
    ask(ref, EventHub.subscribe, sub("observer"), None)
    ask(ref, EventHub.subscribe, sub("s1", key="same"), presence_entry("h"))
    captured.next()
    ask(ref, EventHub.subscribe, sub("s2", key="same"), presence_entry("h"))
    _, _, payload, _, _ = captured.next()
    assert len(payload["presence"]) == 2  # one entry per key
    ask(ref, EventHub.unsubscribe, "s1")
    assert captured.none()  # s2 of the same client is still connected
    ask(ref, EventHub.unsubscribe, "s2")
    recipients, _, payload, _, _ = captured.next()
    assert recipients == ("observer",) and payload["presence"][1]["reason"] == "disconnect"


def test_hub_presence_order_newest_first(hub):
    ref, captured = hub
    for i in range(3):
        ask(ref, EventHub.subscribe, sub(f"c{i}", key=f"k{i}"), presence_entry(f"h{i}"))
        time.sleep(0.005)  # not a wait: the entries need distinct millisecond `ts` to be ordered by
    hosts = [e["host"] for e in ask(ref, EventHub.presence)]
    assert hosts == ["gw-host", "h2", "h1", "h0"]


def test_hub_presence_is_bounded(hub):
    ref, _ = hub
    for i in range(210):
        ask(ref, EventHub.subscribe, sub(f"c{i}", key=f"k{i}"), presence_entry(f"h{i}"))
    listed = ask(ref, EventHub.presence)
    assert len(listed) == 200 and listed[0]["reason"] == "self"
    hosts = {e["host"] for e in listed[1:]}
    assert "h209" in hosts and "h0" not in hosts  # the oldest were dropped


def test_hub_routes_events_by_visibility(hub):
    ref, captured = hub
    ask(ref, EventHub.subscribe, sub("reader", scopes=[READ]), None)
    ask(ref, EventHub.subscribe, sub("tools", scopes=[WRITE], caps=["tool-events"]), None)
    ask(ref, EventHub.subscribe, sub("approver", scopes=[APPROVALS]), None)
    ask(ref, EventHub.subscribe, sub("node", role="node"), None)

    ask(ref, EventHub.publish, "chat", {"state": "delta", "deltaText": "x"})
    assert captured.next()[:2] == (("reader", "tools"), "chat")
    ask(ref, EventHub.publish, "chat", {"state": "final"})
    recipients, _, payload, versions, is_droppable = captured.next()
    assert recipients == ("reader", "tools") and is_droppable is False and versions is None
    assert payload == {"state": "final"}
    ask(ref, EventHub.publish, "agent", {"stream": "tool", "data": {}})
    assert captured.next()[0] == ("tools",)
    ask(ref, EventHub.publish, "exec.approval.requested", {"id": "ap"})
    assert captured.next()[0] == ("approver",)
    ask(ref, EventHub.publish, "shutdown", {"reason": "gateway stopping", "restartExpectedMs": None})
    recipients, _, _, _, is_droppable = captured.next()
    assert set(recipients) == {"reader", "tools", "approver", "node"} and is_droppable is False
    ask(ref, EventHub.publish, "made.up", {})
    assert captured.none()


def test_hub_nobody_to_deliver_to(hub):
    ref, captured = hub
    ask(ref, EventHub.publish, "chat", {"state": "final"})
    assert captured.none()


def test_hub_health_event_carries_both_versions(hub):
    ref, captured = hub
    ask(ref, EventHub.subscribe, sub("n", role="node"), None)
    ask(ref, EventHub.publish_health, {"ok": True})
    recipients, event, payload, versions, is_droppable = captured.next()
    assert (recipients, event, payload, is_droppable) == (("n",), "health", {"ok": True}, True)
    assert versions == {"presence": 1, "health": 2}
    assert ask(ref, EventHub.snapshot)["stateVersion"] == {"presence": 1, "health": 2}


def test_hub_delivers_in_publish_order(hub):
    ref, captured = hub
    ask(ref, EventHub.subscribe, sub("r", scopes=[READ]), None)
    for i in range(50):
        tell(ref, EventHub.publish, "sessions.changed", {"i": i})
    assert [captured.next()[2]["i"] for _ in range(50)] == list(range(50))


# --- config redaction and ${VAR} (§10.1, cli-config §5) ------------------------------------------------


@pytest.mark.parametrize("key, sensitive", [
    ("token", True), ("password", True), ("secret", True), ("apiKey", True), ("privateKey", True),
    ("clientSecret", True), ("botToken", True), ("appToken", True), ("signingSecret", True),
    ("refreshToken", True), ("webhookSecret", True), ("adminPassword", True),
    ("tokens", False), ("apiKeyId", False), ("mode", False), ("tokenFile", False), ("Token", True),
])
def test_sensitive_keys(key, sensitive):
    assert is_sensitive_key(key) is sensitive


def test_redact_nested():
    doc = {"gateway": {"auth": {"mode": "token", "token": "t", "password": None}},
           "models": {"providers": {"x": {"apiKey": "k", "baseUrl": "u", "headers": {"X-Api": "h"}}}},
           "channels": {"slack": {"accounts": [{"botToken": "b", "name": "n"}]}},
           "plain": ["token", "apiKey"]}
    out = redact(doc)
    assert out["gateway"]["auth"] == {"mode": "token", "token": REDACTED, "password": None}
    assert out["models"]["providers"]["x"] == {"apiKey": REDACTED, "baseUrl": "u", "headers": {"X-Api": REDACTED}}
    assert out["channels"]["slack"]["accounts"] == [{"botToken": REDACTED, "name": "n"}]
    assert out["plain"] == ["token", "apiKey"]
    assert doc["gateway"]["auth"]["token"] == "t"  # a copy: the input is untouched
    assert secret_values(doc) == {"t", "k", "h", "b"}


def test_redact_raw_replaces_quoted_values():
    raw = "{gateway: {auth: {token: 'tok-1'}}, models: {providers: {x: {apiKey: \"key-2\"}}}, note: 'tok-1x'}\n"
    parsed = {"gateway": {"auth": {"token": "tok-1"}}, "models": {"providers": {"x": {"apiKey": "key-2"}}},
              "note": "tok-1x"}
    out = redact_raw(raw, parsed)
    assert "key-2" not in out and "'tok-1'" not in out
    assert out.count(REDACTED) == 2 and "tok-1x" in out


def test_redact_raw_with_escaped_secret(tmp_path):
    path = tmp_path / "openclaw.json"
    path.write_text('{"models": {"providers": {"x": {"apiKey": "se\\"cr\\u0065t"}}}}')
    snapshot = load_config(path, environ={})
    assert snapshot.parsed["models"]["providers"]["x"]["apiKey"] == 'se"cret'
    out = redact_raw(snapshot.raw, snapshot.parsed)
    assert "se\\\"cr" not in out and REDACTED in out


def test_env_substitution(tmp_path):
    path = tmp_path / "openclaw.json"
    path.write_text(json.dumps({
        "models": {"providers": {"x": {"apiKey": "${PROVIDER_KEY}", "baseUrl": "https://${HOST}/v1"}}},
        "literal": "$${PROVIDER_KEY}", "lower": "${lower_case}", "list": ["${HOST}", "x"],
        "missing": "${NOT_SET_ANYWHERE}", "${HOST}": "keys are not substituted",
        "gateway": {"auth": {"token": "${OPENCLAW_TEST_TOKEN}"}}}))
    environ = {"PROVIDER_KEY": "pk-1", "HOST": "api.example", "CLAWDBOT_TEST_TOKEN": "twin-token"}
    snap = load_config(path, environ=environ)
    resolved = snap.resolved
    assert resolved["models"]["providers"]["x"] == {"apiKey": "pk-1", "baseUrl": "https://api.example/v1"}
    assert resolved["literal"] == "${PROVIDER_KEY}"
    assert resolved["lower"] == "${lower_case}"
    assert resolved["list"] == ["api.example", "x"]
    assert resolved["missing"] == "${NOT_SET_ANYWHERE}"
    assert resolved["${HOST}"] == "keys are not substituted"
    assert resolved["gateway"]["auth"]["token"] == "twin-token"  # the CLAWDBOT_ twin
    assert snap.unresolved == {"missing": "NOT_SET_ANYWHERE"}
    assert [(w.path, w.message) for w in snap.warnings] == [
        ("missing", "environment variable NOT_SET_ANYWHERE is not set")]
    assert snap.parsed["models"]["providers"]["x"]["apiKey"] == "${PROVIDER_KEY}"  # parsed keeps the reference
    assert "pk-1" in secret_values(resolved) and "twin-token" in secret_values(resolved)
    assert redact(resolved)["models"]["providers"]["x"]["apiKey"] == REDACTED


def test_empty_env_value_counts_as_unset(tmp_path):
    path = tmp_path / "openclaw.json"
    path.write_text('{"a": "${EMPTY_VAR}"}')
    snap = load_config(path, environ={"EMPTY_VAR": ""})
    assert snap.resolved["a"] == "${EMPTY_VAR}" and snap.unresolved == {"a": "EMPTY_VAR"}


# --- validation messages (§5.3, §8.1) --------------------------------------------------------------------


def _problem(body: dict, type_=ConnectParams) -> str:
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(json.dumps(body), type=type_)
    return describe_validation_error(info.value)


def test_describe_validation_error():
    client = {"id": "c", "version": "1", "platform": "p", "mode": "m"}
    assert _problem({"maxProtocol": 4, "client": client}) == "minProtocol: required"
    assert _problem({"minProtocol": 4, "maxProtocol": 4, "client": {"id": "c"}}) == "client.version: required"
    assert _problem({"minProtocol": "4", "maxProtocol": 4, "client": client}) == "minProtocol: expected int, got str"
    assert _problem({"minProtocol": 4, "maxProtocol": 4, "client": client, "scopes": [1]}) == \
        "scopes[0]: expected str, got int"
    assert _problem({"type": "req", "id": "x"}, RequestFrame) == "method: required"


# --- the health event (§7.2): published through the hub only when the content changed ---------------


def test_health_event_only_on_content_change(tmp_path):
    from actors import registry
    from actors.health import HealthActor

    captured = Captured()
    hub_ref = EventHub.start(captured, {"host": "gw", "version": "2026.9.6"})
    registry.register(EVENT_HUB.name, hub_ref)
    health_ref = HealthActor.start(str(tmp_path), "hybrid", period_s=0.1)
    try:
        ask(hub_ref, EventHub.subscribe, sub("watcher", role="node"), None)
        assert captured.none(0.5)  # rebuilds every 0.1 s, but only ts/durationMs change
        ask(health_ref, HealthActor.set_sessions, "main", 3, [{"key": "agent:main:main", "updatedAt": 1, "age": 5}])
        recipients, event, payload, versions, is_droppable = captured.next()
        assert (recipients, event, is_droppable) == (("watcher",), "health", True)
        assert versions == {"presence": 1, "health": 2}
        assert payload["ok"] is True and payload["sessions"]["count"] == 3
        assert payload["agents"][0]["sessions"]["count"] == 3
        assert payload["sessions"]["path"] == str(tmp_path / "agents" / "main" / "sessions.sqlite")
        assert captured.none(0.4)  # unchanged again: no more events
        # only the age of a recent row changed: not a content change
        ask(health_ref, HealthActor.set_sessions, "main", 3, [{"key": "agent:main:main", "updatedAt": 1, "age": 9}])
        assert captured.none(0.4)
        ask(health_ref, HealthActor.set_config_reload, {"mode": "hybrid", "status": "error", "lastReloadAt": 5,
                                              "lastError": "bad", "pendingRestart": []})
        _, _, payload, versions, _ = captured.next()
        assert payload["configReload"]["status"] == "error" and versions["health"] == 3
    finally:
        health_ref.stop()
        registry.unregister(EVENT_HUB.name, hub_ref)
        hub_ref.stop()
