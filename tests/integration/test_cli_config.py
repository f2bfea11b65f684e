"""`openclaw config` as a subprocess, with and without a running gateway (cli-config §4.7)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import TOKEN, free_port
from tests.integration.test_cli import cli

AUTO = "The gateway will restart automatically to apply."
LIVE = "Change will apply without restarting the gateway."
MANUAL = "Restart the gateway to apply: openclaw gateway restart"


def offline_env(state_dir: Path) -> dict:
    """A state dir whose gateway port has nobody listening: the CLI works on the file."""
    return {"OPENCLAW_STATE_DIR": str(state_dir), "OPENCLAW_GATEWAY_PORT": str(free_port())}


def gateway_env(gw) -> dict:
    return {"OPENCLAW_STATE_DIR": str(gw.state_dir), "OPENCLAW_GATEWAY_PORT": str(gw.port)}


def write(path: Path, doc: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_set_through_the_running_gateway(gateway_factory, ws_clients, tmp_path):
    # With reload mode "off" nothing watches the file, so the only way the gateway's
    # config.get can show the change at once is that the CLI wrote through config.patch.
    gw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}, "reload": {"mode": "off"}}})
    env = gateway_env(gw)
    res = cli("config", "set", "logging.level", "debug", env=env, home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"Set logging.level = debug ({gw.config_path})", MANUAL]
    client = ws_clients(gw.url)
    payload = client.request("config.get", {})["payload"]
    assert payload["parsed"]["logging"]["level"] == "debug"
    assert json.loads(gw.config_path.read_text())["logging"]["level"] == "debug"

    res = cli("config", "set", "gateway.controlUi.allowedOrigins[0]", "https://a.example", "--json",
              env=env, home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"ok": True, "path": "gateway.controlUi.allowedOrigins[0]",
                                      "configPath": str(gw.config_path), "changed": True, "reload": "hot",
                                      "hint": MANUAL}
    res = cli("config", "unset", "gateway.controlUi.allowedOrigins[0]", env=env, home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(gw.config_path.read_text())["gateway"]["controlUi"]["allowedOrigins"] == []

    res = cli("config", "get", "gateway.auth.token", env=env, home=tmp_path)
    assert res.returncode == 0 and res.stdout == "__OPENCLAW_REDACTED__\n"
    res = cli("config", "get", "gateway.auth", "--authored", "--json", env=env, home=tmp_path)
    assert json.loads(res.stdout) == {"mode": "token", "token": "__OPENCLAW_REDACTED__"}
    res = cli("config", "set", "logging.level", "debug", env=env, home=tmp_path)
    assert res.returncode == 0 and res.stdout == "No change\n"


def test_set_without_a_gateway(tmp_path):
    state = tmp_path / "state"
    cfg = write(state / "openclaw.json", '// mine\n{gateway: {auth: {mode: "token", token: "s3cret"}}}\n')
    env = offline_env(state)
    res = cli("config", "set", "gateway.port", "19001", env=env, home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"Set gateway.port = 19001 ({cfg})", AUTO]
    assert f"comments in {cfg} were not preserved" in res.stderr
    assert json.loads(cfg.read_text()) == {"gateway": {"auth": {"mode": "token", "token": "s3cret"}, "port": 19001}}
    assert cfg.with_name("openclaw.json.bak").exists()

    before = cfg.read_bytes()
    res = cli("config", "set", "gateway.port", "19001", "--json", env=env, home=tmp_path)
    assert json.loads(res.stdout) == {"ok": True, "path": "gateway.port", "configPath": str(cfg),
                                      "changed": False, "reload": "none", "hint": "No gateway restart needed."}
    assert cfg.read_bytes() == before

    res = cli("config", "set", "logging.level", "warn", "--dry-run", "--json", env=env, home=tmp_path)
    assert json.loads(res.stdout) == {"ok": True, "path": "logging.level", "configPath": str(cfg),
                                      "changed": True, "reload": "hot", "hint": LIVE, "dryRun": True}
    assert cfg.read_bytes() == before

    res = cli("config", "set", "gateway.port", "abc", env=env, home=tmp_path)
    assert res.returncode == 1
    assert 'gateway.port: expected integer, got string "abc"' in res.stderr
    res = cli("config", "set", "gateway.port", "abc", "--strict-json", env=env, home=tmp_path)
    assert res.returncode == 2
    res = cli("config", "set", "gateway.auth.token", "__OPENCLAW_REDACTED__", env=env, home=tmp_path)
    assert res.returncode == 2 and "cannot be used as a value" in res.stderr
    res = cli("config", "set", "gateway.auth.token", "n3w", env=env, home=tmp_path)
    assert res.returncode == 0 and "n3w" not in res.stdout  # secrets stay out of the output
    assert cfg.read_bytes() != before and json.loads(cfg.read_text())["gateway"]["auth"]["token"] == "n3w"


def test_set_without_a_gateway_writes_into_the_included_file(tmp_path):
    state = tmp_path / "state"
    inc = write(state / "conf" / "logging.json5", '{level: "info"}')
    cfg = write(state / "openclaw.json", {"logging": {"$include": "./conf/logging.json5"}})
    before = cfg.read_bytes()
    env = offline_env(state)
    res = cli("config", "set", "logging.level", "debug", env=env, home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == f"Set logging.level = debug ({cfg})"
    assert json.loads(inc.read_text()) == {"level": "debug"}
    assert cfg.read_bytes() == before
    res = cli("config", "get", "logging.level", env=env, home=tmp_path)
    assert res.stdout == "debug\n"
    res = cli("config", "unset", "logging.level", env=env, home=tmp_path)  # also lives in the include
    assert res.returncode == 0, res.stderr
    assert json.loads(inc.read_text()) == {} and cfg.read_bytes() == before
    write(inc, {"level": "debug"})
    # An include array keeps the refusal.
    cfg.write_text(json.dumps({"logging": {"$include": ["./conf/logging.json5"]}}))
    res = cli("config", "set", "logging.level", "warn", env=env, home=tmp_path)
    assert res.returncode == 1
    assert "logging.level comes from $include ./conf/logging.json5; edit that file directly" in res.stderr
    assert json.loads(inc.read_text()) == {"level": "debug"}


def test_unset(tmp_path):
    state = tmp_path / "state"
    cfg = write(state / "openclaw.json", {"gateway": {"port": 19001}, "logging": {"level": "debug"}})
    env = offline_env(state)
    res = cli("config", "unset", "gateway.port", "--json", env=env, home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["changed"] is True and json.loads(res.stdout)["reload"] == "restart"
    assert json.loads(cfg.read_text()) == {"gateway": {}, "logging": {"level": "debug"}}
    before = cfg.read_bytes()
    res = cli("config", "unset", "gateway.port", env=env, home=tmp_path)
    assert res.returncode == 1 and "Config path not set: gateway.port" in res.stderr
    assert cfg.read_bytes() == before
    res = cli("config", "get", "gateway.port", env=env, home=tmp_path)
    assert res.stdout == "18789\n"  # the default applies again


def test_get_redacted_unknown_and_invalid(tmp_path):
    state = tmp_path / "state"
    cfg = write(state / "openclaw.json", {"gateway": {"auth": {"mode": "token", "token": "s3cret"}}})
    env = offline_env(state)
    res = cli("config", "get", env=env, home=tmp_path)
    assert res.returncode == 0 and "s3cret" not in res.stdout
    doc = json.loads(res.stdout)
    assert doc["gateway"]["auth"]["token"] == "__OPENCLAW_REDACTED__" and doc["gateway"]["port"] == 18789
    res = cli("config", "get", "gateway.auth.mode", env=env, home=tmp_path)
    assert res.stdout == "token\n"
    res = cli("config", "get", "gateway.auth.mode", "--json", env=env, home=tmp_path)
    assert res.stdout == '"token"\n'
    res = cli("config", "get", "gateway.nope", env=env, home=tmp_path)
    assert res.returncode == 1 and "Config path not found: gateway.nope" in res.stderr

    write(cfg, '{gateway: {port: "abc"}}')
    for args in (("get",), ("set", "logging.level", "debug"), ("unset", "gateway.port")):
        res = cli("config", *args, env=env, home=tmp_path)
        assert res.returncode == 78, (args, res.stderr)
        assert f"Invalid config at {cfg}:" in res.stderr


def test_file_json(tmp_path):
    state = tmp_path / "state"
    res = cli("config", "file", "--json", env={"OPENCLAW_STATE_DIR": str(state)}, home=tmp_path)
    assert json.loads(res.stdout) == {"path": str(state / "openclaw.json"), "exists": False,
                                      "stateDir": str(state), "source": "env"}
    res = cli("config", "file", home=tmp_path)
    assert res.stdout == f"{tmp_path / '.openclaw' / 'openclaw.json'}\n"
    write(tmp_path / ".openclaw" / "openclaw.json", {})
    res = cli("config", "file", "--json", home=tmp_path)
    assert json.loads(res.stdout)["exists"] is True and json.loads(res.stdout)["source"] == "default"


def test_validate(tmp_path):
    state = tmp_path / "state"
    cfg = write(state / "openclaw.json", {"gateway": {"port": 19001}})
    env = {"OPENCLAW_STATE_DIR": str(state)}
    res = cli("config", "validate", env=env, home=tmp_path)
    assert res.returncode == 0 and res.stdout == f"Config valid: {cfg}\n"
    write(cfg, {"gateway": {"port": "abc"}})
    res = cli("config", "validate", env=env, home=tmp_path)
    assert res.returncode == 78
    assert res.stdout.splitlines() == [f"Invalid config at {cfg}:",
                                       '  gateway.port: expected integer, got string "abc"']
    res = cli("config", "validate", "--json", env=env, home=tmp_path)
    assert res.returncode == 78
    assert json.loads(res.stdout) == {"ok": False, "path": str(cfg), "warnings": [], "errors": [
        {"path": "gateway.port", "code": "type", "message": 'expected integer, got string "abc"'}]}


def test_validate_refuses_an_empty_file(tmp_path):
    state = tmp_path / "state"
    cfg = write(state / "openclaw.json", "  \n")
    env = {"OPENCLAW_STATE_DIR": str(state)}
    res = cli("config", "validate", env=env, home=tmp_path)
    assert res.returncode == 78
    assert res.stdout.splitlines() == [f"Invalid config at {cfg}:", f"  {cfg}: the file is empty (truncated "
                                       "while being written?); write {} for an all-defaults config"]


def test_validate_reports_every_error_with_its_hint(tmp_path):
    state = tmp_path / "state"
    cfg = write(state / "openclaw.json", {"gateway": {"port": "abc", "auth": {"tokn": "x"}}})
    env = {"OPENCLAW_STATE_DIR": str(state)}
    res = cli("config", "validate", env=env, home=tmp_path)
    assert res.returncode == 78
    lines = res.stdout.splitlines()
    assert lines[0] == f"Invalid config at {cfg}:"
    assert '  gateway.auth.tokn: unknown key (did you mean "token"?)' in lines
    assert '  gateway.port: expected integer, got string "abc"' in lines
    res = cli("config", "validate", "--json", env=env, home=tmp_path)
    assert res.returncode == 78
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["path"] == str(cfg) and doc["warnings"] == []
    assert {"path": "gateway.auth.tokn", "code": "unknown_key", "message": "unknown key",
            "hint": 'did you mean "token"?'} in doc["errors"]


def test_schema_even_with_an_invalid_config(tmp_path):
    state = tmp_path / "state"
    write(state / "openclaw.json", "{not json5")
    for args in (("config", "schema"), ("config", "schema", "--json")):
        res = cli(*args, env={"OPENCLAW_STATE_DIR": str(state)}, home=tmp_path)
        assert res.returncode == 0, res.stderr
        schema = json.loads(res.stdout)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"] == "OpenClaw Gateway configuration"
        token = schema["properties"]["gateway"]["properties"]["auth"]["properties"]["token"]
        assert token["x-sensitive"] is True and token["x-reload"] == "restart"


def test_first_set_creates_the_state_dir_and_a_private_file(tmp_path):
    state = tmp_path / "fresh" / "state"
    res = cli("config", "set", "gateway.port", "19001", env=offline_env(state), home=tmp_path)
    assert res.returncode == 0, res.stderr
    cfg = state / "openclaw.json"
    assert json.loads(cfg.read_text()) == {"gateway": {"port": 19001}}
    assert cfg.stat().st_mode & 0o777 == 0o600 and state.stat().st_mode & 0o777 == 0o700
