"""The OpenAI chat-completions request as the gateway reads it (protocol §21.4): the body's
structs, the error envelope, model and agent names, the session key a request maps to, and
the `Turn` it becomes. No I/O and no actor calls: transport/http_openai.py runs the turn.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec

from actors.sessions.keys import DEFAULT_AGENT_ID, SessionKeyError, normalize_key, rest_of
from transport.dispatch import Caller, Context
from transport.methods.chat import Attachment, content_parts
from transport.protocol import GatewayError, TooDeep, decode_json, describe_validation_error, encoder
from transport.state import GatewayState

MAX_BODY = 20 * 1024 * 1024
BODY_READ_LIMIT = 2 * MAX_BODY  # read and dropped past MAX_BODY, so the 413 reaches the client
MAX_IMAGES = 8
RESERVED_KEY_PREFIXES = ("subagent:", "cron:", "acp:")
AGENT_MODEL_PREFIXES = ("openclaw/", "openclaw:", "agent:")
DEFAULT_MODELS = ("openclaw", "openclaw/default")
SYSTEM_ROLES = ("system", "developer")

INVALID, AUTH, NOT_FOUND, API = ("invalid_request_error", "authentication_error",
                                 "not_found_error", "api_error")


class HttpError(Exception):
    """An answer in the OpenAI error envelope: `{"error":{"message","type"}}`."""

    def __init__(self, status: int, kind: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.headers = headers or {}


def error_body(message: str, kind: str) -> bytes:
    return encoder.encode({"error": {"message": message, "type": kind}})


def bad_request(message: str) -> HttpError:
    return HttpError(400, INVALID, message)


# --- the request body -----------------------------------------------------------------------

class ImageUrl(msgspec.Struct):
    url: str
    detail: str | None = None


class Part(msgspec.Struct):
    type: str
    text: str | None = None
    image_url: ImageUrl | str | None = None


class ChatMessage(msgspec.Struct):
    role: str
    content: str | list[Part] | None = None


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class CompletionRequest(msgspec.Struct):
    messages: list[ChatMessage]
    model: str = "openclaw"
    stream: bool = False
    user: str | None = None
    stream_options: StreamOptions | None = None


@dataclass
class Turn:
    """One completion request resolved to a run: where it goes and what it says."""
    model: str
    agent_id: str
    key: str
    text: str
    parts: list[dict]
    context: list[dict] = field(default_factory=list)  # earlier messages, for a new session
    system: str | None = None
    stream: bool = False
    include_usage: bool = False


def decode_request(raw: bytes) -> CompletionRequest:
    try:
        return decode_json(raw, CompletionRequest)
    except msgspec.ValidationError as exc:
        raise bad_request(f"invalid request body: {describe_validation_error(exc)}") from None
    except msgspec.DecodeError as exc:
        problem = exc if isinstance(exc, TooDeep) else "not JSON"
        raise bad_request(f"invalid request body: {problem}") from None


def message_text(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "\n".join(p.text for p in message.content or () if p.type == "text" and p.text)


def image_urls(message: ChatMessage) -> list[str]:
    if not isinstance(message.content, list):
        return []
    return [p.image_url if isinstance(p.image_url, str) else p.image_url.url
            for p in message.content if p.type == "image_url" and p.image_url is not None]


def attachment_of(url: str, index: int) -> Attachment:
    """A `data:<mime>;base64,<bytes>` image URL as a chat attachment; remote URLs are not
    fetched."""
    head, sep, data = url.partition(",")
    if not (head.startswith("data:") and head.endswith(";base64") and sep):
        raise bad_request("image_url: only data: URLs with base64 content are accepted")
    mime = head[5:-7] or "application/octet-stream"
    return Attachment(mimeType=mime, content=data, fileName=f"image-{index}")


# --- models and agents ----------------------------------------------------------------------

def agent_ids(state: GatewayState) -> list[str]:
    """The configured agents; the gateway has only the default agent so far."""
    return [DEFAULT_AGENT_ID]


def model_ids(state: GatewayState) -> list[str]:
    return [*DEFAULT_MODELS, *(f"openclaw/{a}" for a in agent_ids(state))]


def model_entry(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "openclaw"}


def agent_of_model(state: GatewayState, model: str) -> str:
    name = model.strip().lower()
    if name in DEFAULT_MODELS:
        return DEFAULT_AGENT_ID
    for prefix in AGENT_MODEL_PREFIXES:
        if name.startswith(prefix) and name[len(prefix):] in agent_ids(state):
            return name[len(prefix):]
    raise HttpError(404, NOT_FOUND, f"model not found: {model}")


def agent_from_header(state: GatewayState, header: str, default: str) -> str:
    agent_id = header.strip().lower()
    if not agent_id:
        return default
    if agent_id not in agent_ids(state):
        raise bad_request(f"unknown agent: {header.strip()}")
    return agent_id


def session_key(header: str, user: str | None, agent_id: str) -> str:
    """x-openclaw-session-key, else one session per `user`, else a new session per call."""
    raw = header.strip().lower()
    if raw:
        try:
            key = normalize_key(raw, agent_id)
        except SessionKeyError as exc:
            raise bad_request(f"invalid x-openclaw-session-key: {exc}") from None
        if raw.startswith(RESERVED_KEY_PREFIXES) or rest_of(key).startswith(RESERVED_KEY_PREFIXES):
            raise bad_request(f"x-openclaw-session-key: reserved session key: {header.strip()}")
        return key
    if user and user.strip():
        try:
            return normalize_key(f"agent:{agent_id}:openai-user:{user.strip()}")
        except SessionKeyError as exc:
            raise bad_request(f"invalid user: {exc}") from None
    return f"agent:{agent_id}:openai:{uuid.uuid4()}"


# --- request → turn -------------------------------------------------------------------------

def split_messages(messages: list[ChatMessage]) -> tuple[ChatMessage, list[dict], str | None]:
    """The last user message (the turn), the earlier user/assistant messages (context) and the
    system/developer messages joined (the run's extra system prompt)."""
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last is None:
        raise bad_request("messages: no user message")
    system = "\n\n".join(t for m in messages if m.role in SYSTEM_ROLES and (t := message_text(m)))
    context = [{"role": m.role, "content": [{"type": "text", "text": t}]}
               for m in messages[:last]
               if m.role in ("user", "assistant") and (t := message_text(m))]
    return messages[last], context, system or None


def build_turn(state: GatewayState, caller: Caller, headers: Any, body: CompletionRequest) -> Turn:
    agent_id = agent_of_model(state, body.model)
    agent_id = agent_from_header(state, headers.get("x-openclaw-agent-id", ""), agent_id)
    key = session_key(headers.get("x-openclaw-session-key", ""), body.user, agent_id)
    if sum(len(image_urls(m)) for m in body.messages) > MAX_IMAGES:
        raise bad_request(f"too many image_url parts (at most {MAX_IMAGES})")
    message, context, system = split_messages(body.messages)
    text = message_text(message)
    images = [attachment_of(url, i + 1) for i, url in enumerate(image_urls(message))]
    if not text.strip() and not images:
        raise bad_request("messages: the last user message is empty")
    try:
        parts = content_parts(Context(state, caller), text, images)
    except GatewayError as exc:
        raise bad_request(exc.message) from None
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return Turn(body.model, agent_id, key, text, parts, context, system, body.stream, include_usage)
