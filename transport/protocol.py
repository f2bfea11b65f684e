"""Wire protocol v4 (protocol.md §1-§5): constants, frames, errors and connect params as
msgspec Structs. Frames are decoded in two passes: the envelope first (with `params` kept
raw), then `params` once the method is known.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

PROTOCOL_VERSION = 4
MIN_OPERATOR_PROTOCOL = 4
MIN_NODE_PROTOCOL = 3
SERVER_VERSION = "2026.9.6"
PROJECT_VERSION = "0.1.0"
BUILD_ID = f"openclaw-py {PROJECT_VERSION}"

MAX_HANDSHAKE_FRAME = 65536
MAX_PAYLOAD = 26214400
MAX_BUFFERED_BYTES = 52428800
TICK_INTERVAL_MS = 30000
HANDSHAKE_TIMEOUT_MS = 15000
MAX_ID_LENGTH = 256
MAX_TRACEPARENT = 128
MAX_PENDING_REQUESTS = 1000  # requests in flight on one socket

OPERATOR_SCOPES = (
    "operator.read", "operator.write", "operator.admin", "operator.approvals",
    "operator.pairing", "operator.talk", "operator.talk.secrets", "operator.questions",
)
DEFAULT_OPERATOR_SCOPES = (
    "operator.admin", "operator.read", "operator.write", "operator.approvals", "operator.pairing",
)

# Close codes (§2.4).
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_RESTART = 1012
CLOSE_TRY_LATER = 1013

# Error codes (§4.2).
INVALID_REQUEST = "INVALID_REQUEST"
FORBIDDEN = "FORBIDDEN"
UNAVAILABLE = "UNAVAILABLE"
NOT_LINKED = "NOT_LINKED"
AGENT_TIMEOUT = "AGENT_TIMEOUT"
APPROVAL_NOT_FOUND = "APPROVAL_NOT_FOUND"
HTTP_STATUS = {INVALID_REQUEST: 400, FORBIDDEN: 403, UNAVAILABLE: 503, NOT_LINKED: 409,
               "NOT_PAIRED": 409, AGENT_TIMEOUT: 504, APPROVAL_NOT_FOUND: 404}

NonEmpty = Annotated[str, Meta(min_length=1)]


class ErrorShape(msgspec.Struct, omit_defaults=True, rename="camel"):
    code: str
    message: str
    details: Any = UNSET
    retryable: bool | UnsetType = UNSET
    retry_after_ms: int | UnsetType = UNSET


class GatewayError(Exception):
    """An error answered to the client as an error object (§4.1)."""

    def __init__(self, code: str, message: str, *, details: Any = UNSET,
                 retryable: bool | UnsetType = UNSET, retry_after_ms: int | UnsetType = UNSET):
        super().__init__(message)
        self.shape = ErrorShape(code, message or code, details, retryable, retry_after_ms)

    @property
    def code(self) -> str:
        return self.shape.code

    @property
    def message(self) -> str:
        return self.shape.message


def invalid(message: str, **kw: Any) -> GatewayError:
    return GatewayError(INVALID_REQUEST, message, **kw)


class RequestFrame(msgspec.Struct, tag="req", tag_field="type"):
    id: Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
    method: NonEmpty
    params: msgspec.Raw = msgspec.Raw(b"{}")
    traceparent: Annotated[str, Meta(max_length=MAX_TRACEPARENT)] | UnsetType = UNSET


class ClientResFrame(msgspec.Struct, tag="res", tag_field="type"):
    """A response sent by a client: ignored."""


class ClientEventFrame(msgspec.Struct, tag="event", tag_field="type"):
    """An event sent by a client: ignored."""


InboundFrame = RequestFrame | ClientResFrame | ClientEventFrame
frame_decoder = msgspec.json.Decoder(InboundFrame)
any_decoder = msgspec.json.Decoder()
encoder = msgspec.json.Encoder()

TOO_DEEP = "JSON nested too deeply"


class TooDeep(msgspec.DecodeError):
    """JSON nested past the decoder's recursion limit (about 900 levels): bad input like any
    other undecodable JSON, so every `except msgspec.DecodeError` already handles it."""


def decode_json(data: bytes | str, type: Any = None, *,
                decoder: msgspec.json.Decoder | None = None) -> Any:
    """Decode client JSON (with `decoder`, or as `type`, or untyped). msgspec recurses once per
    nesting level and raises RecursionError past Python's limit, which no `except DecodeError`
    catches: every decode of client input goes through here instead."""
    try:
        if decoder is not None:
            return decoder.decode(data)
        return msgspec.json.decode(data) if type is None else msgspec.json.decode(data, type=type)
    except RecursionError:
        raise TooDeep(TOO_DEEP) from None


_OBJECT_START = re.compile(r"\s*\{")
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:,]|[^\s\[\]{}:,"]+')


def top_level_id(data: str, limit: int = MAX_HANDSHAKE_FRAME) -> str | None:
    """The string `id` of a top-level object too deep to decode, read by a flat scan of its
    first `limit` characters, up to the last `"id"` key in them (an escaped key is missed)."""
    end = data.rfind('"id"', 0, limit)
    if end < 0 or _OBJECT_START.match(data) is None:
        return None
    depth, state, key = 0, "key", None
    for match in _JSON_TOKEN.finditer(data, 0, end + 64 + MAX_ID_LENGTH * 6):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            state = "after" if depth == 2 else state
        elif token in ("]", "}"):
            depth -= 1
            if depth <= 0:
                return None
        elif depth != 1:
            continue
        elif token == ":":
            state = "value"
        elif token == ",":
            state, key = "key", None
        elif state == "key" and token[0] == '"':
            key, state = token, "colon"
        elif state == "value":
            if key == '"id"' and token[0] == '"':
                return _string(token)
            state = "after"
    return None


def _string(token: str) -> str | None:
    try:
        value = msgspec.json.decode(token)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, str) else None


class ResponseFrame(msgspec.Struct, tag="res", tag_field="type", omit_defaults=True):
    id: str
    ok: bool
    payload: Any = UNSET
    error: ErrorShape | UnsetType = UNSET


def encode_ok(req_id: str, payload: Any) -> bytes:
    return encoder.encode(ResponseFrame(req_id, True, payload=payload))


def encode_error(req_id: str, error: ErrorShape) -> bytes:
    return encoder.encode(ResponseFrame(req_id, False, error=error))


def encode_event(event: str, payload_json: bytes, seq: int | None = None,
                 state_version: bytes | None = None) -> bytes:
    """An event frame around an already encoded payload, so one payload serves many sockets."""
    parts = [b'{"type":"event","event":', encoder.encode(event), b',"payload":', payload_json]
    if seq is not None:
        parts.append(b',"seq":%d' % seq)
    if state_version is not None:
        parts += [b',"stateVersion":', state_version]
    parts.append(b"}")
    return b"".join(parts)


class ClientInfo(msgspec.Struct, rename="camel"):
    # Non-empty after trimming; checked by `connect_params_problem`, so the message names the field.
    id: str
    version: str
    platform: str
    mode: str
    display_name: str | UnsetType = UNSET
    device_family: str | UnsetType = UNSET
    model_identifier: str | UnsetType = UNSET
    instance_id: str | UnsetType = UNSET


class ConnectAuth(msgspec.Struct, rename="camel"):
    token: str | None = None
    password: str | None = None
    device_token: str | None = None
    bootstrap_token: str | None = None


class DeviceInfo(msgspec.Struct, rename="camel"):
    id: str
    nonce: str | None = None
    public_key: str | None = None
    signature: str | None = None
    signed_at: int | str | None = None


class ConnectParams(msgspec.Struct, rename="camel"):
    min_protocol: Annotated[int, Meta(ge=1)]
    max_protocol: Annotated[int, Meta(ge=1)]
    client: ClientInfo
    role: str = "operator"
    scopes: list[str] | UnsetType = UNSET
    caps: list[str] = []
    auth: ConnectAuth | None = None
    device: DeviceInfo | None = None
    commands: Any = None
    permissions: Any = None
    path_env: Any = None
    locale: Any = None
    user_agent: Any = None
    transports: Any = None


Role = Literal["operator", "node"]


def connect_params_problem(params: ConnectParams) -> str | None:
    """The checks msgspec's types cannot express (§5.3), as `<field>: <problem>`."""
    for name in ("id", "version", "platform", "mode"):
        if not getattr(params.client, name).strip():
            return f"client.{name}: must not be empty"
    if params.min_protocol > params.max_protocol:
        return "minProtocol: must not exceed maxProtocol"
    return None


def describe_validation_error(exc: msgspec.ValidationError) -> str:
    """`<path>: <problem>` from msgspec's `Expected ... - at `$.x``: `minProtocol: expected int,
    got str`, `client.id: required` (a missing field is named by its own path)."""
    text = str(exc)
    head, sep, where = text.partition(" - at `$")
    path = where.rstrip("`").lstrip(".") if sep else ""
    missing = re.match(r"^Object missing required field `(.+)`$", head)
    if missing:
        field = missing.group(1)
        return f"{path}.{field}: required" if path else f"{field}: required"
    head = head.replace("`", "")
    head = head[:1].lower() + head[1:]
    return f"{path}: {head}" if path else head
