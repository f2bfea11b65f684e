"""Shared HTTP plumbing of the model providers (architecture §4): one stdlib `http.client`
connection per request with a timeout, retries with exponential backoff on 429/5xx and
connection errors before any output (honouring `retry-after`), an SSE reader, and cancel by
shutting the socket down from another thread so the reading thread ends at once.

Everything here blocks: it runs in the worker thread owned by a run, never in an actor's
message handler.
"""

from __future__ import annotations

import http.client
import random
import socket
import ssl
import time
from email.utils import parsedate_to_datetime
from typing import Callable, Iterator
from urllib.parse import urlsplit

import msgspec

from actors.agents.providers import CancelToken, ChatRequest, Event, Provider, ProviderError, ResultBuilder
from actors.sockets import shutdown_socket

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
MAX_ERROR_BODY = 64 * 1024


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

    def __init__(self, provider: str, conn: http.client.HTTPConnection,
                 resp: http.client.HTTPResponse, cancel: CancelToken,
                 unregister: Callable[[], None]) -> None:
        self.provider = provider
        self.status = resp.status
        self.headers = resp.headers
        self._conn = conn
        self._resp = resp
        self._cancel = cancel
        self._unregister = unregister

    def lines(self) -> Iterator[str]:
        """Yields decoded lines without their line ending; ends at EOF or on cancel.
        Raises ProviderError (timeout / connection) on read failures not caused by cancel."""
        while True:
            if self._cancel.cancelled:
                return
            try:
                raw = self._resp.readline(1 << 20)
            except (socket.timeout, TimeoutError) as exc:
                if self._cancel.cancelled:
                    return
                raise ProviderError(self.provider, self.status,
                                    "no data within the timeout while streaming",
                                    retryable=True, kind="timeout") from exc
            except (OSError, ValueError, http.client.HTTPException, AttributeError) as exc:
                # ValueError/AttributeError: the response was closed under us by cancel()
                if self._cancel.cancelled:
                    return
                raise ProviderError(self.provider, self.status,
                                    f"connection lost while streaming: {exc}",
                                    retryable=True, kind="connection") from exc
            if not raw:
                return
            yield raw.decode("utf-8", "replace").rstrip("\r\n")

    def sse(self) -> Iterator[tuple[str, str]]:
        """Server-sent events as (event, data); event is "message" when not named."""
        event, data = "", []
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

    def close(self) -> None:
        self._unregister()
        try:
            self._resp.close()
        except Exception:
            pass
        self._conn.close()


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


def _kind_of(status: int) -> str:
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limit"
    return "http"


def open_stream(provider: str, url: str, body: bytes, headers: dict[str, str], *,
                timeout: float, cancel: CancelToken, retry: RetryPolicy | None = None) -> StreamResponse:
    """POSTs `body` to `url` and returns the open 2xx response. Retries 429/5xx and connection
    errors (never once a response body was handed out). Raises ProviderError, or
    ProviderError(kind="aborted") when cancelled."""
    retry = retry or RetryPolicy()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProviderError(provider, None, f"invalid baseUrl {url!r}", retryable=False, kind="config")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    attempt = 0
    while True:
        if cancel.cancelled:
            raise ProviderError(provider, None, "aborted", retryable=False, kind="aborted")
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        unregister = cancel.on_cancel(lambda c=conn: shutdown_socket(c.sock))
        error: ProviderError
        wait: float | None = None
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
        except (socket.timeout, TimeoutError) as exc:
            unregister()
            conn.close()
            if cancel.cancelled:
                raise ProviderError(provider, None, "aborted", retryable=False, kind="aborted") from exc
            # A hang is not retried: the caller's budget is the timeout, not a multiple of it.
            raise ProviderError(provider, None, f"no response within {timeout:g}s",
                                retryable=True, kind="timeout") from exc
        except (OSError, http.client.HTTPException) as exc:
            unregister()
            conn.close()
            if cancel.cancelled:
                raise ProviderError(provider, None, "aborted", retryable=False, kind="aborted") from exc
            error = ProviderError(provider, None, f"connection failed: {exc}",
                                  retryable=True, kind="connection")
        else:
            if 200 <= resp.status < 300:
                return StreamResponse(provider, conn, resp, cancel, unregister)
            try:
                raw = resp.read(MAX_ERROR_BODY)
            except Exception:
                raw = b""
            unregister()
            conn.close()
            if cancel.cancelled:
                raise ProviderError(provider, None, "aborted", retryable=False, kind="aborted")
            retryable = resp.status in RETRY_STATUSES or resp.status >= 500
            error = ProviderError(provider, resp.status, error_detail(raw),
                                  retryable=retryable, kind=_kind_of(resp.status))
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
