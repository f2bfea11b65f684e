"""The gateway's logging setup (cli-config §8.1, §8.2, §8.4, §8.5, §8.6 rule 1).

Loggers are named `openclaw.<subsystem>` (`openclaw.channels.telegram` is subsystem
`channels/telegram`). `setup_logging` attaches two handlers to the `openclaw` logger, and to
`pykka` and `tornado` so library records land in the same places:

- a JSON Lines file (§8.2), by default a daily file in a private `/tmp/openclaw/` (§8.1);
- a console handler on stderr in the `pretty`, `compact` or `json` style (§8.5).

Both handlers run the secret filter (§8.6 rule 1) first, so no formatter ever sees a known
secret. Only the gateway process calls this; CLI commands print to the terminal themselves.
Rotation and retention (§8.3) and redaction patterns (§8.6 rules 2-3) are not built yet.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import stat
import sys
import tempfile
import threading
import traceback
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Iterable

import msgspec

# --------------------------------------------------------------------------- levels (§8.4)

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
_LETTERS = {"trace": "T", "debug": "D", "info": "I", "warn": "W", "error": "E", "fatal": "F"}

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


# --------------------------------------------------------------------------- file location (§8.1)

DEFAULT_LOG_DIR = Path("/tmp/openclaw")
_DATED_NAME = re.compile(r"^(?P<stem>.+)-(?P<day>\d{4}-\d{2}-\d{2})\.log$")


def state_dir_tag(state_dir: str | os.PathLike[str], from_env: bool,
                  *, home: str | os.PathLike[str] | None = None) -> str | None:
    """The instance tag an OPENCLAW_STATE_DIR gives the daily log name, or None.

    Pure (no filesystem access): only an environment-chosen directory other than
    `~/.openclaw`/`~/.clawdbot` gets a tag, so default instances keep `openclaw-DATE.log`.
    """
    if not from_env:
        return None
    path = _norm(state_dir)
    home_dir = _norm(home if home is not None else os.path.expanduser("~"))
    if path in (os.path.join(home_dir, ".openclaw"), os.path.join(home_dir, ".clawdbot")):
        return None
    tag = re.sub(r"[^a-z0-9-]", "-", os.path.basename(path).lstrip(".").lower())
    if not tag:  # e.g. "/" or "/x/..." : hash the path so instances still never share a file
        return hashlib.sha1(path.encode()).hexdigest()[:8]
    if len(tag) > 32:
        return hashlib.sha1(tag.encode()).hexdigest()[:8]
    return tag


def _norm(path: str | os.PathLike[str]) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(path))))


def dated_log_name(tag: str | None, day: date) -> str:
    """`openclaw-2026-01-05.log`, or `openclaw-<tag>-2026-01-05.log`."""
    stem = f"openclaw-{tag}" if tag else "openclaw"
    return f"{stem}-{day.isoformat()}.log"


def log_file_path(
    config_file: str | None,
    state_dir: str | os.PathLike[str],
    dev: bool,
    *,
    base_dir: str | os.PathLike[str] = DEFAULT_LOG_DIR,
    state_dir_from_env: bool | None = None,
    today: date | None = None,
    home: str | os.PathLike[str] | None = None,
    warn: Warn | None = None,
) -> Path:
    """The gateway's log file (§8.1): `logging.file` if set, else today's dated file.

    `state_dir_from_env` says whether OPENCLAW_STATE_DIR chose `state_dir` (pass
    `source == "env"` from `resolve_state_dir`); None checks the environment itself. Creates
    the log directory (0700) as a side effect and may fall back to a private temp directory,
    reported through `warn`. Raises PermissionError if no safe directory can be found.
    """
    if config_file:
        return Path(config_file).expanduser().absolute()
    if dev:
        tag: str | None = "dev"
    else:
        if state_dir_from_env is None:
            state_dir_from_env = bool(os.environ.get("OPENCLAW_STATE_DIR")
                                      or os.environ.get("CLAWDBOT_STATE_DIR"))
        tag = state_dir_tag(state_dir, state_dir_from_env, home=home)
    directory = safe_log_dir(Path(base_dir), warn=warn)
    return directory / dated_log_name(tag, today or date.today())


def safe_log_dir(base_dir: Path, *, warn: Warn | None = None) -> Path:
    """`base_dir` if it is (or can be made) a private directory, else `<tmp>/openclaw-<uid>/`.

    A shared /tmp lets another user pre-create or symlink the directory and read or redirect
    our logs, hence the ownership and mode checks.
    """
    problem = _dir_problem(base_dir)
    if problem is None:
        return base_dir
    fallback = Path(tempfile.gettempdir()) / f"openclaw-{os.getuid()}"
    (warn or logging.getLogger("openclaw.gateway").warning)(
        f"log directory {base_dir} is unsafe ({problem}); using {fallback}")
    fallback_problem = _dir_problem(fallback)
    if fallback_problem == "group/other-writable":
        os.chmod(fallback, 0o700)  # our own, uid-named directory: tightening it is safe
    elif fallback_problem is not None:
        raise PermissionError(f"no safe log directory: {fallback} is unsafe ({fallback_problem})")
    return fallback


def _dir_problem(path: Path) -> str | None:
    """Why `path` must not hold our logs, or None; creates it 0700 when absent."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        return f"cannot create it: {exc.strerror or exc}"
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot stat it: {exc.strerror or exc}"
    if stat.S_ISLNK(st.st_mode):
        return "a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}"
    if st.st_mode & 0o022:
        return "group/other-writable"
    return None


