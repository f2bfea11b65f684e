"""Config changes reach the channels (cli-config §5.7, §6.3): a policy key is hot (the channel
process keeps running), a connection key restarts only that channel's process, and disabling
a channel stops it."""

from __future__ import annotations

from tests.conftest import ok, wait_until
from tests.integration.test_channel_hosts import BASE


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
