"""`openclaw sessions list|show|reset|delete` (cli-config §4.13).

Everything goes through the running gateway (sessions.list, chat.history, sessions.reset,
sessions.delete). When no gateway answers on the local target, reads open the sessions
database read-only and writes run in-process under the state-dir lock (cli/sessions_local.py).
An explicit --url never falls back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from typing import Any, Awaitable, Callable, Coroutine

import click

from actors.sessions.defaults import session_defaults
from actors.sessions.keys import SessionKeyError, agent_id_of, normalize_key
from cli.client import GatewayClient, RpcError, connection_options, with_gateway_or_local
from cli.output import EXIT_FAIL, EXIT_USAGE, CliError, emit_json, fail, warn
from cli.sessions_local import read_locally, write_locally
from cli.target import local_config

PAGE = 1000  # rows per sessions.list call for --limit all

Fetch = Callable[[str, dict], Awaitable[Any]]  # call(method, params) -> payload


@click.group(invoke_without_command=True)
@click.pass_context
def sessions(ctx: click.Context) -> None:
    """List, inspect, reset and delete sessions (`openclaw sessions` alone lists)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_cmd)


# --- reading: gateway first, else the database read-only ---------------------------------------

def _read(conn: dict, as_json: bool, work: Callable[[Fetch], Coroutine[Any, Any, Any]]) -> Any:
    """`await work(call)` where `call(method, params)` reaches the gateway, or, when none
    answers, the same methods answered from the database on disk."""
    async def remote(client: GatewayClient) -> Any:
        return await work(client.call)

    reached, result = with_gateway_or_local(conn, as_json, remote)
    if reached:
        return result
    snapshot, state_dir = local_config()
    warn(f"gateway unreachable; reading the sessions database in {state_dir}")
    try:
        return read_locally(state_dir, _defaults(snapshot), lambda store: asyncio.run(work(_local_calls(store))))
    except CliError as err:
        fail(err, as_json)


def _defaults(snapshot: Any) -> dict:
    return session_defaults(snapshot.config)


def _local_calls(store: Any) -> Callable[[str, dict], Awaitable[dict]]:
    """sessions.list and chat.history as the gateway's handlers would answer them."""
    async def call(method: str, params: dict) -> dict:
        if method == "sessions.list":
            return store.list(**params)
        history = dict(params)
        return store.history(history.pop("sessionKey"), **history)

    return call


# --- list --------------------------------------------------------------------------------------

def _limit(value: Any) -> int | None:
    """`--limit N|all`: a positive count, or None for every row."""
    text = str(value).strip().lower()
    if text == "all":
        return None
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise click.BadParameter(f"expected a positive number or 'all', got {value!r}",
                             param_hint="'--limit'")


async def _list(call: Callable, params: dict, limit: int | None) -> dict:
    if limit is not None:
        return await call("sessions.list", {**params, "limit": limit})
    # `all`: page through, then answer as one result with no limit applied.
    first = page = await call("sessions.list", {**params, "limit": PAGE, "offset": 0})
    rows = list(page.get("sessions") or [])
    while page.get("hasMore") and page.get("nextOffset") is not None:
        page = await call("sessions.list", {**params, "limit": PAGE, "offset": page["nextOffset"]})
        rows += page.get("sessions") or []
    return {**first, "count": len(rows), "totalCount": len(rows), "limitApplied": None,
            "nextOffset": None, "hasMore": False, "sessions": rows}


def _model(row: dict, defaults: dict) -> str:
    source = row if row.get("model") else defaults
    if not source.get("model"):
        return "-"
    provider = source.get("modelProvider")
    return f"{provider}/{source['model']}" if provider else source["model"]


