"""OpenAI-compatible endpoints (protocol §21.4): `GET /v1/models`, `GET /v1/models/{id}` and
`POST /v1/chat/completions`, streaming or not.

Served only while `gateway.http.endpoints.chatCompletions.enabled` is true in the applied
config (read per request, so a reload turns them on and off); otherwise every `/v1/*` path is
the plain `404`. A completion is an ordinary agent run (`transport.methods.chat.start_run`), so
WebSocket clients see its `chat` and `agent` events. A streaming reply follows the run through
a loop-side pseudo-connection subscribed to the EventHub, which relays the run's `chat` events
as `chat.completion.chunk` lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec
import tornado.web
from tornado.iostream import StreamClosedError

from actors.agents.providers import NoProviderError, resolve_candidates
from actors.agents.run import RunOutcome
from actors.events import Subscriber
from actors.sessions.keys import DEFAULT_AGENT_ID, SessionKeyError, normalize_key, rest_of
from actors.sessions.store import SessionError
from transport import bridge
from transport.bridge import ActorUnavailable
from transport.dispatch import Caller, Context
from transport.http import _check_bearer, _Rejection, answer_early, body_unwanted
from transport.methods.chat import Attachment, content_parts, start_run
from transport.protocol import (
    INVALID_REQUEST,
    GatewayError,
    TooDeep,
    decode_json,
    describe_validation_error,
    encoder,
)
from transport.state import DRAINING, GatewayState

log = logging.getLogger("openclaw.http")

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


# --- running the turn -----------------------------------------------------------------------

def http_error_of(err: GatewayError) -> HttpError:
    if err.code == INVALID_REQUEST:
        return bad_request(err.message)
    return HttpError(503, API, err.message)


async def add_context(state: GatewayState, turn: Turn) -> None:
    """Earlier messages become the history of a new session (none for an existing one)."""
    if not turn.context or await bridge.ask("sessions", "row", turn.key) is not None:
        return
    try:
        resolve_candidates(state.snapshot.config, None)  # no provider: record nothing
    except NoProviderError as exc:
        raise HttpError(503, API, str(exc)) from None
    for message in turn.context:
        await bridge.ask("sessions", "append", turn.key, message)


async def start_turn(state: GatewayState, caller: Caller, turn: Turn, run_id: str) -> None:
    if state.phase == DRAINING:
        raise HttpError(503, API, "gateway is restarting")
    timeout_ms = state.snapshot.config.agents.defaults.timeout_seconds * 1000
    try:
        await add_context(state, turn)
        await start_run(Context(state, caller), kind="chat", key=turn.key, run_id=run_id,
                        dedupe_key=f"http:{run_id}", parts=turn.parts, text=turn.text,
                        timeout_ms=timeout_ms, extra_system_prompt=turn.system)
    except GatewayError as err:
        raise http_error_of(err) from None
    except SessionError as err:
        raise bad_request(str(err)) from None
    except ActorUnavailable as err:
        raise HttpError(503, API, str(err)) from None


def usage_of(usage: dict | None) -> dict:
    usage = usage or {}
    prompt, completion = int(usage.get("input") or 0), int(usage.get("output") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": int(usage.get("total") or prompt + completion)}


def completion(run_id: str, created: int, model: str, outcome: RunOutcome) -> dict:
    return {"id": f"chatcmpl-{run_id}", "object": "chat.completion", "created": created,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": outcome.text},
                         "finish_reason": "stop"}],
            "usage": usage_of(outcome.usage)}


def outcome_error(outcome: RunOutcome | None) -> HttpError | None:
    if outcome is None:
        return HttpError(500, API, "run outcome unknown")
    if outcome.status == "timeout":
        return HttpError(504, API, f"agent run timed out after {outcome.timeout_s}s")
    if outcome.status == "error":
        return HttpError(500, API, outcome.error or "agent run failed")
    return None  # ok, or aborted: the text so far


class RunSink:
    """A loop-side pseudo-connection in `state.connections`: the EventHub's fan-out hands it
    every `chat` event; it keeps those of one run. `None` in the queue: stop relaying."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.conn_id = f"http-openai:{run_id}"
        self._marker = b'"runId":"%s"' % run_id.encode()
        self.queue: asyncio.Queue[dict | None] = asyncio.Queue()

    def send_event(self, event: str, payload_json: bytes, state_version: bytes | None,
                   droppable: bool) -> None:
        if event != "chat" or self._marker not in payload_json:
            return
        payload = msgspec.json.decode(payload_json)
        if payload.get("runId") == self.run_id:
            self.queue.put_nowait(payload)

    def shutdown(self, payload_json: bytes) -> None:  # the gateway is stopping
        self.queue.put_nowait(None)

    def attach(self, state: GatewayState) -> None:
        state.connections[self.conn_id] = self
        bridge.tell("events", "subscribe", Subscriber(self.conn_id, "operator",
                                                      frozenset({"operator.read"}), frozenset()))

    def detach(self, state: GatewayState) -> None:
        bridge.tell("events", "unsubscribe", self.conn_id)
        state.connections.pop(self.conn_id, None)


