"""`openclaw config get|set|unset|file|validate|schema` (cli-config §4.7).

`get`, `set` and `unset` go through the running gateway when one is reachable (config.get,
then config.patch with its baseHash), so the gateway stays the one writer and the caller's
scopes apply; otherwise they work on the file under its lock (§5.5). `file`, `validate` and
`schema` are always local. `--dry-run` validates locally and writes nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any, Awaitable, Callable

import click
import json5

from actors.config.load import ConfigSnapshot, effective, load_config, redact
from actors.config.reload import classify, join
from actors.config.schema import REDACTED, is_sensitive_key
from actors.config.write import WriteError, write_config
from actors.paths import resolve_config_path, resolve_state_dir
from cli.client import GatewayClient, connection_options, with_gateway_or_local
from cli.output import EXIT_CONFIG, EXIT_FAIL, EXIT_USAGE, CliError, emit_json, fail, warn

NO_RESTART = "No gateway restart needed."
LIVE = "Change will apply without restarting the gateway."
AUTO = "The gateway will restart automatically to apply."
MANUAL = "Restart the gateway to apply: openclaw gateway restart"

_SEGMENT = re.compile(r'\["([^"]*)"\]|\[(\d+)\]|([^.\[\]]+)')
_HINT = re.compile(r"^(.*?) \((did you mean .*)\)$")

Token = str | int  # an object key, or a list index


@click.group()
def config() -> None:
    """Read and change the config file (through the gateway when it runs)."""


# --- paths -------------------------------------------------------------------------------------

def parse_path(path: str) -> list[Token]:
    """`a.b[2]` → ['a', 'b', 2]; `channels["my.chan"]` keeps a dotted key whole."""
    tokens: list[Token] = []
    pos = 0
    for m in _SEGMENT.finditer(path):
        if path[pos:m.start()] not in ("", "."):
            break
        tokens.append(int(m.group(2)) if m.group(2) is not None else (m.group(1) if m.group(1) is not None
                                                                        else m.group(3)))
        pos = m.end()
    if not tokens or pos != len(path) or isinstance(tokens[0], int):
        raise CliError("usage", f"invalid config path: {path!r}", EXIT_USAGE)
    return tokens


def dotted(tokens: list[Token]) -> str:
    out = ""
    for t in tokens:
        out = f"{out}[{t}]" if isinstance(t, int) else join(out, t)
    return out


def get_at(doc: Any, tokens: list[Token]) -> tuple[bool, Any]:
    node = doc
    for t in tokens:
        if isinstance(t, int) and isinstance(node, list) and t < len(node):
            node = node[t]
        elif isinstance(t, str) and isinstance(node, dict) and t in node:
            node = node[t]
        else:
            return False, None
    return True, node


_DELETE = object()


def set_at(doc: dict, tokens: list[Token], value: Any) -> dict:
    """Copy of `doc` with `value` at `tokens` (`_DELETE` removes it); missing objects are
    created; an index replaces an item, or appends when it equals the length."""
    def walk(node: Any, rest: list[Token]) -> Any:
        head, tail = rest[0], rest[1:]
        if isinstance(head, int):
            items = list(node) if isinstance(node, list) else ([] if node is None else None)
            if items is None or head > len(items) or (value is _DELETE and head >= len(items)):
                raise CliError("usage", f"index {head} out of range at {dotted(tokens)}", EXIT_FAIL)
            if value is _DELETE and not tail:
                del items[head]
            elif head == len(items):
                items.append(walk({}, tail) if tail else value)
            else:
                items[head] = walk(items[head], tail) if tail else value
            return items
        obj = dict(node) if isinstance(node, dict) else {}
        if not tail:
            if value is _DELETE:
                obj.pop(head, None)
            else:
                obj[head] = value
        else:
            obj[head] = walk(obj.get(head), tail)
        return obj

    return walk(doc, tokens)


def patch_for(authored: dict, tokens: list[Token], value: Any) -> tuple[dict, list[str]]:
    """The merge patch (and replacePaths) that puts `value` at `tokens` on the gateway. Merge
    patches replace arrays whole, so a path through an index sends the whole new array."""
    cut = next((i for i, t in enumerate(tokens) if isinstance(t, int)), len(tokens))
    if cut == len(tokens):
        new_value, replace = (None if value is _DELETE else value), []
    else:
        new_value = get_at(set_at(authored, tokens, value), tokens[:cut])[1]
        replace = [dotted(tokens[:cut])]
    patch: Any = new_value
    for t in reversed(tokens[:cut]):
        patch = {t: patch}
    return patch, replace


# --- output helpers ----------------------------------------------------------------------------

def reload_of(paths: list[str]) -> str:
    groups = classify(paths)
    return next((c for c in ("restart", "channel", "hot") if groups[c]), "none")


def hint_for(reload: str, mode: str) -> str:
    if reload == "none":
        return NO_RESTART
    if mode == "off" or (reload == "restart" and mode == "hot"):
        return MANUAL
    if reload == "restart" or mode == "restart":
        return AUTO
    return LIVE


def show(value: Any, as_json: bool) -> str:
    if as_json or isinstance(value, (dict, list)):
        return json.dumps(value, indent=2, ensure_ascii=False)
    if isinstance(value, str):
        return value
    return json.dumps(value)


def invalid_config(path: str, issues: list[dict]) -> CliError:
    lines = "\n".join(f"  {i['path']}: {i['message']}" if i.get("path") else f"  {i['message']}" for i in issues)
    return CliError("config_invalid", f"Invalid config at {path}:\n{lines}", EXIT_CONFIG, issues=issues)


def _issues(snapshot: ConfigSnapshot) -> list[dict]:
    return [{"path": i.path, "message": i.message} for i in snapshot.issues]


def local_path() -> tuple[str, str, str]:
    """(config path, state dir, source: env | default | legacy)."""
    state_dir, state_source = resolve_state_dir()
    path, source = resolve_config_path(state_dir)
    if source == "default" and state_source in ("env", "legacy"):
        source = state_source
    return str(path), str(state_dir), source


def _remote(conn: dict, as_json: bool, work: Callable[[GatewayClient], Awaitable[Any]]) -> tuple[bool, Any]:
    """(True, result) through a reachable gateway; (False, None) when none answers on the
    local target, so the caller falls back to the file."""
    return with_gateway_or_local(conn, as_json, work)


# --- get ---------------------------------------------------------------------------------------

@config.command("get")
@click.argument("path", required=False)
@click.option("--json", "as_json", is_flag=True, help="Always print JSON.")
@click.option("--authored", is_flag=True, help="Only what the files contain (placeholders verbatim).")
@connection_options
def get_cmd(path: str | None, as_json: bool, authored: bool, **conn: Any) -> None:
    """Print the effective config value at PATH (whole config without PATH), redacted."""
    try:
        tokens = parse_path(path) if path else []
        reached, payload = _remote(conn, as_json, lambda client: client.call("config.get", {}))
        if reached:
            if not payload.get("valid", True):
                raise invalid_config(payload.get("path", ""), payload.get("issues") or [])
            doc = payload.get("parsed") if authored else payload.get("config")
        else:
            cfg_path = local_path()[0]
            snapshot = load_config(cfg_path)
            if not snapshot.valid:
                raise invalid_config(cfg_path, _issues(snapshot))
            doc = redact(snapshot.parsed or {}) if authored else redact(effective(snapshot))
        found, value = get_at(doc or {}, tokens)
        if not found:
            raise CliError("not_found", f"Config path not found: {path}", EXIT_FAIL)
    except CliError as err:
        fail(err, as_json)
    click.echo(show(value, as_json))


# --- set / unset -------------------------------------------------------------------------------

def parse_value(text: str, strict: bool) -> Any:
    if strict:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise CliError("usage", f"value is not valid JSON (--strict-json): {exc}", EXIT_USAGE) from None
    else:
        try:
            value = json5.loads(text)
        except ValueError:
            value = text  # not JSON5: the raw string (§4.7)
    if _holds_sentinel(value):
        raise CliError("usage", f"{REDACTED} cannot be used as a value", EXIT_USAGE)
    return value


def _holds_sentinel(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_sentinel(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_sentinel(v) for v in value)
    return value == REDACTED


def _authored(resolved: dict, tokens: list[Token]) -> bool:
    """Whether the files (the root and its $includes) set this path: what `unset` removes."""
    return get_at(resolved or {}, tokens)[0]


def _write(path: str, value: Any, dry_run: bool, as_json: bool, conn: dict) -> dict:
    """Run one set/unset; the result document of §4.7 (without `ok`)."""
    tokens = parse_path(path)
    if not dry_run:
        reached, outcome = _remote(conn, as_json, lambda client: _write_remote(client, path, tokens, value))
        if reached:
            return outcome
    cfg_path = local_path()[0]
    current = load_config(cfg_path)
    if not current.valid:
        raise invalid_config(cfg_path, _issues(current))
    if value is _DELETE and not _authored(current.resolved, tokens):
        raise CliError("not_found", f"Config path not set: {path}", EXIT_FAIL)
    try:
        result = write_config(cfg_path, lambda doc: set_at(doc, tokens, value), dry_run=dry_run)
    except WriteError as err:
        kind = "conflict" if err.kind == "conflict" else "config_invalid"
        raise CliError(kind, err.message, EXIT_FAIL) from None
    for text in result.warnings:
        warn(f"warning: {text}")
    reload = reload_of(result.changed_paths)
    out = {"path": path, "configPath": result.path, "changed": result.changed, "reload": reload,
           "hint": hint_for(reload, result.snapshot.config.gateway.reload.mode)}
    if dry_run:
        out["dryRun"] = True
    return out


async def _write_remote(client: GatewayClient, path: str, tokens: list[Token], value: Any) -> dict:
    current = await client.call("config.get", {})
    if not current.get("valid", True):
        raise invalid_config(current.get("path", ""), current.get("issues") or [])
    authored = current.get("parsed") or {}
    if value is _DELETE and not _authored(current.get("resolved") or authored, tokens):
        raise CliError("not_found", f"Config path not set: {path}", EXIT_FAIL)
    if value is _DELETE and _shifts_secrets(authored, tokens):
        raise CliError("conflict", f"cannot remove {path} through the gateway: later items hold redacted "
                       "secrets that would move to other indexes; edit the config file directly", EXIT_FAIL)
    patch, replace = patch_for(authored, tokens, value)
    params: dict = {"raw": json.dumps(patch), "replacePaths": replace}
    if current.get("exists"):
        params["baseHash"] = current["hash"]
    result = await client.call("config.patch", params)
    reload = reload_of(result.get("changedPaths") or [])
    mode = ((result.get("config") or {}).get("gateway") or {}).get("reload", {}).get("mode", "hybrid")
    return {"path": path, "configPath": result.get("path", current.get("path")),
            "changed": not result.get("noop", False), "reload": reload, "hint": hint_for(reload, mode)}


def _shifts_secrets(authored: dict, tokens: list[Token]) -> bool:
    """The gateway restores a redacted secret from the same index of the stored array, so
    removing an item before a redacted one would hand it its neighbour's secret."""
    index = tokens[-1]
    if not isinstance(index, int):
        return False
    found, items = get_at(authored, tokens[:-1])
    return found and isinstance(items, list) and _holds_sentinel(items[index + 1:])


