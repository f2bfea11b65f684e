"""`openclaw channels list|status|start|stop|logout` (cli-config §4.12).

`list` reads the config file only (no gateway). `status` calls `channels.status` and, when no
gateway answers, falls back to the config-only table (exit 69). `start`/`stop` call the RPC
(runtime only). `logout` calls `channels.logout`; when no gateway answers on the local target
the CLI takes the state-dir lock and deletes `<state>/credentials/<channel>/default/` itself.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from actors.channels import credentials
from actors.config.load import load_config
from cli.client import connection_options, with_client, with_gateway_or_local
from cli.config import invalid_config, local_path
from cli.output import EXIT_FAIL, EXIT_UNREACHABLE, EXIT_USAGE, CliError, emit_json, fail, warn
from cli.target import local_config

SUPPORTED = ("irc", "telegram")  # in channelOrder order; webchat is no channel (§4.12)
LOCK_WAIT_MS = 2000  # a gateway holds the lock for good; waiting longer only delays the error


@click.group()
def channels() -> None:
    """Messaging channels: list, status, start, stop, logout."""


def configured(channel: str, block: dict, environ: Any = None) -> bool:
    """Are the channel's required keys present (cli-config §6.3)?"""
    env = os.environ if environ is None else environ
    if channel == "irc":
        return bool(block.get("host"))
    if channel == "telegram":
        return bool(block.get("botToken") or block.get("tokenFile") or env.get("TELEGRAM_BOT_TOKEN"))
    return False


def channel_rows(resolved: dict, environ: Any = None) -> list[dict]:
    """Every supported channel with `configured` and `enabled` (a channel runs when its
    block exists and `enabled` is not false)."""
    section = resolved.get("channels")
    if not isinstance(section, dict):
        section = {}
    rows = []
    for channel in SUPPORTED:
        block = section.get(channel)
        present = isinstance(block, dict)
        if not isinstance(block, dict):
            block = {}
        rows.append({"id": channel, "configured": configured(channel, block, environ),
                     "enabled": present and block.get("enabled", True) is not False})
    return rows


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _config_rows(as_json: bool, strict: bool = True) -> list[dict]:
    """`channel_rows` of the local config file. An unparseable file exits 78 when `strict`,
    else reads as no channels (with a warning)."""
    path = local_path()[0]
    snapshot = load_config(path)
    if snapshot.parsed is None or any(i.code in ("parse", "include") for i in snapshot.issues):
        if strict:
            fail(invalid_config(path, [{"path": i.path, "message": i.message} for i in snapshot.issues]),
                 as_json)
        warn(f"config unreadable ({path}); run openclaw config validate")
        return channel_rows({})
    if not snapshot.valid:
        warn(f"config invalid ({len(snapshot.issues)} issue(s)); run openclaw config validate")
    return channel_rows(snapshot.resolved)


def _print_config_rows(rows: list[dict]) -> None:
    _table([["CHANNEL", "CONFIGURED", "ENABLED"]] + [
        [r["id"], "yes" if r["configured"] else "no", "yes" if r["enabled"] else "no"] for r in rows])


@channels.command("list")
@click.option("--json", "as_json", is_flag=True, help='Print {"channels": [...]} as one JSON document.')
def list_cmd(as_json: bool) -> None:
    """Every supported channel, configured and enabled, from the config file (no gateway)."""
    rows = _config_rows(as_json)
    if as_json:
        emit_json({"channels": rows})
        return
    _print_config_rows(rows)


# --- status ------------------------------------------------------------------------------------

def _supported(channel: str, as_json: bool) -> str:
    """The canonical id of a supported channel, or exit 1 with `not supported`."""
    cid = channel.strip().lower()
    if cid not in SUPPORTED:
        fail(CliError("not_found", f"channel {channel}: not supported (supported: {', '.join(SUPPORTED)})",
                      EXIT_FAIL), as_json)
    return cid


def filter_status(result: dict, channel: str) -> dict:
    """The channels.status result reduced to one channel (every per-channel map and list)."""
    out = dict(result)
    for key, value in result.items():
        if key == "channelOrder":
            out[key] = [c for c in value if c == channel]
        elif key == "channelMeta":
            out[key] = [m for m in value if isinstance(m, dict) and m.get("id") == channel]
        elif key == "statusIssues":
            out[key] = [i for i in value if isinstance(i, dict) and i.get("channel") == channel]
        elif key.startswith("channel") and isinstance(value, dict):
            out[key] = {c: v for c, v in value.items() if c == channel}
    return out


def _state(account: dict) -> str:
    return "disabled" if account.get("enabled") is False else str(account.get("state") or "stopped")


def _probe_text(account: dict) -> str:
    probe = account.get("probe")
    if not isinstance(probe, dict):
        return "-"
    elapsed = f" ({probe['elapsedMs']}ms)" if probe.get("elapsedMs") is not None else ""
    if probe.get("ok"):
        return "ok" + elapsed
    return f"failed{elapsed}: {probe.get('error') or 'error'}"


def _print_status(result: dict, probe: bool, channel: str | None) -> None:
    order = result.get("channelOrder") or []
    accounts = result.get("channelAccounts") or {}
    if not order:
        click.echo(f"Channel {channel} is not configured." if channel else "No channels configured.")
        return
    header = ["CHANNEL", "STATE", "RESTARTS"] + (["PROBE"] if probe else []) + ["LAST ERROR"]
    rows = [header]
    for cid in order:
        for account in accounts.get(cid) or [{}]:
            row = [cid, _state(account), str(account.get("restartCount", 0))]
            if probe:
                row.append(_probe_text(account))
            rows.append(row + [str(account.get("lastError") or "-")])
    _table(rows)


