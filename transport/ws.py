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
import socket
import time
import uuid
from typing import Any

import msgspec
import tornado.websocket
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketProtocol13

from actors.events import Subscriber
from transport import bridge
from transport.auth import check_secret, is_loopback_request, lockout_error, origin_allowed
from transport.methods.system import health_summary
from transport.dispatch import Caller, dispatch, method_names
from transport.protocol import (
    BUILD_ID, CLOSE_INTERNAL, CLOSE_POLICY, CLOSE_PROTOCOL, CLOSE_RESTART, CLOSE_TOO_BIG,
    CLOSE_TRY_LATER, CLOSE_UNSUPPORTED, DEFAULT_OPERATOR_SCOPES, HANDSHAKE_TIMEOUT_MS,
    MAX_BUFFERED_BYTES, MAX_HANDSHAKE_FRAME, MAX_PAYLOAD, MIN_NODE_PROTOCOL, OPERATOR_SCOPES,
    PROTOCOL_VERSION, SERVER_VERSION, UNAVAILABLE, ConnectParams, GatewayError, RequestFrame,
    any_decoder, connect_params_problem, describe_validation_error, encode_error, encode_event,
    encode_ok, encoder, frame_decoder, invalid,
)
from transport.state import DRAINING, READY, GatewayState

log = logging.getLogger("openclaw.ws")

EVENTS = ["connect.challenge", "tick", "presence", "health", "shutdown"]
UNTRACKED_MODES = frozenset({"cli", "backend", "probe"})


def tick_interval_ms() -> int:
    # A test knob: the protocol's interval is 30 s, which no test wants to wait for.
    value = os.environ.get("OPENCLAW_TICK_INTERVAL_MS", "")
    return int(value) if value.isdigit() and int(value) > 0 else 30000


def handshake_timeout_ms() -> int:
    value = os.environ.get("OPENCLAW_HANDSHAKE_TIMEOUT_MS", "")
    return max(HANDSHAKE_TIMEOUT_MS, int(value)) if value.isdigit() else HANDSHAKE_TIMEOUT_MS


def now_ms() -> int:
    return int(time.time() * 1000)


def _reason(text: str) -> str:
    """Close reasons are cut to 123 bytes (§2.4)."""
    data = text.encode("utf-8")[:123]
    return data.decode("utf-8", errors="ignore")


class _Protocol(WebSocketProtocol13):
    """Tornado's protocol, with the close reason our spec gives for an oversized frame and a
    lingering close after it.

    Tornado answers a frame over the size cap with a 1009 close frame and closes the socket at
    once, with the rest of the frame still unread; the kernel then resets the connection and
    the client, typically still sending, often loses the close frame and sees 1006. Instead the
    socket is half-closed after the close frame is flushed and its input drained (and dropped)
    for up to LINGER_S before it is closed.
    """

    LINGER_S = 2.0
    _linger_wanted = False
    _lingering: asyncio.Future | None = None

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if self._lingering is not None:
            return  # the drain closes the stream when it is done
        if code == CLOSE_TOO_BIG and not self.server_terminated:
            reason = "payload too large"
            self._linger_wanted = True
            log.warning("payload.large: inbound frame over %d bytes; closing",
                        self.params.max_message_size, extra={"data": {
                            "surface": "ws-inbound", "limit": self.params.max_message_size,
                            "reason": "frame too large"}})
        super().close(code, reason)

    def _abort(self) -> None:
        if self._lingering is not None:
            self.client_terminated = self.server_terminated = True
            return
        stream = self.stream
        if self._linger_wanted and stream is not None and not stream.closed():
            self.client_terminated = self.server_terminated = True
            self._lingering = asyncio.ensure_future(self._drain_then_close(stream))
            return
        super()._abort()

    async def _drain_then_close(self, stream: Any) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.LINGER_S
        try:
            await asyncio.wait_for(stream.write(b""), self.LINGER_S)  # the close frame is out
            stream.socket.shutdown(socket.SHUT_WR)
            while (left := deadline - loop.time()) > 0:
                await asyncio.wait_for(stream.read_bytes(1 << 16, partial=True), left)
        except (StreamClosedError, asyncio.TimeoutError, OSError, AttributeError):
            pass
        finally:
            stream.close()


