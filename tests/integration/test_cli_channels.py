"""`openclaw channels status|start|stop|logout` (cli-config §4.12) as subprocesses against a
real gateway: a Telegram channel that really runs (against the local Bot API stand-in of
tests/fakes), one kept alive but silent by the test-fault hook, and no gateway at all."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TOKEN, free_port, wait_until
from tests.fakes.telegram_api import TelegramApi
from tests.integration.test_cli import cli

AUTH = {"gateway": {"auth": {"mode": "token", "token": TOKEN}}}


@pytest.fixture(scope="module")
def telegram():
    with TelegramApi() as api:
        yield api


@pytest.fixture(scope="module")
def running(module_gateway_factory, telegram):
    """A gateway whose Telegram channel polls the local Bot API server."""
    gw = module_gateway_factory({**AUTH, "channels": {"telegram": {"botToken": telegram.token,
                                                                   "apiRoot": telegram.url}}},
                                name="running")
    wait_until(lambda: state_of(gw) == "running", timeout=20, what="telegram running")
    return gw


@pytest.fixture(scope="module")
def silent(module_gateway_factory):
    """Telegram alive but silent (test-fault hook, closed apiRoot); IRC configured but disabled."""
    config = {**AUTH, "channels": {"telegram": {"botToken": "123:abc", "apiRoot": "http://127.0.0.1:9"},
                                   "irc": {"host": "127.0.0.1", "port": 9, "channels": ["#ops"],
                                           "enabled": False}}}
    return module_gateway_factory(config, env={"OPENCLAW_TEST_CHANNEL_FAULT": "telegram:hang"},
                                  name="silent")


def env_of(gw) -> dict:
    return {"OPENCLAW_STATE_DIR": str(gw.state_dir), "OPENCLAW_GATEWAY_PORT": str(gw.port)}


def status_json(gw, *args: str) -> dict:
    res = cli("channels", "status", "--json", *args, env=env_of(gw))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def state_of(gw) -> str:
    return status_json(gw)["channelAccounts"]["telegram"][0]["state"]


def rows(stdout: str) -> list[list[str]]:
    return [line.split(None, 4) for line in stdout.splitlines()]


def test_status_human_json_and_channel_filter(running):
    doc = status_json(running)
    assert doc["channelOrder"] == ["telegram"]
    account = doc["channelAccounts"]["telegram"][0]
    assert account["state"] == "running" and account["enabled"] is True
    assert account["restartCount"] == 0 and account["lastError"] is None
    assert doc["channels"] == {"telegram": {"configured": True, "running": True}}

    res = cli("channels", "status", env=env_of(running))
    assert res.returncode == 0, res.stderr
    assert rows(res.stdout) == [["CHANNEL", "STATE", "RESTARTS", "LAST", "ERROR"],
                                ["telegram", "running", "0", "-"]]

    only = status_json(running, "--channel", "Telegram")
    assert set(only) == set(doc) and only["channelOrder"] == ["telegram"]
    assert only["channelAccounts"]["telegram"][0]["state"] == "running"
    only_irc = status_json(running, "--channel", "irc")
    assert only_irc["channelOrder"] == [] and only_irc["channelAccounts"] == {}
    assert only_irc["channelLabels"] == {} and only_irc["channelMeta"] == []
    res = cli("channels", "status", "--channel", "irc", env=env_of(running))
    assert res.returncode == 0 and res.stdout.strip() == "Channel irc is not configured."

    res = cli("channels", "status", "--channel", "whatsapp", env=env_of(running))
    assert res.returncode == 1 and "whatsapp: not supported" in res.stderr and res.stdout == ""
    res = cli("channels", "status", "--channel", "whatsapp", "--json", env=env_of(running))
    assert res.returncode == 1
    assert json.loads(res.stdout)["error"]["type"] == "not_found"


def test_status_probe(running, telegram):
    doc = status_json(running, "--probe", "--timeout", "5000")
    probe = doc["channelAccounts"]["telegram"][0]["probe"]
    assert probe["ok"] is True and isinstance(probe["elapsedMs"], int)
    assert any(r["method"] == "getMe" for r in telegram.requests)
    res = cli("channels", "status", "--probe", env=env_of(running))
    assert res.returncode == 0, res.stderr
    table = rows(res.stdout)
    assert table[0] == ["CHANNEL", "STATE", "RESTARTS", "PROBE", "LAST ERROR"]
    assert table[1][:3] == ["telegram", "running", "0"] and table[1][3].startswith("ok")


def test_stop_then_start(running):
    res = cli("channels", "stop", "telegram", env=env_of(running))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "Stopped telegram", "to disable permanently: openclaw config set channels.telegram.enabled false"]
    assert state_of(running) == "stopped"
    assert rows(cli("channels", "status", env=env_of(running)).stdout)[1][:2] == ["telegram", "stopped"]

    res = cli("channels", "start", "telegram", "--json", env=env_of(running))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"ok": True, "channel": "telegram", "accountId": "default",
                                      "running": True}
    wait_until(lambda: state_of(running) == "running", timeout=15, what="running again")

    res = cli("channels", "stop", "telegram", "--json", env=env_of(running))
    assert json.loads(res.stdout)["running"] is False and "to disable permanently" in res.stderr
    res = cli("channels", "start", "telegram", env=env_of(running))
    assert res.returncode == 0 and res.stdout.strip() == "Started telegram"
    wait_until(lambda: state_of(running) == "running", timeout=15, what="running again")


def test_disabled_channel_and_unknown_channel(silent):
    res = cli("channels", "status", env=env_of(silent))
    assert res.returncode == 0, res.stderr
    table = rows(res.stdout)
    assert table[1][:3] == ["irc", "disabled", "0"]
    assert table[2][0] == "telegram" and table[2][1] in ("starting", "running", "backoff")

    res = cli("channels", "start", "irc", env=env_of(silent))
    assert res.returncode == 1
    assert res.stderr.strip() == ("Error: INVALID_REQUEST: channel irc is disabled in config "
                                  "(openclaw config set channels.irc.enabled true)")
    res = cli("channels", "start", "whatsapp", "--json", env=env_of(silent))
    assert res.returncode == 1
    assert json.loads(res.stdout)["error"]["message"] == "unknown channel: whatsapp"
    res = cli("channels", "start", env=env_of(silent))
    assert res.returncode == 2  # missing argument


def test_logout_through_the_gateway(silent):
    folder = silent.state_dir / "credentials" / "telegram" / "default"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "state.json").write_text('{"offset": 5}')

    res = cli("channels", "logout", "telegram", env=env_of(silent))
    assert res.returncode == 2 and "without --yes" in res.stderr and folder.exists()
    res = cli("channels", "logout", "telegram", "--json", env=env_of(silent))
    assert res.returncode == 2 and json.loads(res.stdout)["error"]["type"] == "usage"

    res = cli("channels", "logout", "telegram", "--yes", env=env_of(silent))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "Logged out telegram: stored credentials cleared"
    assert not folder.exists()
    assert state_of(silent) == "stopped"
    res = cli("channels", "logout", "telegram", "--yes", "--json", env=env_of(silent))
    assert json.loads(res.stdout) == {"channel": "telegram", "accountId": "default", "cleared": False,
                                      "loggedOut": True}


def test_logout_without_a_gateway_deletes_locally(tmp_path):
    state = tmp_path / "state"
    folder = state / "credentials" / "telegram" / "default"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text("{}")
    env = {"OPENCLAW_STATE_DIR": str(state), "OPENCLAW_GATEWAY_PORT": str(free_port())}
    res = cli("channels", "logout", "telegram", "--yes", env=env, home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "gateway unreachable" in res.stderr
    assert res.stdout.strip() == "Logged out telegram: stored credentials cleared"
    assert not folder.exists() and (state / "credentials" / "telegram").is_dir()
    res = cli("channels", "logout", "telegram", "--yes", "--json", env=env, home=tmp_path)
    assert json.loads(res.stdout)["cleared"] is False
    res = cli("channels", "logout", "../x", "--yes", env=env, home=tmp_path)
    assert res.returncode == 1 and "not supported" in res.stderr


def test_logout_refused_while_the_lock_is_held(silent, tmp_path):
    # a gateway holds the state lock but the CLI looks on another port: no local delete
    folder = silent.state_dir / "credentials" / "irc" / "default"
    folder.mkdir(parents=True, exist_ok=True)
    env = {**env_of(silent), "OPENCLAW_GATEWAY_PORT": str(free_port())}
    res = cli("channels", "logout", "irc", "--yes", env=env)
    assert res.returncode == 1 and "state lock is held" in res.stderr
    assert folder.exists()


def test_unreachable_shows_configuration_only(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "openclaw.json").write_text(json.dumps({"channels": {
        "irc": {"host": "irc.example", "channels": ["#ops"]},
        "telegram": {"enabled": False, "botToken": "123:abc"}}}))
    env = {"OPENCLAW_STATE_DIR": str(state), "OPENCLAW_GATEWAY_PORT": str(free_port())}
    res = cli("channels", "status", env=env, home=tmp_path)
    assert res.returncode == 69
    assert "gateway unreachable; showing configuration only" in res.stderr
    assert [line.split() for line in res.stdout.splitlines()] == [
        ["CHANNEL", "CONFIGURED", "ENABLED"], ["irc", "yes", "yes"], ["telegram", "yes", "no"]]

    res = cli("channels", "status", "--json", "--channel", "telegram", env=env, home=tmp_path)
    assert res.returncode == 69
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["error"]["type"] == "unreachable"
    assert doc["channels"] == [{"id": "telegram", "configured": True, "enabled": False}]

    for verb in ("start", "stop"):
        assert cli("channels", verb, "telegram", env=env, home=tmp_path).returncode == 69


def test_unauthorized(running, tmp_path):
    res = cli("channels", "status", "--url", running.url, "--token", "wrong", home=tmp_path)
    assert res.returncode == 77
    res = cli("channels", "stop", "telegram", "--url", running.url, "--token", "wrong", home=tmp_path)
    assert res.returncode == 77