@channels.command("status")
@click.option("--channel", "channel", metavar="ID", help="Only this channel (irc, telegram).")
@click.option("--probe", is_flag=True, help="Run a live check of every running channel.")
@click.option("--json", "as_json", is_flag=True, help="Print the channels.status result as one JSON document.")
@connection_options(timeout_help="Bound on connect, handshake and call (and on each probe), in ms.")
def status_cmd(channel: str | None, probe: bool, as_json: bool, **conn: Any) -> None:
    """Runtime state of every channel: STATE (disabled when not enabled), RESTARTS, LAST ERROR.
    With no gateway, the configuration only (exit 69)."""
    cid = _supported(channel, as_json) if channel is not None else None
    params: dict[str, Any] = {}
    if probe:
        params = {"probe": True, "timeoutMs": conn["timeout_ms"]}
        # the probes may take the whole --timeout; leave the answer room to arrive
        conn = {**conn, "timeout_ms": conn["timeout_ms"] + 5000}
    reached, result = with_gateway_or_local(conn, as_json,
                                            lambda client: client.call("channels.status", params))
    if not reached:
        _unreachable_status(cid, as_json)
    if cid is not None:
        result = filter_status(result, cid)
    if as_json:
        emit_json(result)
    else:
        _print_status(result, probe, cid)


def _unreachable_status(channel: str | None, as_json: bool) -> None:
    notice = "gateway unreachable; showing configuration only"
    rows = [r for r in _config_rows(as_json, strict=False) if channel in (None, r["id"])]
    if as_json:
        emit_json({"ok": False, "error": {"type": "unreachable", "message": notice}, "channels": rows})
    else:
        warn(notice)
        _print_config_rows(rows)
    sys.exit(EXIT_UNREACHABLE)


# --- start / stop ------------------------------------------------------------------------------

@channels.command("start")
@click.argument("channel")
@click.option("--json", "as_json", is_flag=True, help="Print the channels.start result as one JSON document.")
@connection_options
def start_cmd(channel: str, as_json: bool, **conn: Any) -> None:
    """Start CHANNEL now (runtime only); also restarts a failed channel."""
    result = with_client(conn, as_json, lambda client: client.call("channels.start", {"channel": channel}))
    if as_json:
        emit_json(result)
    else:
        click.echo(f"Started {result.get('channel', channel)}")


@channels.command("stop")
@click.argument("channel")
@click.option("--json", "as_json", is_flag=True, help="Print the channels.stop result as one JSON document.")
@connection_options
def stop_cmd(channel: str, as_json: bool, **conn: Any) -> None:
    """Stop CHANNEL until the next gateway start (runtime only)."""
    result = with_client(conn, as_json, lambda client: client.call("channels.stop", {"channel": channel}))
    cid = result.get("channel", channel)
    hint = f"to disable permanently: openclaw config set channels.{cid}.enabled false"
    if as_json:
        emit_json(result)
        warn(hint)
    else:
        click.echo(f"Stopped {cid}")
        click.echo(hint)


# --- logout ------------------------------------------------------------------------------------

def _confirm_logout(channel: str, yes: bool, as_json: bool) -> None:
    """Logout deletes stored credentials: --yes, or a yes on a terminal (never with --json)."""
    if yes:
        return
    if as_json or not sys.stdin.isatty():
        fail(CliError("usage", f"refusing to log out {channel} without --yes "
                      f"({'--json' if as_json else 'not a terminal'})", EXIT_USAGE), as_json)
    if not click.confirm(f"Log out {channel} and delete its stored credentials?", default=False,
                         prompt_suffix=" ", err=True):
        fail(CliError("usage", "cancelled; nothing changed", EXIT_FAIL), False)


def logout_locally(state_dir: str, channel: str) -> dict:
    """Delete `<state>/credentials/<channel>/default/` under the state-dir lock, with the
    function the gateway's channel owner runs for channels.logout; the same result."""
    from lifecycle.lock import InstanceLock, LockHeld  # only needed without a gateway

    lock = InstanceLock(state_dir)
    try:
        lock.acquire(LOCK_WAIT_MS, {"command": f"openclaw channels logout {channel}"})
    except LockHeld as exc:
        holder = f"pid {exc.pid}" if exc.pid is not None else "another process"
        raise CliError("conflict", f"the state lock is held ({holder}) but no gateway answers; "
                       f"cannot log out {channel} now", EXIT_FAIL) from None
    try:
        return credentials.logout(state_dir, channel)
    except OSError as exc:
        folder = credentials.account_dir(state_dir, channel)
        raise CliError("internal", f"cannot delete {folder}: {exc}", EXIT_FAIL) from None
    finally:
        lock.release()


@channels.command("logout")
@click.argument("channel")
@click.option("--yes", is_flag=True, help="Do not ask (required off a terminal and with --json).")
@click.option("--json", "as_json", is_flag=True, help="Print the channels.logout result as one JSON document.")
@connection_options
def logout_cmd(channel: str, yes: bool, as_json: bool, **conn: Any) -> None:
    """Stop CHANNEL and delete its stored login and cursor state
    (<state>/credentials/<channel>/default/); config secrets stay."""
    _confirm_logout(channel, yes, as_json)
    reached, result = with_gateway_or_local(
        conn, as_json, lambda client: client.call("channels.logout", {"channel": channel}))
    if not reached:
        cid = _supported(channel, as_json)
        state_dir = local_config()[1]
        warn(f"gateway unreachable; deleting the stored credentials in {state_dir} under the state lock")
        try:
            result = logout_locally(state_dir, cid)
        except CliError as err:
            fail(err, as_json)
    if as_json:
        emit_json(result)
        return
    cid = result.get("channel", channel)
    click.echo(f"Logged out {cid}: " + ("stored credentials cleared" if result.get("cleared")
                                        else "no stored credentials"))
