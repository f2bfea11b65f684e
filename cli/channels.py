"""`openclaw channels …` (cli-config §4.12). `list` reads the config file only (no gateway);
the runtime subcommands (`status`, `start`, `stop`, `logout`) register on the same `channels`
group: `@channels.command("status")` here, or `channels.add_command(...)` from another module."""

from __future__ import annotations

import os
from typing import Any

import click

from actors.config_load import load_config
from cli.config import invalid_config, local_path
from cli.output import emit_json, fail, warn

SUPPORTED = ("irc", "telegram")  # in channelOrder order; webchat is no channel (§4.12)


@click.group()
def channels() -> None:
    """Messaging channels: list the configured ones."""


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
    section = resolved.get("channels") if isinstance(resolved.get("channels"), dict) else {}
    rows = []
    for channel in SUPPORTED:
        block = section.get(channel)
        present = isinstance(block, dict)
        block = block if present else {}
        rows.append({"id": channel, "configured": configured(channel, block, environ),
                     "enabled": present and block.get("enabled", True) is not False})
    return rows


@channels.command("list")
@click.option("--json", "as_json", is_flag=True, help='Print {"channels": [...]} as one JSON document.')
def list_cmd(as_json: bool) -> None:
    """Every supported channel, configured and enabled, from the config file (no gateway)."""
    path = local_path()[0]
    snapshot = load_config(path)
    if snapshot.parsed is None or any(i.code in ("parse", "include") for i in snapshot.issues):
        fail(invalid_config(path, [{"path": i.path, "message": i.message} for i in snapshot.issues]),
             as_json)
    if not snapshot.valid:
        warn(f"config invalid ({len(snapshot.issues)} issue(s)); run openclaw config validate")
    rows = channel_rows(snapshot.resolved)
    if as_json:
        emit_json({"channels": rows})
        return
    table = [["CHANNEL", "CONFIGURED", "ENABLED"]] + [
        [r["id"], "yes" if r["configured"] else "no", "yes" if r["enabled"] else "no"] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())

