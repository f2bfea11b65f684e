"""Channel processes under their hosts (issue 5): restart policy, hung and crashing channels,
the `failed` state, channels.status / start / stop, and no channel process outliving its
gateway. The misbehaving channels come from the test hook OPENCLAW_TEST_CHANNEL_FAULT of
actors/channels/process.py; the Telegram block points at a closed port, since none of these
channels reaches the network."""

from __future__ import annotations

import os
import signal

from tests.conftest import TOKEN, ok, wait_until

BASE = {"gateway": {"auth": {"mode": "token", "token": TOKEN}, "channelHeartbeatMs": 1000},
        "channels": {"telegram": {"botToken": "123:abc", "apiRoot": "http://127.0.0.1:9"}}}


def account(client) -> dict:
    return ok(client.request("channels.status"))["channelAccounts"]["telegram"][0]


def channel_pids(gateway_pid: int) -> list[int]:
    """Channel processes spawned by this gateway (its children running multiprocessing.spawn)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == gateway_pid and b"spawn_main" in cmd:
            out.append(int(pid))
    return out


def test_exit_at_start_backs_off_then_fails(gateway_factory, ws_clients):
    gw = gateway_factory(BASE, env={"OPENCLAW_TEST_CHANNEL_FAULT": "telegram:exit-at-start",
                                    "OPENCLAW_TEST_CHANNEL_BACKOFF_MS": "50"})
    client = ws_clients(gw.url)
    wait_until(lambda: account(client)["state"] == "failed", timeout=20, what="failed state")
    failed = account(client)
    assert failed["lastError"] == "channel process exited with code 3"
    assert failed["restartCount"] == 5 and failed["running"] is False
    health = ok(client.request("health"))
    assert health["channels"]["telegram"]["state"] == "failed"  # visible, and the gateway serves
    status = ok(client.request("channels.status"))
    assert status["statusIssues"][0]["kind"] == "failed"
    started = ok(client.request("channels.start", {"channel": "telegram"}))
    assert started == {"ok": True, "channel": "telegram", "accountId": "default", "running": True}


def test_hung_channel_is_killed_and_restarted(gateway_factory, ws_clients):
    gw = gateway_factory(BASE, env={"OPENCLAW_TEST_CHANNEL_FAULT": "telegram:hang"})
    client = ws_clients(gw.url)
    first = account(client)["pid"]
    wait_until(lambda: account(client)["restartCount"] >= 1, timeout=10, what="a restart")
    assert account(client)["lastError"].startswith("channel hung: no heartbeat for")
    assert not os.path.exists(f"/proc/{first}") or first not in channel_pids(gw.proc.pid)
    assert ok(client.request("health"))["ok"] is True


def test_stop_and_gateway_kill_leave_no_channel_process(gateway_factory, ws_clients):
    gw = gateway_factory(BASE, env={"OPENCLAW_TEST_CHANNEL_FAULT": "telegram:hang"})
    client = ws_clients(gw.url)
    wait_until(lambda: channel_pids(gw.proc.pid), what="channel process")
    assert ok(client.request("channels.stop", {"channel": "telegram"}))["running"] is False
    assert account(client)["state"] == "stopped"
    wait_until(lambda: not channel_pids(gw.proc.pid), what="channel process gone")
    ok(client.request("channels.start", {"channel": "telegram"}))
    wait_until(lambda: channel_pids(gw.proc.pid), what="channel process again")
    child = channel_pids(gw.proc.pid)[0]
    os.killpg(gw.proc.pid, signal.SIGKILL)  # kill -9 of the gateway: the channel dies with it
    gw.proc.wait(5)
    wait_until(lambda: not os.path.exists(f"/proc/{child}"), timeout=5,
               what="channel process gone after the gateway's death")


def test_unknown_and_unconfigured_channels(gateway, client_factory):
    client = client_factory()
    status = ok(client.request("channels.status"))
    assert status["channelOrder"] == [] and status["channelAccounts"] == {}
    res = client.request("channels.start", {"channel": "whatsapp"})
    assert res["error"]["message"] == "unknown channel: whatsapp"
    res = client.request("channels.stop", {"channel": "irc"})
    assert res["error"]["message"] == "channel account not configured: irc/default"


def test_gateway_stop_stops_channel_processes(gateway_factory, ws_clients):
    gw = gateway_factory(BASE, env={"OPENCLAW_TEST_CHANNEL_FAULT": "telegram:hang"})
    children = wait_until(lambda: channel_pids(gw.proc.pid), what="channel process")
    assert gw.stop() == 0
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}"), "channel process outlived its gateway"