def _report(verb: str, out: dict, shown: str | None, as_json: bool) -> None:
    if as_json:
        emit_json({"ok": True, **out})
    elif not out["changed"]:
        click.echo("No change")
    else:
        click.echo(f"{verb} {out['path']}{'' if shown is None else ' = ' + shown} ({out['configPath']})"
                   + (" [dry run: nothing written]" if out.get("dryRun") else ""))
        click.echo(out["hint"])


@config.command("set")
@click.argument("path")
@click.argument("value")
@click.option("--strict-json", is_flag=True, help="VALUE must be strict JSON (no string fallback).")
@click.option("--dry-run", is_flag=True, help="Validate locally and write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@connection_options
def set_cmd(path: str, value: str, strict_json: bool, dry_run: bool, as_json: bool, **conn: Any) -> None:
    """Set PATH to VALUE (JSON5, else a string); the whole result is validated first."""
    try:
        parsed = parse_value(value, strict_json)
        out = _write(path, parsed, dry_run, as_json, conn)
    except CliError as err:
        fail(err, as_json)
    last = parse_path(path)[-1]
    shown = REDACTED if isinstance(last, str) and is_sensitive_key(last) else show(redact(parsed), False)
    _report("Set", out, shown, as_json)


@config.command("unset")
@click.argument("path")
@click.option("--dry-run", is_flag=True, help="Validate locally and write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@connection_options
def unset_cmd(path: str, dry_run: bool, as_json: bool, **conn: Any) -> None:
    """Remove PATH from the config file so its default applies."""
    try:
        out = _write(path, _DELETE, dry_run, as_json, conn)
    except CliError as err:
        fail(err, as_json)
    _report("Unset", out, None, as_json)


# --- file / validate ---------------------------------------------------------------------------

@config.command("file")
@click.option("--json", "as_json", is_flag=True, help="Print path, existence, state dir and source.")
def file_cmd(as_json: bool) -> None:
    """Print the resolved config file path (existing or not)."""
    path, state_dir, source = local_path()
    if as_json:
        from pathlib import Path

        emit_json({"path": path, "exists": Path(path).exists(), "stateDir": state_dir, "source": source})
    else:
        click.echo(path)


def _entry(issue: Any) -> dict:
    m = _HINT.match(issue.message)
    entry = {"path": issue.path, "code": issue.code, "message": m.group(1) if m else issue.message}
    if m:
        entry["hint"] = m.group(2)
    return entry


@config.command("validate")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
def validate_cmd(as_json: bool) -> None:
    """Run the full load pipeline on the config file (exit 78 when invalid)."""
    path = local_path()[0]
    snapshot = load_config(path)
    if as_json:
        emit_json({"ok": snapshot.valid, "path": path, "errors": [_entry(i) for i in snapshot.issues],
                   "warnings": [_entry(w) for w in snapshot.warnings]})
    elif snapshot.valid:
        click.echo(f"Config valid: {path}")
    else:
        click.echo(f"Invalid config at {path}:")
        for issue in snapshot.issues:
            click.echo(f"  {issue.line()}")
    if not as_json:
        for w in snapshot.warnings:
            warn(f"  warning: {w.line()}")
    if not snapshot.valid:
        raise SystemExit(EXIT_CONFIG)


@config.command("schema")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the schema is always JSON.")
def schema_cmd(as_json: bool) -> None:
    """Print the config JSON Schema (2020-12), the same document as RPC config.schema."""
    # Local and independent of the config file: it works even when the config is invalid.
    from actors.config.jsonschema import config_schema

    emit_json(config_schema())