# ------------------------------------------------------------------ redaction (§8.6 rule 1)

MIN_SECRET_LEN = 8
_secrets_lock = threading.Lock()
_secret_pattern: re.Pattern[str] | None = None


def set_secrets(values: Iterable[str | None]) -> None:
    """Replace the set of known secrets; values shorter than 8 characters are ignored.

    Called at startup and after each config change; readers take the compiled pattern
    with a single attribute read, so logging threads never see a half-built set.
    """
    global _secret_pattern
    keep = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LEN}
    # Longest first, so a secret containing another is masked as a whole.
    ordered = sorted(keep, key=lambda s: (-len(s), s))
    pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
    with _secrets_lock:
        _secret_pattern = pattern


def mask_secret(value: str) -> str:
    """`sk-abc…wxyz` for 18+ characters, else `***`."""
    return f"{value[:6]}…{value[-4:]}" if len(value) >= 18 else "***"


def redact(text: str) -> str:
    """`text` with every known secret masked."""
    pattern = _secret_pattern
    if pattern is None or not text:
        return text
    return pattern.sub(lambda m: mask_secret(m.group(0)), text)


# Bounds of one record, whatever the call site logs: client strings (method names, session
# keys, reasons, error messages quoting input) reach records, and a 100 KB method name made a
# 300 KB line. Secrets are masked before cutting, so a cut never leaves half a secret.
MAX_MESSAGE_CHARS = 8192
MAX_FIELD_CHARS = 2048
MAX_STACK_CHARS = 16384
MAX_ITEMS = 64  # entries kept per list or dict in `data`


def clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`text` cut to `limit` characters, with a marker saying how much was dropped."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} chars)"


