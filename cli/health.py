"""`openclaw health` and `openclaw gateway health` (cli-config §4.5)."""

from __future__ import annotations

import sys

import click

from cli.client import GatewayClient, connection_options, with_client
from cli.output import EXIT_FAIL, emit_json, human_duration


async def _gather(client: GatewayClient, probe: bool) -> dict:
    health = await client.call("health", {"probe": True} if probe else {})
    status = await client.call("status", {"includeChannelSummary": False})
    gw = status.get("gateway") or {}
    return dict(health, version=gw.get("version"), uptimeMs=gw.get("uptimeMs"))


def _failed_probes(report: dict) -> list[str]:
    failed = []
    for channel, summary in (report.get("channels") or {}).items():
        for account_id, account in (summary.get("accounts") or {channel: summary}).items():
            probe = account.get("probe")
            if isinstance(probe, dict) and probe.get("ok") is False:
                failed.append(f"{channel}/{account_id}")
    return failed


def _print_human(report: dict, url: str) -> None:
    click.echo(f"Gateway ok · v{report.get('version')} · up {human_duration(report.get('uptimeMs') or 0)} · {url}")
    for channel in report.get("channelOrder") or []:
        summary = report["channels"].get(channel, {})
        for account_id, account in (summary.get("accounts") or {"default": summary}).items():
            state = (account.get("state") or summary.get("state")
                     or ("linked" if account.get("linked") else "configured"))
            probe = account.get("probe")
            line = f"{channel}/{account_id}  {state}"
            if isinstance(probe, dict):
                line += "  probe " + ("ok" if probe.get("ok") else f"failed: {probe.get('error', '')}".rstrip(": "))
                if probe.get("elapsedMs") is not None:
                    line += f" ({probe['elapsedMs']} ms)"
            click.echo(line)
    sessions = report.get("sessions") or {}
    click.echo(f"Sessions: {sessions.get('count', 0)} ({sessions.get('path', '')})")
    reload = report.get("configReload") or {}
    if reload.get("status") not in (None, "ok"):
        pending = ", ".join(reload.get("pendingRestart") or [])
        click.echo(f"Config reload: {reload['status']}"
                   + (f" ({reload.get('lastError')})" if reload.get("lastError") else "")
                   + (f" pending restart: {pending}" if pending else ""))


def _health(conn: dict, as_json: bool, verbose: bool) -> None:
    target_url: list[str] = []

    async def work(client: GatewayClient) -> dict:
        target_url.append(client.target.url)
        return await _gather(client, verbose)

    report = with_client(conn, as_json, work)
    if as_json:
        emit_json(report)
    else:
        _print_human(report, target_url[0])
    if _failed_probes(report):
        sys.exit(EXIT_FAIL)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the health payload as one JSON document.")
@click.option("--timeout", "timeout_ms", type=click.IntRange(min=1), default=10000, show_default=True,
              help="Bound on connect, handshake and call, in ms.")
@click.option("--verbose", is_flag=True, help="Run live channel probes ({probe: true}).")
def health(as_json: bool, timeout_ms: int, verbose: bool) -> None:
    """Detailed, authenticated health of the running gateway.

    Exit codes: 0 ok, 1 a probe failed, 69 unreachable, 77 unauthorized.
    (`curl http://127.0.0.1:18789/health` is the unauthenticated liveness probe.)
    """
    _health({"timeout_ms": timeout_ms}, as_json, verbose)


@click.command()
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the health payload as one JSON document.")
@click.option("--verbose", is_flag=True, help="Run live channel probes ({probe: true}).")
def gateway_health(as_json: bool, verbose: bool, **conn: object) -> None:
    """`openclaw health` with explicit connection options."""
    _health(conn, as_json, verbose)
