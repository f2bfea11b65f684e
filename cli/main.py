"""`openclaw`: the root command (cli-config §3.1)."""

from __future__ import annotations

import os
import sys

import click

from transport.protocol import PROJECT_VERSION

LOG_LEVELS = ("silent", "fatal", "error", "warn", "info", "debug", "trace")


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), help="Override file and console log levels.")
@click.option("--no-color", is_flag=True, help="Disable colour (also NO_COLOR or a non-TTY stdout).")
@click.version_option(PROJECT_VERSION, "--version", prog_name="openclaw", message="%(prog)s %(version)s")
@click.pass_context
def root(ctx: click.Context, log_level: str | None, no_color: bool) -> None:
    """OpenClaw gateway (Python): run the gateway and talk to it.

    The gateway owns every messaging channel, session and tool run of a personal AI
    assistant and serves them over one port (WebSocket protocol v4 + HTTP).
    """
    ctx.ensure_object(dict)
    ctx.obj["log_level"] = log_level
    ctx.obj["no_color"] = no_color or bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def main() -> None:
    from cli import channels, chat, config, gateway, health, pairing, sessions, status  # noqa: F401 - registers the commands

    root.add_command(gateway.gateway)
    root.add_command(health.health)
    root.add_command(status.status)
    root.add_command(config.config)
    root.add_command(sessions.sessions)
    root.add_command(chat.chat)
    root.add_command(channels.channels)
    root.add_command(pairing.pairing)
    root(prog_name="openclaw")
