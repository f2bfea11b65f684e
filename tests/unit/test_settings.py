"""Port and auth resolution (`actors/config/settings.py`) and state/config paths (`actors/paths.py`):
cli-config §1 (secret precedence, twins), §2 (paths, port precedence), §4.1 (generated token,
refusals). Real config files loaded through the real loader; only the environment is set."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from actors import paths
from actors.config.load import load_config
from actors.config.settings import (
    DEFAULT_PORT,
    DEV_PORT,
    StartupRefusal,
    generate_token,
    read_generated_token,
    resolve_auth,
    resolve_port,
)
from actors.paths import env, resolve_config_path, resolve_state_dir

TWINNED = ("STATE_DIR", "CONFIG_PATH", "GATEWAY_PORT", "GATEWAY_TOKEN", "GATEWAY_PASSWORD")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for suffix in TWINNED:
        monkeypatch.delenv(f"OPENCLAW_{suffix}", raising=False)
        monkeypatch.delenv(f"CLAWDBOT_{suffix}", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.setattr(paths, "_warned_twins", set())


def snapshot(tmp_path: Path, config: dict | None):
    path = tmp_path / "openclaw.json"
    if config is not None:
        path.write_text(json.dumps(config))
    snap = load_config(path)
    assert snap.valid, snap.issues
    return snap


# --------------------------------------------------------------------------- port


def test_port_precedence(tmp_path, monkeypatch):
    snap = snapshot(tmp_path, {"gateway": {"port": 20000}})
    assert resolve_port(load_config(tmp_path / "missing.json")) == DEFAULT_PORT == 18789
    assert resolve_port(snap) == 20000
    monkeypatch.setenv("OPENCLAW_GATEWAY_PORT", "20001")
    assert resolve_port(snap) == 20001
    assert resolve_port(snap, dev=True) == DEV_PORT == 19001
    assert resolve_port(snap, 20002, dev=True) == 20002
    assert resolve_port(snap, 0) == 0  # --port 0: an ephemeral port


def test_port_env_twin_and_invalid_values(tmp_path, monkeypatch):
    snap = snapshot(tmp_path, {"gateway": {"port": 20000}})
    monkeypatch.setenv("CLAWDBOT_GATEWAY_PORT", "20003")
    assert resolve_port(snap) == 20003
    for bad in ("abc", "0", "70000", "-1"):
        monkeypatch.setenv("CLAWDBOT_GATEWAY_PORT", bad)
        assert resolve_port(snap) == 20000, bad


# --------------------------------------------------------------------------- auth


def test_secret_precedence_flag_env_config(tmp_path, monkeypatch):
    snap = snapshot(tmp_path, {"gateway": {"auth": {"token": "config-token"}}})
    auth = resolve_auth(snap, tmp_path)
    assert (auth.mode, auth.token, auth.source) == ("token", "config-token", "config gateway.auth.token")
    monkeypatch.setenv("CLAWDBOT_GATEWAY_TOKEN", "twin-token")
    auth = resolve_auth(snap, tmp_path)
    assert (auth.token, auth.source) == ("twin-token", "env CLAWDBOT_GATEWAY_TOKEN")
    monkeypatch.setenv("OPENCLAW_GATEWAY_TOKEN", "env-token")
    auth = resolve_auth(snap, tmp_path)
    assert (auth.token, auth.source) == ("env-token", "env OPENCLAW_GATEWAY_TOKEN")
    auth = resolve_auth(snap, tmp_path, flag_token="flag-token")
    assert (auth.token, auth.source) == ("flag-token", "flag --token")
    assert not (tmp_path / "gateway.token").exists()


def test_generated_token_created_once_private_and_reused(tmp_path):
    snap = snapshot(tmp_path, None)
    state = tmp_path / "state"
    auth = resolve_auth(snap, state)
    assert auth.mode == "token" and auth.generated
    path = state / "gateway.token"
    assert len(auth.token) == 64 and int(auth.token, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == auth.token + "\n"
    assert resolve_auth(snap, state).token == auth.token
    assert read_generated_token(state) == auth.token
    assert [p.name for p in state.iterdir()] == ["gateway.token"]  # no temp file left behind


def test_cli_only_reads_the_generated_token(tmp_path):
    snap = snapshot(tmp_path, None)
    auth = resolve_auth(snap, tmp_path / "state", server=False)
    assert (auth.mode, auth.token) == ("token", None)
    assert not (tmp_path / "state" / "gateway.token").exists()
    token = generate_token(tmp_path / "state")
    assert resolve_auth(snap, tmp_path / "state", server=False).token == token


def test_concurrent_generation_agrees_on_one_token(tmp_path):
    state = tmp_path / "state"
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(generate_token(state))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert read_generated_token(state) == results[0]


def test_empty_token_file_is_replaced(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "gateway.token").write_text("\n")
    token = generate_token(state)
    assert len(token) == 64 and read_generated_token(state) == token


def test_modes(tmp_path, monkeypatch):
    assert resolve_auth(snapshot(tmp_path, {"gateway": {"auth": {"mode": "none", "token": "t"}}}),
                        tmp_path).mode == "none"
    auth = resolve_auth(snapshot(tmp_path, {"gateway": {"auth": {"password": "pw"}}}), tmp_path)
    assert (auth.mode, auth.password, auth.secret) == ("password", "pw", "pw")
    # --token implies token mode even when a password is configured.
    auth = resolve_auth(snapshot(tmp_path, {"gateway": {"auth": {"password": "pw"}}}), tmp_path,
                        flag_token="flag")
    assert (auth.mode, auth.token) == ("token", "flag")
    monkeypatch.setenv("OPENCLAW_GATEWAY_PASSWORD", "env-pw")
    auth = resolve_auth(snapshot(tmp_path, {"gateway": {"auth": {"mode": "password"}}}), tmp_path)
    assert (auth.password, auth.source) == ("env-pw", "env OPENCLAW_GATEWAY_PASSWORD")
    assert not (tmp_path / "gateway.token").exists()


def test_both_secrets_without_mode_refused(tmp_path, monkeypatch):
    snap = snapshot(tmp_path, {"gateway": {"auth": {"token": "t0123456", "password": "p0123456"}}})
    with pytest.raises(StartupRefusal, match=r"^gateway.auth: both token and password are set; "
                                             r"set gateway.auth.mode$"):
        resolve_auth(snap, tmp_path)
    # The CLI does not refuse; it uses the token.
    assert resolve_auth(snap, tmp_path, server=False).token == "t0123456"
    # Env counts as "resolves" too.
    monkeypatch.setenv("OPENCLAW_GATEWAY_PASSWORD", "env-pw")
    with pytest.raises(StartupRefusal):
        resolve_auth(snapshot(tmp_path, {"gateway": {"auth": {"token": "t0123456"}}}), tmp_path)
    # An explicit mode settles it.
    snap = snapshot(tmp_path, {"gateway": {"auth": {"mode": "token", "token": "t0123456",
                                                    "password": "p0123456"}}})
    assert resolve_auth(snap, tmp_path).token == "t0123456"


def test_unresolved_placeholder_refused_unless_replaced(tmp_path, monkeypatch):
    monkeypatch.delenv("OC_SETTINGS_TEST_VAR", raising=False)
    snap = snapshot(tmp_path, {"gateway": {"auth": {"token": "${OC_SETTINGS_TEST_VAR}"}}})
    with pytest.raises(StartupRefusal, match=r"^gateway.auth.token: environment variable "
                                             r"OC_SETTINGS_TEST_VAR is not set$"):
        resolve_auth(snap, tmp_path)
    assert not (tmp_path / "gateway.token").exists()  # the placeholder never became a generated token
    assert resolve_auth(snap, tmp_path, flag_token="flag").token == "flag"
    monkeypatch.setenv("OPENCLAW_GATEWAY_TOKEN", "from-env")
    assert resolve_auth(snap, tmp_path).token == "from-env"
    monkeypatch.delenv("OPENCLAW_GATEWAY_TOKEN")
    monkeypatch.setenv("OC_SETTINGS_TEST_VAR", "resolved-value")
    snap = load_config(tmp_path / "openclaw.json")
    assert resolve_auth(snap, tmp_path).token == "resolved-value"


def test_unresolved_password_placeholder_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("OC_SETTINGS_TEST_PW", raising=False)
    snap = snapshot(tmp_path, {"gateway": {"auth": {"password": "${OC_SETTINGS_TEST_PW}"}}})
    with pytest.raises(StartupRefusal, match="gateway.auth.password: environment variable "
                                             "OC_SETTINGS_TEST_PW is not set"):
        resolve_auth(snap, tmp_path)
    # Not used in token mode: no refusal.
    snap = snapshot(tmp_path, {"gateway": {"auth": {"mode": "token", "token": "t0123456",
                                                    "password": "${OC_SETTINGS_TEST_PW}"}}})
    assert resolve_auth(snap, tmp_path).token == "t0123456"


# --------------------------------------------------------------------------- paths


def test_env_twins(monkeypatch, caplog):
    assert env("OPENCLAW_GATEWAY_TOKEN") is None
    monkeypatch.setenv("CLAWDBOT_GATEWAY_TOKEN", "b")
    assert env("OPENCLAW_GATEWAY_TOKEN") == env("CLAWDBOT_GATEWAY_TOKEN") == "b"
    monkeypatch.setenv("OPENCLAW_GATEWAY_TOKEN", "")
    assert env("OPENCLAW_GATEWAY_TOKEN") == "b"  # empty counts as unset
    monkeypatch.setenv("OPENCLAW_GATEWAY_TOKEN", "a")
    with caplog.at_level(logging.WARNING, logger="openclaw.config"):
        assert env("OPENCLAW_GATEWAY_TOKEN") == "a"
        assert env("CLAWDBOT_GATEWAY_TOKEN") == "a"
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["env OPENCLAW_GATEWAY_TOKEN and CLAWDBOT_GATEWAY_TOKEN differ; "
                        "using OPENCLAW_GATEWAY_TOKEN"]  # once per process


def test_state_dir_rules(tmp_path, monkeypatch):
    home = tmp_path / "home"
    assert resolve_state_dir() == (home / ".openclaw", "default")
    (home / ".clawdbot").mkdir()
    assert resolve_state_dir() == (home / ".clawdbot", "legacy")
    (home / ".openclaw").mkdir()
    assert resolve_state_dir() == (home / ".openclaw", "default")
    monkeypatch.setenv("CLAWDBOT_STATE_DIR", "~/elsewhere")
    assert resolve_state_dir() == (home / "elsewhere", "env")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENCLAW_STATE_DIR", "relative/state")
    assert resolve_state_dir() == (tmp_path / "relative" / "state", "env")
    assert resolve_state_dir(dev=True) == (home / ".openclaw-dev", "dev")  # --dev beats env


def test_config_path_rules(tmp_path, monkeypatch):
    state = tmp_path / "state"
    state.mkdir()
    assert resolve_config_path(state) == (state / "openclaw.json", "default")
    (state / "clawdbot.json").write_text("{}")
    assert resolve_config_path(state) == (state / "clawdbot.json", "legacy")
    (state / "openclaw.json").write_text("{}")
    assert resolve_config_path(state) == (state / "openclaw.json", "default")
    monkeypatch.setenv("CLAWDBOT_CONFIG_PATH", "~/cfg/a.json")
    assert resolve_config_path(state) == (tmp_path / "home" / "cfg" / "a.json", "env")


def test_ensure_private_dir(tmp_path):
    old = os.umask(0o022)
    try:
        path = paths.ensure_private_dir(tmp_path / "a" / "b")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
