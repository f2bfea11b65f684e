"""Anthropic Messages client (`api: "anthropic-messages"`): `POST {baseUrl}/v1/messages` with
`stream: true`, headers `x-api-key` and `anthropic-version: 2023-06-01`, parsing the SSE
events message_start, content_block_start/delta/stop (text_delta, input_json_delta),
message_delta (usage, stop_reason), message_stop, ping and error."""

from __future__ import annotations

from typing import Any, Callable

import msgspec

from actors.agents.providers import (
    CancelToken,
    ChatRequest,
    Event,
    ProviderError,
    Result,
    Stop,
    StopReason,
    TextDelta,
    ToolCall,
    ToolCallComplete,
    ToolCallDelta,
    Usage,
)
from actors.agents.providers.http_stream import HttpProvider

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_use", "max_tokens": "length",
    "refusal": "content_filter", "pause_turn": "other",
}


def _decode_args(text: str) -> Any:
    try:
        return msgspec.json.decode(text or "{}")
    except msgspec.DecodeError:
        return {}


def encode_messages(request: ChatRequest) -> tuple[str | None, list[dict[str, Any]]]:
    """(system, messages) in the Messages format: system turns join the `system` field, tool
    results become `tool_result` blocks of a user turn, assistant tool calls `tool_use`
    blocks; consecutive turns of one role are merged (the API wants them alternating)."""
    system = [request.system] if request.system else []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for m in request.messages:
        if m.role == "system":
            system.append(m.content)
        elif m.role == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id or "",
                                     "content": m.content}
            if m.is_error:
                block["is_error"] = True
            add("user", [block])
        elif m.role == "assistant":
            blocks = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name,
                        "input": _decode_args(c.arguments)} for c in m.tool_calls]
            add("assistant", blocks)
        else:
            add("user", [{"type": "text", "text": m.content}])
    return ("\n\n".join(system) if system else None), out


def encode_body(request: ChatRequest) -> dict[str, Any]:
    system, messages = encode_messages(request)
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": messages,
        "stream": True,
    }
    if system:
        body["system"] = system
    if request.tools:
        body["tools"] = [{"name": t.name, "description": t.description,
                          "input_schema": t.parameters} for t in request.tools]
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


class AnthropicProvider(HttpProvider):
    api = "anthropic-messages"

    @property
    def url(self) -> str:
        base = self.base_url
        return base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    def encode(self, request: ChatRequest) -> dict:
        return encode_body(request)

    def request_headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "text/event-stream",
             "anthropic-version": ANTHROPIC_VERSION}
        if self.api_key:
            h["x-api-key"] = self.api_key
        h.update(self.headers)
        return h

    def stream(self, request: ChatRequest, on_event: Callable[[Event], None] | None = None,
               cancel: CancelToken | None = None) -> Result:
        cancel = cancel or CancelToken()
        out, resp = self.open(request, on_event, cancel)
        if resp is None:
            return out.finish(aborted=True)
        blocks: dict[int, dict[str, Any]] = {}
        usage = Usage()
        stop_raw: str | None = None
        stopped = False
        try:
            for event, data in resp.sse():
                try:
                    doc = msgspec.json.decode(data)
                except msgspec.DecodeError as exc:
                    raise ProviderError(self.id, resp.status, f"bad stream event: {data[:200]}",
                                        kind="protocol") from exc
                if not isinstance(doc, dict):
                    continue
                kind = doc.get("type") or event
                if kind == "message_start":
                    u = (doc.get("message") or {}).get("usage") or {}
                    usage = Usage(input_tokens=int(u.get("input_tokens") or 0),
                                  output_tokens=int(u.get("output_tokens") or 0))
                elif kind == "content_block_start":
                    index = int(doc.get("index", len(blocks)))
                    block = dict(doc.get("content_block") or {})
                    block["json"] = ""
                    blocks[index] = block
                    if block.get("type") == "text" and block.get("text"):
                        out.emit(TextDelta(text=block["text"]))
                    elif block.get("type") == "tool_use":
                        out.emit(ToolCallDelta(index=index, id=block.get("id"),
                                               name=block.get("name")))
                elif kind == "content_block_delta":
                    index = int(doc.get("index", 0))
                    delta = doc.get("delta") or {}
                    block = blocks.setdefault(index, {"type": "text", "json": ""})
                    if delta.get("type") == "text_delta":
                        out.emit(TextDelta(text=delta.get("text") or ""))
                    elif delta.get("type") == "input_json_delta":
                        part = delta.get("partial_json") or ""
                        block["json"] += part
                        out.emit(ToolCallDelta(index=index, arguments=part))
                elif kind == "content_block_stop":
                    index = int(doc.get("index", 0))
                    block = blocks.get(index) or {}
                    if block.get("type") == "tool_use":
                        args = block["json"]
                        if not args and block.get("input"):
                            args = msgspec.json.encode(block["input"]).decode()
                        out.emit(ToolCallComplete(index=index, call=ToolCall(
                            id=block.get("id") or f"toolu_{index}", name=block.get("name") or "",
                            arguments=args or "{}")))
                elif kind == "message_delta":
                    stop_raw = (doc.get("delta") or {}).get("stop_reason") or stop_raw
                    u = doc.get("usage") or {}
                    usage = Usage(
                        input_tokens=int(u.get("input_tokens") or usage.input_tokens),
                        output_tokens=int(u.get("output_tokens") or usage.output_tokens))
                elif kind == "message_stop":
                    stopped = True
                    break
                elif kind == "error":
                    err = doc.get("error") or {}
                    typ = err.get("type") or "error"
                    raise ProviderError(self.id, resp.status,
                                        f"stream error: {typ}: {err.get('message', '')}",
                                        retryable=not out.emitted and typ in (
                                            "overloaded_error", "api_error", "rate_limit_error"),
                                        kind="stream")
        finally:
            resp.close(drain=stopped)
        if cancel.cancelled:
            return out.finish(aborted=True)
        if not stopped:
            raise ProviderError(self.id, resp.status, "stream ended before message_stop",
                                retryable=not out.emitted, kind="connection")
        out.emit(usage)
        out.emit(Stop(reason=STOP_REASONS.get(stop_raw or "end_turn", "other"), raw=stop_raw))
        return out.finish()
