"""A local stand-in for the model APIs: a real HTTP server on 127.0.0.1 (ephemeral port, in a
thread) speaking the OpenAI Chat Completions and Anthropic Messages streaming formats, with
scriptable failures (status codes with headers, hangs, mid-stream errors, slow streams).

    with ModelServer() as srv:
        srv.script(Status(500), Stream(openai_text(["Hel", "lo"])))
        ... POST srv.url + "/chat/completions" ...

Requests without a scripted step get a default answer in the format of their path:
`/chat/completions` → OpenAI, `/messages` → Anthropic.

`ModelServer(keep_alive=True)` speaks HTTP/1.1 and keeps connections open between requests
(streams go chunked), as the real APIs do; each recorded request names its client `port`, so
a test can tell a reused connection from a new one.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# --- steps ------------------------------------------------------------------------------

@dataclass
class Status:
    """A non-streaming answer: status, headers and a JSON (or text) body."""
    code: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stream:
    """200 text/event-stream writing `chunks` (raw SSE text) `delay` seconds apart, then
    closing the connection (leave the end marker out of `chunks` for a drop)."""
    chunks: list[str]
    delay: float = 0.0
    linger: float = 0.0  # keep the body open this long after the chunks (keep-alive only)


@dataclass
class Hang:
    """Accepts the request and never answers (until the client goes or the server stops)."""
    seconds: float = 30.0


# --- SSE builders -----------------------------------------------------------------------

def _data(obj: Any) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def _event(name: str, obj: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(obj)}\n\n"


def openai_text(parts: list[str], *, usage: tuple[int, int] = (11, 7), finish: str = "stop",
                model: str = "gpt-test", done: bool = True) -> list[str]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
    out = [_data({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                       "finish_reason": None}]})]
    out += [_data({**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]})
            for p in parts]
    out.append(_data({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}))
    out.append(_data({**base, "choices": [], "usage": {
        "prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}}))
    if done:
        out.append("data: [DONE]\n\n")
    return out


def openai_tool_calls(calls: list[tuple[str, str, list[str]]], *, usage: tuple[int, int] = (20, 9),
                      model: str = "gpt-test") -> list[str]:
    """calls: (id, name, argument fragments); deltas interleave the calls by index."""
    base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": model}
    out = [_data({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None},
                                       "finish_reason": None}]})]
    for i, (cid, name, _frags) in enumerate(calls):
        out.append(_data({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{
            "index": i, "id": cid, "type": "function",
            "function": {"name": name, "arguments": ""}}]}, "finish_reason": None}]}))
    longest = max(len(f) for _, _, f in calls)
    for j in range(longest):
        for i, (_cid, _name, frags) in enumerate(calls):
            if j < len(frags):
                out.append(_data({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{
                    "index": i, "function": {"arguments": frags[j]}}]}, "finish_reason": None}]}))
    out.append(_data({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}))
    out.append(_data({**base, "choices": [], "usage": {
        "prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}}))
    out.append("data: [DONE]\n\n")
    return out


def anthropic_text(parts: list[str], *, usage: tuple[int, int] = (12, 6), stop: str = "end_turn",
                   model: str = "claude-test", finish: bool = True) -> list[str]:
    out = [_event("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": 1}}}),
        _event("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}}),
        _event("ping", {"type": "ping"})]
    out += [_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": p}})
            for p in parts]
    if finish:
        out += [_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
                _event("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": stop, "stop_sequence": None},
                                         "usage": {"output_tokens": usage[1]}}),
                _event("message_stop", {"type": "message_stop"})]
    return out


def anthropic_tool_use(text: str, tool_id: str, name: str, fragments: list[str], *,
                       usage: tuple[int, int] = (30, 15), model: str = "claude-test") -> list[str]:
    out = [_event("message_start", {"type": "message_start", "message": {
        "id": "msg_2", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "usage": {"input_tokens": usage[0], "output_tokens": 1}}}),
        _event("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}}),
        _event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": text}}),
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": tool_id, "name": name, "input": {}}})]
    out += [_event("content_block_delta", {"type": "content_block_delta", "index": 1,
                                            "delta": {"type": "input_json_delta", "partial_json": f}})
            for f in fragments]
    out += [_event("content_block_stop", {"type": "content_block_stop", "index": 1}),
            _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                                     "usage": {"output_tokens": usage[1]}}),
            _event("message_stop", {"type": "message_stop"})]
    return out


def anthropic_error(kind: str = "overloaded_error", message: str = "Overloaded") -> str:
    return _event("error", {"type": "error", "error": {"type": kind, "message": message}})


# --- server -----------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeModel/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        owner: ModelServer = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        owner._record(self.path, dict(self.headers.items()), body, self.client_address[1])
        step = owner._next_step(self.path)
        if isinstance(step, Status):
            data = step.body if isinstance(step.body, (bytes, str)) else json.dumps(
                step.body if step.body is not None else {"error": {"message": f"status {step.code}"}})
            data = data.encode() if isinstance(data, str) else data
            self.send_response(step.code)
            for k, v in step.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if isinstance(step, Hang):
            self.close_connection = True
            deadline = time.monotonic() + step.seconds
            while time.monotonic() < deadline and not owner._stopping.is_set():
                if self._peer_closed(0.02):
                    owner.client_closed.set()
                    return
            return
        chunked = self.protocol_version == "HTTP/1.1"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = not chunked
        try:
            self.wfile.flush()
            for chunk in step.chunks:
                if owner._stopping.is_set():
                    return
                if step.delay and self._peer_closed(step.delay):
                    owner.client_closed.set()
                    return
                data = chunk.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                self.wfile.flush()
            if chunked:
                if step.linger and self._peer_closed(step.linger):
                    owner.client_closed.set()
                    self.close_connection = True
                    return
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            owner.client_closed.set()
            self.close_connection = True

    def _peer_closed(self, wait: float) -> bool:
        """Waits up to `wait` for the peer to close; True if it did."""
        try:
            readable, _, _ = select.select([self.connection], [], [], wait)
            if readable:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
        return False


class _KeepAliveHandler(_Handler):
    protocol_version = "HTTP/1.1"
    # Headers and chunks go out in separate writes: without TCP_NODELAY, Nagle and delayed ACKs
    # hold each answer on a reused connection back ~40 ms on loopback (real servers set it).
    disable_nagle_algorithm = True


class ModelServer:
    def __init__(self, keep_alive: bool = False) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveHandler if keep_alive else _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._lock = threading.Lock()
        self._steps: list[Status | Stream | Hang] = []
        self._stopping = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self.client_closed = threading.Event()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-model-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def script(self, *steps: Status | Stream | Hang) -> None:
        with self._lock:
            self._steps.extend(steps)

    def _record(self, path: str, headers: dict[str, str], body: Any, port: int) -> None:
        with self._lock:
            self.requests.append({"path": path, "headers": {k.lower(): v for k, v in headers.items()},
                                  "body": body, "at": time.monotonic(), "port": port})

    def _next_step(self, path: str) -> Status | Stream | Hang:
        with self._lock:
            if self._steps:
                return self._steps.pop(0)
        if path.endswith("/messages"):
            return Stream(anthropic_text(["Hello", " from", " Claude"]))
        return Stream(openai_text(["Hello", " from", " GPT"]))

    def start(self) -> "ModelServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
