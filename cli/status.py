"""`openclaw status` (cli-config §4.6): local facts, plus the gateway's own report when it is
reachable. A down gateway is reported, not an error."""

from __future__ import annotations

import asyncio

import click

from actors import logs
from actors.config.load import load_config
from actors.paths import resolve_config_path, resolve_state_dir
from cli.client import GatewayClient, RpcError, make_target
from cli.output import CliError, emit_json, human_duration
from transport.protocol import PROJECT_VERSION


def _local() -> dict:
    state_dir, source = resolve_state_dir()
    config_path, _ = resolve_config_path(state_dir)
    snapshot = load_config(config_path)
    cfg_file = snapshot.config.logging.file if snapshot.valid else None
    log_file = logs.log_file_path(cfg_file, str(state_dir), False, state_dir_from_env=source == "env",
                                  warn=lambda _msg: None)
    return {
        "paths": {"stateDir": str(state_dir), "configPath": str(config_path), "logFile": str(log_file),
                  "legacyStateDir": source == "legacy"},
        "config": {"exists": snapshot.exists, "valid": snapshot.valid, "errors": len(snapshot.issues),
                   "warnings": len(snapshot.warnings)},
    }


async def _remote(client: GatewayClient) -> tuple[dict, list]:
    status = await client.call("status", {"includeChannelSummary": False})
    try:
        channels = await client.call("channels.status", {})
    except RpcError:
        channels = {}
    return status, _channel_rows(channels)


def _channel_rows(report: dict) -> list[dict]:
    rows = []
    for channel, accounts in (report.get("channelAccounts") or {}).items():
        for acc in accounts:
            rows.append({"id": channel, "accountId": acc.get("accountId"), "enabled": acc.get("enabled", True),
                         "state": acc.get("state"), "restartCount": acc.get("restartCount", 0),
                         "lastError": acc.get("lastError")})
    return rows


def _gateway_block(url: str, status: dict | None, error: str | None) -> dict:
    if status is None:
        return {"url": url, "reachable": False, "error": error}
    gw = status.get("gateway") or {}
    return {"url": url, "reachable": True, "pid": status.get("pid"), "version": gw.get("version"),
            "uptimeMs": gw.get("uptimeMs"), "bind": gw.get("bind"), "port": gw.get("port"),
            "authMode": gw.get("authMode"), "configReload": gw.get("configReload")}


def _sessions(status: dict | None) -> dict:
    sessions = (status or {}).get("sessions") or {}
    recent = [{"key": r.get("key"), "updatedAt": r.get("updatedAt")} for r in sessions.get("recent") or []]
    return {"count": sessions.get("count", 0), "recent": recent}


def _print_human(report: dict) -> None:
    paths, config, gw = report["paths"], report["config"], report["gateway"]
    click.echo(f"OpenClaw gateway (Python) {report['version']}")
    validity = "missing (defaults)" if not config["exists"] else (
        "valid" if config["valid"] else f"invalid ({config['errors']} errors; run openclaw config validate)")
    click.echo(f"Config: {paths['configPath']} · {validity}")
    click.echo(f"State: {paths['stateDir']}" + (" (legacy ~/.clawdbot)" if paths["legacyStateDir"] else ""))
    click.echo(f"Log file: {paths['logFile']}")
    if not gw["reachable"]:
        click.echo(f"Gateway: unreachable ({gw['url']})" + (f" · {gw['error']}" if gw.get("error") else ""))
    else:
        pid = f" · pid {gw['pid']}" if gw.get("pid") else ""
        click.echo(f"Gateway: reachable {gw['url']}{pid} · v{gw.get('version')} · up "
                   f"{human_duration(gw.get('uptimeMs') or 0)} · bind {gw.get('bind')} · auth {gw.get('authMode')}")
        reload = gw.get("configReload") or {}
        if reload.get("status") not in (None, "ok"):
            click.echo(f"Config reload: {reload['status']} {reload.get('lastError') or ''}".rstrip())
    for ch in report["channels"]:
        click.echo(f"Channel {ch['id']}/{ch['accountId']}: {ch['state']} (restarts {ch['restartCount']})"
                   + (f" · {ch['lastError']}" if ch.get("lastError") else ""))
    click.echo(f"Sessions: {report['sessions']['count']}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.option("--timeout", "timeout_ms", type=click.IntRange(min=1), default=10000, show_default=True,
              help="Bound on reaching the gateway, in ms.")
def status(as_json: bool, timeout_ms: int) -> None:
    """Local paths and config state, plus the running gateway's status when reachable."""
    report = {"ok": True, "version": PROJECT_VERSION, **_local()}
    target = make_target({})
    remote: dict | None = None
    channels: list = []
    error: str | None = None

    async def fetch() -> tuple[dict, list]:
        async with GatewayClient(target, timeout_ms) as client:
            return await _remote(client)

    try:
        remote, channels = asyncio.run(fetch())
    except (CliError, RpcError, asyncio.TimeoutError, OSError) as exc:
        error = str(exc) or type(exc).__name__
    report.update(gateway=_gateway_block(target.url, remote, error), service=None, channels=channels,
                  sessions=_sessions(remote), deep=None, doctor=None, recentLogs=None)
    if as_json:
        emit_json(report)
    else:
        _print_human(report)
