"""Shared HTTP plumbing of the model providers (architecture §4), on httpx: connections kept
and reused per origin (actors/http_client.py: proxies from the environment, explicit
timeouts), retries with exponential backoff on 429/5xx and connection errors before any
output (honouring `retry-after`), an SSE reader over the response's lines, and cancel by
shutting the connection's socket down from another thread so the reading thread ends at once.

Everything here blocks: it runs in the worker thread owned by a run, never in an actor's
message handler. httpx is imported by the first call, not by importing this module (the
gateway resolves providers on its loop to validate a request).
"""

from __future__ import annotations

import random
import threading
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Callable, Iterator
from urllib.parse import urlsplit

import msgspec

from actors.agents.providers import (
    CancelToken,
    ChatRequest,
    ErrorKind,
    Event,
    Provider,
    ProviderError,
    ResultBuilder,
)
from actors.http_client import Line, load_httpx

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
MAX_ERROR_BODY = 64 * 1024
MAX_IDLE_LINES = 16  # connections kept between runs, all origins together
DRAIN_S = 0.25  # after the end marker, how long the rest of the body may take to arrive
DRAIN_LINES = 100

Origin = tuple[str, str, int | None]
_idle: list[tuple[Origin, Line]] = []  # oldest first
_idle_lock = threading.Lock()


def _lease(origin: Origin) -> tuple[Line, int]:
    """A kept connection to `origin` (the newest), else a new line."""
    line: Line | None = None
    with _idle_lock:
        for i in range(len(_idle) - 1, -1, -1):
            if _idle[i][0] == origin:
                line = _idle.pop(i)[1]
                break
    if line is None:
        line = Line()
    return line, line.next_lease()


def _release(origin: Origin, line: Line) -> None:
    """Back to the pool for the next run to the same origin, unless it was aborted."""
    line.next_lease()  # a cancel hook firing late now misses
    if line.aborted:
        line.close()
        return
    with _idle_lock:
        _idle.append((origin, line))
        evicted = _idle.pop(0)[1] if len(_idle) > MAX_IDLE_LINES else None
    if evicted is not None:
        evicted.close()


class RetryPolicy(msgspec.Struct, kw_only=True):
    """Attempts = 1 + retries. Delay before retry n (0-based) is base * 2**n (capped at
    max_delay) with up to 10 % jitter, unless the server sent `retry-after`; a `retry-after`
    beyond max_retry_after is not waited for (the error is raised)."""
    retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0


class StreamResponse:
    """An open 2xx response; read it with `lines()` or `sse()`, then `close()`."""

    def __init__(self, provider: str, resp: httpx.Response, cancel: CancelToken,
                 release: Callable[[], None], abort: Callable[[], None]) -> None:
        self.provider = provider
        self.status = resp.status_code
        self.headers = resp.headers
        self._resp = resp
        self._cancel = cancel
        self._release = release
        self._abort = abort
        self._lines = resp.iter_lines()
        self._closed = False

    def _next(self) -> str | None:
        """The next line, None at the end of the body; raises ProviderError."""
        hx = load_httpx()
        try:
            return next(self._lines)
        except StopIteration:
            return None
        except hx.TimeoutException as exc:
            if self._cancel.cancelled:
                return None
            raise ProviderError(self.provider, self.status,
                                "no data within the timeout while streaming",
                                retryable=True, kind="timeout") from exc
        except (hx.TransportError, hx.StreamError, OSError, ValueError) as exc:
            # also what a read sees when cancel shut its socket down
            if self._cancel.cancelled:
                return None
            raise ProviderError(self.provider, self.status,
                                f"connection lost while streaming: {exc}",
                                retryable=True, kind="connection") from exc

    def lines(self) -> Iterator[str]:
        """Yields decoded lines without their line ending; ends at EOF or on cancel.
        Raises ProviderError (timeout / connection) on read failures not caused by cancel."""
        while not self._cancel.cancelled:
            line = self._next()
            if line is None:
                return
            yield line

    def sse(self) -> Iterator[tuple[str, str]]:
        """Server-sent events as (event, data); event is "message" when not named."""
        event = ""
        data: list[str] = []
        for line in self.lines():
            if not line:
                if data:
                    yield event or "message", "\n".join(data)
                event, data = "", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
        if data:
            yield event or "message", "\n".join(data)

    def close(self, drain: bool = False) -> None:
        """Ends the response. With `drain` (the stream's end marker arrived), first reads what
        is left of the body, briefly, so the connection can serve the next request."""
        if self._closed:
            return
        self._closed = True
        if drain and not self._cancel.cancelled:
            watchdog = threading.Timer(DRAIN_S, self._abort)
            watchdog.daemon = True
            watchdog.start()
            try:
                for _ in range(DRAIN_LINES):
                    if self._next() is None:
                        break
                else:
                    self._abort()  # more than an end: not worth keeping
            except ProviderError:
                pass
            finally:
                watchdog.cancel()
        try:
            self._resp.close()
        except Exception:  # noqa: BLE001 - a connection cut by cancel may fail to close cleanly
            pass
        self._release()


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def error_detail(body: bytes) -> str:
    """The human part of an error body: OpenAI `{"error":{"message"}}`, Anthropic
    `{"type":"error","error":{"type","message"}}`, else the text itself (shortened)."""
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        text = body.decode("utf-8", "replace").strip()
        return text[:500] if text else "(empty body)"
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        msg = err.get("message") or ""
        typ = err.get("type") or err.get("code")
        return f"{typ}: {msg}" if typ and msg else str(msg or typ or doc)
    if isinstance(err, str):
        return err
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return doc["message"]
    return str(doc)[:500]


