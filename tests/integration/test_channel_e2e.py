"""Channels end to end (issue 5): a real gateway with its real channel processes, against a
real IRC server (ngircd, tests/fakes/ircd.py) and the local Telegram Bot API server
(tests/fakes/telegram_api.py); the IRC users are raw-socket clients. Covered: round trips
through the agent runtime (model offline/echo), an IRC server restart mid-conversation,
kill -9 of a channel process, a channel crashing on its messages, a Telegram 429, and the
`send` method (protocol §15.1)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.conftest import TOKEN, ok, wait_until
from tests.fakes.ircd import NGIRCD_MISSING, Ngircd, ngircd_available
from tests.fakes.telegram_api import TelegramApi
from tests.integration.test_irc_adapter import Peer
from tests.needs import require_tool

BOT = "clawbot"


@pytest.fixture
def ngircd_present() -> None:
    require_tool(ngircd_available(), NGIRCD_MISSING)


needs_ngircd = pytest.mark.usefixtures("ngircd_present")


@pytest.fixture
def telegram():
    with TelegramApi() as api:
        yield api


@pytest.fixture
def ircd(tmp_path):
    srv = Ngircd(tmp_path)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def peers():
    made: list[Peer] = []

    def make(port: int, nick: str) -> Peer:
        peer = Peer(port, nick)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        try:
            peer.sock.close()
        except OSError:
            pass


def config(telegram: TelegramApi | None = None, ircd: Ngircd | None = None, **extra) -> dict:
    channels: dict = {}
    if telegram is not None:
        channels["telegram"] = {"botToken": telegram.token, "apiRoot": telegram.url,
                                "dmPolicy": "open", "allowFrom": ["*"]}
    if ircd is not None:
        channels["irc"] = {"host": "127.0.0.1", "port": ircd.port, "tls": False, "nick": BOT,
                           "channels": ["#test"], "dmPolicy": "open", "allowFrom": ["*"],
                           "groupPolicy": "open", "requireMention": True}
    return {"gateway": {"auth": {"mode": "token", "token": TOKEN}, **extra.pop("gateway", {})},
            "agents": {"defaults": {"model": "offline/echo"}}, "channels": channels, **extra}


def account(client, channel: str) -> dict:
    return ok(client.request("channels.status"))["channelAccounts"][channel][0]


def wait_state(client, channel: str, timeout: float = 15.0, **want) -> dict:
    def matches():
        acc = account(client, channel)
        return acc if all(acc.get(k) == v for k, v in want.items()) else None
    return wait_until(matches, timeout=timeout, what=f"{channel} {want}")


def privmsg_from_bot(target: str, text: str):
    return lambda p, c, a: c == "PRIVMSG" and p.split("!")[0] == BOT and a == [target, text]


# --- send (§15.1) ---------------------------------------------------------------------------

@needs_ngircd
def test_send_to_telegram_and_irc_idempotent_and_unavailable(gateway_factory, ws_clients,
                                                            telegram, ircd, peers):
    gw = gateway_factory(config(telegram, ircd))
    client = ws_clients(gw.url)
    wait_state(client, "telegram", state="running")
    wait_state(client, "irc", connected=True)
    alice = peers(ircd.port, "alice")

    res = client.request("send", {"to": "4242", "message": "hi", "idempotencyKey": "s0"})
    assert res["error"]["code"] == "INVALID_REQUEST"
    assert res["error"]["message"] == "channel is required when multiple channels are configured"
    for bad in ("webchat", "whatsapp"):
        res = client.request("send", {"to": "x", "message": "hi", "channel": bad,
                                      "idempotencyKey": "s0"})
        assert res["error"]["message"] == f"unknown channel: {bad}"
    res = client.request("send", {"to": "x", "channel": "irc", "idempotencyKey": "s0"})
    assert res["error"]["code"] == "INVALID_REQUEST"

    first = ok(client.request("send", {"to": "4242", "message": "hello from send",
                                       "channel": "telegram", "idempotencyKey": "send-7",
                                       "sessionKey": "agent:main:telegram:direct:4242"}))
    assert first["runId"] == "send-7" and first["channel"] == "telegram"
    assert first["accountId"] == "default" and first["messageId"]
    again = ok(client.request("send", {"to": "4242", "message": "hello from send",
                                       "channel": "telegram", "idempotencyKey": "send-7"}))
    assert again == first
    # Concurrent repeats of a new key share the first call's result: one message on the wire.
    req = {"to": "4242", "message": "twice?", "channel": "telegram", "idempotencyKey": "send-8"}
    for i in range(3):
        client.send({"type": "req", "id": f"dup{i}", "method": "send", "params": req})
    results: dict = {}
    while len(results) < 3:  # in any order
        frame = client.recv(timeout=10)
        if frame.get("type") == "res":
            results[frame["id"]] = frame
    assert sorted(results) == ["dup0", "dup1", "dup2"]
    results = list(results.values())
    assert len({json.dumps(ok(r), sort_keys=True) for r in results}) == 1, results
    time.sleep(0.3)  # not a wait: a duplicate send would show up by now
    texts = [m["text"] for m in telegram.sent]
    assert texts == ["hello from send", "twice?"]
    history = ok(client.request("chat.history", {"sessionKey": "agent:main:telegram:direct:4242"}))
    assert [(m["role"], m["content"][0]["text"]) for m in history["messages"]] == [
        ("assistant", "hello from send")]

    media = ok(client.request("send", {"to": "alice", "message": "look", "channel": "irc",
                                       "mediaUrls": ["https://example.com/a.png"],
                                       "idempotencyKey": "irc-1"}))
    assert media["channel"] == "irc" and media["messageId"]
    alice.expect(privmsg_from_bot("alice", "look"))
    alice.expect(privmsg_from_bot("alice", "https://example.com/a.png"))
    assert ok(client.request("send", {"to": "alice", "message": "look", "channel": "irc",
                                      "mediaUrls": ["https://example.com/a.png"],
                                      "idempotencyKey": "irc-1"})) == media

    ok(client.request("channels.stop", {"channel": "telegram"}))
    res = client.request("send", {"to": "4242", "message": "down", "channel": "telegram",
                                  "idempotencyKey": "send-9"})
    assert res["ok"] is False and res["error"]["code"] == "UNAVAILABLE", res
    assert res["error"]["retryable"] is True
    assert res["error"]["message"] == "channel telegram is not running (stopped)"
    ok(client.request("channels.start", {"channel": "telegram"}))
    wait_state(client, "telegram", state="running")
    # Nothing went out, so the key is free: the retry delivers.
    assert ok(client.request("send", {"to": "4242", "message": "down", "channel": "telegram",
                                      "idempotencyKey": "send-9"}))["runId"] == "send-9"
    assert telegram.wait_sent(3)[-1]["text"] == "down"
    res = client.request("send", {"to": "4242", "message": "x", "channel": "telegram",
                                  "accountId": "work", "idempotencyKey": "send-10"})
    assert (res["error"]["code"], res["error"]["message"]) == (
        "NOT_LINKED", "telegram account work is not linked")


def test_send_single_channel_needs_no_channel(gateway_factory, ws_clients, telegram):
    gw = gateway_factory(config(telegram))
    client = ws_clients(gw.url)
    wait_state(client, "telegram", state="running")
    out = ok(client.request("send", {"to": "99", "mediaUrl": "https://example.com/x.jpg",
                                     "idempotencyKey": "one"}))
    assert out["channel"] == "telegram"
    assert telegram.wait_sent(1)[0] == {**telegram.sent[0], "chat_id": 99,
                                        "text": "https://example.com/x.jpg"}
    res = client.request("send", {"to": "99", "message": "m", "idempotencyKey": "two", "extra": 1})
    assert res["error"]["code"] == "INVALID_REQUEST"


# --- IRC through the agent runtime, and an IRC server restart mid-conversation -------------

@needs_ngircd
def test_irc_round_trip_and_server_restart(gateway_factory, ws_clients, ircd, peers):
    gw = gateway_factory(config(ircd=ircd))
    client = ws_clients(gw.url)
    wait_state(client, "irc", state="running", connected=True)
    alice = peers(ircd.port, "alice")
    alice.send(f"PRIVMSG {BOT} :hello bot")
    alice.expect(privmsg_from_bot("alice", "hello bot"))

    alice.join("#test")
    alice.send("PRIVMSG #test :no mention, no answer")
    alice.send(f"PRIVMSG #test :{BOT}: hi")
    _, _, args = alice.expect(lambda p, c, a: c == "PRIVMSG" and p.split("!")[0] == BOT)
    assert args == ["#test", "hi"]  # the first one was not answered
    history = ok(client.request("chat.history", {"sessionKey": "agent:main:irc:direct:alice"}))
    assert [m["content"][0]["text"] for m in history["messages"]] == ["hello bot", "hello bot"]

    ircd.kill()  # every connection drops at once
    wait_state(client, "irc", connected=False)
    assert account(client, "irc")["state"] == "running"  # the process stays; the adapter retries
    ircd.start()
    wait_state(client, "irc", timeout=20, connected=True)
    assert account(client, "irc")["restartCount"] == 0
    bob = peers(ircd.port, "bob")
    bob.send(f"PRIVMSG {BOT} :back again?")
    bob.expect(privmsg_from_bot("bob", "back again?"))
    bob.join("#test")  # the bot joined its channel again
    bob.send(f"PRIVMSG #test :{BOT}, still there?")
    bob.expect(privmsg_from_bot("#test", "still there?"))


# --- kill -9 of a channel process -----------------------------------------------------------

@needs_ngircd
def test_telegram_kill9_restarts_without_loss_or_duplicates_irc_unaffected(
        gateway_factory, ws_clients, telegram, ircd, peers):
    gw = gateway_factory(config(telegram, ircd),
                         env={"OPENCLAW_TEST_CHANNEL_BACKOFF_MS": "3000"})
    client = ws_clients(gw.url)
    first = wait_state(client, "telegram", state="running", connected=True)
    wait_state(client, "irc", connected=True)
    alice = peers(ircd.port, "alice")
    before = telegram.queue_private("before", user_id=4242)
    assert [m["text"] for m in telegram.wait_sent(1, timeout=10)] == ["before"]
    state_file = gw.state_dir / "credentials" / "telegram" / "default" / "state.json"

    def offset() -> int:
        return json.loads(state_file.read_text())["offset"] if state_file.exists() else 0
    wait_until(lambda: offset() > before, what="offset persisted past the answered update")

    os.kill(first["pid"], signal.SIGKILL)
    queued = [telegram.queue_private(f"while down {i}", user_id=4242 + i) for i in range(3)]
    down = wait_state(client, "telegram", state="backoff")
    assert down["restartCount"] == 1 and down["running"] is False
    assert down["lastError"] == "channel process exited with code -9"
    # IRC keeps delivering while Telegram waits for its restart.
    alice.send(f"PRIVMSG {BOT} :irc meanwhile")
    alice.expect(privmsg_from_bot("alice", "irc meanwhile"))
    assert account(client, "telegram")["state"] == "backoff"

    again = wait_state(client, "telegram", state="running", connected=True)
    assert again["restartCount"] == 1 and again["pid"] != first["pid"]
    sent = telegram.wait_sent(4, timeout=15)
    time.sleep(1.0)  # any duplicate would show up by now
    texts = sorted(m["text"] for m in telegram.sent)
    assert texts == ["before", "while down 0", "while down 1", "while down 2"], telegram.sent
    assert {(m["chat_id"], m["text"]) for m in sent[1:]} == {
        (4242 + i, f"while down {i}") for i in range(3)}
    wait_until(lambda: offset() > max(queued), what="offset persisted after the restart")


# --- a channel crashing on its messages -----------------------------------------------------

def test_raise_on_message_restarts_then_fails_gateway_keeps_serving(gateway_factory, ws_clients,
                                                                   telegram):
    gw = gateway_factory(config(telegram),
                         env={"OPENCLAW_TEST_CHANNEL_FAULT": "telegram:raise-on-message",
                              "OPENCLAW_TEST_CHANNEL_BACKOFF_MS": "200"})
    client = ws_clients(gw.url)
    first = wait_state(client, "telegram", state="running", connected=True)
    telegram.queue_private("boom", user_id=4242)
    crashed = wait_until(lambda: (a := account(client, "telegram"))["restartCount"] >= 1 and a,
                         timeout=10, what="a restart after the crash")
    assert crashed["lastError"] == "channel process exited with code 1"
    assert ok(client.request("health"))["ok"] is True
    assert ok(client.request("sessions.list"))["sessions"] == []
    # The unacknowledged message comes back after every restart: past the intensity it fails.
    failed = wait_state(client, "telegram", timeout=30, state="failed")
    assert failed["lastError"] == "channel process exited with code 1"
    assert failed["restartCount"] == 5 and "pid" not in failed and first["pid"]
    assert ok(client.request("channels.status"))["statusIssues"] == [
        {"channel": "telegram", "accountId": "default", "kind": "failed",
         "message": "channel process exited with code 1"}]
    assert ok(client.request("health"))["channels"]["telegram"]["state"] == "failed"
    assert telegram.sent == [] and telegram.pending_updates()  # never answered, never dropped


# --- Telegram flood control -----------------------------------------------------------------

def test_telegram_429_reply_arrives_after_retry_after(gateway_factory, ws_clients, telegram):
    gw = gateway_factory(config(telegram))
    client = ws_clients(gw.url)
    wait_state(client, "telegram", state="running", connected=True)
    telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    telegram.queue_private("slow down", user_id=4242)
    sent = telegram.wait_sent(1, timeout=15)
    assert [m["text"] for m in sent] == ["slow down"]
    calls = telegram.calls("sendMessage")
    assert len(calls) == 2 and calls[1]["at"] - calls[0]["at"] >= 1.0
    time.sleep(0.5)  # not a wait: a second send would show up by now
    assert len(telegram.sent) == 1
