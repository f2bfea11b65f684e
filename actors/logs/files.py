"""The log file (§8.2): the handler (append-only, created 0600, one file per local day when
daily), the listener thread that owns it (`FileWriter`), and the queue hand-off the loggers
call (`RedactingQueueHandler`), so a logging thread never writes or flushes the file itself."""

from __future__ import annotations

import copy
import logging
import logging.handlers
import os
import queue
import threading
from datetime import date
from pathlib import Path
from typing import IO

from actors.logs.location import DATED_NAME
from actors.logs.records import encode_record, local_time
from actors.logs.redaction import RedactionFilter, redact_record


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
            match = DATED_NAME.match(self.path.name)
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
            day = local_time(record.created).date()
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


# --------------------------------------------------------------------------- the hand-off


class RedactingQueueHandler(logging.handlers.QueueHandler):
    """The caller's side of the file: masks and bounds the record, then queues it.

    Redaction stays on the caller's thread: the record's arguments may be changed by the
    caller after the call returns, and a secret must never wait in the queue unmasked.
    """

    def __init__(self, records: queue.Queue[logging.LogRecord | None], *, level: int) -> None:
        super().__init__(records)
        self.setLevel(level)
        self.addFilter(RedactionFilter())

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Not the stdlib prepare: it flattens the record into its console text and drops the
        # exception, which the JSON record needs as its `err` object.
        redact_record(record)
        queued = copy.copy(record)
        # The traceback is already text (exc_text, `err`); its frames need not outlive the call.
        queued.exc_info = None
        return queued


class FileWriter:
    """The listener thread that owns a JsonLinesFileHandler: it takes records off the queue
    and writes them in order. `stop()` writes what is queued, then closes the file."""

    def __init__(self, handler: JsonLinesFileHandler) -> None:
        self.handler = handler
        self.records: queue.Queue[logging.LogRecord | None] = queue.Queue()
        self._listener = logging.handlers.QueueListener(self.records, handler,
                                                        respect_handler_level=True)
        self._lock = threading.Lock()
        self._running = False

    def start(self) -> None:
        with self._lock:
            if not self._running:
                self._listener.start()
                self._running = True

    def flush(self) -> None:
        """Wait until every record queued so far is written."""
        if self._running:
            self.records.join()

    def stop(self) -> None:
        with self._lock:
            if self._running:
                self._running = False
                self._listener.stop()  # the sentinel goes behind the queued records
        # A thread already inside its logging call when the handlers were swapped may still
        # have queued a record behind the sentinel.
        while True:
            try:
                record = self.records.get_nowait()
            except queue.Empty:
                break
            self.records.task_done()
            if record is not None:
                self.handler.handle(record)
        self.handler.close()
