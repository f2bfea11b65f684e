"""The strict config schema (cli-config §5.4, §6, §6.7): the collecting walker, unknown keys
against our schema and the official key list, legacy keys, cross-field rules, the JSON
Schema (protocol §10.3) and the `config.schema` RPC over a real gateway."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from actors.config.jsonschema import config_schema, ui_hints
from actors.config.load import ConfigSnapshot, ignored_paths, load_config
from actors.config.reload import reload_class
from actors.config.schema import Config


def load(tmp_path: Path, doc: dict | str, environ: dict | None = None) -> ConfigSnapshot:
    path = tmp_path / "openclaw.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return load_config(path, environ if environ is not None else {})


def lines(snap: ConfigSnapshot) -> list[str]:
    return [i.line() for i in snap.issues]


def codes(snap: ConfigSnapshot) -> dict[str, str]:
    return {i.path: i.code for i in snap.issues}


PROVIDER = {"api": "openai-completions", "baseUrl": "https://llm.example/v1", "models": [{"id": "m"}]}


# --- types, enums, ranges, unknown keys ------------------------------------------------------

def test_empty_file_gives_every_default(tmp_path):
    snap = load(tmp_path, {})
    assert snap.valid and snap.config == Config()
    assert snap.config.session.reset_triggers == ["/new", "/reset"]
    assert snap.config.tools.exec.output_cap == 200000
    assert snap.config.channels.irc is None  # a channel runs only if its block exists


@pytest.mark.parametrize("text", ["", "   \n\t\n", "\ufeff"])
def test_existing_empty_file_is_invalid_not_all_defaults(tmp_path, text):
    # What an editor or a failed tool leaves when it truncates before writing: taken as "every
    # default", it would drop gateway.auth.token from a running gateway (issue 11, defect 1).
    snap = load(tmp_path, text)
    path = tmp_path / "openclaw.json"
    assert not snap.valid and snap.exists
    assert lines(snap) == [f"{path}: the file is empty (truncated while being written?); "
                           "write {} for an all-defaults config"]
    assert snap.issues[0].code == "parse"
    assert load(tmp_path, "{}").valid  # the all-defaults config, written out


def test_missing_file_is_still_every_default(tmp_path):
    snap = load_config(tmp_path / "openclaw.json", {})
    assert snap.valid and not snap.exists and snap.config == Config()


def test_unknown_key_with_did_you_mean(tmp_path):
    snap = load(tmp_path, {"gateway": {"auth": {"tokn": "x"}}})
    assert lines(snap) == ['gateway.auth.tokn: unknown key (did you mean "token"?)']
    assert snap.issues[0].code == "unknown_key"
    assert snap.issues[0].hint == 'did you mean "token"?'


def test_root_near_miss_is_matched_against_nested_keys(tmp_path):
    snap = load(tmp_path, {"customBindHost": "10.0.0.1"})
    assert lines(snap) == ['customBindHost: unknown key (did you mean "gateway.customBindHost"?)']


def test_root_near_miss_at_the_root_level_first(tmp_path):
    snap = load(tmp_path, {"gatway": {}})
    assert lines(snap) == ['gatway: unknown key (did you mean "gateway"?)']


def test_unknown_key_without_any_close_match_has_no_hint(tmp_path):
    snap = load(tmp_path, {"gateway": {"zzzqqq": 1}})
    assert lines(snap) == ["gateway.zzzqqq: unknown key"] and snap.issues[0].hint is None


def test_every_error_at_once_with_spec_wording(tmp_path):
    snap = load(tmp_path, {
        "gateway": {"port": "abc", "bind": "public", "auth": {"tokn": "x", "mode": "magic"}},
        "logging": {"maxFiles": 99},
        "channels": {"irc": {"enabled": True}},
    })
    assert lines(snap) == [
        'gateway.port: expected integer, got string "abc"',
        'gateway.auth.tokn: unknown key (did you mean "token"?)',
        'gateway.auth.mode: invalid value "magic" (expected none | token | password)',
        "logging.maxFiles: expected integer from 0 to 20, got 99",
        'gateway.bind: invalid value "public" (expected loopback | lan | tailnet | custom | auto | <ip address>)',
        "channels.irc.host: required when channels.irc is enabled",
    ]
    assert [i.code for i in snap.issues] == ["type", "unknown_key", "enum", "range", "enum", "required"]
    assert snap.config == Config()  # an invalid file yields no partial config


def test_enum_choices_are_listed_in_declared_order(tmp_path):
    snap = load(tmp_path, {"gateway": {"reload": {"mode": "sometimes"}}, "session": {"scope": 5}})
    assert lines(snap) == ['gateway.reload.mode: invalid value "sometimes" (expected off | restart | hot | hybrid)',
                           "session.scope: invalid value number 5 (expected per-sender | global)"]
    assert [i.code for i in snap.issues] == ["enum", "enum"]


def test_type_errors_inside_arrays_and_maps(tmp_path):
    snap = load(tmp_path, {"gateway": {"controlUi": {"allowedOrigins": ["https://a", 5]}},
                           "models": {"providers": {"openai": {"models": [{"id": "m", "maxTokens": 0}],
                                                               "headers": {"X-A": True}}}}})
    assert lines(snap) == [
        "gateway.controlUi.allowedOrigins[1]: expected string, got number 5",
        "models.providers.openai.models[0].maxTokens: expected integer >= 1, got 0",
        "models.providers.openai.headers.X-A: expected string, got boolean true",
    ]


def test_required_field_and_minimum_entries(tmp_path):
    snap = load(tmp_path, {"models": {"providers": {"openai": {}, "ollama": {"models": []}}},
                           "agents": {"defaults": {"model": "openai/m"}}})
    assert lines(snap) == ["models.providers.openai.models: required",
                           "models.providers.ollama.models: expected at least 1 entry"]
    assert [i.code for i in snap.issues] == ["required", "range"]


def test_a_section_of_the_wrong_type(tmp_path):
    snap = load(tmp_path, {"gateway": [], "session": {"reset": "daily"}})
    assert lines(snap) == ["gateway: expected object, got array",
                           'session.reset: expected object, got string "daily"']


def test_model_as_string_or_object_and_allowlist_entries(tmp_path):
    snap = load(tmp_path, {"models": {"providers": {"openai": {"models": [{"id": "gpt"}]}}},
                           "agents": {"defaults": {"model": {"primary": "openai/gpt",
                                                             "fallbacks": ["offline/echo"]}}},
                           "tools": {"exec": {"allowlist": ["/bin/ls", {"pattern": "git", "argPattern": "^st"}]}}})
    assert snap.valid, lines(snap)
    assert snap.config.agents.defaults.model.primary == "openai/gpt"
    assert snap.config.tools.exec.allowlist[1].arg_pattern == "^st"
    assert snap.config.models.providers["openai"].timeout_seconds == 120


def test_dollar_schema_is_always_allowed(tmp_path):
    assert load(tmp_path, {"$schema": "https://example/schema.json"}).valid


# --- keys known only to OpenClaw -------------------------------------------------------------

def test_official_only_keys_warn_once_and_are_kept(tmp_path):
    doc = {"plugins": {"entries": {"x": {"enabled": True}}},
           "channels": {"telegram": {"botToken": "1:a", "streaming": {"mode": "partial"}},
                        "discord": {"token": "d"}}}
    snap = load(tmp_path, doc)
    assert snap.valid, lines(snap)
    warned = [(w.path, w.message) for w in snap.warnings]
    ignored = "known to OpenClaw, not supported by this gateway; ignored"
    assert warned == [("plugins", ignored), ("channels.telegram.streaming", ignored),
                      ("channels.discord", ignored)]
    assert ignored_paths(snap) == ["plugins", "channels.telegram.streaming", "channels.discord"]
    assert snap.resolved["channels"]["telegram"]["streaming"] == {"mode": "partial"}  # preserved
    assert snap.config.channels.telegram.bot_token == "1:a"


def test_provider_with_an_official_but_unsupported_api_is_ignored(tmp_path):
    snap = load(tmp_path, {"models": {"providers": {"g": {"api": "google-generative-ai"}}}})
    assert snap.valid and ignored_paths(snap) == ["models.providers.g"]
    assert snap.config.models.providers == {}


def test_key_in_neither_list_is_an_error(tmp_path):
    snap = load(tmp_path, {"channels": {"telegarm": {}}})
    assert lines(snap) == ['channels.telegarm: unknown key (did you mean "telegram"?)']


# --- legacy keys (§6.7) ----------------------------------------------------------------------

def test_legacy_keys_are_rewritten_with_warnings(tmp_path):
    snap = load(tmp_path, {"canvasHost": {"enabled": False, "port": 18800},
                           "gateway": {"reload": {"deferralTimeoutMs": 1234}},
                           "tools": {"exec": {"mode": "ask"}}})
    assert snap.valid, lines(snap)
    assert [(w.path, w.message) for w in snap.warnings] == [
        ("canvasHost", "deprecated, use gateway.canvasHost"),
        ("gateway.reload.deferralTimeoutMs", "deprecated, use gateway.drainTimeoutMs"),
        ("tools.exec.mode", "deprecated, use tools.exec.security/ask"),
    ]
    cfg = snap.config
    assert (cfg.gateway.canvas_host.enabled, cfg.gateway.canvas_host.port) == (False, 18800)
    assert cfg.gateway.drain_timeout_ms == 1234
    assert (cfg.tools.exec.security, cfg.tools.exec.ask) == ("allowlist", "on-miss")
    assert "canvasHost" in snap.resolved  # the authored document is not rewritten


@pytest.mark.parametrize("mode, expected", [("deny", ("deny", "off")), ("allowlist", ("allowlist", "off")),
                                            ("full", ("full", "off"))])
def test_legacy_exec_modes(tmp_path, mode, expected):
    cfg = load(tmp_path, {"tools": {"exec": {"mode": mode}}}).config
    assert (cfg.tools.exec.security, cfg.tools.exec.ask) == expected


def test_legacy_and_new_spelling_with_different_values_conflict(tmp_path):
    snap = load(tmp_path, {"gateway": {"drainTimeoutMs": 5, "reload": {"deferralTimeoutMs": 6}}})
    assert lines(snap) == ["gateway.reload.deferralTimeoutMs: conflicts with gateway.drainTimeoutMs "
                           "(both are set, to different values)"]
    assert snap.issues[0].code == "conflict"
    same = load(tmp_path, {"gateway": {"drainTimeoutMs": 5, "reload": {"deferralTimeoutMs": 5}}})
    assert same.valid


# --- cross-field rules (§6) ------------------------------------------------------------------

@pytest.mark.parametrize("doc, line, code", [
    ({"gateway": {"bind": "custom"}}, 'gateway.customBindHost: required when gateway.bind is "custom"',
     "required"),
    ({"gateway": {"bind": "custom", "customBindHost": "eth0"}},
     'gateway.customBindHost: invalid IP address "eth0"', "type"),
    ({"gateway": {"remote": {"url": "http://x"}}},
     'gateway.remote.url: expected a ws:// or wss:// URL, got string "http://x"', "type"),
    ({"gateway": {"controlUi": {"basePath": "ui"}}},
     'gateway.controlUi.basePath: expected a path starting with "/", got string "ui"', "type"),
    ({"channels": {"telegram": {"botToken": "1:a", "dmPolicy": "open", "allowFrom": ["42"]}}},
     'channels.telegram.allowFrom: must contain "*" when dmPolicy is "open"', "required"),
    ({"channels": {"irc": {"host": "irc.example", "channels": ["#ok", "bad"]}}},
     'channels.irc.channels[1]: invalid value "bad" (expected a channel name starting with # or &)', "enum"),
    ({"channels": {"irc": {}}}, "channels.irc.host: required when channels.irc is enabled", "required"),
    ({"channels": {"telegram": {}}}, "channels.telegram.botToken: required when channels.telegram is "
     "enabled (or set tokenFile or TELEGRAM_BOT_TOKEN)", "required"),
    ({"channels": {"telegram": {"botToken": "1:a", "apiRoot": "api.telegram.org"}}},
     'channels.telegram.apiRoot: expected an http(s) URL, got string "api.telegram.org"', "type"),
    ({"session": {"idleMinutes": 30, "reset": {"idleMinutes": 60}}},
     "session.idleMinutes: conflicts with session.reset.idleMinutes (30 vs 60)", "conflict"),
    ({"models": {"providers": {"openai": {"models": [{"id": "a"}]}, "ollama": {"models": [{"id": "b"}]}}}},
     "agents.defaults.model: required when several providers are configured", "required"),
    ({"models": {"providers": {"mine": {"baseUrl": "https://x", "models": [{"id": "a"}]}}}},
     "models.providers.mine.api: required for provider ids other than openai, anthropic, ollama", "required"),
    ({"models": {"providers": {"mine": {"api": "ollama", "models": [{"id": "a"}]}}}},
     "models.providers.mine.baseUrl: required for provider ids other than openai, anthropic, ollama",
     "required"),
    ({"models": {"providers": {"ollama": {"baseUrl": "localhost:11434", "models": [{"id": "a"}]}}}},
     'models.providers.ollama.baseUrl: expected an http(s) URL, got string "localhost:11434"', "type"),
    ({"models": {"providers": {"offline": {"models": [{"id": "a"}]}}}},
     'models.providers.offline: the provider id "offline" is reserved', "conflict"),
    ({"agents": {"defaults": {"model": "gpt-4"}}},
     'agents.defaults.model: invalid value "gpt-4" (expected <provider>/<model>)', "enum"),
    ({"agents": {"defaults": {"model": {"primary": "offline/echo", "fallbacks": ["nope/x"]}}}},
     'agents.defaults.model.fallbacks[0]: provider "nope" is not configured (models.providers.nope)',
     "required"),
])
def test_cross_field_rules(tmp_path, doc, line, code):
    snap = load(tmp_path, doc)
    assert lines(snap) == [line]
    assert snap.issues[0].code == code


def test_cross_field_rules_accept_valid_combinations(tmp_path):
    snap = load(tmp_path, {
        "gateway": {"bind": "custom", "customBindHost": "127.0.0.1"},
        "channels": {"irc": {"host": "irc.example", "channels": ["#a", "&b"], "dmPolicy": "open",
                             "allowFrom": ["*"]},
                     "telegram": {"enabled": False}},
        "session": {"idleMinutes": 30, "reset": {"idleMinutes": 30}},
        "models": {"providers": {"mine": PROVIDER, "openai": {"models": [{"id": "g"}]}}},
        "agents": {"defaults": {"model": "mine/m"}},
    })
    assert snap.valid, lines(snap)


def test_telegram_token_from_the_environment(tmp_path):
    snap = load(tmp_path, {"channels": {"telegram": {}}}, environ={"TELEGRAM_BOT_TOKEN": "1:a"})
    assert snap.valid, lines(snap)


# --- JSON Schema and RPC ---------------------------------------------------------------------

def test_json_schema_annotations():
    schema = config_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "OpenClaw Gateway configuration"
    gw = schema["properties"]["gateway"]["properties"]
    assert gw["port"]["default"] == 18789 and gw["port"]["x-reload"] == "restart"
    assert (gw["port"]["minimum"], gw["port"]["maximum"]) == (1, 65535)
    token = gw["auth"]["properties"]["token"]
    assert token["x-sensitive"] is True and token["description"]
    assert gw["auth"]["properties"]["rateLimit"]["properties"]["maxAttempts"]["x-reload"] == "hot"
    assert gw["reload"]["properties"]["debounceMs"]["x-reload"] == "none"
    assert gw["channelHeartbeatMs"]["x-reload"] == "channel"
    provider = schema["properties"]["models"]["properties"]["providers"]["additionalProperties"]
    assert provider["properties"]["apiKey"]["x-sensitive"] is True
    assert provider["required"] == ["models"]
    assert "$defs" not in json.dumps(schema)  # inlined: every property has its own annotations


def _every_property(node: dict, path: str = ""):
    for key, prop in node.get("properties", {}).items():
        child = f"{path}.{key}" if path else key
        yield child, prop
        yield from _every_property(prop, child)
    for sub in ("additionalProperties", "items"):
        if isinstance(node.get(sub), dict):
            yield from _every_property(node[sub], f"{path}.*")
    for alt in node.get("anyOf", []):
        yield from _every_property(alt, path)


def test_every_property_has_description_and_the_reload_class_of_its_path():
    for path, prop in _every_property(config_schema()):
        assert prop.get("description"), path
        assert prop["x-reload"] == reload_class(path), path


def test_sample_config_has_the_shape_the_schema_describes(tmp_path):
    """The effective config of a full sample only uses keys and types the schema lists."""
    sample = {"gateway": {"port": 19000, "auth": {"mode": "token", "token": "t"}},
              "channels": {"irc": {"host": "irc.example", "channels": ["#a"]}},
              "models": {"providers": {"openai": {"models": [{"id": "g"}]}}},
              "tools": {"exec": {"allowlist": ["ls"]}}}
    snap = load(tmp_path, sample)
    assert snap.valid, lines(snap)
    kinds = {"integer": int, "string": str, "boolean": bool, "array": list, "object": dict, "null": type(None)}

    def check(value, node, path):
        alts = node.get("anyOf", [node])
        for alt in alts:
            if "enum" in alt and value in alt["enum"]:
                return
            if alt.get("type") and isinstance(value, kinds[alt["type"]]) and \
                    not (alt["type"] == "integer" and isinstance(value, bool)):
                if isinstance(value, dict):
                    for k, v in value.items():
                        sub = alt.get("properties", {}).get(k) or alt.get("additionalProperties")
                        assert isinstance(sub, dict), f"{path}.{k} not in the schema"
                        check(v, sub, f"{path}.{k}")
                if isinstance(value, list):
                    for i, v in enumerate(value):
                        check(v, alt["items"], f"{path}[{i}]")
                return
        raise AssertionError(f"{path}: {value!r} does not match {alts}")

    import msgspec
    check(msgspec.to_builtins(snap.config), config_schema(), "")


def test_ui_hints():
    hints = ui_hints()
    assert hints["gateway.auth.token"]["label"] == "Gateway token"
    assert hints["gateway.auth.token"]["sensitive"] is True
    assert hints["gateway.customBindHost"]["label"] == "Custom bind host"
    assert "sensitive" not in hints["gateway.port"]
    assert hints["models.providers.*.apiKey"]["sensitive"] is True


def test_config_schema_rpc_needs_admin(gateway, client_factory):
    admin = client_factory(scopes=["operator.admin"])
    res = admin.request("config.schema")
    assert res["ok"], res
    payload = res["payload"]
    assert set(payload) == {"schema", "uiHints", "version", "generatedAt"}
    assert payload["version"] == "2026.9.6" and payload["generatedAt"] == "2026-09-06T00:00:00Z"
    assert payload["schema"]["title"] == "OpenClaw Gateway configuration"
    assert payload["uiHints"]["gateway.auth.token"] == {"label": "Gateway token", "sensitive": True,
                                                        "help": "Shared gateway token"}
    reader = client_factory(scopes=["operator.read"])
    assert reader.request("config.schema")["error"]["code"] == "FORBIDDEN"


# --- performance -----------------------------------------------------------------------------

def test_large_config_validates_in_linear_time(tmp_path):
    origins = [f"https://h{i}.example" for i in range(200000)]
    providers = {f"p{i}": {**PROVIDER, "models": [{"id": f"m{j}"} for j in range(5)]} for i in range(2000)}
    doc = {"gateway": {"controlUi": {"allowedOrigins": origins}}, "models": {"providers": providers},
           "agents": {"defaults": {"model": "p0/m0"}}}
    start = time.perf_counter()
    snap = load(tmp_path, doc)
    elapsed = time.perf_counter() - start
    assert snap.valid, lines(snap)[:3]
    assert elapsed < 3.0, elapsed
