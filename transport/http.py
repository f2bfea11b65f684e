"""HTTP endpoints on the gateway port (protocol §21): health probes, the HTTP RPC endpoint,
and a plain 404 for everything else (later sections' routes included)."""

from __future__ import annotations

import asyncio
import logging
import typing
from typing import Any

import msgspec
import tornado.web
from tornado import httputil
from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream, StreamClosedError

from transport.auth import is_loopback_request, lockout_error, request_client_ip, secret_equal
from transport.dispatch import Caller, dispatch
from transport.protocol import (
    INVALID_REQUEST,
    MAX_PAYLOAD,
    OPERATOR_SCOPES,
    ErrorShape,
    GatewayError,
    NonEmpty,
    TooDeep,
    decode_json,
    describe_validation_error,
    encoder,
)
from transport.state import READY, GatewayState

log = logging.getLogger("openclaw.http")

LIVE = b'{"ok":true,"status":"live"}'
READY_BODY = b'{"ok":true,"status":"ready"}'


class _Base(tornado.web.RequestHandler):
    def initialize(self, state: GatewayState) -> None:
        self.state = state

    def _json(self, status: int, body: bytes) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        if self.request.method != "HEAD":
            self.write(body)
        self.finish()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain")
        self.finish(self._reason)


class LiveHandler(_Base):
    def get(self) -> None:
        self._json(200, LIVE)

    head = get


class ReadyHandler(_Base):
    def get(self) -> None:
        if self.state.phase == READY:
            self._json(200, READY_BODY)
        else:
            self._json(503, b'{"ok":false,"status":"%s"}' % self.state.phase.encode())

    head = get


class NotFoundHandler(tornado.web.RequestHandler):
    def prepare(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "text/plain")
        self.finish("Not Found")


class RpcBody(msgspec.Struct):
    method: NonEmpty
    id: str | None = None
    params: msgspec.Raw = msgspec.Raw(b"{}")


