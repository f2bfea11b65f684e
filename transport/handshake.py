"""The connect handshake (protocol §5.4-§5.10): each step either passes or raises `Refused`
with the error object and close code the spec gives, in the spec's order."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import msgspec

from actors.events import EVENT_HUB, EventHub
from transport import bridge
from transport.auth import check_secret, lockout_error, origin_allowed
from transport.dispatch import method_names
from transport.methods.chat import attachment_max_bytes
from transport.methods.system import health_summary
from transport.protocol import (
    BUILD_ID,
    CLOSE_POLICY,
    CLOSE_PROTOCOL,
    CLOSE_TRY_LATER,
    DEFAULT_OPERATOR_SCOPES,
    MAX_BUFFERED_BYTES,
    MAX_PAYLOAD,
    MIN_NODE_PROTOCOL,
    OPERATOR_SCOPES,
    PROTOCOL_VERSION,
    SERVER_VERSION,
    UNAVAILABLE,
    ConnectParams,
    GatewayError,
    RequestFrame,
    TooDeep,
    any_decoder,
    connect_params_problem,
    decode_json,
    describe_validation_error,
    frame_decoder,
    invalid,
    top_level_id,
)
from transport.state import DRAINING, READY, GatewayState

EVENTS = ["connect.challenge", "tick", "presence", "health", "shutdown", "chat", "agent",
          "sessions.changed", "exec.approval.requested", "exec.approval.resolved"]


def tick_interval_ms() -> int:
    # A test knob: the protocol's interval is 30 s, which no test wants to wait for.
    value = os.environ.get("OPENCLAW_TICK_INTERVAL_MS", "")
    return int(value) if value.isdigit() and int(value) > 0 else 30000


class Refused(Exception):
    """The connect is refused: answer `error` for the connect id (when readable), close `code`."""

    def __init__(self, error: GatewayError, code: int, *, reason: str | None = None):
        super().__init__(error.message)
        self.error, self.code, self.reason = error, code, reason


class Accepted(msgspec.Struct, frozen=True):
    req_id: str
    params: ConnectParams
    role: str
    scopes: list[str]
    hello: dict


class Handshake:
    """One connection's `connect`, checked against the gateway's state."""

    def __init__(self, state: GatewayState, conn_id: str, nonce: str, remote_ip: str | None,
                 loopback: bool, headers: Any) -> None:
        self.state, self.conn_id, self.nonce = state, conn_id, nonce
        self.remote_ip, self.loopback, self.headers = remote_ip, loopback, headers
        self.req_id: str | None = None  # the connect id, once readable: refusals answer it

    async def run(self, data: str) -> Accepted:
        frame = self.connect_frame(data)
        params = self.connect_params(frame)
        self.check_phase()
        protocol = self.negotiate(params)
        method = self.authenticate(params)
        role, scopes = self.resolve_role(params)
        hello = await self.hello(params, protocol, method, role, scopes)
        return Accepted(frame.id, params, role, scopes, hello)

    def connect_frame(self, data: str) -> RequestFrame:
        try:
            frame = decode_json(data, decoder=frame_decoder)
        except msgspec.DecodeError:  # ValidationError and TooDeep included
            frame = None
        if not isinstance(frame, RequestFrame) or frame.method != "connect":
            self.req_id = readable_id(data)
            raise Refused(invalid("invalid handshake: first request must be connect"), CLOSE_POLICY)
        self.req_id = frame.id
        return frame

    def connect_params(self, frame: RequestFrame) -> ConnectParams:
        if not bytes(frame.params).lstrip().startswith(b"{"):
            raise Refused(invalid("invalid connect params: params must be an object"), CLOSE_POLICY)
        try:
            params = decode_json(frame.params, ConnectParams)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            detail = describe_validation_error(exc) if isinstance(exc, msgspec.ValidationError) else str(exc)
            raise Refused(invalid(f"invalid connect params: {detail}"), CLOSE_POLICY) from None
        problem = connect_params_problem(params)
        if problem is not None:
            raise Refused(invalid(f"invalid connect params: {problem}"), CLOSE_POLICY)
        return params

    def check_phase(self) -> None:
        if self.state.phase == READY:
            return
        reason = "draining" if self.state.phase == DRAINING else "startup-sidecars"
        text = "gateway is shutting down" if reason == "draining" else "gateway starting"
        err = GatewayError(UNAVAILABLE, text, retryable=True, retry_after_ms=2000,
                           details={"reason": reason})
        raise Refused(err, CLOSE_TRY_LATER, reason=text)

    def negotiate(self, params: ConnectParams) -> int:
        if params.min_protocol <= PROTOCOL_VERSION <= params.max_protocol:
            return PROTOCOL_VERSION
        legacy_ok = params.client.mode == "probe" or (params.role == "node" and params.client.mode == "node")
        if params.max_protocol == MIN_NODE_PROTOCOL and legacy_ok:
            return MIN_NODE_PROTOCOL
        err = invalid("protocol mismatch", details={"expectedProtocol": PROTOCOL_VERSION,
                                                     "minProtocol": params.min_protocol,
                                                     "maxProtocol": params.max_protocol})
        raise Refused(err, CLOSE_PROTOCOL)

    def authenticate(self, params: ConnectParams) -> str:
        auth = self.state.auth
        origin = self.headers.get("Origin")
        key = self._limiter_key(auth.mode, origin)
        limiter = self.state.limiter
        if key is not None:
            wait = limiter.retry_after_ms(key)
            if wait is not None:
                raise Refused(lockout_error(wait), CLOSE_POLICY)
        given = None
        if params.auth is not None:
            given = params.auth.token if auth.mode == "token" else params.auth.password
        wrong, err = check_secret(auth, given)
        if err is not None:
            if wrong and key is not None:
                limiter.failure(key)
            raise Refused(err, CLOSE_POLICY)
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
        if not origin_allowed(origin, self.headers.get("Host"), allowed):
            err = invalid("origin not allowed", details={"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED",
                                                         "origin": origin})
            raise Refused(err, CLOSE_POLICY)

    def resolve_role(self, params: ConnectParams) -> tuple[str, list[str]]:
        device = params.device
        if device is not None and device.nonce != self.nonce:
            err = invalid("device nonce mismatch", details={"code": "DEVICE_AUTH_NONCE_MISMATCH",
                                                            "reason": "device-nonce-mismatch"})
            raise Refused(err, CLOSE_POLICY)
        if params.role not in ("operator", "node"):
            raise Refused(invalid(f"invalid role: {params.role}"), CLOSE_POLICY)
        if params.role == "node":
            return "node", []
        if params.scopes is msgspec.UNSET:
            return "operator", list(DEFAULT_OPERATOR_SCOPES)
        known = [s for s in params.scopes if s in OPERATOR_SCOPES]
        return "operator", list(dict.fromkeys(known))

    async def hello(self, params: ConnectParams, protocol: int, method: str, role: str,
                     scopes: list[str]) -> dict:
        hub, health = await asyncio.gather(bridge.ask(EVENT_HUB, EventHub.snapshot), health_summary(self.state))
        state = self.state
        max_bytes = attachment_max_bytes(state)
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


def readable_id(data: str) -> str | None:
    try:
        obj = decode_json(data, decoder=any_decoder)
    except TooDeep:
        return top_level_id(data)
    except msgspec.DecodeError:
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None  # "" too: a string id is answered (§3.2)
