"""OpenAI-compatible Chat Completions client (`api: "openai-completions"`, also `ollama`):
`POST {baseUrl}/chat/completions` with `stream: true` and `stream_options.include_usage`,
parsing SSE `data:` chunks until `[DONE]`; tool-call deltas are assembled by `index`.
Covers OpenAI, Ollama, vLLM, llama.cpp server, LM Studio and OpenRouter."""

from __future__ import annotations

from typing import Any, Callable

import msgspec

from actors.agents.providers import (
    CancelToken,
    ChatRequest,
    Event,
    Message,
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

FINISH_REASONS: dict[str, StopReason] = {
    "stop": "stop", "tool_calls": "tool_use", "function_call": "tool_use", "length": "length",
    "content_filter": "content_filter",
}


def encode_messages(request: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    for m in request.messages:
        out.append(_encode_message(m))
    return out


def _encode_message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content}
    if m.role == "assistant" and m.tool_calls:
        return {"role": "assistant", "content": m.content or None,
                "tool_calls": [{"id": c.id, "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments or "{}"}}
                               for c in m.tool_calls]}
    return {"role": m.role, "content": m.content}


def encode_body(request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": encode_messages(request),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        body["tools"] = [{"type": "function",
                          "function": {"name": t.name, "description": t.description,
                                       "parameters": t.parameters}} for t in request.tools]
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


class OpenAIProvider(HttpProvider):
    api = "openai-completions"

    def __init__(self, id: str, *, api: str = "openai-completions", **settings: Any) -> None:
        super().__init__(id, **settings)
        self.api = api

    @property
    def url(self) -> str:
        base = self.base_url
        if self.api == "ollama" and not base.endswith("/v1"):
            base += "/v1"  # Ollama's OpenAI-compatible endpoint
        return base + "/chat/completions"

    def encode(self, request: ChatRequest) -> dict:
        return encode_body(request)

    def request_headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        h.update(self.headers)
        return h

    def stream(self, request: ChatRequest, on_event: Callable[[Event], None] | None = None,
               cancel: CancelToken | None = None) -> Result:
        cancel = cancel or CancelToken()
        out, resp = self.open(request, on_event, cancel)
        if resp is None:
            return out.finish(aborted=True)
        calls: dict[int, dict[str, str]] = {}
        finish: str | None = None
        usage: Usage | None = None
        done = False
        try:
            for _event, data in resp.sse():
                if data.strip() == "[DONE]":
                    done = True
                    break
                try:
                    chunk = msgspec.json.decode(data)
                except msgspec.DecodeError as exc:
                    raise ProviderError(self.id, resp.status, f"bad stream chunk: {data[:200]}",
                                        kind="protocol") from exc
                if not isinstance(chunk, dict):
                    continue
                if chunk.get("error"):
                    err = chunk["error"]
                    msg = err.get("message", str(err)) if isinstance(err, dict) else str(err)
                    raise ProviderError(self.id, resp.status, f"stream error: {msg}",
                                        retryable=not out.emitted, kind="stream")
                if chunk.get("usage"):
                    u = chunk["usage"]
                    usage = Usage(input_tokens=int(u.get("prompt_tokens") or 0),
                                  output_tokens=int(u.get("completion_tokens") or 0))
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    text = delta.get("content")
                    if text:
                        out.emit(TextDelta(text=text))
                    for tc in delta.get("tool_calls") or []:
                        index = int(tc.get("index", len(calls)))
                        fn = tc.get("function") or {}
                        slot = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
                        if tc.get("id"):
                            slot["id"] = tc["id"]
                        if fn.get("name"):
                            slot["name"] += fn["name"]
                        args = fn.get("arguments") or ""
                        slot["arguments"] += args
                        out.emit(ToolCallDelta(index=index, id=tc.get("id"),
                                               name=fn.get("name"), arguments=args))
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        finally:
            resp.close(drain=done)
        if cancel.cancelled:
            return out.finish(aborted=True)
        if not done and finish is None:
            raise ProviderError(self.id, resp.status, "stream ended before [DONE]",
                                retryable=not out.emitted, kind="connection")
        for index in sorted(calls):
            slot = calls[index]
            out.emit(ToolCallComplete(index=index, call=ToolCall(
                id=slot["id"] or f"call_{index}", name=slot["name"],
                arguments=slot["arguments"] or "{}")))
        if usage is not None:
            out.emit(usage)
        reason = FINISH_REASONS.get(finish or "stop", "other")
        if calls and reason == "stop":
            reason = "tool_use"
        out.emit(Stop(reason=reason, raw=finish))
        return out.finish()
