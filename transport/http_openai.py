"""OpenAI-compatible endpoints (protocol §21.4): `GET /v1/models`, `GET /v1/models/{id}` and
`POST /v1/chat/completions`, streaming or not.

Served only while `gateway.http.endpoints.chatCompletions.enabled` is true in the applied
config (read per request, so a reload turns them on and off); otherwise every `/v1/*` path is
the plain `404`. A completion is an ordinary agent run (`transport.methods.chat.start_run`), so
WebSocket clients see its `chat` and `agent` events. A streaming reply follows the run through
a loop-side pseudo-connection subscribed to the EventHub, which relays the run's `chat` events
as `chat.completion.chunk` lines. The request itself (body, errors, model and session names,
the turn) is read in transport/openai_request.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, cast

import msgspec
import tornado.web
from tornado.http1connection import HTTP1Connection
from tornado.iostream import StreamClosedError

from actors.agents.manager import AGENTS, AgentManager
from actors.agents.providers import NoProviderError, resolve_candidates
from actors.agents.run import RunOutcome
from actors.events import EVENT_HUB, EventHub, Subscriber
from actors.sessions.store import SESSIONS, SessionError, SessionStore
from transport import bridge
from transport.bridge import ActorUnavailable
from transport.dispatch import Caller, Context
from transport.http import _check_bearer, _Rejection, answer_early, body_unwanted
from transport.methods.chat import start_run
from transport.openai_request import (
    API,
    AUTH,
    BODY_READ_LIMIT,
    INVALID,
    MAX_BODY,
    NOT_FOUND,
    HttpError,
    Turn,
    bad_request,
    build_turn,
    decode_request,
    error_body,
    model_entry,
    model_ids,
)
from transport.protocol import INVALID_REQUEST, GatewayError, encoder
from transport.state import DRAINING, GatewayState

log = logging.getLogger("openclaw.http")


# --- running the turn -----------------------------------------------------------------------

def http_error_of(err: GatewayError) -> HttpError:
    if err.code == INVALID_REQUEST:
        return bad_request(err.message)
    return HttpError(503, API, err.message)


async def add_context(state: GatewayState, turn: Turn) -> None:
    """Earlier messages become the history of a new session (none for an existing one)."""
    if not turn.context or await bridge.ask(SESSIONS, SessionStore.row, turn.key) is not None:
        return
    try:
        resolve_candidates(state.snapshot.config, None)  # no provider: record nothing
    except NoProviderError as exc:
        raise HttpError(503, API, str(exc)) from None
    for message in turn.context:
        await bridge.ask(SESSIONS, SessionStore.append, turn.key, message)


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
        bridge.tell(EVENT_HUB, EventHub.subscribe, Subscriber(self.conn_id, "operator",
                                                           frozenset({"operator.read"}), frozenset()))

    def detach(self, state: GatewayState) -> None:
        bridge.tell(EVENT_HUB, EventHub.unsubscribe, self.conn_id)
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
        # Tornado types the connection as its interface; the HTTP/1 server's has the body limit.
        cast(HTTP1Connection, self.request.connection).set_max_body_size(BODY_READ_LIMIT)

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
        result = asyncio.ensure_future(bridge.ask_within(None, AGENTS, AgentManager.result, run_id))
        await asyncio.wait((result, self._gone), return_when=asyncio.FIRST_COMPLETED)
        if not result.done():
            result.cancel()
            bridge.tell(AGENTS, AgentManager.abort, turn.key, run_id)
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
                bridge.tell(AGENTS, AgentManager.abort, turn.key, sink.run_id)
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