class GatewaySocket(tornado.websocket.WebSocketHandler):
    def initialize(self, state: GatewayState) -> None:
        self.state = state
        self.conn_id = str(uuid.uuid4())
        self.nonce = str(uuid.uuid4())
        self.caller: Caller | None = None
        self._seq = 0
        self._unsent = 0
        self._closed = False
        self._timers: list[asyncio.TimerHandle] = []
        self._tick_handle: asyncio.TimerHandle | None = None

    # --- Tornado hooks --------------------------------------------------------------------

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            return self._not_found()
        await super().get(*args, **kwargs)

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

    def get_websocket_protocol(self) -> WebSocketProtocol13 | None:
        proto = super().get_websocket_protocol()
        if isinstance(proto, WebSocketProtocol13):
            proto.__class__ = _Protocol  # same state, our close(); Tornado has no factory hook
        return proto

    def open(self) -> None:
        self.remote_ip = self.request.remote_ip
        self.loopback = is_loopback_request(self.remote_ip, self.request.headers)
        self.set_nodelay(True)
        challenge = encoder.encode({"nonce": self.nonce, "ts": now_ms()})
        self._write(encode_event("connect.challenge", challenge))
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(handshake_timeout_ms() / 1000, self._handshake_timeout))

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
        for handle in self._timers:
            handle.cancel()
        if self._tick_handle:
            self._tick_handle.cancel()
        if self.state.connections.pop(self.conn_id, None) is not None:
            bridge.tell("events", "unsubscribe", self.conn_id)
        log.debug("closed %s code=%s", self.conn_id, self.close_code, extra={"connId": self.conn_id})

    # --- writing --------------------------------------------------------------------------

    def _write(self, data: bytes, droppable: bool = False) -> bool:
        """Queue a text frame; over the buffer limit a droppable frame is skipped and any
        other frame closes the socket as a slow consumer (§20)."""
        if self._closed or self.ws_connection is None:
            return False
        if self._unsent > MAX_BUFFERED_BYTES:
            if droppable:
                log.info("payload.large: skipped event for slow consumer %s", self.conn_id,
                          extra={"connId": self.conn_id, "data": {"surface": "ws-outbound",
                                 "size": len(data), "limit": MAX_BUFFERED_BYTES, "reason": "skip"}})
                return False
            self._slow_consumer(len(data))
            return False
        size = len(data)
        self._unsent += size
        try:
            fut = self.write_message(data)
        except WebSocketClosedError:
            self._unsent -= size
            return False
        fut.add_done_callback(lambda f: self._flushed(size, f))
        return True

    def _flushed(self, size: int, fut: asyncio.Future) -> None:
        self._unsent -= size
        if not fut.cancelled():
            fut.exception()  # retrieved: a closed socket is normal here

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
        self._tick_handle = loop.call_later(tick_interval_ms() / 1000, self._tick)

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
        req_id = None
        try:
            frame = self._connect_frame(data)
            req_id = frame.id
            params = self._connect_params(frame)
            self._check_phase()
            protocol = self._negotiate(params)
            method = self._authenticate(params)
            role, scopes = self._resolve_role(params)
            hello = await self._hello(params, protocol, method, role, scopes)
        except _Refused as refusal:
            self._fail(refusal.error, req_id if refusal.with_id else refusal.req_id, refusal.code,
                       refusal.reason)
            return
        except Exception as exc:  # noqa: BLE001 - one socket's fault never reaches the others
            log.error("handshake failed for %s: %s", self.conn_id, exc, exc_info=True)
            self._fail(GatewayError(UNAVAILABLE, f"handshake failed: {exc}"), req_id, CLOSE_INTERNAL,
                       "internal error")
            return
        if self._closed:
            return
        self._write(encode_ok(req_id, hello))
        self._register(params, role, scopes)

    def _connect_frame(self, data: str) -> RequestFrame:
        try:
            frame = frame_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            frame = None
        if not isinstance(frame, RequestFrame) or frame.method != "connect":
            raise _Refused(invalid("invalid handshake: first request must be connect"), CLOSE_POLICY,
                           req_id=_readable_id(data), with_id=False)
        return frame

    def _connect_params(self, frame: RequestFrame) -> ConnectParams:
        if not bytes(frame.params).lstrip().startswith(b"{"):
            raise _Refused(invalid("invalid connect params: params must be an object"), CLOSE_POLICY)
        try:
            params = msgspec.json.decode(frame.params, type=ConnectParams)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            problem = describe_validation_error(exc) if isinstance(exc, msgspec.ValidationError) else str(exc)
            raise _Refused(invalid(f"invalid connect params: {problem}"), CLOSE_POLICY) from None
        problem = connect_params_problem(params)
        if problem is not None:
            raise _Refused(invalid(f"invalid connect params: {problem}"), CLOSE_POLICY)
        return params

    def _check_phase(self) -> None:
        if self.state.phase == READY:
            return
        reason = "draining" if self.state.phase == DRAINING else "startup-sidecars"
        text = "gateway is shutting down" if reason == "draining" else "gateway starting"
        err = GatewayError(UNAVAILABLE, text, retryable=True, retry_after_ms=2000,
                           details={"reason": reason})
        raise _Refused(err, CLOSE_TRY_LATER, reason=text)

    def _negotiate(self, params: ConnectParams) -> int:
        if params.min_protocol <= PROTOCOL_VERSION <= params.max_protocol:
            return PROTOCOL_VERSION
        legacy_ok = params.client.mode == "probe" or (params.role == "node" and params.client.mode == "node")
        if params.max_protocol == MIN_NODE_PROTOCOL and legacy_ok:
            return MIN_NODE_PROTOCOL
        err = invalid("protocol mismatch", details={"expectedProtocol": PROTOCOL_VERSION,
                                                     "minProtocol": params.min_protocol,
                                                     "maxProtocol": params.max_protocol})
        raise _Refused(err, CLOSE_PROTOCOL)

    def _authenticate(self, params: ConnectParams) -> str:
        auth = self.state.auth
        origin = self.request.headers.get("Origin")
        key = self._limiter_key(auth.mode, origin)
        limiter = self.state.limiter
        if key is not None:
            wait = limiter.retry_after_ms(key)
            if wait is not None:
                raise _Refused(lockout_error(wait), CLOSE_POLICY)
        given = None
        if params.auth is not None:
            given = params.auth.token if auth.mode == "token" else params.auth.password
        wrong, err = check_secret(auth, given)
        if err is not None:
            if wrong and key is not None:
                limiter.failure(key)
            raise _Refused(err, CLOSE_POLICY)
        if key is not None:
            limiter.success(key)
        self._check_origin(origin)
        return auth.mode

    def _limiter_key(self, mode: str, origin: str | None) -> str | None:
        if mode == "none":
            return None
        if origin and self.loopback:
            return f"browser-origin:{origin}"
        exempt = self.state.snapshot.config.gateway.auth.rate_limit.exempt_loopback
        if self.loopback and exempt:
            return None
        return f"{self.remote_ip}|{mode}"

    def _check_origin(self, origin: str | None) -> None:
        if not origin:
            return
        allowed = self.state.snapshot.config.gateway.control_ui.allowed_origins
        if not origin_allowed(origin, self.request.headers.get("Host"), allowed):
            err = invalid("origin not allowed", details={"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED",
                                                         "origin": origin})
            raise _Refused(err, CLOSE_POLICY)

    def _resolve_role(self, params: ConnectParams) -> tuple[str, list[str]]:
        device = params.device
        if device is not None and device.nonce != self.nonce:
            err = invalid("device nonce mismatch", details={"code": "DEVICE_AUTH_NONCE_MISMATCH",
                                                            "reason": "device-nonce-mismatch"})
            raise _Refused(err, CLOSE_POLICY)
        if params.role not in ("operator", "node"):
            raise _Refused(invalid(f"invalid role: {params.role}"), CLOSE_POLICY)
        if params.role == "node":
            return "node", []
        if params.scopes is msgspec.UNSET:
            return "operator", list(DEFAULT_OPERATOR_SCOPES)
        known = [s for s in params.scopes if s in OPERATOR_SCOPES]
        return "operator", list(dict.fromkeys(known))

    async def _hello(self, params: ConnectParams, protocol: int, method: str, role: str,
                     scopes: list[str]) -> dict:
        hub, health = await asyncio.gather(bridge.ask("events", "snapshot"), health_summary(self.state))
        state = self.state
        max_bytes = _attachment_max_bytes(state)
        return {
            "type": "hello-ok", "protocol": protocol,
            "server": {"version": SERVER_VERSION, "buildId": BUILD_ID, "bootId": state.boot_id,
                       "connId": self.conn_id},
            "features": {"methods": method_names(), "events": list(EVENTS)},
            "snapshot": {"presence": hub["presence"], "health": health,
                         "stateVersion": hub["stateVersion"], "uptimeMs": state.uptime_ms(),
                         "configPath": state.config_path, "stateDir": state.state_dir,
                         "sessionDefaults": {"defaultAgentId": "main", "mainKey": "main",
                                             "mainSessionKey": "agent:main:main"},
                         "authMode": state.auth.mode,
                         "appliedConfigHash": state.snapshot.revision_hash},
            "auth": {"method": method, "role": role, "scopes": scopes},
            "policy": {"maxPayload": MAX_PAYLOAD, "maxBufferedBytes": MAX_BUFFERED_BYTES,
                       "tickIntervalMs": tick_interval_ms(),
                       "attachments": {"maxBytes": max_bytes,
                                       "maxImageBytes": min(max_bytes, 6291456)}},
        }

    def _register(self, params: ConnectParams, role: str, scopes: list[str]) -> None:
        client = params.client
        device_id = params.device.id if params.device is not None else None
        self.caller = Caller(self.conn_id, role, frozenset(scopes), self.remote_ip, self.loopback,
                             client.id, client.mode, device_id, frozenset(params.caps))
        self.ws_connection.params.max_message_size = MAX_PAYLOAD
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self.state.connections[self.conn_id] = self
        tracked = client.mode not in UNTRACKED_MODES
        key = (device_id or (client.instance_id or None) or self.conn_id).lower() if tracked else None
        sub = Subscriber(self.conn_id, role, frozenset(scopes), frozenset(params.caps), key)
        bridge.tell("events", "subscribe", sub, self._presence(params, role, scopes) if tracked else None)
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
            frame = frame_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._bad_frame(data, exc)
            return
        if not isinstance(frame, RequestFrame):
            return  # client-sent res and event frames are ignored (§3.2)
        if frame.method == "connect":
            err = invalid("connect is only valid as the first request")
            self._write(encode_error(frame.id, err.shape))
            return
        asyncio.get_running_loop().create_task(self._run(frame))

    def _bad_frame(self, data: str, exc: Exception) -> None:
        reason = describe_validation_error(exc) if isinstance(exc, msgspec.ValidationError) else "not JSON"
        log.info("invalid request frame from %s: %s", self.conn_id, reason, extra={"connId": self.conn_id})
        req_id = _readable_id(data)
        if req_id is not None:
            self._write(encode_error(req_id, invalid(f"invalid request frame: {reason}").shape))

    async def _run(self, frame: RequestFrame) -> None:
        started = time.perf_counter()
        if self.state.verbose:
            log.debug("→ req %s %s", frame.id, frame.method, extra={"connId": self.conn_id})
        try:
            payload = await dispatch(self.state, self.caller, frame.method, frame.params)
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


class _Refused(Exception):
    def __init__(self, error: GatewayError, code: int, *, req_id: str | None = None,
                 with_id: bool = True, reason: str | None = None):
        super().__init__(error.message)
        self.error, self.code, self.req_id, self.with_id, self.reason = error, code, req_id, with_id, reason


def _readable_id(data: str) -> str | None:
    try:
        obj = any_decoder.decode(data)
    except msgspec.DecodeError:
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value else None


def _attachment_max_bytes(state: GatewayState) -> int:
    media = state.snapshot.config.agents.get("defaults", {}).get("mediaMaxMb", 20)
    return int(media) * 1048576 if isinstance(media, int) else 20971520