def _clean(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    return clip(redact(text), limit)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        out = {_clean(str(k)): _redact_value(v)
               for k, v in (value.items() if len(value) <= MAX_ITEMS else list(value.items())[:MAX_ITEMS])}
        if len(value) > MAX_ITEMS:
            out["…"] = f"(+{len(value) - MAX_ITEMS} entries)"
        return out
    if isinstance(value, list):
        out_list = [_redact_value(v) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            out_list.append(f"…(+{len(value) - MAX_ITEMS} items)")
        return out_list
    return value


def _redact_data(data: Any) -> Any:
    """JSON-ready, redacted copy of a record's `data` (Structs, dataclasses, sets included)."""
    try:
        builtins = msgspec.to_builtins(data, str_keys=True, enc_hook=repr)
    except Exception:  # noqa: BLE001 - an odd object must not lose the record
        builtins = repr(data)
    return _redact_value(builtins)


EXTRA_KEYS = ("channel", "accountId", "sessionKey", "agentId", "connId", "method", "durationMs")


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask secrets in the message, exception, `data` and extras, and cut every string in
    them to a bounded length (client input reaches records), in place, once.

    Done in place (message frozen into `msg`, `exc_text` pre-filled) so every handler,
    including ones we do not own, formats the redacted text. Never raises: a filter error
    would escape into the caller's `log.info()`.
    """
    if getattr(record, "_oc_redacted", False):
        return record
    try:
        if isinstance(record.args, tuple) and record.args:
            # each argument cut first, so the words after a huge argument survive the message cut
            record.args = tuple(_clean(a) if isinstance(a, str) else a for a in record.args)
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - bad %-args: keep something readable instead
        message = f"unformattable log message {record.msg!r} with args {record.args!r}"
    try:
        record.msg, record.args = _clean(message, MAX_MESSAGE_CHARS), ()
        _redact_exception(record)
        if getattr(record, "data", None) is not None:
            record.data = _redact_data(record.data)
        for key in EXTRA_KEYS:
            if isinstance(getattr(record, key, None), str):
                setattr(record, key, _clean(getattr(record, key)))
    except Exception:  # noqa: BLE001 - see above; better an empty record than a leaked one
        record.msg, record.args = "(log record lost in redaction)", ()
        record.exc_info = record.exc_text = record.stack_info = None
        record.__dict__.pop("_oc_err", None)
        record.__dict__.pop("data", None)
    record._oc_redacted = True
    return record


def _redact_exception(record: logging.LogRecord) -> None:
    exc_info = record.exc_info
    if not exc_info or exc_info[0] is None:
        record.exc_info = None
        return
    exc_type, exc, tb = exc_info
    stack = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip("\n")
    record.exc_text = _clean(stack, MAX_STACK_CHARS)
    record._oc_err = {"type": exc_type.__name__, "message": _clean(str(exc)),
                      "stack": record.exc_text}
    if record.stack_info:
        record.stack_info = _clean(record.stack_info, MAX_STACK_CHARS)


class RedactionFilter(logging.Filter):
    """Handler filter for §8.6 rule 1; installed on every handler `setup_logging` creates."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


# --------------------------------------------------------------------------- record format (§8.2)

_HOSTNAME = socket.gethostname()


def subsystem_for(logger_name: str) -> str:
    """`openclaw.channels.telegram` → `channels/telegram`; foreign loggers → first name part."""
    if logger_name in ("", "root", "openclaw", "__main__"):
        return "gateway"
    if logger_name.startswith("openclaw."):
        return logger_name[len("openclaw."):].replace(".", "/")
    return logger_name.split(".", 1)[0]


def _subsystem(record: logging.LogRecord) -> str:
    # extra={"subsystem": ...} lets shared code log on behalf of a channel or session.
    explicit = getattr(record, "subsystem", None)
    return explicit if isinstance(explicit, str) and explicit else subsystem_for(record.name)


def _local_time(created: float) -> datetime:
    # Via UTC so the offset is right across DST changes.
    return datetime.fromtimestamp(created, timezone.utc).astimezone()


def format_time(created: float) -> str:
    """`2026-01-05T14:03:07.123+01:00`: local time, milliseconds, offset."""
    return _local_time(created).isoformat(timespec="milliseconds")


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The §8.2 object for a (redacted) record, keys in the documented order."""
    redact_record(record)
    out: dict[str, Any] = {
        "time": format_time(record.created),
        "level": level_name(record.levelno),
        "subsystem": _subsystem(record),
        "message": record.msg,
        "pid": record.process or os.getpid(),
        "hostname": _HOSTNAME,
    }
    for key in EXTRA_KEYS:
        value = getattr(record, key, None)
        if value is not None:
            out[key] = value
    err = getattr(record, "_oc_err", None)
    if err is not None:
        out["err"] = err
    if getattr(record, "data", None) is not None:
        out["data"] = record.data
    return out


_encoder = msgspec.json.Encoder(enc_hook=repr)


def encode_record(record: logging.LogRecord) -> bytes:
    """One JSON Lines line, without the newline."""
    return _encoder.encode(record_fields(record))


class JsonFormatter(logging.Formatter):
    """The file record as text; also the console `json` style."""

    def format(self, record: logging.LogRecord) -> str:
        return encode_record(record).decode("utf-8")


# --------------------------------------------------------------------------- file handler

def _open_append(path: Path) -> IO[bytes]:
    """Append-mode binary stream; a new file is created 0600 (logs may hold session data)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "ab")


class JsonLinesFileHandler(logging.Handler):
    """Writes §8.2 records to `path`; with `daily`, each record goes to its local day's file.

    `daily` expects a dated name (`openclaw[-tag]-YYYY-MM-DD.log`) and reopens when a
    record's date differs from the open file's. I/O errors go to `handleError`, never up.
    """

    def __init__(self, path: str | os.PathLike[str], *, daily: bool = False,
                 level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.path = Path(path)
        self.daily = daily
        self._stream: IO[bytes] | None = None
        self._day: date | None = None
        self._stem = ""
        if daily:
            match = _DATED_NAME.match(self.path.name)
            if match is None:
                raise ValueError(f"daily log file name must end in -YYYY-MM-DD.log: {self.path}")
            self._stem, self._day = match["stem"], date.fromisoformat(match["day"])
        self.addFilter(RedactionFilter())

    def open(self) -> None:
        """Open (creating) the current file now, so setup fails early on a bad path."""
        self.acquire()
        try:
            if self._stream is None:
                self._stream = _open_append(self.path)
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = encode_record(record) + b"\n"
            stream = self._stream_for(record)
            stream.write(line)
            stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging must never take the gateway down
            self._close_stream()  # retry the open on the next record (e.g. file deleted, disk back)
            self.handleError(record)

    def _stream_for(self, record: logging.LogRecord) -> IO[bytes]:
        if self.daily:
            day = _local_time(record.created).date()
            if day != self._day:
                self._close_stream()
                self._day = day
                self.path = self.path.with_name(f"{self._stem}-{day.isoformat()}.log")
        if self._stream is None:
            self._stream = _open_append(self.path)
        return self._stream

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass

    def close(self) -> None:
        self.acquire()
        try:
            self._close_stream()
        finally:
            self.release()
        super().close()


# --------------------------------------------------------------------------- console (§8.5)

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
               environ: dict[str, str] | None = None) -> bool:
    """Colour on a TTY or with FORCE_COLOR; never with NO_COLOR or `--no-color`."""
    environ = os.environ if environ is None else environ
    if no_color or environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR", "") not in ("", "0", "false"):
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
        subsystem = _subsystem(record)
        shown = display_subsystem(subsystem)
        if self.style == "compact":
            return f"{when} {_LETTERS[level]} {shown}:"
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


# --------------------------------------------------------------------------- setup

# Loggers whose records we route; the values are set while a setup is active.
ROUTED_LOGGERS = ("openclaw", "pykka", "tornado")
_ACCESS_LOGGER = "tornado.access"
_setup_lock = threading.RLock()
_current: LoggingHandle | None = None
_saved_state: dict[str, tuple[int, bool]] = {}


@dataclass
class LoggingHandle:
    """What `setup_logging` installed; `close()` removes it and restores the loggers."""

    file_path: Path | None
    file_level: int
    console_level: int
    console_style: str
    handlers: tuple[logging.Handler, ...] = field(default_factory=tuple)
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
    handlers = _build_handlers(file_path, fl, cl, style, daily, no_color, console_stream)
    handle = LoggingHandle(Path(file_path) if file_path and fl != SILENT else None, fl, cl, style,
                           handlers)
    with _setup_lock:
        previous = _current
        _attach(handle, min(fl, cl), propagate)
        if previous is not None and not previous.closed:
            previous._detach()
        _current = handle
    return handle


def _build_handlers(file_path: str | os.PathLike[str] | None, fl: int, cl: int, style: str,
                    daily: bool, no_color: bool,
                    stream: IO[str] | None) -> tuple[logging.Handler, ...]:
    handlers: list[logging.Handler] = []
    if file_path and fl != SILENT:
        file_handler = JsonLinesFileHandler(file_path, daily=daily, level=fl)
        file_handler.open()
        handlers.append(file_handler)
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
    """Remove the active setup (flushing and closing the file) and restore the loggers."""
    with _setup_lock:
        handle = _current
    if handle is not None:
        handle.close()
