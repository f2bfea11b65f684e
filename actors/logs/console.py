"""The console handler and its `pretty`/`compact` lines (cli-config §8.5)."""

from __future__ import annotations

import logging
import os
import sys
import zlib
from typing import IO, Any, Mapping

from actors.logs.levels import LEVEL_LETTERS, level_name
from actors.logs.records import JsonFormatter, format_time, record_subsystem
from actors.logs.redaction import RedactionFilter, redact_record

CONSOLE_STYLES = ("pretty", "compact", "json")
_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_LEVEL_COLOURS = {"trace": "\x1b[90m", "debug": "\x1b[36m", "info": "\x1b[32m",
                  "warn": "\x1b[33m", "error": "\x1b[31m", "fatal": "\x1b[1;31m"}
_SUBSYSTEM_COLOURS = ("\x1b[34m", "\x1b[35m", "\x1b[36m", "\x1b[32m", "\x1b[33m",
                      "\x1b[94m", "\x1b[95m", "\x1b[96m", "\x1b[92m", "\x1b[93m")


def display_subsystem(subsystem: str) -> str:
    """`channels/telegram` → `telegram`; others unchanged."""
    return subsystem.removeprefix("channels/")


def subsystem_colour(subsystem: str) -> str:
    """A stable ANSI colour for a subsystem (crc32, unlike hash(), is the same every run)."""
    return _SUBSYSTEM_COLOURS[zlib.crc32(subsystem.encode()) % len(_SUBSYSTEM_COLOURS)]


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def default_console_style(stream: IO[str] | None = None) -> str:
    """`pretty` on a TTY, else `compact` (supervisord, nohup, pipes)."""
    return "pretty" if _isatty(stream if stream is not None else sys.stderr) else "compact"


def use_colour(stream: IO[str] | None = None, *, no_color: bool = False,
               environ: Mapping[str, str] | None = None) -> bool:
    """Colour on a TTY or with FORCE_COLOR; never with NO_COLOR or `--no-color`."""
    env = os.environ if environ is None else environ
    if no_color or env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR", "") not in ("", "0", "false"):
        return True
    return _isatty(stream if stream is not None else sys.stderr)


class ConsoleFormatter(logging.Formatter):
    """The `pretty` and `compact` console lines (`json` uses JsonFormatter)."""

    def __init__(self, style: str = "compact", *, colour: bool = False) -> None:
        super().__init__()
        if style not in ("pretty", "compact"):
            raise ValueError(f"not a text console style: {style!r}")
        self.style = style
        self.colour = colour and style == "pretty"  # compact is plain by definition

    def format(self, record: logging.LogRecord) -> str:
        redact_record(record)
        text = record.msg if isinstance(record.msg, str) else str(record.msg)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        head = self._head(record)
        # Continuation lines indented two spaces so a reader sees where a record ends.
        return f"{head} {text}".replace("\n", "\n  ")

    def _head(self, record: logging.LogRecord) -> str:
        when, level = format_time(record.created), level_name(record.levelno)
        subsystem = record_subsystem(record)
        shown = display_subsystem(subsystem)
        if self.style == "compact":
            return f"{when} {LEVEL_LETTERS[level]} {shown}:"
        if not self.colour:
            return f"{when} {level:<5} [{shown}]"
        pad = " " * (5 - len(level))
        return (f"{_DIM}{when}{_RESET} {_LEVEL_COLOURS[level]}{level}{_RESET}{pad} "
                f"{subsystem_colour(subsystem)}[{shown}]{_RESET}")


class ConsoleHandler(logging.Handler):
    """Writes formatted records to `stream`, or to whatever `sys.stderr` is at emit time."""

    def __init__(self, stream: IO[str] | None = None, *, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.stream = stream
        self.addFilter(RedactionFilter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = self.stream if self.stream is not None else sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - a closed terminal must not take the gateway down
            self.handleError(record)


def console_formatter(style: str, *, colour: bool) -> logging.Formatter:
    if style == "json":
        return JsonFormatter()
    return ConsoleFormatter(style, colour=colour)
