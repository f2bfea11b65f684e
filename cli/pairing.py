"""`openclaw pairing list|approve` (cli-config §4.15): DM pairing codes through the running
gateway (RPC `pairing.list`, `pairing.approve`, scope operator.pairing). There is no local
fallback: the gateway's PairingStore is the one writer of the pairing files."""

from __future__ import annotations

import time
from typing import Any

import click

from cli.client import connection_options, with_client
from cli.output import emit_json


@click.group()
def pairing() -> None:
    """List and approve DM pairing codes (channels with dmPolicy "pairing")."""


def expires_in(expires_at: int, now_ms: int) -> str:
    seconds = max(0, (expires_at - now_ms) // 1000)
    if seconds < 60:
        return "expires in <1m"
    hours, minutes = divmod(seconds // 60, 60)
    return f"expires in {hours}h {minutes:02d}m" if hours else f"expires in {minutes}m"


def _print_list(result: dict) -> None:
    pending = result.get("pending") or []
    now = int(time.time() * 1000)
    if pending:
        rows = [[p.get("channel", ""), p.get("code", ""), str(p.get("sender", "")),
                 expires_in(int(p.get("expiresAt") or 0), now)] for p in pending]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            # The last column is not padded: zip stops at the three widths.
            click.echo("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[3]]))
    else:
        click.echo("No pending pairing codes.")
    approved = result.get("approved") or {}
    for channel in sorted(approved):
        senders = approved[channel] or []
        click.echo(f"Approved {channel}: " + (", ".join(str(s) for s in senders) if senders else "none"))


@pairing.command("list")
@click.argument("channel", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the pairing.list result as one JSON document.")
@connection_options
def list_cmd(channel: str | None, as_json: bool, **conn: Any) -> None:
    """Pending pairing codes (one line each), then the approved senders per channel."""
    params = {"channel": channel} if channel else {}
    result = with_client(conn, as_json, lambda client: client.call("pairing.list", params))
    if as_json:
        emit_json(result)
    else:
        _print_list(result)


@pairing.command("approve")
@click.argument("channel")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print the pairing.approve result as one JSON document.")
@connection_options
def approve_cmd(channel: str, code: str, as_json: bool, **conn: Any) -> None:
    """Approve the sender of a pending CODE on CHANNEL (exit 1 when unknown or expired)."""
    params = {"channel": channel, "code": code}
    result = with_client(conn, as_json, lambda client: client.call("pairing.approve", params))
    if as_json:
        emit_json(result)
    else:
        click.echo(f"Approved {result.get('channel', channel)} sender {result.get('sender')}")
