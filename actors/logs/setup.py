"""Installing and removing the gateway's handlers; a reload re-installs them."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable

from actors.logs.console import CONSOLE_STYLES, ConsoleHandler, console_formatter, default_console_style, use_colour
from actors.logs.files import FileWriter, JsonLinesFileHandler, RedactingQueueHandler
from actors.logs.levels import DEBUG, INFO, LEVELS, SILENT, parse_level, register_levels
from actors.logs.redaction import set_secrets

# Loggers whose records we route; the values are set while a setup is active.
ROUTED_LOGGERS = ("openclaw", "pykka", "tornado")
_ACCESS_LOGGER = "tornado.access"
_setup_lock = threading.RLock()
_current: LoggingHandle | None = None
_saved_state: dict[str, tuple[int, bool]] = {}


@dataclass
class LoggingHandle:
    """What `setup_logging` installed; `close()` removes it, writes out the queued file
    records, and restores the loggers. `handlers` are the ones attached to the loggers (the
    file's queue hand-off and the console); the file handler itself lives in `writer`."""

    file_path: Path | None
    file_level: int
    console_level: int
    console_style: str
    handlers: tuple[logging.Handler, ...] = field(default_factory=tuple)
    writer: FileWriter | None = None
    closed: bool = False

    def close(self) -> None:
        global _current
        with _setup_lock:
            if self.closed:
                return
            self._detach()
            if _current is self:
                _restore_loggers()
                _current = None

    def _detach(self) -> None:
        self.closed = True
        for name in ROUTED_LOGGERS:
            for handler in self.handlers:
                logging.getLogger(name).removeHandler(handler)
        for handler in self.handlers:
            handler.close()
        if self.writer is not None:
            self.writer.stop()


def _as_level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    parsed = parse_level(level)
    if parsed is None:
        raise ValueError(f"invalid log level {level!r} (expected one of {', '.join(LEVELS)})")
    return parsed


def setup_logging(
    *,
    file_path: str | os.PathLike[str] | None,
    file_level: int | str = INFO,
    console_level: int | str = INFO,
    console_style: str | None = None,
    daily: bool = False,
    no_color: bool = False,
    secrets: Iterable[str | None] | None = None,
    console_stream: IO[str] | None = None,
    propagate: bool = False,
) -> LoggingHandle:
    """Install the gateway's handlers, replacing any earlier setup (config reload re-calls it).

    `file_path` None or a `silent` file level means no file. `daily` marks the default dated
    file from `log_file_path` (pass `daily=not logging.file`). `secrets` None keeps the
    current secret set, anything else replaces it. The new handlers are built before the old
    ones are removed, so a bad path raises OSError and leaves the previous setup in place.
    `propagate` False keeps our records away from root handlers (no duplicate console output).
    """
    global _current
    register_levels()
    if secrets is not None:
        set_secrets(secrets)
    fl, cl = _as_level(file_level), _as_level(console_level)
    style = console_style or default_console_style(console_stream)
    if style not in CONSOLE_STYLES:
        raise ValueError(f"invalid console style {style!r} "
                         f"(expected one of {', '.join(CONSOLE_STYLES)})")
    writer = _file_writer(file_path, fl, daily)
    handlers = _build_handlers(writer, fl, cl, style, no_color, console_stream)
    handle = LoggingHandle(writer.handler.path if writer is not None else None, fl, cl, style,
                           handlers, writer)
    if writer is not None:
        writer.start()
    with _setup_lock:
        previous = _current
        _attach(handle, min(fl, cl), propagate)
        if previous is not None and not previous.closed:
            previous._detach()
        _current = handle
    return handle


def _file_writer(file_path: str | os.PathLike[str] | None, fl: int, daily: bool) -> FileWriter | None:
    if not file_path or fl == SILENT:
        return None
    file_handler = JsonLinesFileHandler(file_path, daily=daily, level=fl)
    file_handler.open()
    return FileWriter(file_handler)


def _build_handlers(writer: FileWriter | None, fl: int, cl: int, style: str, no_color: bool,
                    stream: IO[str] | None) -> tuple[logging.Handler, ...]:
    handlers: list[logging.Handler] = []
    if writer is not None:
        handlers.append(RedactingQueueHandler(writer.records, level=fl))
    if cl != SILENT:
        console = ConsoleHandler(stream, level=cl)
        console.setFormatter(console_formatter(style, colour=use_colour(stream, no_color=no_color)))
        handlers.append(console)
    return tuple(handlers)


def _attach(handle: LoggingHandle, level: int, propagate: bool) -> None:
    for name in (*ROUTED_LOGGERS, _ACCESS_LOGGER):
        logger = logging.getLogger(name)
        _saved_state.setdefault(name, (logger.level, logger.propagate))
    for name in ROUTED_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = propagate
        for handler in handle.handlers:
            logger.addHandler(handler)
    # One line per HTTP request is noise unless someone is debugging.
    logging.getLogger(_ACCESS_LOGGER).setLevel(level if level <= DEBUG else SILENT)


def _restore_loggers() -> None:
    for name, (level, propagate) in _saved_state.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = propagate
    _saved_state.clear()


def current() -> LoggingHandle | None:
    """The active setup, if any."""
    return _current


def close() -> None:
    """Remove the active setup (writing out and closing the file) and restore the loggers."""
    with _setup_lock:
        handle = _current
    if handle is not None:
        handle.close()


def flush() -> None:
    """Wait until every file record logged so far is on disk (the setup stays)."""
    handle = _current
    if handle is not None and handle.writer is not None:
        handle.writer.flush()


# A process that ends without `close()` (an uncaught error on the way out) still writes what
# its listener thread had queued: that thread is a daemon and would die with records unwritten.
atexit.register(close)
