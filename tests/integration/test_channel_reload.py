"""Config changes reach the channels (cli-config §5.7, §6.3): a policy key is hot (the channel
process keeps running), a connection key restarts only that channel's process, and disabling
a channel stops it."""

from __future__ import annotations

import os

from tests.conftest import TOKEN, ok, wait_until
from tests.fakes.telegram_api import TelegramApi
from tests.integration.test_channel_hosts import BASE, channel_pids


def telegram(client) -> dict:
    return ok(client.request("channels.status"))["channelAccounts"]["telegram"][0]


def patch(client, raw: str) -> dict:
    base = ok(client.request("config.get", {}))["hash"]
    return ok(client.request("config.patch", {"raw": raw, "baseHash": base}, timeout=15))


def test_policy_is_hot_connection_restarts_disable_stops(gateway_factory, ws_clients):
    gw = gateway_factory(BASE, env={"OPENCLAW_TEST_CHANNEL_FAULT": "telegram:hang"})
    client = ws_clients(gw.url)
    first = wait_until(lambda: telegram(client).get("pid"), what="channel process")
    assert patch(client, '{channels: {telegram: {dmPolicy: "open", allowFrom: ["*"]}}}')["restart"] is None
    assert telegram(client)["pid"] == first  # hot: same process
    patch(client, '{channels: {telegram: {apiRoot: "http://127.0.0.1:10"}}}')
    second = wait_until(lambda: (telegram(client).get("pid") or first) != first and telegram(client)["pid"],
                        what="channel restarted with the new apiRoot")
    assert second != first
    patch(client, '{channels: {telegram: {enabled: false}}}')
    wait_until(lambda: ok(client.request("channels.status"))["channelAccounts"]["telegram"][0]
               ["enabled"] is False, what="channel disabled")
    assert telegram(client)["state"] == "stopped"
    assert ok(client.request("health"))["ok"] is True


# --- the whole `channels` block added and removed at runtime (issue 11, defect 4) -------------

def accounts(client) -> dict:
    return ok(client.request("channels.status"))["channelAccounts"]


def round_trip(client, api: TelegramApi, text: str) -> None:
    """A DM through the stand-in reaches the echo agent and comes back out."""
    wait_until(lambda: accounts(client).get("telegram", [{}])[0].get("state") == "running",
               what="telegram running")
    wait_until(lambda: api.calls("getMe"), what=f"getMe at {api.url}")
    before = len(api.sent)
    api.queue_private(text, user_id=4242)
    assert api.wait_sent(before + 1, timeout=10)[before]["text"] == text


def test_adding_and_removing_the_whole_channels_block(gateway_factory, ws_clients):
    # The same bot through two Bot API roots: the second's update ids follow the first's, as
    # the adapter keeps its confirmed offset across restarts.
    with TelegramApi() as first, TelegramApi(first_update_id=600000001) as second:
        gw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}},
                              "agents": {"defaults": {"model": "offline/echo"}}})
        client = ws_clients(gw.url)
        assert accounts(client) == {} and channel_pids(gw.proc.pid) == []

        block = '{channels: {telegram: {botToken: "%s", apiRoot: "%s", dmPolicy: "open", allowFrom: ["*"]}}}'
        patch(client, block % (first.token, first.url))
        round_trip(client, first, "via the first root")
        pid = accounts(client)["telegram"][0]["pid"]
        assert channel_pids(gw.proc.pid) == [pid]

        patch(client, "{channels: null}")  # the whole block goes
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"), what="the channel process gone")
        assert accounts(client) == {} and channel_pids(gw.proc.pid) == []

        patch(client, block % (second.token, second.url))  # back, on another Bot API root
        round_trip(client, second, "via the second root")
        new_pid = accounts(client)["telegram"][0]["pid"]
        assert new_pid != pid and channel_pids(gw.proc.pid) == [new_pid]
        assert len(first.sent) == 1  # nothing more went to the old root
