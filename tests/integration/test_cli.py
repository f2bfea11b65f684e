"""The `openclaw` CLI against a real gateway: targets, credentials, output and exit codes
(cli-config §3, §4.2, §4.5, §4.6)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import OPENCLAW, TOKEN, free_port


def cli(*args: str, env: dict | None = None, home=None, timeout: float = 30) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("OPENCLAW_", "CLAWDBOT_"))}
    if home is not None:
        base["HOME"] = str(home)
    return subprocess.run([OPENCLAW, *args], env={**base, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory):
    from tests.conftest import GatewayProcess
    gw = GatewayProcess(tmp_path_factory.mktemp("cli"), {"gateway": {"auth": {"mode": "token", "token": TOKEN}}},
                        [], {})
    gw.start()
    yield gw
    gw.stop()


def local_env(gw) -> dict:
    return {"OPENCLAW_STATE_DIR": str(gw.state_dir), "OPENCLAW_GATEWAY_PORT": str(gw.port)}


def test_version_and_bare_help(tmp_path):
    assert cli("--version", home=tmp_path).stdout.strip() == "openclaw 0.1.0"
    bare = cli(home=tmp_path)
    assert bare.returncode == 0 and "Usage: openclaw" in bare.stdout and "gateway" in bare.stdout


def test_call_with_url_and_token(shared_gateway, tmp_path):
    res = cli("gateway", "call", "health", "--url", shared_gateway.url, "--token", TOKEN, home=tmp_path)
    assert res.returncode == 0, res.stderr
    payload = json.loads(res.stdout)
    assert payload["ok"] is True and payload["defaultAgentId"] == "main"

    res = cli("gateway", "call", "health", "--url", shared_gateway.url, "--token", TOKEN, "--json", home=tmp_path)
    doc = json.loads(res.stdout)
    assert res.returncode == 0 and doc["ok"] is True and doc["payload"]["ok"] is True


def test_call_http_url_is_mapped_to_ws(shared_gateway, tmp_path):
    res = cli("gateway", "call", "status", "--url", shared_gateway.http, "--token", TOKEN, home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["runtimeVersion"] == "2026.9.6"


def test_rpc_error_exit_1(shared_gateway, tmp_path):
    res = cli("gateway", "call", "nosuch.method", "--url", shared_gateway.url, "--token", TOKEN, home=tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip() == "Error: INVALID_REQUEST: unknown method: nosuch.method"
    res = cli("gateway", "call", "nosuch.method", "--url", shared_gateway.url, "--token", TOKEN, "--json",
              home=tmp_path)
    doc = json.loads(res.stdout)
    assert res.returncode == 1
    assert doc == {"ok": False, "error": {"type": "rpc_error", "message": "unknown method: nosuch.method",
                                          "code": "INVALID_REQUEST"}}


@pytest.mark.parametrize("params", ["[1,2]", "not json", "42"])
def test_params_must_be_json_object(params, tmp_path):
    res = cli("gateway", "call", "health", "--params", params, "--url", "ws://127.0.0.1:9", "--token", "x",
              home=tmp_path)
    assert res.returncode == 2
    assert "--params" in res.stderr


def test_invalid_method_name_is_usage_error(tmp_path):
    res = cli("gateway", "call", "Bad Method", "--url", "ws://127.0.0.1:9", home=tmp_path)
    assert res.returncode == 2 and "invalid method name" in res.stderr


def test_unreachable_exit_69(tmp_path):
    port = free_port()
    res = cli("gateway", "call", "health", "--url", f"ws://127.0.0.1:{port}", "--token", "x", home=tmp_path)
    assert res.returncode == 69
    assert res.stderr.startswith("Error: gateway unreachable at ws://127.0.0.1:")
    res = cli("health", "--json", env={"OPENCLAW_GATEWAY_PORT": str(port)}, home=tmp_path)
    assert res.returncode == 69
    assert json.loads(res.stdout)["error"]["type"] == "unreachable"


def test_wrong_token_exit_77_names_source(shared_gateway, tmp_path):
    res = cli("gateway", "call", "health", "--url", shared_gateway.url, "--token", "wrong", home=tmp_path)
    assert res.returncode == 77
    assert res.stderr.strip() == "Error: unauthorized: token rejected (source: flag --token)"
    res = cli("health", env={**local_env(shared_gateway), "OPENCLAW_GATEWAY_TOKEN": "wrong"}, home=tmp_path)
    assert res.returncode == 77
    assert "source: env OPENCLAW_GATEWAY_TOKEN" in res.stderr


def test_url_override_requires_explicit_credentials(shared_gateway, tmp_path):
    res = cli("gateway", "call", "health", "--url", shared_gateway.url,
              env={"OPENCLAW_GATEWAY_TOKEN": TOKEN}, home=tmp_path)
    assert res.returncode == 77
    assert "gateway url override requires explicit credentials (--token or --password)" in res.stderr


def test_local_target_from_state_dir_config(shared_gateway, tmp_path):
    res = cli("health", "--json", env=local_env(shared_gateway), home=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    for key in ("ok", "ts", "durationMs", "channels", "channelOrder", "channelLabels", "heartbeatSeconds",
                "defaultAgentId", "agents", "sessions", "configReload"):
        assert key in doc
    assert doc["version"] == "0.1.0" and isinstance(doc["uptimeMs"], int)


def test_config_port_and_clawdbot_twin_token(shared_gateway, tmp_path):
    """Port from the config file named by CLAWDBOT_CONFIG_PATH, token from CLAWDBOT_GATEWAY_TOKEN."""
    config = tmp_path / "other.json"
    config.write_text('{gateway: {port: %d, auth: {token: "${CLAWDBOT_GATEWAY_TOKEN}"}}}' % shared_gateway.port)
    env = {"CLAWDBOT_CONFIG_PATH": str(config), "CLAWDBOT_GATEWAY_TOKEN": TOKEN,
           "OPENCLAW_STATE_DIR": str(tmp_path / "state")}
    res = cli("gateway", "call", "health", env=env, home=tmp_path)
    assert res.returncode == 0, res.stderr


def test_human_health_output(shared_gateway, tmp_path):
    res = cli("health", env=local_env(shared_gateway), home=tmp_path)
    assert res.returncode == 0, res.stderr
    first, *rest = res.stdout.splitlines()
    assert first.startswith("Gateway ok · v0.1.0 · up ")
    assert first.endswith(f"· ws://127.0.0.1:{shared_gateway.port}")
    assert any(line.startswith("Sessions: 0") for line in rest)


def test_gateway_health_with_connection_options(shared_gateway, tmp_path):
    res = cli("gateway", "health", "--url", shared_gateway.url, "--token", TOKEN, "--json", home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["version"] == "0.1.0"


def test_status_reachable_and_down(shared_gateway, tmp_path):
    res = cli("status", "--json", env=local_env(shared_gateway), home=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["ok"] is True and doc["version"] == "0.1.0"
    assert doc["gateway"]["reachable"] is True and doc["gateway"]["port"] == shared_gateway.port
    assert doc["gateway"]["authMode"] == "token" and doc["gateway"]["bind"] == "loopback"
    assert doc["config"] == {"exists": True, "valid": True, "errors": 0, "warnings": 0}
    assert doc["paths"]["stateDir"] == str(shared_gateway.state_dir)
    assert doc["service"] is None and doc["sessions"]["count"] == 0

    down = cli("status", "--json", env={"OPENCLAW_STATE_DIR": str(tmp_path / "s"),
                                         "OPENCLAW_GATEWAY_PORT": str(free_port())}, home=tmp_path)
    assert down.returncode == 0
    assert json.loads(down.stdout)["gateway"]["reachable"] is False
    plain = cli("status", env={"OPENCLAW_STATE_DIR": str(tmp_path / "s"),
                               "OPENCLAW_GATEWAY_PORT": "1"}, home=tmp_path)
    assert plain.returncode == 0 and "Gateway: unreachable (ws://127.0.0.1:1)" in plain.stdout


def test_generated_token_is_found_by_the_cli(gateway_factory, tmp_path):
    gw = gateway_factory()  # no config: token generated into <state>/gateway.token
    assert (gw.state_dir / "gateway.token").exists()
    res = cli("gateway", "call", "status", env={"OPENCLAW_STATE_DIR": str(gw.state_dir),
                                                 "OPENCLAW_GATEWAY_PORT": str(gw.port)}, home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["gateway"]["authMode"] == "token"
