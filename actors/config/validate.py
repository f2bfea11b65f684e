"""Strict validation of a config document (cli-config §5.4): one walk over the Struct types
that collects every error with its path (msgspec alone stops at the first), sorts unknown
keys into "ours", "known to OpenClaw" (a warning; ignored) and "unknown" (an error with a
did-you-mean), and then the cross-field rules of §6 that a type cannot express.

The walk is linear in the document: every node is visited once, and the official key list
is a trie walked alongside, so lookups cost one dict access per level.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from actors.config import schema as config_schema
from actors.config.reload import join
from actors.config.schema import BIND_MODES, BUILTIN_PROVIDERS, RESERVED_PROVIDERS, Config, Provider

OFFICIAL_KEYS_FILE = Path(__file__).parent / "data" / "official-config-keys.txt"
IGNORED = "known to OpenClaw, not supported by this gateway; ignored"
# `api` values the official schema accepts that this gateway has no client for: such a
# provider is ignored with a warning rather than failing the whole config (§6.5).
UNSUPPORTED_APIS = frozenset({
    "openai-responses", "openai-codex-responses", "azure-openai-responses",
    "google-generative-ai", "google-vertex", "bedrock-converse-stream", "github-copilot",
    "mistral-conversations",
})


class Issue(msgspec.Struct, frozen=True):
    """One problem: `path` is dotted (`channels.irc.channels[0]`), `code` one of parse,
    include, env, unknown_key, type, enum, range, required, conflict (warnings also use
    ignored and deprecated); `hint` repeats the did-you-mean, if any, for --json output."""

    path: str
    message: str
    code: str = "type"
    hint: str | None = None

    def line(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class Result(msgspec.Struct):
    document: dict  # the keys of our schema only, each of the right type
    issues: list[Issue]
    warnings: list[Issue]
    ignored: list[str]  # top-most paths known to OpenClaw only (reload treats them as class none)


def validate(doc: dict, environ: dict | None = None) -> Result:
    """Validate a document after `$include` and `${VAR}`; legacy keys are rewritten first."""
    result = Result({}, [], [], [])
    doc = rewrite_legacy(doc, result)
    walker = _Walker(result)
    cleaned = walker.walk(doc, _ROOT, "", [official_trie()])
    result.document = cleaned if isinstance(cleaned, dict) else {}
    _cross_field(result.document, result, environ)
    return result


def to_config(result: Result) -> Config:
    """The typed config of a document `validate` accepted."""
    return msgspec.convert(result.document, Config)


# --- official key list ------------------------------------------------------------------

@lru_cache(maxsize=1)
def official_trie() -> dict:
    """The official key paths as nested dicts; `*` = any map key, `[]` = array items."""
    root: dict = {}
    for line in OFFICIAL_KEYS_FILE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        node = root
        # str methods, not a regex: this runs at every boot over ~7k lines (3-4x faster).
        for part in line.replace("[]", ".[].").split("."):
            if part:
                node = node.setdefault(part, {})
    return root


def _children(nodes: list[dict], key: str) -> list[dict]:
    out = [n[key] for n in nodes if key in n]
    out += [n["*"] for n in nodes if "*" in n and key != "[]"]
    return out


# --- the walker -------------------------------------------------------------------------

_DROP = object()  # a value with an error: left out of the cleaned document
_ROOT = typing.cast(mi.StructType, mi.type_info(Config))  # Config is a Struct


def _unwrap(node: Any) -> Any:
    while isinstance(node, mi.Metadata):
        node = node.type
    return node


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"


def describe(value: Any) -> str:
    """`string "abc"`, `number 5`, `boolean true`, `null`, `array`, `object`."""
    kind = _kind(value)
    if kind == "string":
        return f'string "{value}"'
    if kind == "boolean":
        return f"boolean {str(value).lower()}"
    if kind in ("integer", "number"):
        return f"number {value}"
    return kind


_ACCEPTS: dict[type[mi.Type], tuple[str, ...]]
_ACCEPTS = {mi.IntType: ("integer",), mi.FloatType: ("number", "integer"), mi.StrType: ("string",),
            mi.LiteralType: ("string",), mi.BoolType: ("boolean",), mi.ListType: ("array",),
            mi.StructType: ("object",), mi.DictType: ("object",), mi.NoneType: ("null",)}
_WORDS: dict[type[mi.Type], str]
_WORDS = {mi.IntType: "integer", mi.FloatType: "number", mi.StrType: "string",
          mi.LiteralType: "string", mi.BoolType: "boolean", mi.ListType: "array",
          mi.StructType: "object", mi.DictType: "object"}


class _Walker:
    def __init__(self, result: Result) -> None:
        self.result = result

    def error(self, path: str, message: str, code: str, hint: str | None = None) -> object:
        self.result.issues.append(Issue(path, message, code, hint))
        return _DROP

    def walk(self, value: Any, node: Any, path: str, official: list[dict]) -> Any:
        node = _unwrap(node)
        members = [_unwrap(t) for t in node.types] if isinstance(node, mi.UnionType) else [node]
        kind = _kind(value)
        match = next((m for m in members if kind in _ACCEPTS.get(type(m), ())), None)
        if match is None:
            literals = [m for m in members if isinstance(m, mi.LiteralType)]
            if literals:
                return self._literal(value, literals, path)
            words = " or ".join(dict.fromkeys(_WORDS[type(m)] for m in members if type(m) in _WORDS))
            return self.error(path, f"expected {words}, got {describe(value)}", "type")
        if isinstance(match, mi.StructType):
            return self._struct(value, match, path, official)
        if isinstance(match, mi.DictType):
            return self._dict(value, match, path, official)
        if isinstance(match, mi.ListType):
            return self._list(value, match, path, official)
        if isinstance(match, mi.LiteralType):
            return self._literal(value, [m for m in members if isinstance(m, mi.LiteralType)], path)
        if isinstance(match, (mi.IntType, mi.FloatType)):
            return self._number(value, match, path)
        if isinstance(match, mi.StrType) and match.min_length and len(value) < match.min_length:
            return self.error(path, "expected a non-empty string", "range")
        return value

    def _literal(self, value: Any, literals: list, path: str) -> Any:
        choices = [v for lit in literals for v in _declared_order(lit.values)]
        if value in choices and isinstance(value, str):
            return value
        shown = f'"{value}"' if isinstance(value, str) else describe(value)
        return self.error(path, f"invalid value {shown} (expected {' | '.join(map(str, choices))})", "enum")

    def _number(self, value: Any, node: Any, path: str) -> Any:
        low, high = node.ge, node.le
        if (low is None or value >= low) and (high is None or value <= high):
            return value
        word = "integer" if isinstance(node, mi.IntType) else "number"
        if low is not None and high is not None:
            bound = f"from {low} to {high}"
        else:
            bound = f">= {low}" if low is not None else f"<= {high}"
        return self.error(path, f"expected {word} {bound}, got {value}", "range")

    def _list(self, value: list, node: Any, path: str, official: list[dict]) -> Any:
        if node.min_length and len(value) < node.min_length:
            return self.error(path, f"expected at least {node.min_length} "
                              f"entr{'y' if node.min_length == 1 else 'ies'}", "range")
        items = _children(official, "[]")
        out = [self.walk(v, node.item_type, f"{path}[{i}]", items) for i, v in enumerate(value)]
        return _DROP if any(v is _DROP for v in out) else out

    def _dict(self, value: dict, node: Any, path: str, official: list[dict]) -> Any:
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                return self.error(path, "expected string keys", "type")
            cleaned = self.walk(item, node.value_type, join(path, key), _children(official, key))
            if cleaned is not _DROP:
                out[key] = cleaned
        return out

    def _struct(self, value: dict, node: Any, path: str, official: list[dict]) -> Any:
        if node.cls is Provider and value.get("api") in UNSUPPORTED_APIS:
            return self._ignore(path)
        fields = {f.encode_name: f for f in node.fields}
        out: dict = {}
        for key, item in value.items():
            child = join(path, key)
            field = fields.get(key)
            if field is not None:
                cleaned = self.walk(item, field.type, child, _children(official, key))
                if cleaned is not _DROP:
                    out[key] = cleaned
            elif not path and key == "$schema":
                continue
            elif _children(official, key):
                self._ignore(child)
            else:
                hint = _did_you_mean(key, [*fields, *_named(official)], path)
                text = f"unknown key ({hint})" if hint else "unknown key"
                self.error(child, text, "unknown_key", hint)
        for key, field in fields.items():
            if field.required and key not in value:
                self.error(join(path, key), "required", "required")
        return out

    def _ignore(self, path: str) -> object:
        self.result.warnings.append(Issue(path, IGNORED, "ignored"))
        self.result.ignored.append(path)
        return _DROP


def _declared_order(values: tuple) -> tuple:
    """msgspec sorts Literal values; messages list them as the schema declares them."""
    return _LITERALS.get(frozenset(values), values)


def _literals_of(tp: Any, out: dict[frozenset, tuple]) -> None:
    if typing.get_origin(tp) is typing.Literal:
        out.setdefault(frozenset(typing.get_args(tp)), typing.get_args(tp))
    for arg in typing.get_args(tp):
        if not isinstance(arg, (str, int, msgspec.Meta)):
            _literals_of(arg, out)


def _declared_literals() -> dict[frozenset, tuple]:
    out: dict[frozenset, tuple] = {}
    for cls in vars(config_schema).values():
        if isinstance(cls, type) and issubclass(cls, msgspec.Struct):
            for hint in typing.get_type_hints(cls, include_extras=True).values():
                _literals_of(hint, out)
    return out


_LITERALS = _declared_literals()


def _named(official: list[dict]) -> list[str]:
    return [k for n in official for k in n if k not in ("*", "[]")]


def _did_you_mean(key: str, allowed: list[str], path: str) -> str | None:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f'did you mean "{close[0]}"?'
    if not path:  # a root key may be a nested key written at the wrong level
        nested = _nested_names()
        close = difflib.get_close_matches(key, list(nested), n=1, cutoff=0.6)
        if close:
            return f'did you mean "{nested[close[0]]}"?'
    return None


@lru_cache(maxsize=1)
def _nested_names() -> dict[str, str]:
    """Key name → dotted path of its shallowest occurrence below the root (Structs only)."""
    names: dict[str, str] = {}
    queue = [(f.encode_name, f.type) for f in _ROOT.fields]
    while queue:
        path, node = queue.pop(0)
        members = _unwrap(node)
        for member in (members.types if isinstance(members, mi.UnionType) else (members,)):
            member = _unwrap(member)
            if isinstance(member, mi.StructType):
                for f in member.fields:
                    names.setdefault(f.encode_name, f"{path}.{f.encode_name}")
                    queue.append((f"{path}.{f.encode_name}", f.type))
    return names


# --- legacy keys (§6.7) -----------------------------------------------------------------

_EXEC_MODES = {"deny": ("deny", "off"), "allowlist": ("allowlist", "off"),
               "ask": ("allowlist", "on-miss"), "full": ("full", "off")}


def rewrite_legacy(doc: dict, result: Result) -> dict:
    """A copy of `doc` with the accepted legacy spellings moved to their keys; the input is
    not modified (it is the authored document the snapshot keeps)."""
    doc = dict(doc)
    if "canvasHost" in doc:
        value = doc.pop("canvasHost")
        _move(doc, ["gateway"], "canvasHost", value, "canvasHost", result)
    gateway = doc.get("gateway")
    reload = gateway.get("reload") if isinstance(gateway, dict) else None
    if isinstance(reload, dict) and "deferralTimeoutMs" in reload:
        doc["gateway"] = gateway = dict(doc["gateway"])
        gateway["reload"] = reload = dict(reload)
        value = reload.pop("deferralTimeoutMs")
        _move(doc, ["gateway"], "drainTimeoutMs", value, "gateway.reload.deferralTimeoutMs", result)
    tools = doc.get("tools")
    exec_ = tools.get("exec") if isinstance(tools, dict) else None
    if isinstance(exec_, dict) and "mode" in exec_:
        mode = exec_["mode"]
        if mode not in _EXEC_MODES:
            result.issues.append(Issue("tools.exec.mode", f"invalid value {_shown(mode)} "
                                       "(expected deny | allowlist | ask | full)", "enum"))
            return doc
        doc["tools"] = tools = dict(doc["tools"])
        tools["exec"] = exec_ = dict(exec_)
        del exec_["mode"]
        for key, value in zip(("security", "ask"), _EXEC_MODES[mode], strict=True):
            _move(doc, ["tools", "exec"], key, value, "tools.exec.mode", result, warn=key == "ask")
    return doc


def _move(doc: dict, parents: list[str], key: str, value: Any, old: str, result: Result,
          warn: bool = True) -> None:
    node = doc
    for part in parents:
        child = node.get(part)
        if child is not None and not isinstance(child, dict):
            return  # the walker reports the wrong type of the parent
        node[part] = node = dict(child or {})
    new = ".".join([*parents, key])
    if key in node and node[key] != value:
        result.issues.append(Issue(old, f"conflicts with {new} (both are set, to different values)",
                                   "conflict"))
    node[key] = value
    if warn:
        shown_new = "tools.exec.security/ask" if old == "tools.exec.mode" else new
        result.warnings.append(Issue(old, f"deprecated, use {shown_new}", "deprecated"))


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else describe(value)


# --- cross-field rules (§6) -------------------------------------------------------------

def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_network(text: str) -> bool:
    """An IP address or a CIDR block (host bits allowed: "10.0.0.1/24" means 10.0.0.0/24)."""
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def valid_bind(value: str) -> bool:
    """A bind mode, or an IP literal (whether it is local is checked at startup)."""
    return value in BIND_MODES or is_ip(value)


def _cross_field(doc: dict, result: Result, environ: dict | None) -> None:
    add = result.issues.append
    gateway = doc.get("gateway", {})
    _gateway_rules(gateway, add)
    for cid, channel in doc.get("channels", {}).items():
        _channel_rules(cid, channel, add, environ)
    session = doc.get("session", {})
    short, full = session.get("idleMinutes"), session.get("reset", {}).get("idleMinutes")
    if short is not None and full is not None and short != full:
        add(Issue("session.idleMinutes", f"conflicts with session.reset.idleMinutes ({short} vs {full})",
                  "conflict"))
    _model_rules(doc, add)


def _gateway_rules(gw: dict, add: Any) -> None:
    bind = gw.get("bind", "loopback")
    if not valid_bind(bind):
        add(Issue("gateway.bind", f'invalid value "{bind}" (expected loopback | lan | '
                  'tailnet | custom | auto | <ip address>)', "enum"))
    host = gw.get("customBindHost")
    if bind == "custom" and not host:
        add(Issue("gateway.customBindHost", 'required when gateway.bind is "custom"', "required"))
    if host and not is_ip(host):
        add(Issue("gateway.customBindHost", f'invalid IP address "{host}"', "type"))
    url = gw.get("remote", {}).get("url")
    if url is not None and not url.startswith(("ws://", "wss://")):
        add(Issue("gateway.remote.url", f'expected a ws:// or wss:// URL, got string "{url}"', "type"))
    for i, entry in enumerate(gw.get("trustedProxies", [])):
        if not is_network(entry):
            add(Issue(f"gateway.trustedProxies[{i}]", f'invalid IP address or CIDR "{entry}" '
                      '(expected e.g. "10.0.0.1" or "10.0.0.0/24")', "type"))
    base = gw.get("controlUi", {}).get("basePath")
    if base is not None and not base.startswith("/"):
        add(Issue("gateway.controlUi.basePath", f'expected a path starting with "/", got string "{base}"',
                  "type"))


def _http_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _channel_rules(cid: str, ch: dict, add: Any, environ: dict | None) -> None:
    path = f"channels.{cid}"
    if ch.get("dmPolicy") == "open" and "*" not in ch.get("allowFrom", []):
        add(Issue(f"{path}.allowFrom", 'must contain "*" when dmPolicy is "open"', "required"))
    enabled = ch.get("enabled", True)
    if cid == "irc":
        if enabled and not ch.get("host"):
            add(Issue(f"{path}.host", f"required when {path} is enabled", "required"))
        for i, name in enumerate(ch.get("channels", [])):
            if not name.startswith(("#", "&")):
                add(Issue(f"{path}.channels[{i}]", f'invalid value "{name}" (expected a channel '
                          "name starting with # or &)", "enum"))
    if cid == "telegram":
        if enabled and not ch.get("botToken") and not ch.get("tokenFile") \
                and not (os.environ if environ is None else environ).get("TELEGRAM_BOT_TOKEN"):
            add(Issue(f"{path}.botToken", f"required when {path} is enabled "
                      "(or set tokenFile or TELEGRAM_BOT_TOKEN)", "required"))
        root = ch.get("apiRoot")
        if root is not None and not _http_url(root):
            add(Issue(f"{path}.apiRoot", f'expected an http(s) URL, got string "{root}"', "type"))


def _model_rules(doc: dict, add: Any) -> None:
    providers = doc.get("models", {}).get("providers", {})
    for pid, provider in providers.items():
        path = f"models.providers.{pid}" if "." not in pid else f'models.providers["{pid}"]'
        if pid in RESERVED_PROVIDERS:
            add(Issue(path, f'the provider id "{pid}" is reserved', "conflict"))
            continue
        for key in ("api", "baseUrl"):
            if pid not in BUILTIN_PROVIDERS and key not in provider:
                add(Issue(f"{path}.{key}", "required for provider ids other than openai, "
                          "anthropic, ollama", "required"))
        url = provider.get("baseUrl")
        if url is not None and not _http_url(url):
            add(Issue(f"{path}.baseUrl", f'expected an http(s) URL, got string "{url}"', "type"))
    defaults = doc.get("agents", {}).get("defaults", {})
    model = defaults.get("model")
    if model is None:
        if len(providers) > 1:
            add(Issue("agents.defaults.model", "required when several providers are configured",
                      "required"))
        return
    refs = [("agents.defaults.model", model)] if isinstance(model, str) else \
        [("agents.defaults.model.primary", model["primary"])] + \
        [(f"agents.defaults.model.fallbacks[{i}]", r) for i, r in enumerate(model.get("fallbacks", []))]
    known = set(providers) | RESERVED_PROVIDERS
    for path, ref in refs:
        provider, sep, name = ref.partition("/")
        if not sep or not provider or not name:
            add(Issue(path, f'invalid value "{ref}" (expected <provider>/<model>)', "enum"))
        elif provider not in known:
            add(Issue(path, f'provider "{provider}" is not configured (models.providers.{provider})',
                      "required"))
