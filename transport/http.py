"""HTTP endpoints on the gateway port (protocol §21): health probes, the HTTP RPC endpoint,
and a plain 404 for everything else (later sections' routes included)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import tornado.web

from transport.auth import is_loopback_request, secret_equal
from transport.dispatch import Caller, dispatch
from transport.protocol import (
    DEFAULT_OPERATOR_SCOPES, HTTP_STATUS, INVALID_REQUEST, MAX_PAYLOAD, OPERATOR_SCOPES, ErrorShape,
    GatewayError, encoder,
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
    method: str
    id: str | None = None
    params: msgspec.Raw = msgspec.Raw(b"{}")


def bearer_caller(handler: _Base) -> Caller | None:
    """The caller for a valid bearer, or None after answering 401/429 (§21.1)."""
    state = handler.state
    auth = state.auth
    remote = handler.request.remote_ip
    loopback = is_loopback_request(remote, handler.request.headers)
    caller = Caller(f"http:{remote}", "operator", frozenset(OPERATOR_SCOPES), remote, loopback,
                    "http", "backend")
    if auth.mode == "none":
        return caller
    limit = state.snapshot.config.gateway.auth.rate_limit
    key = None if (loopback and limit.exempt_loopback) else f"{remote}|http-bearer"
    wait = state.limiter.retry_after_ms(key) if key else None
    if wait is not None:
        handler.set_header("Retry-After", str(max(1, (wait + 999) // 1000)))
        handler._json(429, encoder.encode({"ok": False, "error": {
            "code": INVALID_REQUEST,
            "message": "unauthorized: too many failed authentication attempts (retry later)"}}))
        return None
    header = handler.request.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if auth.secret and given and secret_equal(given, auth.secret):
        if key:
            state.limiter.success(key)
        return caller
    if given and key:
        state.limiter.failure(key)
    handler.set_header("WWW-Authenticate", "Bearer")
    handler._json(401, b'{"ok":false,"error":{"code":"INVALID_REQUEST","message":"Unauthorized"}}')
    return None


class RpcHandler(_Base):
    """POST /api/v1/admin/rpc: any method, through the WebSocket's dispatcher (§21.1a)."""

    async def post(self) -> None:
        if not self.state.snapshot.config.gateway.http.endpoints.rpc.enabled:
            raise tornado.web.HTTPError(404)
        caller = bearer_caller(self)
        if caller is None:
            return
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return self._error(415, None, "Content-Type must be application/json")
        if len(self.request.body) > MAX_PAYLOAD:
            return self._error(413, None, f"body larger than {MAX_PAYLOAD} bytes")
        try:
            body = msgspec.json.decode(self.request.body, type=RpcBody)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return self._error(400, None, f"invalid request body: {exc}")
        try:
            payload = await dispatch(self.state, caller, body.method, body.params)
        except GatewayError as err:
            return self._json(200, encoder.encode({"id": body.id, "ok": False, "error": err.shape}))
        self._json(200, encoder.encode({"id": body.id, "ok": True, "payload": payload}))

    def _error(self, status: int, req_id: str | None, message: str) -> None:
        shape = ErrorShape(INVALID_REQUEST, message)
        self._json(status, encoder.encode({"id": req_id, "ok": False, "error": shape}))


def status_for(code: str) -> int:
    return HTTP_STATUS.get(code, 500)


__all__ = ["LiveHandler", "ReadyHandler", "RpcHandler", "NotFoundHandler", "DEFAULT_OPERATOR_SCOPES"]
