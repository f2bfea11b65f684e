"""The config JSON Schema (2020-12) and UI hints (protocol §10.3), from the Structs.

msgspec generates the schema; its `$ref`s are inlined so that every property can carry the
annotations of its own path: `x-reload` (from `config_reload`, the one table of classes) and
`x-sensitive` (declared on the Struct field). Generated once per process: the schema is
fixed for a build.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

import msgspec

from actors.config.reload import reload_class
from actors.config.schema import Config

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
TITLE = "OpenClaw Gateway configuration"
VERSION = "2026.9.6"
GENERATED_AT = "2026-09-06T00:00:00Z"

# Labels the humanized key name would get wrong or too vaguely.
_LABELS = {
    "gateway.auth.token": "Gateway token",
    "gateway.auth.password": "Gateway password",
    "gateway.remote.token": "Remote gateway token",
    "gateway.remote.password": "Remote gateway password",
    "gateway.remote.url": "Remote gateway URL",
    "channels.telegram.botToken": "Telegram bot token",
    "channels.irc.password": "IRC server password",
    "channels.irc.nickserv.password": "NickServ password",
    "models.providers.*.apiKey": "API key",
    "models.providers.*.baseUrl": "Base URL",
    "gateway.controlUi.allowedOrigins": "Allowed origins",
}


@lru_cache(maxsize=1)
def config_schema() -> dict:
    """The annotated JSON Schema of the config file (a fresh copy is the caller's to keep
    unmodified: it is cached)."""
    generated = msgspec.json.schema(Config)
    defs = generated.get("$defs", {})
    root = _inline(generated, defs)
    root.pop("title", None)
    _annotate(root, "")
    root["properties"] = {"$schema": {"type": "string", "description": "JSON Schema of this file",
                                      "x-reload": "none"}, **root["properties"]}
    return {"$schema": SCHEMA_DIALECT, "title": TITLE, **root}


def _inline(node: Any, defs: dict) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[1]])
            extra = {k: v for k, v in node.items() if k not in ("$ref", "$defs")}
            return {**_inline(target, defs), **extra}
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _annotate(node: dict, path: str) -> None:
    """Add `x-reload` to every property below `node` and drop msgspec's Struct titles."""
    node.pop("title", None)
    for key, prop in node.get("properties", {}).items():
        child = f"{path}.{key}" if path else key
        prop["x-reload"] = reload_class(child)
        _annotate(prop, child)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        _annotate(extra, f"{path}.*")
    items = node.get("items")
    if isinstance(items, dict):
        _annotate(items, f"{path}[]")
    for alt in node.get("anyOf", []):
        _annotate(alt, path)


def ui_hints() -> dict[str, dict]:
    """Dotted path → {label, help, sensitive?} for every property of the schema."""
    hints: dict[str, dict] = {}
    _hints(config_schema(), "", hints)
    hints.pop("$schema", None)
    return hints


def _hints(node: dict, path: str, out: dict[str, dict]) -> None:
    for key, prop in node.get("properties", {}).items():
        child = f"{path}.{key}" if path else key
        hint: dict[str, Any] = {"label": _LABELS.get(child) or _humanize(key)}
        if prop.get("description"):
            hint["help"] = prop["description"]
        if prop.get("x-sensitive"):
            hint["sensitive"] = True
        out[child] = hint
        _hints(prop, child, out)
    if isinstance(node.get("additionalProperties"), dict):
        _hints(node["additionalProperties"], f"{path}.*", out)
    if isinstance(node.get("items"), dict):
        _hints(node["items"], f"{path}[]", out)
    for alt in node.get("anyOf", []):
        _hints(alt, path, out)


def _humanize(key: str) -> str:
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key).split()
    text = " ".join(w if w.isupper() else w.lower() for w in words)
    return text[:1].upper() + text[1:]


def schema_payload() -> dict:
    """The `config.schema` result (protocol §10.3)."""
    return {"schema": config_schema(), "uiHints": ui_hints(), "version": VERSION,
            "generatedAt": GENERATED_AT}
