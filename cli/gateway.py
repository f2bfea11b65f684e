"""`openclaw gateway` (= `gateway run`), `gateway call`, `gateway health` (cli-config §4.1,
§4.2, §4.4)."""

from __future__ import annotations

import sys

import click

from actors.config.load import valid_bind
from cli import health as health_cmd
from cli import restart as restart_cmd
from cli.client import connection_options, run_call
from cli.output import fail_usage
from lifecycle.startup import RunOptions


def _port(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= 65535:
        fail_usage(f"--port must be between 1 and 65535 (0 picks a free port), not {value}")
    return value


class _RunByDefault(click.Group):
    """`openclaw gateway [run options]` means `openclaw gateway run [run options]`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_RunByDefault)
def gateway() -> None:
    """Run the gateway, or call it (`gateway call`, `gateway health`, `gateway restart`).

    `openclaw gateway [OPTIONS]` alone runs the gateway in the foreground (= `gateway run`).
    """


@gateway.command()
@click.option("--port", type=int, help="Listen port [OPENCLAW_GATEWAY_PORT, gateway.port, 18789; 19001 with --dev].")
@click.option("--bind", help="loopback | lan | tailnet | custom | auto | an IP of this machine [gateway.bind].")
@click.option("--token", help="Gateway token (beats OPENCLAW_GATEWAY_TOKEN and gateway.auth.token).")
@click.option("--password", help="Gateway password (visible in ps; prefer config or env).")
@click.option("--verbose", is_flag=True, help="Console level debug and one line per WS request/response.")
@click.option("--force", is_flag=True, help="Take over the port and the state-dir lock from a running holder.")
@click.option("--dev", is_flag=True, help="Dev mode: ~/.openclaw-dev, port 19001, loopback, no auth.")
@click.option("--allow-unconfigured", is_flag=True, help='Start even though gateway.mode is "remote".')
@click.pass_context
def run(ctx: click.Context, port: int | None, bind: str | None, token: str | None,
        password: str | None, verbose: bool, force: bool, dev: bool, allow_unconfigured: bool) -> None:
    """Run the gateway in the foreground (never daemonizes).

    Exit codes: 0 graceful stop, 78 unusable config or startup refusal, 1 lock/port conflict
    or crash, 130/143 when a second signal forces the exit.
    """
    if bind is not None and not valid_bind(bind):
        fail_usage(f'invalid --bind "{bind}" (expected loopback | lan | tailnet | custom | auto | <ip address>)')
    from lifecycle import process  # heavy imports only for the server

    obj = ctx.find_root().obj or {}
    opts = RunOptions(port=_port(port), bind=bind, token=token, password=password, verbose=verbose,
                      force=force, dev=dev, allow_unconfigured=allow_unconfigured,
                      log_level=obj.get("log_level"), no_color=bool(obj.get("no_color")))
    sys.exit(process.run(opts))


@gateway.command()
@click.argument("method")
@click.option("--params", default="{}", show_default=True, help="JSON object of method params.")
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: {ok, payload | error}.")
def call(method: str, params: str, as_json: bool, **conn: object) -> None:
    """Call one RPC method and print its payload.

    Example: openclaw gateway call config.get --params '{}'
    """
    run_call(method, params, as_json, conn)


gateway.add_command(health_cmd.gateway_health, "health")
gateway.add_command(restart_cmd.restart, "restart")
