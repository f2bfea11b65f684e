"""Inbound channel messages through the agent runtime and back out (issue 5), with the
Telegram adapter in its own process against a local Bot API server (tests/fakes)."""

from __future__ import annotations

import pytest

from tests.conftest import TOKEN, ok, wait_until
from tests.fakes.telegram_api import TelegramApi


@pytest.fixture
def telegram():
    with TelegramApi() as api:
        yield api


def config(api: TelegramApi, **telegram) -> dict:
    return {"gateway": {"auth": {"mode": "token", "token": TOKEN}},
            "agents": {"defaults": {"model": "offline/echo"}},
            "channels": {"telegram": {"botToken": api.token, "apiRoot": api.url, **telegram}}}


def test_dm_round_trip_through_the_agent(gateway_factory, ws_clients, telegram):
    gw = gateway_factory(config(telegram, dmPolicy="open", allowFrom=["*"]))
    client = ws_clients(gw.url)
    wait_until(lambda: ok(client.request("channels.status"))["channelAccounts"]["telegram"][0]
               ["state"] == "running", what="telegram running")
    telegram.queue_private("hello bot", user_id=4242)
    sent = telegram.wait_sent(1, timeout=10)
    assert sent[0]["chat_id"] in (4242, "4242") and sent[0]["text"] == "hello bot"
    key = "agent:main:telegram:direct:4242"
    history = ok(client.request("chat.history", {"sessionKey": key}))["messages"]
    assert [(m["role"], m["content"][0]["text"]) for m in history] == [
        ("user", "hello bot"), ("assistant", "hello bot")]
    # sendMessage answered at the fake before the channel's OutboundResult reached the host
    def replied() -> dict | None:
        account = ok(client.request("channels.status"))["channelAccounts"]["telegram"][0]
        return account if account.get("lastOutboundAt") else None

    account = wait_until(replied, what="lastOutboundAt")
    assert account["lastInboundAt"] <= account["lastOutboundAt"]


def test_unknown_sender_gets_a_pairing_code(gateway_factory, ws_clients, telegram):
    gw = gateway_factory(config(telegram))  # dmPolicy defaults to pairing
    client = ws_clients(gw.url)
    telegram.queue_private("hi", user_id=5151)
    sent = telegram.wait_sent(1, timeout=10)
    pending = ok(client.request("pairing.list"))["pending"]
    assert pending and pending[0]["sender"] == "5151" and pending[0]["code"] in sent[0]["text"]
    ok(client.request("pairing.approve", {"channel": "telegram", "code": pending[0]["code"]}))
    telegram.queue_private("now?", user_id=5151)
    assert telegram.wait_sent(2, timeout=10)[1]["text"] == "now?"
