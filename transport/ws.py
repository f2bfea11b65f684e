"""One protocol connection (protocol §2-§7, §20): the handshake, requests, events with their
per-connection `seq`, the tick timer, and the slow-consumer guard.

`on_message` returns the handshake coroutine so Tornado reads no further frame until the
handshake is over; after `hello-ok` each request runs as its own task, so answers may come
back in any order and one slow method never holds up the socket.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import typing
import uuid
from typing import Any

import msgspec
import tornado.websocket
from tornado.websocket import WebSocketClosedError, WebSocketProtocol, WebSocketProtocol13

from actors.agents.manager import AGENTS, AgentManager
from actors.events import EVENT_HUB, EventHub, Subscriber
from transport import bridge
from transport.auth import is_loopback_request, request_client_ip
from transport.dispatch import Caller, dispatch
from transport.handshake import Handshake, Refused, readable_id, tick_interval_ms
from transport.protocol import (
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_RESTART,
    CLOSE_UNSUPPORTED,
    HANDSHAKE_TIMEOUT_MS,
    MAX_BUFFERED_BYTES,
    MAX_HANDSHAKE_FRAME,
    MAX_PAYLOAD,
    MAX_PENDING_REQUESTS,
    TOO_DEEP,
    UNAVAILABLE,
    ConnectParams,
    GatewayError,
    RequestFrame,
    TooDeep,
    decode_json,
    describe_validation_error,
    encode_error,
    encode_event,
    encode_ok,
    encoder,
    frame_decoder,
    invalid,
)
from transport.state import GatewayState
from transport.ws_protocol import LingeringProtocol

log = logging.getLogger("openclaw.ws")

UNTRACKED_MODES = frozenset({"cli", "backend", "probe"})


def handshake_timeout_ms() -> int:
    value = os.environ.get("OPENCLAW_HANDSHAKE_TIMEOUT_MS", "")
    return max(HANDSHAKE_TIMEOUT_MS, int(value)) if value.isdigit() else HANDSHAKE_TIMEOUT_MS


def now_ms() -> int:
    return int(time.time() * 1000)


def _reason(text: str) -> str:
    """Close reasons are cut to 123 bytes (§2.4)."""
    data = text.encode("utf-8")[:123]
    return data.decode("utf-8", errors="ignore")


def too_many_pending() -> GatewayError:
    """One socket may not pile up requests without bound (each holds a task and a future)."""
    return GatewayError(UNAVAILABLE, f"too many requests in flight on this connection (limit "
                        f"{MAX_PENDING_REQUESTS}); wait for answers before sending more",
                        retryable=True, details={"limit": MAX_PENDING_REQUESTS})


_SHARED_SETS: dict[frozenset[str], frozenset[str]] = {}


def shared_set(values: Any) -> frozenset[str]:
    """One frozenset object per distinct scope or cap set: thousands of sockets hold the same
    few sets, ~200 bytes each. Bounded, since caps come from clients."""
    fs = frozenset(values)
    if len(_SHARED_SETS) < 256:
        return _SHARED_SETS.setdefault(fs, fs)
    return _SHARED_SETS.get(fs, fs)


class GatewaySocket(tornado.websocket.WebSocketHandler):
    # The gateway's own per-socket fields live in slots. Tornado's handler already keeps ~27
    # attributes in the instance dict; CPython shares a class's attribute layout between its
    # instances only up to 30 names, and past that every socket gets a full dict of its own
    # (~1.3 KB more each, over 10,000 connections 13 MB; bench/connections.py).
    __slots__ = ("state", "conn_id", "nonce", "caller", "loopback", "remote_ip", "_seq", "_closed",
                 "_timer")
    _pending = 0  # requests in flight; a class default, so an idle socket stores no counter

    def initialize(self, state: GatewayState) -> None:
        self.state = state
        self.conn_id = str(uuid.uuid4())
        self.nonce = str(uuid.uuid4())
        self.caller: Caller | None = None
        self.loopback = False
        self.remote_ip: str | None = None
        self._seq = 0
        self._closed = False
        # The handshake timeout until hello-ok, then the next tick: one timer at a time.
        self._timer: asyncio.TimerHandle | None = None

    # --- Tornado hooks --------------------------------------------------------------------

    def get(self, *args: Any, **kwargs: Any) -> Any:
        # Not a coroutine itself: Tornado awaits what it returns, and the upgraded socket's read
        # loop runs inside that await for the whole connection, so a wrapper coroutine here
        # would be one more frame kept per connection.
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            return self._not_found()
        return super().get(*args, **kwargs)

    def _not_found(self, *args: Any, **kwargs: Any) -> None:
        """Only a GET upgrade is served on the WebSocket path; anything else falls through to the
        plain 404 of §21.1 (Tornado would answer an HTML 405)."""
        self.set_status(404)
        self.set_header("Content-Type", "text/plain")
        self.finish("Not Found")

    post = put = patch = delete = options = head = _not_found

    def check_origin(self, origin: str) -> bool:
        return True  # browser origins are checked during connect (§5.6), with an error frame

    def get_compression_options(self) -> None:
        return None

    @property
    def max_message_size(self) -> int:
        return MAX_HANDSHAKE_FRAME

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        proto = super().get_websocket_protocol()
        if isinstance(proto, WebSocketProtocol13):
            # Tornado has no factory hook: ours is built from the parameters Tornado chose.
            # (Assigning __class__ instead would give each socket's protocol a dict of its own.)
            return LingeringProtocol(self, proto.mask_outgoing, proto.params)
        return proto

    def open(self) -> None:
        self.loopback = is_loopback_request(self.request.remote_ip, self.request.headers)
        self.remote_ip = request_client_ip(self.request, self.state.snapshot.config.gateway)
        self.set_nodelay(True)
        challenge = encoder.encode({"nonce": self.nonce, "ts": now_ms()})
        self._write(encode_event("connect.challenge", challenge))
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(handshake_timeout_ms() / 1000, self._handshake_timeout)

    def on_message(self, message: str | bytes) -> Any:
        if isinstance(message, bytes):
            log.info("binary frame from %s; closing", self.conn_id, extra={"connId": self.conn_id})
            self.close(CLOSE_UNSUPPORTED, "binary frames not supported")
            return None
        if self.caller is not None:
            self._request(message)
            return None
        return self._handshake(message)

    def on_close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self.state.connections.pop(self.conn_id, None) is not None:
            bridge.tell(EVENT_HUB, EventHub.unsubscribe, self.conn_id)
        if self._pending:  # its agent.wait calls end now, not at their timeout
            bridge.tell(AGENTS, AgentManager.drop_waits, self.conn_id)
        log.debug("closed %s code=%s", self.conn_id, self.close_code, extra={"connId": self.conn_id})

    # --- writing --------------------------------------------------------------------------

    def _write(self, data: bytes, droppable: bool = False) -> bool:
        """Queue a text frame; over the buffer limit a droppable frame is skipped and any
        other frame closes the socket as a slow consumer (§20)."""
        if self._closed or self.ws_connection is None:
            return False
        conn: LingeringProtocol = self.ws_connection  # type: ignore[assignment]
        if conn.unsent_bytes > MAX_BUFFERED_BYTES:
            if droppable:
                log.info("payload.large: skipped event for slow consumer %s", self.conn_id,
                          extra={"connId": self.conn_id, "data": {"surface": "ws-outbound",
                                 "size": len(data), "limit": MAX_BUFFERED_BYTES, "reason": "skip"}})
                return False
            self._slow_consumer(len(data))
            return False
        try:
            conn.queue_text(data)
        except WebSocketClosedError:
            return False
        return True

    def _slow_consumer(self, size: int) -> None:
        log.warning("payload.large: slow consumer %s over %d unsent bytes; closing", self.conn_id,
                    MAX_BUFFERED_BYTES, extra={"connId": self.conn_id, "data": {
                        "surface": "ws-outbound", "size": size, "limit": MAX_BUFFERED_BYTES,
                        "reason": "slow consumer"}})
        self._closed = True
        conn = self.ws_connection  # close() below forgets it
        self.close(CLOSE_POLICY, "slow consumer")
        if conn is not None and conn.stream is not None:
            conn.stream.close()  # drop the unsent buffer now, not after flushing it or 5 s later

    def send_event(self, event: str, payload_json: bytes, state_version: bytes | None,
                   droppable: bool) -> None:
        self._seq += 1  # a skipped event still takes its number, so the client sees the gap
        self._write(encode_event(event, payload_json, self._seq, state_version), droppable)

    def shutdown(self, payload_json: bytes) -> None:
        self.send_event("shutdown", payload_json, None, False)
        self.close(CLOSE_RESTART, "service restart")

    def _schedule_tick(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(tick_interval_ms() / 1000, self._tick)

    def _tick(self) -> None:
        if self._closed:
            return
        self.send_event("tick", b'{"ts":%d}' % now_ms(), None, True)
        self._schedule_tick()

    # --- handshake ------------------------------------------------------------------------

    def _handshake_timeout(self) -> None:
        if self.caller is None and not self._closed:
            log.info("handshake timeout for %s from %s", self.conn_id, self.remote_ip,
                     extra={"connId": self.conn_id})
            self.close(CLOSE_POLICY, "handshake timeout")

    def _fail(self, err: GatewayError, req_id: str | None, code: int, reason: str | None = None) -> None:
        log.info("connect refused for %s from %s: %s", self.conn_id, self.remote_ip, err.message,
                 extra={"connId": self.conn_id})
        if req_id is not None:
            self._write(encode_error(req_id, err.shape))
        self.close(code, _reason(reason or err.message))

    async def _handshake(self, data: str) -> None:
        shake = Handshake(self.state, self.conn_id, self.nonce, self.remote_ip, self.loopback,
                          self.request.headers)
        try:
            accepted = await shake.run(data)
        except Refused as refusal:
            self._fail(refusal.error, shake.req_id, refusal.code, refusal.reason)
            return
        except Exception as exc:  # noqa: BLE001 - one socket's fault never reaches the others
            log.error("handshake failed for %s: %s", self.conn_id, exc, exc_info=True)
            self._fail(GatewayError(UNAVAILABLE, f"handshake failed: {exc}"), shake.req_id,
                       CLOSE_INTERNAL, "internal error")
            return
        if self._closed:
            return
        self._write(encode_ok(accepted.req_id, accepted.hello))
        self._register(accepted.params, accepted.role, accepted.scopes)

    def _register(self, params: ConnectParams, role: str, scopes: list[str]) -> None:
        client = params.client
        device_id = params.device.id if params.device is not None else None
        granted, caps = shared_set(scopes), shared_set(params.caps)
        self.caller = Caller(self.conn_id, role, granted, self.remote_ip, self.loopback,
                             sys.intern(client.id), sys.intern(client.mode), device_id, caps,
                             client.display_name or "")
        # Ours is always a LingeringProtocol (get_websocket_protocol); Tornado types the base.
        typing.cast(WebSocketProtocol13, self.ws_connection).params.max_message_size = MAX_PAYLOAD
        if self._timer is not None:
            self._timer.cancel()  # the handshake timeout; _schedule_tick below takes its place
        self.nonce = ""  # signed by the device during the handshake; not needed any more
        self.state.connections[self.conn_id] = self
        tracked = client.mode not in UNTRACKED_MODES
        key = (device_id or (client.instance_id or None) or self.conn_id).lower() if tracked else None
        sub = Subscriber(self.conn_id, role, granted, caps, key)
        bridge.tell(EVENT_HUB, EventHub.subscribe, sub, self._presence(params, role, scopes) if tracked else None)
        self._schedule_tick()
        log.debug("hello-ok %s client=%s mode=%s role=%s", self.conn_id, client.id, client.mode, role,
                  extra={"connId": self.conn_id})

    def _presence(self, params: ConnectParams, role: str, scopes: list[str]) -> dict:
        client = params.client
        entry: dict[str, Any] = {"host": client.display_name or client.id, "version": client.version,
                                 "platform": client.platform, "mode": client.mode,
                                 "roles": [role], "scopes": scopes}
        if not self.loopback and self.remote_ip:
            entry["ip"] = self.remote_ip
        for key, value in (("deviceFamily", client.device_family),
                           ("modelIdentifier", client.model_identifier),
                           ("instanceId", client.instance_id),
                           ("deviceId", params.device.id if params.device else None)):
            if isinstance(value, str) and value:
                entry[key] = value
        return entry

    # --- requests -------------------------------------------------------------------------

    def _request(self, data: str) -> None:
        try:
            frame = decode_json(data, decoder=frame_decoder)
        except msgspec.DecodeError as exc:  # ValidationError and TooDeep included
            self._bad_frame(data, exc)
            return
        if not isinstance(frame, RequestFrame):
            return  # client-sent res and event frames are ignored (§3.2)
        if frame.method == "connect":
            err = invalid("connect is only valid as the first request")
            self._write(encode_error(frame.id, err.shape))
            return
        if self._pending >= MAX_PENDING_REQUESTS:
            self._write(encode_error(frame.id, too_many_pending().shape))
            return
        self._pending += 1
        asyncio.get_running_loop().create_task(self._run(frame))

    def _bad_frame(self, data: str, exc: Exception) -> None:
        if isinstance(exc, msgspec.ValidationError):
            reason = describe_validation_error(exc)
        else:
            reason = TOO_DEEP if isinstance(exc, TooDeep) else "not JSON"
        log.info("invalid request frame from %s: %s", self.conn_id, reason, extra={"connId": self.conn_id})
        req_id = readable_id(data)
        if req_id is not None:
            self._write(encode_error(req_id, invalid(f"invalid request frame: {reason}").shape))

    async def _run(self, frame: RequestFrame) -> None:
        try:
            await self._answer(frame)
        finally:
            self._pending -= 1

    async def _answer(self, frame: RequestFrame) -> None:
        started = time.perf_counter()
        if self.state.verbose:
            log.debug("→ req %s %s", frame.id, frame.method, extra={"connId": self.conn_id})
        assert self.caller is not None  # requests are read only after the handshake
        try:
            payload = await dispatch(self.state, self.caller, frame.method, frame.params,
                                     lambda first: self._write(encode_ok(frame.id, first)))
            data = encode_ok(frame.id, payload)
        except GatewayError as err:
            ok, data = False, encode_error(frame.id, err.shape)
            if err.code != "INVALID_REQUEST" or "unknown method" in err.message:
                log.info("%s %s failed: %s", frame.method, frame.id, err.message,
                         extra={"connId": self.conn_id, "method": frame.method})
        except Exception as exc:  # noqa: BLE001 - e.g. a payload msgspec cannot encode
            log.error("%s %s failed: %s", frame.method, frame.id, exc, exc_info=True,
                      extra={"connId": self.conn_id, "method": frame.method})
            ok, data = False, encode_error(frame.id, GatewayError(UNAVAILABLE, f"{frame.method} failed: {exc}").shape)
        else:
            ok = True
        if self.state.verbose:
            log.debug("← res %s %s %dms", frame.id, "ok" if ok else "error",
                      (time.perf_counter() - started) * 1000, extra={"connId": self.conn_id})
        self._write(data)