def _age(now: int, then: int | None) -> str:
    if not then:
        return "-"
    seconds = max(0, (now - then) // 1000)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _print_list(result: dict) -> None:
    rows = result.get("sessions") or []
    if not rows:
        click.echo("No sessions.")
        return
    now, defaults = result.get("ts") or 0, result.get("defaults") or {}
    table = [["KEY", "KIND", "CHANNEL", "MODEL", "UPDATED"]] + [
        [r["key"], r.get("kind") or "-", r.get("channel") or "-", _model(r, defaults),
         _age(now, r.get("updatedAt"))] for r in rows]
    for line in _table(table):
        click.echo(line)
    if result.get("hasMore"):
        warn(f"Showing {len(rows)} of {result.get('totalCount')} sessions (--limit all for every one).")


@sessions.command("list")
@click.option("--agent", "agent_id", help="Only this agent's sessions.")
@click.option("--active", "active_minutes", type=click.IntRange(min=1),
              help="Only sessions updated in the last MINUTES.")
@click.option("--limit", default="100", show_default=True, help="Most rows to show: N or 'all'.")
@click.option("--json", "as_json", is_flag=True, help="Print the sessions.list result as one JSON document.")
@connection_options
def list_cmd(agent_id: str | None, active_minutes: int | None, limit: str, as_json: bool,
             **conn: Any) -> None:
    """List sessions, newest first (columns KEY KIND CHANNEL MODEL UPDATED)."""
    count = _limit(limit)
    params = {k: v for k, v in (("agentId", agent_id), ("activeMinutes", active_minutes)) if v is not None}
    result = _read(conn, as_json, lambda call: _list(call, params, count))
    if as_json:
        emit_json(result)
    else:
        _print_list(result)


# --- show --------------------------------------------------------------------------------------

def _canonical(key: str) -> str:
    try:
        return normalize_key(key)
    except SessionKeyError as exc:
        raise click.BadParameter(str(exc), param_hint="'KEY'") from None


async def _show(call: Callable, key: str, messages: int) -> dict:
    found = await call("sessions.list", {"search": key, "agentId": agent_id_of(key), "limit": PAGE,
                                         "includeGlobal": True, "includeUnknown": True})
    row = next((r for r in found.get("sessions") or [] if r.get("key") == key), None)
    if row is None:
        raise CliError("not_found", f"session not found: {key}", EXIT_FAIL)
    history = await call("chat.history", {"sessionKey": key, "limit": messages}) if messages else {}
    return {"session": row, "messages": history.get("messages") or []}


def _message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = []
    for part in content if isinstance(content, list) else []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append(str(part.get("text", "")))
        elif kind == "image":
            parts.append("[image]")
        elif kind == "toolCall":
            parts.append(f"[tool call: {part.get('name', '')}]")
    return " ".join(p for p in parts if p)


def _when(ms: int | None) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def _print_show(doc: dict) -> None:
    row = doc["session"]
    click.echo(f"Session {row['key']}")
    fields = [("kind", row.get("kind")), ("session id", row.get("sessionId")),
              ("label", row.get("label")), ("channel", row.get("channel")),
              ("model", _model(row, {}) if row.get("model") else None),
              ("updated", _when(row.get("updatedAt"))),
              ("tokens", f"{row.get('inputTokens', 0)} in / {row.get('outputTokens', 0)} out"
                         if row.get("totalTokens") else None)]
    for name, value in fields:
        if value is not None:
            click.echo(f"  {name + ':':<12}{value}")
    messages = doc["messages"]
    click.echo(f"Messages ({len(messages)}):" if messages else "No messages.")
    for m in messages:
        click.echo(f"  [{_when(m.get('timestamp'))}] {m.get('role')}: {_message_text(m)}")


@sessions.command("show")
@click.argument("key")
@click.option("--messages", type=click.IntRange(0, 1000), default=20, show_default=True,
              help="How many of the newest messages to show.")
@click.option("--json", "as_json", is_flag=True, help='Print {"session": row, "messages": [...]}.')
@connection_options
def show_cmd(key: str, messages: int, as_json: bool, **conn: Any) -> None:
    """Show one session's row and its newest messages."""
    canonical = _canonical(key)
    doc = _read(conn, as_json, lambda call: _show(call, canonical, messages))
    if as_json:
        emit_json(doc)
    else:
        _print_show(doc)


# --- reset / delete ----------------------------------------------------------------------------

def _confirm(operation: str, count: int, yes: bool, as_json: bool) -> None:
    """A destructive call needs --yes, or a yes on a terminal (never with --json)."""
    if yes:
        return
    if as_json or not sys.stdin.isatty():
        fail(CliError("usage", f"refusing to {operation} sessions without --yes "
                      f"({'--json' if as_json else 'not a terminal'})", EXIT_USAGE), as_json)
    if not click.confirm(f"{operation.capitalize()} {count} session(s)?", default=False,
                         prompt_suffix=" ", err=True):
        fail(CliError("usage", "cancelled; nothing changed", EXIT_FAIL), False)


async def _write_remote(client: GatewayClient, operation: str, keys: list[str]) -> list[tuple]:
    out: list[tuple[str, Any, str | None]] = []
    for key in keys:
        try:
            out.append((key, await client.call(f"sessions.{operation}", {"key": key}), None))
        except RpcError as err:
            out.append((key, None, err.error.get("message") or "error"))
    return out


def _result(operation: str, key: str, payload: dict | None, error: str | None) -> dict:
    if payload is not None:
        status = "reset" if operation == "reset" else ("deleted" if payload.get("deleted") else "not_found")
        key = payload.get("key") or key
    else:
        status = "not_found" if error and error.startswith("session not found") else "error"
        try:
            key = normalize_key(key)
        except SessionKeyError:
            pass
    ok = status in ("reset", "deleted")
    return {"key": key, "ok": ok, "status": status,
            "error": None if ok else (error or f"session not found: {key}")}


def _print_results(operation: str, results: list[dict]) -> None:
    done = "Reset" if operation == "reset" else "Deleted"
    for r in results:
        if r["ok"]:
            click.echo(f"{done} {r['key']}")
        else:
            warn(f"{'Not found' if r['status'] == 'not_found' else 'Failed'}: {r['key']}"
                 + ("" if r["status"] == "not_found" else f" ({r['error']})"))


def _write(operation: str, keys: tuple[str, ...], yes: bool, as_json: bool, conn: dict) -> None:
    _confirm(operation, len(keys), yes, as_json)
    reached, outcomes = with_gateway_or_local(
        conn, as_json, lambda client: _write_remote(client, operation, list(keys)))
    if not reached:
        state_dir = local_config()[1]
        warn(f"gateway unreachable; writing the sessions database in {state_dir} under the state lock")
        try:
            outcomes = write_locally(state_dir, operation, list(keys))
        except CliError as err:
            fail(err, as_json)
    results = [_result(operation, *outcome) for outcome in outcomes]
    all_ok = all(r["ok"] for r in results)
    if as_json:
        emit_json({"ok": all_ok, "operation": operation, "results": results})
    else:
        _print_results(operation, results)
    if not all_ok:
        sys.exit(EXIT_FAIL)


@sessions.command("reset")
@click.argument("keys", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask (required off a terminal and with --json).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON document.")
@connection_options
def reset_cmd(keys: tuple[str, ...], yes: bool, as_json: bool, **conn: Any) -> None:
    """Start a new session id under each KEY; earlier messages stay stored under the old id."""
    _write("reset", keys, yes, as_json, conn)


@sessions.command("delete")
@click.argument("keys", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask (required off a terminal and with --json).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON document.")
@connection_options
def delete_cmd(keys: tuple[str, ...], yes: bool, as_json: bool, **conn: Any) -> None:
    """Delete each KEY's row and messages (an agent's main session is refused)."""
    _write("delete", keys, yes, as_json, conn)