class ChunkWriter:
    """`chat` events of one run → `chat.completion.chunk` lines (text only ever appended)."""

    def __init__(self, run_id: str, created: int, model: str) -> None:
        self.head = {"id": f"chatcmpl-{run_id}", "object": "chat.completion.chunk",
                     "created": created, "model": model}
        self.sent = ""
        self.started = False

    def chunk(self, delta: dict, finish: str | None = None) -> bytes:
        if not self.started:
            delta, self.started = {"role": "assistant", **delta}, True
        body = {**self.head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + encoder.encode(body) + b"\n\n"

    def text(self, full: str) -> bytes:
        """The new text of `full` (the run's cumulative text) as a chunk, or nothing."""
        if not full.startswith(self.sent) or len(full) == len(self.sent):
            return b""  # rewritten text cannot be taken back from a stream
        piece, self.sent = full[len(self.sent):], full
        return self.chunk({"content": piece})

    def event(self, payload: dict) -> bytes:
        if payload["state"] == "delta":
            full = payload["deltaText"] if payload.get("replace") else self.sent + payload["deltaText"]
            return self.text(full)
        message = payload.get("message") or {}
        full = "".join(p.get("text", "") for p in message.get("content", ()))
        out = self.text(full) if full else b""
        if not self.started:
            out += self.chunk({"content": ""})
        return out + self.chunk({}, "stop")

    def usage(self, usage: dict | None) -> bytes:
        return b"data: " + encoder.encode({**self.head, "choices": [], "usage": usage_of(usage)}) + b"\n\n"

    def error(self, payload: dict) -> bytes:
        message = payload.get("errorMessage") or "agent run failed"
        return b"data: " + error_body(message, API) + b"\n\n"


# --- handlers -------------------------------------------------------------------------------

def _auth_message(refused: _Rejection) -> str:
    return "Unauthorized" if refused.status == 401 else \
        "unauthorized: too many failed authentication attempts (retry later)"


class _OpenAIBase(tornado.web.RequestHandler):
    def initialize(self, state: GatewayState) -> None:
        self.state = state

    def compute_etag(self) -> None:
        return None

    def enabled(self) -> bool:
        return self.state.snapshot.config.gateway.http.endpoints.chat_completions.enabled

    def not_found(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "text/plain")
        self.finish("Not Found")

    _auth: Caller | _Rejection | None = None  # checked once per request

    def caller(self) -> Caller:
        if self._auth is None:
            self._auth = _check_bearer(self)
        result = self._auth
        if isinstance(result, _Rejection):
            raise HttpError(result.status, AUTH, _auth_message(result), result.headers)
        return result

    def send_json(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(body if isinstance(body, bytes) else encoder.encode(body))

    def answer_error(self, err: HttpError) -> None:
        for name, value in err.headers.items():
            self.set_header(name, value)
        self.send_json(err.status, error_body(err.message, err.kind))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        kind = API if status_code >= 500 else INVALID
        self.set_header("Content-Type", "application/json")
        self.finish(error_body(self._reason, kind))


class ModelsHandler(_OpenAIBase):
    """GET /v1/models and GET /v1/models/{id}."""

    def prepare(self) -> None:
        if not self.enabled():
            self.not_found()

    def get(self, model_id: str | None = None) -> None:
        try:
            self.caller()
        except HttpError as err:
            return self.answer_error(err)
        ids = model_ids(self.state)
        if model_id is None:
            return self.send_json(200, {"object": "list", "data": [model_entry(m) for m in ids]})
        if model_id not in ids:
            return self.answer_error(HttpError(404, NOT_FOUND, f"model not found: {model_id}"))
        self.send_json(200, model_entry(model_id))


@tornado.web.stream_request_body
class CompletionsHandler(_OpenAIBase):
    """POST /v1/chat/completions. The body is streamed: kept up to MAX_BODY, read and dropped
    beyond it (then answered 413)."""

    def prepare(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._gone = asyncio.get_running_loop().create_future()
        self._sink: RunSink | None = None
        self._on = self.enabled()  # answered once the body is read: the connection stays usable
        if self._on and body_unwanted(self.request):
            self._auth = _check_bearer(self)
            if isinstance(self._auth, _Rejection):  # answered before the body, which is not read
                refused = self._auth
                return answer_early(self, _Rejection(refused.status, error_body(_auth_message(refused), AUTH),
                                                     refused.headers))
        self.request.connection.set_max_body_size(BODY_READ_LIMIT)

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= MAX_BODY:
            self._chunks.append(chunk)
        elif self._chunks:
            self._chunks = []

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if getattr(self, "_on", True):
            return super().write_error(status_code, **kwargs)
        self.clear()
        self.not_found()

    def on_connection_close(self) -> None:
        if not self._gone.done():
            self._gone.set_result(None)
        if self._sink is not None:
            self._sink.queue.put_nowait(None)

    async def post(self) -> None:
        if not self._on:
            return self.not_found()
        try:
            caller = self.caller()
            if self._size > MAX_BODY:
                raise HttpError(413, INVALID, f"body larger than {MAX_BODY} bytes")
            raw, self._chunks = b"".join(self._chunks), []
            turn = build_turn(self.state, caller, self.request.headers, decode_request(raw))
            await self.run(caller, turn, uuid.uuid4().hex, int(time.time()))
        except HttpError as err:  # raised before anything of a stream was written
            self.answer_error(err)

    async def run(self, caller: Caller, turn: Turn, run_id: str, created: int) -> None:
        if not turn.stream:
            await start_turn(self.state, caller, turn, run_id)
            return await self.reply(turn, run_id, created)
        self._sink = sink = RunSink(run_id)
        sink.attach(self.state)  # before the run starts: no event is missed
        try:
            await start_turn(self.state, caller, turn, run_id)
            await self.relay(sink, turn, ChunkWriter(run_id, created, turn.model))
        finally:
            sink.detach(self.state)

    async def reply(self, turn: Turn, run_id: str, created: int) -> None:
        result = asyncio.ensure_future(bridge.ask("agents", "result", run_id, timeout=None))
        await asyncio.wait((result, self._gone), return_when=asyncio.FIRST_COMPLETED)
        if not result.done():
            result.cancel()
            bridge.tell("agents", "abort", turn.key, run_id)
            return
        outcome = result.result()
        err = outcome_error(outcome)
        if err is not None:
            raise err
        self.send_json(200, completion(run_id, created, turn.model, outcome))

    async def relay(self, sink: RunSink, turn: Turn, writer: ChunkWriter) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        while True:
            payload = await sink.queue.get()  # None: the client left or the gateway stops
            if payload is None and not self._gone.done():
                payload = {"state": "error", "errorMessage": "gateway is stopping"}
            if payload is None or not await self.send(self.lines(payload, turn, writer)):
                bridge.tell("agents", "abort", turn.key, sink.run_id)
                return
            if payload["state"] != "delta":
                self.finish()
                return

    @staticmethod
    def lines(payload: dict, turn: Turn, writer: ChunkWriter) -> bytes:
        if payload["state"] == "error":
            return writer.error(payload) + b"data: [DONE]\n\n"
        out = writer.event(payload)
        if payload["state"] == "delta":
            return out
        if turn.include_usage:
            out += writer.usage(payload.get("usage"))
        return out + b"data: [DONE]\n\n"

    async def send(self, data: bytes) -> bool:
        if not data:
            return True
        try:
            self.write(data)
            await self.flush()
        except StreamClosedError:
            return False
        return not self._gone.done()
