"""Secrets masked and client strings bounded before a record reaches any handler
(cli-config §8.6 rule 1)."""

from __future__ import annotations

import logging
import re
import threading
import traceback
from typing import Any, Iterable

import msgspec

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
        data = getattr(record, "data", None)
        if data is not None:
            record.data = _redact_data(data)
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
