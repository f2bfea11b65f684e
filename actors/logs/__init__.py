"""The gateway's logging (cli-config §8.1, §8.2, §8.4, §8.5, §8.6 rule 1).

Loggers are named `openclaw.<subsystem>` (`openclaw.channels.telegram` is subsystem
`channels/telegram`). `setup_logging` routes the `openclaw` logger, and `pykka` and `tornado`
so library records land in the same places, to:

- a JSON Lines file (§8.2), by default a daily file in a private `/tmp/openclaw/` (§8.1). The
  logging thread only puts the record on a queue; a listener thread owns the file, so no
  caller (the event loop above all) waits on the disk. `close()` drains the queue;
- a console handler on stderr in the `pretty`, `compact` or `json` style (§8.5), written by
  the calling thread so start-up lines keep their order with the process's own prints.

Secrets are masked (§8.6 rule 1) on the calling thread, before a record is queued or printed,
so no formatter ever sees a known secret. Only the gateway process calls this; CLI commands
print to the terminal themselves. Rotation and retention (§8.3) and redaction patterns (§8.6
rules 2-3) are not built yet.

Modules: `levels` (names, precedence), `location` (where the file lives), `redaction`,
`records` (the JSON object), `files` (the file handler, the queue hand-off), `console`,
`setup` (install, reload, close). Standard library and msgspec only.
"""

from actors.logs.console import (
    CONSOLE_STYLES,
    ConsoleFormatter,
    ConsoleHandler,
    console_formatter,
    default_console_style,
    display_subsystem,
    subsystem_colour,
    use_colour,
)
from actors.logs.files import JsonLinesFileHandler, RedactingQueueHandler
from actors.logs.levels import (
    DEBUG,
    ERROR,
    FATAL,
    INFO,
    LEVELS,
    SILENT,
    TRACE,
    WARN,
    Warn,
    level_name,
    parse_level,
    register_levels,
    resolve_levels,
)
from actors.logs.location import DEFAULT_LOG_DIR, dated_log_name, log_file_path, safe_log_dir, state_dir_tag
from actors.logs.records import JsonFormatter, encode_record, format_time, record_fields, subsystem_for
from actors.logs.redaction import (
    EXTRA_KEYS,
    MAX_FIELD_CHARS,
    MAX_ITEMS,
    MAX_MESSAGE_CHARS,
    MAX_STACK_CHARS,
    MIN_SECRET_LEN,
    RedactionFilter,
    clip,
    mask_secret,
    redact,
    redact_record,
    set_secrets,
)
from actors.logs.setup import ROUTED_LOGGERS, LoggingHandle, close, current, flush, setup_logging

__all__ = [
    "CONSOLE_STYLES", "DEBUG", "DEFAULT_LOG_DIR", "ERROR", "EXTRA_KEYS", "FATAL", "INFO", "LEVELS",
    "MAX_FIELD_CHARS", "MAX_ITEMS", "MAX_MESSAGE_CHARS", "MAX_STACK_CHARS", "MIN_SECRET_LEN",
    "ROUTED_LOGGERS", "SILENT", "TRACE", "WARN", "ConsoleFormatter", "ConsoleHandler",
    "JsonFormatter", "JsonLinesFileHandler", "LoggingHandle", "RedactingQueueHandler",
    "RedactionFilter", "Warn", "clip", "close", "console_formatter", "current", "dated_log_name",
    "default_console_style", "display_subsystem", "encode_record", "flush", "format_time",
    "level_name", "log_file_path", "mask_secret", "parse_level", "record_fields", "redact",
    "redact_record", "register_levels", "resolve_levels", "safe_log_dir", "set_secrets",
    "setup_logging", "state_dir_tag", "subsystem_colour", "subsystem_for", "use_colour",
]
