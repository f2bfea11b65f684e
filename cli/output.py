"""CLI output and exit codes (cli-config §3.2, §3.3): results on stdout, diagnostics on
stderr, `--json` as exactly one document, errors as one clear line."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
EXIT_UNREACHABLE, EXIT_UNAUTHORIZED, EXIT_CONFIG = 69, 77, 78


class CliError(Exception):
    """A failure that ends the command: its type (§3.2), exit code and extra error fields."""

    def __init__(self, kind: str, message: str, exit_code: int, **extra: Any):
        super().__init__(message)
        self.kind, self.message, self.exit_code, self.extra = kind, message, exit_code, extra


def emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def warn(message: str) -> None:
    click.echo(message, err=True)


def fail(err: CliError, as_json: bool) -> NoReturn:
    if as_json:
        error = {"type": err.kind, "message": err.message, **err.extra}
        emit_json({"ok": False, "error": error})
    else:
        code = err.extra.get("code")
        prefix = f"Error: {code}: " if code and err.kind == "rpc_error" else "Error: "
        click.echo(prefix + err.message, err=True)
    sys.exit(err.exit_code)


def fail_usage(message: str) -> NoReturn:
    raise click.UsageError(message)


def human_duration(ms: int) -> str:
    seconds = int(ms // 1000)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"
