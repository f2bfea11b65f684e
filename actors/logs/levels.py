"""Level names and their precedence (cli-config §8.4)."""

from __future__ import annotations

import logging
import sys
from typing import Callable

TRACE = 5
DEBUG = logging.DEBUG
INFO = logging.INFO
WARN = logging.WARNING
ERROR = logging.ERROR
FATAL = logging.CRITICAL
# Above any level a record can carry, so a handler or logger at SILENT lets nothing through.
SILENT = sys.maxsize

LEVELS: dict[str, int] = {
    "trace": TRACE, "debug": DEBUG, "info": INFO, "warn": WARN, "error": ERROR, "fatal": FATAL,
    "silent": SILENT,
}
_LEVELS_DESC = sorted(((v, n) for n, v in LEVELS.items() if n != "silent"), reverse=True)
LEVEL_LETTERS = {"trace": "T", "debug": "D", "info": "I", "warn": "W", "error": "E", "fatal": "F"}

Warn = Callable[[str], None]


def register_levels() -> None:
    """Make stdlib records carry our level names (`info`, `warn`, `fatal`, ...)."""
    for name, value in LEVELS.items():
        logging.addLevelName(value, name)


def parse_level(name: str | None) -> int | None:
    """The stdlib number for one of our level names (case-insensitive), None if invalid."""
    if not isinstance(name, str):
        return None
    return LEVELS.get(name.strip().lower())


def level_name(levelno: int) -> str:
    """Our name for a record's level; odd numbers (25) round down to the level below."""
    for value, name in _LEVELS_DESC:
        if levelno >= value:
            return name
    return "trace"


def resolve_levels(
    *,
    cli_level: str | None = None,
    verbose: bool = False,
    env_level: str | None = None,
    config_level: str | None = None,
    config_console_level: str | None = None,
    warn: Warn | None = None,
) -> tuple[int, int]:
    """(file_level, console_level) by the §8.4 precedence; `--verbose` never touches the file.

    Invalid values are skipped; an invalid OPENCLAW_LOG_LEVEL is reported through `warn`
    (default: a warning on `openclaw.config`), since nothing upstream validated it.
    """
    warn = warn or logging.getLogger("openclaw.config").warning
    env = parse_level(env_level) if env_level else None
    if env_level and env is None:
        warn(f"ignoring invalid OPENCLAW_LOG_LEVEL={env_level!r} "
             f"(expected one of {', '.join(LEVELS)})")
    cli = parse_level(cli_level)
    file_level = _first(cli, env, parse_level(config_level), INFO)
    console_level = _first(cli, DEBUG if verbose else None, env,
                           parse_level(config_console_level), INFO)
    return file_level, console_level


def _first(*values: int | None) -> int:
    return next(v for v in values if v is not None)
