"""`openclaw pairing list|approve` (cli-config §4.15) against a real gateway, and the
config-only `openclaw channels list` (§4.12), as subprocesses."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import TOKEN, free_port
from tests.integration.test_cli import cli
from tests.integration.test_pairing_rpc import seed_pending


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    gw = module_gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}},
                                start=False, name="pairing")
    seed_pending(gw.state_dir)
    return gw.start()


def env_of(gw) -> dict:
    return {"OPENCLAW_STATE_DIR": str(gw.state_dir), "OPENCLAW_GATEWAY_PORT": str(gw.port)}


def test_list_approve_human_and_json(gw, tmp_path):
    env = env_of(gw)
    res = cli("pairing", "list", env=env, home=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["telegram", "K7Q2M9", "123456789"]
    assert re.fullmatch(r"expires in (\d+m|1h 00m)", " ".join(lines[0].split()[3:]))
    assert lines[1].split()[:3] == ["irc", "ABC234", "alice!a@host"]
    assert "Approved irc: bob!b@h" in lines and "Approved telegram: none" in lines

    doc = json.loads(cli("pairing", "list", "irc", "--json", env=env, home=tmp_path).stdout)
    assert [p["code"] for p in doc["pending"]] == ["ABC234"] and doc["approved"] == {"irc": ["bob!b@h"]}

    res = cli("pairing", "approve", "irc", "abc234", env=env, home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "Approved irc sender alice!a@host"

    res = cli("pairing", "approve", "irc", "abc234", env=env, home=tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip() == "Error: INVALID_REQUEST: unknown or expired pairing code"
    doc = json.loads(cli("pairing", "approve", "irc", "ABC234", "--json", env=env, home=tmp_path).stdout)
    assert doc["ok"] is False and doc["error"]["message"] == "unknown or expired pairing code"

    doc = json.loads(cli("pairing", "approve", "telegram", "K7Q2M9", "--json", env=env, home=tmp_path).stdout)
    assert doc == {"ok": True, "channel": "telegram", "sender": "123456789"}
    res = cli("pairing", "list", env=env, home=tmp_path)
    assert res.stdout.splitlines() == ["No pending pairing codes.", "Approved irc: bob!b@h, alice!a@host",
                                       "Approved telegram: 123456789"]


def test_usage_unreachable_and_unauthorized(gw, tmp_path):
    res = cli("pairing", "approve", "telegram", env=env_of(gw), home=tmp_path)
    assert res.returncode == 2
    nobody = {"OPENCLAW_STATE_DIR": str(tmp_path / "state"), "OPENCLAW_GATEWAY_PORT": str(free_port())}
    assert cli("pairing", "list", env=nobody, home=tmp_path).returncode == 69
    res = cli("pairing", "list", "--url", gw.url, "--token", "wrong", env=nobody, home=tmp_path)
    assert res.returncode == 77


def test_channels_list_reads_config_only(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    env = {"OPENCLAW_STATE_DIR": str(state), "OPENCLAW_GATEWAY_PORT": str(free_port())}
    doc = json.loads(cli("channels", "list", "--json", env=env, home=tmp_path).stdout)
    assert doc == {"channels": [{"id": "irc", "configured": False, "enabled": False},
                                {"id": "telegram", "configured": False, "enabled": False}]}

    (state / "openclaw.json").write_text(json.dumps({"channels": {
        "irc": {"host": "irc.example", "channels": ["#ops"]},
        "telegram": {"enabled": False, "botToken": "123:abc"}}}))
    res = cli("channels", "list", "--json", env=env, home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"channels": [{"id": "irc", "configured": True, "enabled": True},
                                                   {"id": "telegram", "configured": True, "enabled": False}]}
    res = cli("channels", "list", env=env, home=tmp_path)
    assert [line.split() for line in res.stdout.splitlines()] == [
        ["CHANNEL", "CONFIGURED", "ENABLED"], ["irc", "yes", "yes"], ["telegram", "yes", "no"]]

    # enabled but missing its required key: listed as not configured (the config is invalid)
    (state / "openclaw.json").write_text(json.dumps({"channels": {"telegram": {}}}))
    res = cli("channels", "list", "--json", env=env, home=tmp_path)
    assert res.returncode == 0
    assert json.loads(res.stdout)["channels"][1] == {"id": "telegram", "configured": False, "enabled": True}
    assert "config invalid" in res.stderr
    res = cli("channels", "list", "--json", env={**env, "TELEGRAM_BOT_TOKEN": "1:x"}, home=tmp_path)
    assert json.loads(res.stdout)["channels"][1]["configured"] is True

    (state / "openclaw.json").write_text("{not json")
    res = cli("channels", "list", env=env, home=tmp_path)
    assert res.returncode == 78 and "Invalid config" in res.stderr
