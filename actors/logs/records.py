"""The JSON Lines record (cli-config §8.2): fields, order and encoding."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timezone
from typing import Any

import msgspec

from actors.logs.levels import level_name
from actors.logs.redaction import EXTRA_KEYS, redact_record

_HOSTNAME = socket.gethostname()


def subsystem_for(logger_name: str) -> str:
    """`openclaw.channels.telegram` → `channels/telegram`; foreign loggers → first name part."""
    if logger_name in ("", "root", "openclaw", "__main__"):
        return "gateway"
    if logger_name.startswith("openclaw."):
        return logger_name[len("openclaw."):].replace(".", "/")
    return logger_name.split(".", 1)[0]


def record_subsystem(record: logging.LogRecord) -> str:
    # extra={"subsystem": ...} lets shared code log on behalf of a channel or session.
    explicit = getattr(record, "subsystem", None)
    return explicit if isinstance(explicit, str) and explicit else subsystem_for(record.name)


def local_time(created: float) -> datetime:
    # Via UTC so the offset is right across DST changes.
    return datetime.fromtimestamp(created, timezone.utc).astimezone()


def format_time(created: float) -> str:
    """`2026-01-05T14:03:07.123+01:00`: local time, milliseconds, offset."""
    return local_time(created).isoformat(timespec="milliseconds")


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The §8.2 object for a (redacted) record, keys in the documented order."""
    redact_record(record)
    out: dict[str, Any] = {
        "time": format_time(record.created),
        "level": level_name(record.levelno),
        "subsystem": record_subsystem(record),
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
    data = getattr(record, "data", None)
    if data is not None:
        out["data"] = data
    return out


_encoder = msgspec.json.Encoder(enc_hook=repr)


def encode_record(record: logging.LogRecord) -> bytes:
    """One JSON Lines line, without the newline."""
    return _encoder.encode(record_fields(record))


class JsonFormatter(logging.Formatter):
    """The file record as text; also the console `json` style."""

    def format(self, record: logging.LogRecord) -> str:
        return encode_record(record).decode("utf-8")
