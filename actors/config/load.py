"""The one config loader (cli-config §5.1): read → parse JSON5 → `${VAR}` → validate →
defaults. Gateway startup, reload and every CLI command use it, so "valid for `config
validate`" and "valid for startup" are the same predicate.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import json5
import msgspec

from actors.config.include import KEY, resolve_includes
from actors.config.schema import REDACTED, Config, is_sensitive_key
from actors.config.validate import Issue, describe, is_ip, to_config, valid_bind, validate
from actors.paths import env

__all__ = ["ConfigSnapshot", "Issue", "load_config", "defaults", "effective", "redact", "redact_raw",
           "secret_values", "valid_bind", "is_ip", "revision", "canonical_json", "ignored_paths",
           "describe"]

MAX_CONFIG_BYTES = 8 * 1024 * 1024
_VAR = re.compile(r"\$?\$\{([A-Z_][A-Z0-9_]*)\}")
_JSON5_ERR = re.compile(r"^<string>:(\d+) (.*) at column (\d+)$", re.S)


class ConfigSnapshot(msgspec.Struct, frozen=True):
    """One load of the config file. Treat every field as read-only: snapshots are shared
    between threads."""

    path: str
    exists: bool
    raw: str | None
    parsed: dict | None
    resolved: dict
    config: Config
    issues: tuple[Issue, ...]
    warnings: tuple[Issue, ...]
    unresolved: dict[str, str]  # dotted path -> name of the unset ${VAR} left in place
    hash: str
    revision_hash: str
    included_files: tuple[str, ...] = ()  # absolute paths of every $include read (watched too)
    ignored: tuple[str, ...] = ()  # top-most paths known to OpenClaw only: no effect, class none

    @property
    def valid(self) -> bool:
        return not self.issues


def revision(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256:v1:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_config(path: str | Path, environ: dict | None = None) -> ConfigSnapshot:
    """Load `path` through the whole pipeline; never raises for a bad file: problems are
    `issues` on the snapshot (and the typed config is then all defaults)."""
    path = Path(path)
    raw_bytes, exists, issues = _read(path)
    raw = raw_bytes.decode("utf-8", errors="replace").removeprefix("\ufeff") if exists else None
    parsed = _parse(raw, path, issues) if raw is not None else ({} if not issues else None)
    included: list[str] = []
    doc = parsed or {}
    if raw is not None and KEY in raw and parsed is not None:  # cheap test: most files have none
        doc, included, include_issues = resolve_includes(parsed, path, _parse_file, environ)
        issues.extend(include_issues)
    warnings: list[Issue] = []
    unresolved: dict[str, str] = {}
    resolved = _substitute(doc, "", environ, warnings, unresolved)
    config, ignored = _validate(resolved, environ, issues, warnings) if not issues else (Config(), [])
    return ConfigSnapshot(
        path=str(path.absolute()), exists=exists, raw=raw, parsed=parsed, resolved=resolved,
        config=config, issues=tuple(issues), warnings=tuple(warnings), unresolved=unresolved,
        hash=revision(raw_bytes), revision_hash=revision(canonical_json(resolved)),
        included_files=tuple(included), ignored=tuple(ignored),
    )


def defaults(path: str | Path) -> ConfigSnapshot:
    """The snapshot of an empty config: every default, nothing authored."""
    return ConfigSnapshot(path=str(Path(path).absolute()), exists=False, raw=None, parsed={},
                          resolved={}, config=Config(), issues=(), warnings=(), unresolved={},
                          hash=revision(b""), revision_hash=revision(canonical_json({})))


def _read(path: Path) -> tuple[bytes, bool, list[Issue]]:
    if not path.exists():
        return b"", False, []
    if not path.is_file():
        return b"", True, [Issue("", f"{path}: not a regular file", "parse")]
    try:
        data = path.read_bytes()
    except OSError as exc:
        return b"", True, [Issue("", f"{path}: cannot read: {exc.strerror}", "parse")]
    if len(data) > MAX_CONFIG_BYTES:
        return data, True, [Issue("", f"{path}: larger than 8 MiB", "parse")]
    return data, True, []


def _parse(raw: str, path: Path, issues: list[Issue]) -> dict | None:
    if not raw.strip():
        issues.append(Issue("", _empty_message(path), "parse"))
        return None
    try:
        doc = _parse_text(raw)
    except ValueError as exc:
        issues.append(Issue("", f"{path}:{_json5_position(str(exc))}", "parse"))
        return None
    if not isinstance(doc, dict):
        issues.append(Issue("", f"{path}: the root must be an object", "parse"))
        return None
    return doc


def _parse_file(text: str, path: Path) -> Any:
    """An included file's document; ValueError reads `<file>:<line>:<col>: <message>`."""
    if not text.strip():
        raise ValueError(_empty_message(path))
    try:
        return _parse_text(text)
    except ValueError as exc:
        raise ValueError(f"{path}:{_json5_position(str(exc))}") from None