class _Rejection(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    headers: dict[str, str]


class _StatefulHandler(typing.Protocol):
    """What _check_bearer reads of a handler: this module's and the OpenAI-compatible ones."""
    state: GatewayState
    request: httputil.HTTPServerRequest


def _check_bearer(handler: _StatefulHandler) -> Caller | _Rejection:
    """The caller for a valid bearer, or the 401/429 answer (§21.1, §19.1). Counts a wrong
    bearer toward the failed-auth limiter; writes nothing."""
    state = handler.state
    auth = state.auth
    loopback = is_loopback_request(handler.request.remote_ip, handler.request.headers)
    remote = request_client_ip(handler.request, state.snapshot.config.gateway)
    caller = Caller(f"http:{remote}", "operator", frozenset(OPERATOR_SCOPES), remote, loopback,
                    "http", "backend")
    if auth.mode == "none":
        return caller
    limit = state.snapshot.config.gateway.auth.rate_limit
    key = None if (loopback and limit.exempt_loopback) else f"{remote}|http-bearer"
    wait = state.limiter.retry_after_ms(key) if key else None
    if wait is not None:
        return _Rejection(429, encoder.encode({"ok": False, "error": lockout_error(wait).shape}),
                          {"Retry-After": str(max(1, (wait + 999) // 1000))})
    header = handler.request.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if auth.secret and given and secret_equal(given, auth.secret):
        if key:
            state.limiter.success(key)
        return caller
    if given and key:
        state.limiter.failure(key)
    return _Rejection(401, b'{"ok":false,"error":{"code":"INVALID_REQUEST","message":"Unauthorized"}}',
                      {"WWW-Authenticate": "Bearer"})


def _reject(handler: _Base, rejection: _Rejection) -> None:
    for name, value in rejection.headers.items():
        handler.set_header(name, value)
    handler._json(rejection.status, rejection.body)


# A caller whose bearer was refused gets its answer before its body when the body is big or
# of unknown size: reading it is work for nothing, and Tornado's own answer to a body over
# the size cap is a bare 400. The answer closes the connection; what the client still sends
# is read and dropped for at most EARLY_LINGER_S, so that a client that sends its whole body
# before reading (most do) reads the answer instead of a TCP reset.
UNWANTED_BODY = 64 * 1024
EARLY_LINGER_S = 2.0
_answering: set[asyncio.Task] = set()


def body_unwanted(request: Any) -> bool:
    """A body too big (or of unknown size) to read for a caller that will be refused."""
    length = request.headers.get("Content-Length", "")
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        return True
    return length.isdigit() and int(length) > UNWANTED_BODY


def answer_early(handler: tornado.web.RequestHandler, rejection: _Rejection) -> None:
    """Answer `rejection` now, before the request body, and close the connection."""
    length = handler.request.headers.get("Content-Length", "")
    remaining = int(length) if length.isdigit() else None
    stream = handler.detach()  # Tornado reads no body and writes nothing more
    lines = [f"HTTP/1.1 {rejection.status} {httputil.responses.get(rejection.status, 'Error')}",
             "Content-Type: application/json", f"Content-Length: {len(rejection.body)}",
             "Connection: close", *(f"{k}: {v}" for k, v in rejection.headers.items())]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + rejection.body
    task = asyncio.ensure_future(_write_then_drain(stream, data, remaining))
    _answering.add(task)
    task.add_done_callback(_answering.discard)


async def _write_then_drain(stream: IOStream, data: bytes, remaining: int | None) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EARLY_LINGER_S
    try:
        await asyncio.wait_for(stream.write(data), EARLY_LINGER_S)
        while remaining is None or remaining > 0:
            left = deadline - loop.time()
            if left <= 0:
                break
            size = 1 << 16 if remaining is None else min(1 << 16, remaining)
            chunk = await asyncio.wait_for(stream.read_bytes(size, partial=True), left)
            if remaining is not None:
                remaining -= len(chunk)
    except (StreamClosedError, asyncio.TimeoutError, OSError):
        pass
    finally:
        stream.close()


# Bodies up to 4 x the limit (or, for an authorized caller, their declared Content-Length, up
# to 1 GiB) are read, and dropped past the limit, so that the client, which is still sending,
# reliably gets its 413 (a response sent before the body was read is often lost to the TCP
# reset of closing the socket).


class BearerBody(_Base):
    """A POST whose body is streamed: the bearer is checked on the headers, only an
    authorized body is kept, and a body over `limit` is counted and dropped, then answered
    413 (Tornado's own size cap would answer a bare 400). Subclasses are decorated with
    `tornado.web.stream_request_body`."""

    limit = MAX_PAYLOAD

    def enabled(self) -> bool:
        return True

    def rejection(self, refused: _Rejection) -> _Rejection:
        """The answer to a refused bearer, in this endpoint's error envelope."""
        return refused

    def prepare(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._auth: Caller | _Rejection | None = None
        if self.request.method == "POST" and self.enabled():
            self._auth = _check_bearer(self)
        if isinstance(self._auth, _Rejection) and body_unwanted(self.request):
            return answer_early(self, self.rejection(self._auth))
        length = self.request.headers.get("Content-Length", "")
        declared = int(length) if length.isdigit() and isinstance(self._auth, Caller) else 0
        # Tornado types the connection as its interface; the HTTP/1 server's has the body limit.
        connection = typing.cast(HTTP1Connection, self.request.connection)
        connection.set_max_body_size(max(4 * self.limit, min(declared, 1 << 30)))

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if isinstance(self._auth, Caller) and self._size <= self.limit:
            self._chunks.append(chunk)
        elif self._chunks:
            self._chunks = []  # over the cap or not authorized: keep nothing

    def body(self) -> bytes:
        raw, self._chunks = b"".join(self._chunks), []
        return raw


@tornado.web.stream_request_body
class RpcHandler(BearerBody):
    """POST /api/v1/admin/rpc: any method, through the WebSocket's dispatcher (§21.1a)."""

    def enabled(self) -> bool:
        return self.state.snapshot.config.gateway.http.endpoints.rpc.enabled

    async def post(self) -> None:
        if self._auth is None:
            raise tornado.web.HTTPError(404)
        if isinstance(self._auth, _Rejection):
            return _reject(self, self._auth)
        caller = self._auth
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return self._error(415, None, "Content-Type must be application/json")
        if self._size > MAX_PAYLOAD:
            log.warning("payload.large: HTTP RPC body of %d bytes over %d", self._size, MAX_PAYLOAD,
                        extra={"data": {"surface": "http-rpc", "size": self._size, "limit": MAX_PAYLOAD,
                                        "reason": "rejected"}})
            return self._error(413, None, f"body larger than {MAX_PAYLOAD} bytes")
        try:
            body = decode_json(self.body(), RpcBody)
        except msgspec.ValidationError as exc:
            return self._error(400, None, f"invalid request body: {describe_validation_error(exc)}")
        except msgspec.DecodeError as exc:
            problem = exc if isinstance(exc, TooDeep) else "not JSON"
            return self._error(400, None, f"invalid request body: {problem}")
        try:
            payload = await dispatch(self.state, caller, body.method, body.params)
        except GatewayError as err:
            return self._json(200, encoder.encode({"id": body.id, "ok": False, "error": err.shape}))
        self._json(200, encoder.encode({"id": body.id, "ok": True, "payload": payload}))

    def _error(self, status: int, req_id: str | None, message: str) -> None:
        shape = ErrorShape(INVALID_REQUEST, message)
        self._json(status, encoder.encode({"id": req_id, "ok": False, "error": shape}))