def _kind_of(status: int) -> ErrorKind:
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limit"
    return "http"


def _read_error_body(resp: httpx.Response) -> bytes:
    raw = b""
    try:
        for chunk in resp.iter_bytes():
            raw += chunk
            if len(raw) >= MAX_ERROR_BODY:
                break
    except Exception:  # noqa: BLE001 - the status is the error; the body only explains it
        pass
    finally:
        resp.close()
    return raw[:MAX_ERROR_BODY]


def open_stream(provider: str, url: str, body: bytes, headers: dict[str, str], *,
                timeout: float, cancel: CancelToken, retry: RetryPolicy | None = None) -> StreamResponse:
    """POSTs `body` to `url` and returns the open 2xx response. Retries 429/5xx and connection
    errors (never once a response body was handed out). Raises ProviderError, or
    ProviderError(kind="aborted") when cancelled."""
    retry = retry or RetryPolicy()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProviderError(provider, None, f"invalid baseUrl {url!r}", retryable=False, kind="config")
    if cancel.cancelled:
        raise ProviderError(provider, None, "aborted", retryable=False, kind="aborted")
    hx = load_httpx()
    origin: Origin = (parts.scheme, parts.hostname, parts.port)
    line, lease = _lease(origin)
    unregister = cancel.on_cancel(lambda: line.abort(lease))

    def release() -> None:
        unregister()
        _release(origin, line)

    handed_out = False
    try:
        attempt = 0
        while True:
            if cancel.cancelled:
                raise ProviderError(provider, None, "aborted", retryable=False, kind="aborted")
            error: ProviderError
            wait: float | None = None
            try:
                request = line.client.build_request(
                    "POST", url, content=body, headers=headers, timeout=hx.Timeout(timeout),
                    extensions=line.extensions())
                resp = line.client.send(request, stream=True)
            except hx.TimeoutException as exc:
                if cancel.cancelled:
                    raise ProviderError(provider, None, "aborted", retryable=False, kind="aborted") from exc
                # A hang is not retried: the caller's budget is the timeout, not a multiple of it.
                raise ProviderError(provider, None, f"no response within {timeout:g}s",
                                    retryable=True, kind="timeout") from exc
            except (hx.TransportError, OSError) as exc:
                if cancel.cancelled:
                    raise ProviderError(provider, None, "aborted", retryable=False, kind="aborted") from exc
                error = ProviderError(provider, None, f"connection failed: {exc}",
                                      retryable=True, kind="connection")
            else:
                if 200 <= resp.status_code < 300:
                    handed_out = True
                    return StreamResponse(provider, resp, cancel, release, lambda: line.abort(lease))
                raw = _read_error_body(resp)
                if cancel.cancelled:
                    raise ProviderError(provider, None, "aborted", retryable=False, kind="aborted")
                status = resp.status_code
                retryable = status in RETRY_STATUSES or status >= 500
                error = ProviderError(provider, status, error_detail(raw),
                                      retryable=retryable, kind=_kind_of(status))
                if not retryable:
                    raise error
                wait = retry_after_seconds(resp.headers.get("retry-after-ms"))
                wait = wait / 1000 if wait is not None else retry_after_seconds(resp.headers.get("retry-after"))
                if wait is not None and wait > retry.max_retry_after:
                    raise error
            if attempt >= retry.retries:
                raise error
            if wait is None:
                wait = min(retry.max_delay, retry.base_delay * (2 ** attempt))
                wait *= 1 + random.random() * 0.1
            attempt += 1
            if cancel.wait(wait):
                raise ProviderError(provider, None, "aborted", retryable=False, kind="aborted")
    finally:
        if not handed_out:
            release()


__all__ = ["RetryPolicy", "StreamResponse", "open_stream", "error_detail", "retry_after_seconds"]


class HttpProvider(Provider):
    """What the HTTP providers share: their settings and opening the stream. Subclasses give
    `url`, `request_headers()` and `encode(request)`, and read the response themselves."""

    def __init__(self, id: str, *, base_url: str, api_key: str | None = None,
                 timeout: float = 120, headers: dict[str, str] | None = None,
                 models: list | None = None, retry: RetryPolicy | None = None) -> None:
        super().__init__(id)
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.models = list(models or [])
        self.retry = retry or RetryPolicy()

    @property
    def url(self) -> str:
        raise NotImplementedError

    def request_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def encode(self, request: ChatRequest) -> dict:
        raise NotImplementedError

    def open(self, request: ChatRequest, on_event: Callable[[Event], None] | None,
             cancel: CancelToken) -> tuple[ResultBuilder, StreamResponse | None]:
        """The result builder and the open response; None when cancelled before it opened."""
        out = ResultBuilder(self.id, request.model, on_event)
        try:
            resp = open_stream(self.id, self.url, msgspec.json.encode(self.encode(request)),
                               self.request_headers(), timeout=self.timeout, cancel=cancel,
                               retry=self.retry)
        except ProviderError as exc:
            if exc.kind == "aborted":
                return out, None
            raise
        return out, resp
