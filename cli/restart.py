"""`openclaw gateway restart` (cli-config §4.3): an in-process restart through RPC
`gateway.restart`, then a wait until the gateway answers again with a new bootId."""

from __future__ import annotations

import asyncio
import re
import sys
import time

import click

from cli.client import GatewayClient, RpcError, make_target, rpc_failure
from cli.output import EXIT_FAIL, EXIT_UNREACHABLE, CliError, emit_json, fail, fail_usage

NOT_RUNNING = "no running gateway found (start it with: openclaw gateway, or openclaw service start)"
CONNECT_TIMEOUT_MS = 5000
POLL_S = 0.1
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def parse_duration_ms(text: str) -> int:
    """`0`, `1500ms`, `30s`, `5m`, `1h`; a bare number is milliseconds."""
    match = _DURATION.match(text.strip())
    if not match:
        fail_usage(f"invalid --wait {text!r} (expected a duration such as 30s, 5m, 1500ms or 0)")
    return int(float(match.group(1)) * _UNIT_MS[match.group(2) or "ms"])


@click.command()
@click.option("--wait", "wait",
              help="Drain budget: longest wait for running work [gateway.restartDrainTimeoutMs]; 0 = none.")
@click.option("--force", is_flag=True, help="Skip the drain and the restart cooldown.")
@click.option("--timeout", "timeout_ms", type=click.IntRange(min=1), default=60000, show_default=True,
              help="Longest wait, in ms, for the restarted gateway to be healthy.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--url", help="Gateway URL (ws:// or wss://); credentials then come only from --token/--password.")
@click.option("--port", type=int, help="Local gateway port (ws://127.0.0.1:PORT).")
@click.option("--token", help="Gateway token.")
@click.option("--password", help="Gateway password.")
def restart(wait: str | None, force: bool, timeout_ms: int, as_json: bool, **conn: object) -> None:
    """Restart the running gateway in-process (same pid, new bootId).

    Exit 0 once the gateway is healthy again within --timeout, 1 if not, 69 if none runs.
    """
    params: dict = {"reason": "cli"}
    if wait is not None:
        params["drainMs"] = parse_duration_ms(wait)
    if force:
        params["force"] = True
    target = make_target(conn)
    try:
        result = asyncio.run(_restart(target, params, timeout_ms))
    except CliError as err:
        if err.kind == "unreachable":
            err = CliError("unreachable", NOT_RUNNING, EXIT_UNREACHABLE)
        fail(err, as_json)
    except RpcError as err:
        fail(rpc_failure(err), as_json)
    if as_json:
        emit_json(result)
    elif result["healthy"]:
        click.echo(f"Gateway restarted (in-process, pid {result['pidAfter']})")
    else:
        click.echo(f"Error: gateway not healthy again within {timeout_ms}ms after the restart "
                   "(see configReload in `openclaw health`)", err=True)
    if not result["healthy"]:
        sys.exit(EXIT_FAIL)


async def _restart(target, params: dict, timeout_ms: int) -> dict:
    started = time.monotonic()
    async with GatewayClient(target, CONNECT_TIMEOUT_MS) as client:
        boot_before = client.hello.get("server", {}).get("bootId")
        pid_before = (await client.call("status")).get("pid")
        await client.call("gateway.restart", params)
    pid_after = await _wait_new_boot(target, boot_before, started + timeout_ms / 1000)
    return {"ok": pid_after is not None, "method": "in-process", "pidBefore": pid_before,
            "pidAfter": pid_after, "healthy": pid_after is not None,
            "elapsedMs": int((time.monotonic() - started) * 1000)}


async def _wait_new_boot(target, boot_before: str | None, deadline: float) -> int | None:
    """Reconnect until a boot other than `boot_before` answers `health`; its pid, or None
    when the deadline passes first (e.g. the restart was aborted on an invalid config)."""
    while time.monotonic() < deadline:
        left_ms = int((deadline - time.monotonic()) * 1000)
        try:
            async with GatewayClient(target, max(1, min(CONNECT_TIMEOUT_MS, left_ms))) as client:
                if client.hello.get("server", {}).get("bootId") != boot_before:
                    health = await client.call("health")
                    if health.get("ok"):
                        return (await client.call("status")).get("pid")
        except (CliError, RpcError, asyncio.TimeoutError, OSError):
            pass  # restarting: refused, closed 1012/1013, or not answering yet
        await asyncio.sleep(POLL_S)
    return None