def _empty_message(path: Path) -> str:
    # An existing file with no content is what a truncate-then-write leaves mid-save, or a
    # failed one for good: never read it as "every default", which would drop the token.
    return f"{path}: the file is empty (truncated while being written?); write {{}} for an all-defaults config"


def ignored_paths(snapshot: ConfigSnapshot) -> list[str]:
    """Paths whose values have no effect here (known to OpenClaw only): a change under one
    of them needs nothing done (reload class `none`)."""
    return list(snapshot.ignored)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _NotPlainJson
    return dict(pairs)


class _NotPlainJson(Exception):
    pass


def _parse_text(raw: str) -> Any:
    """Plain JSON through the C parser (the pure-Python JSON5 one needs seconds per MB);
    anything else, duplicate keys included, through JSON5 for its rules and messages. Both
    parsers recurse per nesting level: past Python's limit that is a parse error too."""
    try:
        try:
            return json.loads(raw, object_pairs_hook=_no_duplicates)
        except (ValueError, _NotPlainJson):
            return json5.loads(raw, allow_duplicate_keys=False)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _json5_position(message: str) -> str:
    m = _JSON5_ERR.match(message)
    text = f"{m.group(1)}:{m.group(3)}: {m.group(2)}" if m else f" {message}"
    return text.replace("\n", "\\n")  # one issue, one line


def _substitute(node: Any, path: str, environ: dict | None, warnings: list[Issue],
                unresolved: dict[str, str]) -> Any:
    """Copy of `node` with `${VAR}` replaced in string values (never in keys)."""
    if isinstance(node, dict):
        return {k: _substitute(v, _join(path, k), environ, warnings, unresolved)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, f"{path}[{i}]", environ, warnings, unresolved)
                for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        return _expand(node, path, environ, warnings, unresolved)
    return node


def _expand(text: str, path: str, environ: dict | None, warnings: list[Issue],
            unresolved: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        name = m.group(1)
        if m.group(0).startswith("$$"):
            return "${" + name + "}"
        value = _lookup(name, environ)
        if value:
            return value
        unresolved[path] = name
        warnings.append(Issue(path, f"environment variable {name} is not set", "env"))
        return m.group(0)

    return _VAR.sub(one, text)


def _lookup(name: str, environ: dict | None) -> str | None:
    if name.startswith(("OPENCLAW_", "CLAWDBOT_")):
        return env(name, environ)
    return (os.environ if environ is None else environ).get(name) or None


def _join(path: str, key: str) -> str:
    if "." in key:
        return f'{path}["{key}"]'
    return f"{path}.{key}" if path else key


def _validate(resolved: dict, environ: dict | None, issues: list[Issue],
              warnings: list[Issue]) -> tuple[Config, list[str]]:
    """The typed config and the ignored paths; every problem goes to `issues`/`warnings`."""
    result = validate(resolved, environ)
    issues.extend(result.issues)
    warnings.extend(result.warnings)
    if issues:
        return Config(), result.ignored
    try:
        return to_config(result), result.ignored
    except msgspec.ValidationError as exc:  # the walker should have caught it: say so plainly
        issues.append(Issue("", str(exc), "type"))
        return Config(), result.ignored


def effective(snapshot: ConfigSnapshot) -> dict:
    """The resolved config with every default filled in."""
    merged = dict(snapshot.resolved)
    merged.update(msgspec.to_builtins(snapshot.config))
    return merged


def redact(node: Any, _parent: str = "") -> Any:
    """Copy of `node` with every secret replaced by the sentinel."""
    if isinstance(node, dict):
        return {k: (REDACTED if _secret_at(k, _parent) and v is not None and not isinstance(v, (dict, list))
                    else redact(v, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [redact(v, _parent) for v in node]
    return node


def _secret_at(key: str, parent: str) -> bool:
    return is_sensitive_key(key) or parent == "headers"


def secret_values(node: Any, _parent: str = "") -> set[str]:
    """Every string stored under a secret key."""
    found: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, str) and _secret_at(k, _parent):
                found.add(v)
            else:
                found |= secret_values(v, k)
    elif isinstance(node, list):
        for v in node:
            found |= secret_values(v, _parent)
    return found


_JSON5_TOKEN = re.compile(r"""//[^\n]*|/\*.*?\*/|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'""", re.DOTALL)


def redact_raw(raw: str, parsed: dict | None) -> str:
    """The file text with every string literal that holds a secret replaced by the sentinel.

    Literals are decoded before comparing, so a secret written with escapes is found too;
    comments are skipped so a quote inside one cannot hide a literal.
    """
    secrets = {v for v in secret_values(parsed or {}) if v}
    if not secrets:
        return raw

    longest = max(len(v) for v in secrets)

    def replace(m: re.Match) -> str:
        token = m.group(0)
        # An escape takes at most 6 characters (\uXXXX): longer literals cannot hold a secret.
        if token.startswith("/") or len(token) > 6 * longest + 2:
            return token
        if "\\" not in token:
            value = token[1:-1]
        else:
            try:
                value = json5.loads(token)
            except ValueError:
                return token
        return f'"{REDACTED}"' if value in secrets else token

    return _JSON5_TOKEN.sub(replace, raw)
