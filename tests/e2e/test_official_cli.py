"""The official OpenClaw CLI (npm `openclaw` 2026.9.6 on Node 24) against this gateway.

`tests/run.sh` installs it and exports OPENCLAW_OFFICIAL_CLI / OPENCLAW_OFFICIAL_NODE_BIN.
The CLI retries a failing `health` for about a minute, so a short subprocess timeout here
turns any incompatibility into a fast, visible failure.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TOKEN
from tests.needs import require_tool

CLI = os.environ.get("OPENCLAW_OFFICIAL_CLI", "")
NODE_BIN = os.environ.get("OPENCLAW_OFFICIAL_NODE_BIN", "")



@pytest.fixture(autouse=True, scope="module")
def _official_cli_present() -> None:
    require_tool(bool(CLI and Path(CLI).exists() and NODE_BIN),
                 "official CLI not installed: run the suite with `bash tests/run.sh`")


def official(*args: str, home: Path, env: dict | None = None, timeout: float = 45) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_"))}
    base.update(HOME=str(home), PATH=f"{NODE_BIN}:{os.environ.get('PATH', '')}", NO_COLOR="1",
                OPENCLAW_STATE_DIR=str(home / ".openclaw"))
    return subprocess.run([CLI, *args], env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    from tests.conftest import GatewayProcess
    proc = GatewayProcess(tmp_path_factory.mktemp("official"),
                          {"gateway": {"auth": {"mode": "token", "token": TOKEN}}}, [], {})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def config_env(gw, tmp_path) -> dict:
    """A config file naming the port and token, as a user of the official CLI would write it."""
    config = tmp_path / "openclaw.json"
    config.write_text('// gateway under test\n'
                      '{gateway: {mode: "local", port: %d, auth: {mode: "token", token: "%s"}}}\n'
                      % (gw.port, TOKEN))
    return {"OPENCLAW_CONFIG_PATH": str(config)}


def test_version_runs(tmp_path):
    res = official("--version", home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "2026.9.6" in res.stdout


def test_gateway_call_health_with_url_and_token(gw, tmp_path):
    res = official("gateway", "call", "health", "--url", gw.url, "--token", TOKEN, "--json", home=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    payload = json.loads(res.stdout)
    assert payload["ok"] is True and payload["defaultAgentId"] == "main"

    res = official("gateway", "call", "health", "--url", gw.url, "--token", TOKEN, home=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert '"defaultAgentId"' in res.stdout


def test_gateway_call_wrong_token_fails_fast(gw, tmp_path):
    res = official("gateway", "call", "health", "--url", gw.url, "--token", "wrong", home=tmp_path)
    assert res.returncode != 0
    assert "token mismatch" in (res.stdout + res.stderr)


def test_health_json_from_config(gw, tmp_path, config_env):
    res = official("health", "--json", home=tmp_path, env=config_env)
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["ok"] is True
    assert doc["sessions"]["count"] == 0 and doc["agents"][0]["agentId"] == "main"


def test_status_from_config(gw, tmp_path, config_env):
    res = official("status", home=tmp_path, env=config_env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"ws://127.0.0.1:{gw.port} (local loopback) · reachable" in res.stdout
    assert "unreachable" not in res.stdout.lower()

    res = official("status", "--json", home=tmp_path, env=config_env)
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["gateway"]["reachable"] is True and doc["gateway"]["error"] is None
    assert doc["gateway"]["url"] == gw.url
    assert doc["gateway"]["self"]["version"] == "2026.9.6"
    assert doc["runtimeVersion"] == "2026.9.6" and doc["channelSummary"] == []


def test_health_text_from_config(gw, tmp_path, config_env):
    res = official("health", home=tmp_path, env=config_env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"Session store (main): {gw.state_dir}/agents/main/sessions.sqlite (0 entries)" in res.stdout


@pytest.fixture(scope="module")
def echo_gw(tmp_path_factory):
    """A gateway whose default model is the built-in offline/echo."""
    from tests.conftest import GatewayProcess
    proc = GatewayProcess(tmp_path_factory.mktemp("official-echo"),
                          {"gateway": {"auth": {"mode": "token", "token": TOKEN}},
                           "agents": {"defaults": {"model": "offline/echo"}}}, [], {})
    proc.start()
    yield proc
    proc.stop()


def _echo_env(echo_gw, tmp_path) -> dict:
    config = tmp_path / "openclaw.json"
    config.write_text('{gateway: {mode: "local", port: %d, auth: {mode: "token", token: "%s"}}}\n'
                      % (echo_gw.port, TOKEN))
    return {"OPENCLAW_CONFIG_PATH": str(config)}


def test_agent_turn_through_the_gateway(echo_gw, tmp_path):
    env = _echo_env(echo_gw, tmp_path)
    res = official("agent", "-m", "hello from the official cli", "--json", home=tmp_path, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "ok" and doc["result"]["payloads"] == [{"text": "hello from the official cli"}]
    res = official("agent", "-m", "plain words", "--session-key", "agent:main:cli", home=tmp_path, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().endswith("plain words")
    res = official("gateway", "call", "chat.history", "--params", '{"sessionKey":"agent:main:cli"}',
                   "--url", echo_gw.url, "--token", TOKEN, "--json", home=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    roles = [(m["role"], m["content"][0]["text"]) for m in json.loads(res.stdout)["messages"]]
    assert roles == [("user", "plain words"), ("assistant", "plain words")]
