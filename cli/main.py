"""`openclaw`: the root command (cli-config §3.1)."""

from __future__ import annotations

import importlib
import os
import sys

import click

from transport.protocol import PROJECT_VERSION

LOG_LEVELS = ("silent", "fatal", "error", "warn", "info", "debug", "trace")


# Command name → module (each defines a command object of the same name), imported only when
# the command runs or help lists it: `openclaw gateway` starts without the other commands.
COMMANDS = ("channels", "chat", "config", "gateway", "health", "pairing", "sessions", "status")


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module = importlib.import_module(f"cli.{cmd_name}")
            self.add_command(getattr(module, cmd_name))
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             invoke_without_command=True)
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
    root(prog_name="openclaw")
