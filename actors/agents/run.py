"""One agent run: its spec, its outcome, and the worker thread that owns the provider stream
(architecture §4: blocking I/O never runs inside an actor's message handler).

`Run.start()` starts the thread; `Run.cancel(reason)` may be called from any thread
and closes the provider's socket at once (CancelToken). The thread reads the transcript,
streams the model turn (falling back to the next configured model when one fails before any
output), stores the assistant message, and emits the run's terminal events before it calls
`on_done(outcome)`: a client that sees `final` and asks `chat.history` finds the reply stored.
`Run.finish(outcome)` ends a run from outside (queued run aborted, agent actor crashed); only
the first ending counts.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Literal

import msgspec
import pykka

from actors.agents.providers import (
    CancelToken,
    ChatRequest,
    Event,
    Message,
    NoProviderError,
    ProviderError,
    Result,
    TextDelta,
    ToolCall,
    ToolCallComplete,
    resolve_candidates,
)
from actors.agents.run_events import RunEvents, now_ms
from actors.agents.tool_specs import TOOL_SPECS
from actors.base import call_sync, tell, tell_with_reply
from actors.clock import CLOCK
from actors.config.schema import Config
from actors.sessions.store import SESSIONS, SessionStore
from actors.tools.executor import TOOLS, ToolExecutor, ToolOutcome, ToolRequest

log = logging.getLogger("openclaw.agent")

DEFAULT_SYSTEM_PROMPT = ("You are a helpful personal assistant. Answer clearly and concisely.")
COMPACT_KEEP = 6
# The newest messages a turn sends to the model: a long session costs each turn a bounded
# read; `sessions.compact` folds what is older into a summary.
CONTEXT_MESSAGES = 200
COMPACT_PROMPT = ("Summarise the conversation below for your own later reference: keep facts, "
                  "decisions, names, open questions and commitments; drop small talk. Answer "
                  "with the summary only.")

MAX_TOOL_ROUNDS = 25  # model turns of one run; a model looping on tools ends as an error

RunKind = Literal["chat", "agent", "compact"]
Status = Literal["ok", "error", "aborted", "timeout"]


class RunSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What to run; built on the loop, handed to the agents actor and the run's thread."""
    run_id: str
    session_key: str
    agent_id: str
    session_id: str
    kind: RunKind = "chat"
    config: Config  # the config applied when the turn was accepted (cli-config §6.5)
    model_ref: str | None = None  # the session's model override
    timeout_ms: int = 600_000  # 0: no timeout
    extra_system_prompt: str | None = None
    message: str = ""  # the user's text (for logs and the test crash marker)
    compact_lines: int | None = None  # compact: keep this many messages, no summary
    accepted_at: int = 0


class RunOutcome(msgspec.Struct, kw_only=True):
    run_id: str
    session_key: str
    kind: RunKind
    status: Status
    text: str = ""
    error: str | None = None
    error_kind: str | None = None
    model: str | None = None
    usage: dict | None = None
    started_at: int = 0
    ended_at: int = 0
    timeout_s: int = 0
    result: dict | None = None  # compact: the sessions.compact result


def usage_of(result: Result) -> dict:
    u = result.usage
    return {"input": u.input_tokens, "output": u.output_tokens,
            "total": u.input_tokens + u.output_tokens}


def error_kind(exc: ProviderError) -> str:
    if exc.kind == "timeout":
        return "timeout"
    if exc.kind == "rate_limit":
        return "rate_limit"
    text = exc.message.lower()
    if exc.status == 400 and "context" in text and ("length" in text or "window" in text):
        return "context_length"
    return "unknown"


def provider_messages(stored: list[dict], run_id: str | None = None
                      ) -> tuple[list[Message], list[str]]:
    """Stored transcript messages → provider messages, and the system notes (compaction
    summaries) that belong in the system prompt. With `run_id`, the turns queued after that
    run's own are left out: they are not asked yet."""
    ordered = in_turn_order(stored)
    own = [i for i, m in enumerate(ordered) if m.get("runId") == run_id] if run_id else []
    if own:
        ordered = ordered[:own[-1] + 1]
    out: list[Message] = []
    notes: list[str] = []
    for m in ordered:
        parts = m.get("content") or []
        text = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
        role = m.get("role")
        if role == "system":
            notes.append(text)
        elif role == "user":
            out.append(Message(role="user", content=text))
        elif role == "assistant":
            calls = [ToolCall(id=p.get("id", ""), name=p.get("name", ""),
                              arguments=msgspec.json.encode(p.get("arguments", {})).decode())
                     for p in parts if p.get("type") == "toolCall"]
            out.append(Message(role="assistant", content=text, tool_calls=calls))
        elif role == "toolResult":
            out.append(Message(role="tool", content=text, tool_call_id=m.get("toolCallId"),
                               is_error=bool(m.get("isError"))))
    while out and out[0].role != "user":  # a window cut mid-turn: models want a user turn first
        out.pop(0)
    return out, notes


def tool_result_text(outcome: ToolOutcome) -> str:
    """What the model reads of a tool call: exec output as text, other results as JSON, and
    the error first when it failed."""
    output = outcome.output
    if isinstance(output, dict) and isinstance(output.get("output"), str):
        body = output["output"]
        if output.get("exitCode") not in (None, 0) or output.get("status") == "running":
            extra = {k: v for k, v in output.items() if k != "output"}
            body = f"{msgspec.json.encode(extra).decode()}\n{body}"
    elif isinstance(output, dict) and isinstance(output.get("content"), str):
        body = output["content"]
    elif output is None:
        body = ""
    else:
        body = msgspec.json.encode(output).decode()
    if not outcome.ok:
        return f"Error: {outcome.error or 'tool failed'}" + (f"\n{body}" if body else "")
    return body


def in_turn_order(stored: list[dict]) -> list[dict]:
    """Each run's reply right after its own user turn: a turn queued behind a running one is
    stored first, but the model must read question, answer, question."""
    groups: list[list[dict]] = []
    by_run: dict[str, int] = {}
    for m in stored:
        run_id = m.get("runId")
        if isinstance(run_id, str) and run_id in by_run:
            groups[by_run[run_id]].append(m)
            continue
        groups.append([m])
        if isinstance(run_id, str):
            by_run[run_id] = len(groups) - 1
    return [m for group in groups for m in group]


class Run:
    def __init__(self, spec: RunSpec, on_done: Callable[[RunOutcome], object]) -> None:
        self.spec = spec
        self.events = RunEvents(spec.run_id, spec.session_key)
        self.cancel_token = CancelToken()
        self._cancel_reason: str | None = None
        self._lock = threading.Lock()
        self._done = False
        self._on_done = on_done
        self._thread: threading.Thread | None = None

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def text(self) -> str:
        return self.events.text

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name=f"run-{self.run_id[:12]}",
                                        daemon=True)
        self._thread.start()

    def cancel(self, reason: str = "aborted") -> None:
        with self._lock:
            if self._cancel_reason is None:
                self._cancel_reason = reason
        self.cancel_token.cancel()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def finish(self, outcome: RunOutcome) -> bool:
        """End the run with `outcome` (terminal events, then `on_done`); False if it had
        ended already."""
        with self._lock:
            if self._done:
                return False
            self._done = True
        if self.spec.kind != "compact":
            self._emit_terminal(outcome)
        self._on_done(outcome)
        return True

    def outcome(self, status: Status, **fields: Any) -> RunOutcome:
        return RunOutcome(run_id=self.run_id, session_key=self.spec.session_key,
                          kind=self.spec.kind, status=status, text=self.text,
                          started_at=self.events.started_at or now_ms(), ended_at=now_ms(),
                          timeout_s=self.spec.timeout_ms // 1000, **fields)

    def _emit_terminal(self, outcome: RunOutcome) -> None:
        if outcome.status == "ok":
            self.events.final("stop", outcome.usage)
        elif outcome.status == "aborted":
            self.events.aborted()
        else:
            self.events.error(outcome.error or "run failed", outcome.error_kind or "unknown",
                              outcome.usage)

    # --- the worker thread --------------------------------------------------------------

    def _work(self) -> None:
        if self.spec.kind == "compact":
            self.events.started_at = now_ms()
            work = self._compact
        else:
            self.events.start()
            work = self._chat
        deadline = None
        if self.spec.timeout_ms > 0:
            deadline = CLOCK.call_later(self.spec.timeout_ms / 1000, lambda: self.cancel("timeout"))
        try:
            outcome = work()
        except NoProviderError as exc:
            outcome = self.outcome("error", error=str(exc), error_kind="unknown")
        except ProviderError as exc:
            outcome = self._cancelled() or self.outcome("error", error=str(exc),
                                                        error_kind=error_kind(exc))
        except Exception as exc:  # noqa: BLE001 - one run's failure is reported, never raised
            log.error("run %s failed: %s", self.run_id, exc, exc_info=True)
            outcome = self._cancelled() or self.outcome("error", error=f"run failed: {exc}")
        finally:
            if deadline is not None:
                deadline.cancel()
        self.finish(outcome)

    def _cancelled(self) -> RunOutcome | None:
        reason = self._cancel_reason
        if reason == "timeout":
            return self.outcome("timeout", error=f"agent run timed out after "
                                f"{self.spec.timeout_ms / 1000:g}s", error_kind="timeout")
        if reason is not None:
            return self.outcome("aborted", error="aborted")
        return None

    def _store(self) -> pykka.ActorRef[SessionStore]:
        store = SESSIONS.whereis()
        if store is None:
            raise RuntimeError("session store is not running")
        return store

    def _request(self, model: str, stored: list[dict]) -> ChatRequest:
        messages, notes = provider_messages(stored, self.run_id)
        defaults = self.spec.config.agents.defaults
        system = "\n\n".join(p for p in (defaults.system_prompt or DEFAULT_SYSTEM_PROMPT,
                                          self.spec.extra_system_prompt, *notes) if p)
        tools = TOOL_SPECS if self.spec.kind != "compact" else []
        return ChatRequest(model=model, messages=messages, system=system, tools=tools)

    def _stream(self, stored: list[dict], on_event: Callable[[Event], None] | None) -> Result:
        """The model turn, on the primary model or (before any output) the fallbacks."""
        candidates = resolve_candidates(self.spec.config, self.spec.model_ref)
        for index, (provider, model) in enumerate(candidates):
            try:
                return provider.stream(self._request(model, stored), on_event, self.cancel_token)
            except ProviderError as exc:
                if self.cancel_token.cancelled or self.text or index == len(candidates) - 1:
                    raise
                log.warning("model %s/%s failed before any output (%s); trying the next model",
                            provider.id, model, exc)
        raise AssertionError("unreachable")

    def _on_event(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.events.text_delta(event.text)
        elif isinstance(event, ToolCallComplete):
            call = event.call
            self.events.tool("start", call.name, call.id, args=call.input())

    def _chat(self) -> RunOutcome:
        """Model turns until one asks for no tool: each tool call runs on the executor and its
        result, stored in the transcript, is what the next turn reads."""
        store = self._store()
        usage = {"input": 0, "output": 0, "total": 0}
        for _ in range(MAX_TOOL_ROUNDS):
            stored = call_sync(store, SessionStore.messages, self.spec.session_id, self.spec.agent_id,
                               last=CONTEXT_MESSAGES)
            result = self._stream(stored, self._on_event)
            usage = {k: usage[k] + v for k, v in usage_of(result).items()}
            cancelled = self._cancelled() if result.aborted else None
            self._save(store, result, cancelled.status if cancelled else result.stop_reason)
            if cancelled is not None:
                return cancelled
            if not result.tool_calls:
                return self.outcome("ok", model=f"{result.provider}/{result.model}", usage=usage)
            for call in result.tool_calls:
                self._tool(store, call)
                if self.cancel_token.cancelled:
                    return self._cancelled() or self.outcome("aborted", error="aborted")
            self.events.new_turn()
        return self.outcome("error", error=f"run stopped after {MAX_TOOL_ROUNDS} tool rounds",
                            error_kind="unknown", usage=usage)

    def _tool(self, store: pykka.ActorRef[SessionStore], call: ToolCall) -> None:
        """One tool call: the executor runs it, the `agent` tool stream shows its result, and
        a failure goes back to the model as an error result (the run goes on)."""
        args = call.input()
        outcome = self._invoke(call, args if isinstance(args, dict) else {})
        text = tool_result_text(outcome)
        self.events.tool("result", call.name, call.id, result=outcome.output,
                         isError=not outcome.ok, **({} if outcome.ok else {"error": outcome.error}))
        call_sync(store, SessionStore.append, self.spec.session_key, {
            "role": "toolResult", "toolCallId": call.id, "toolName": call.name,
            "content": [{"type": "text", "text": text}], "isError": not outcome.ok,
            "runId": self.run_id}, session_id=self.spec.session_id)

    def _invoke(self, call: ToolCall, args: dict) -> ToolOutcome:
        """Wait for the executor, waking for an abort (which cancels the call there)."""
        tools = TOOLS.whereis()
        if tools is None:
            return ToolOutcome(tool=call.name, ok=False, error="the tool executor is not running")
        done, box = threading.Event(), []

        def reply(result: Any, err: BaseException | None) -> None:
            box.append((result, err))
            done.set()

        request = ToolRequest(name=call.name, args=args, call_id=f"{self.run_id}:{call.id}",
                              session_key=self.spec.session_key, agent_id=self.spec.agent_id)
        def output(text: str) -> None:
            self.events.tool("update", call.name, call.id, partialResult=text)

        tell_with_reply(tools, reply, ToolExecutor.invoke, request, on_output=output)
        while not done.wait(0.1):
            if self.cancel_token.cancelled:
                tell(tools, ToolExecutor.cancel, request.call_id)
                done.wait(2.0)
                break
        if not box:
            return ToolOutcome(tool=call.name, ok=False, error="aborted")
        result, err = box[0]
        if err is not None:
            return ToolOutcome(tool=call.name, ok=False, error=str(err))
        return result

    def _save(self, store: pykka.ActorRef[SessionStore], result: Result, stop_reason: str) -> None:
        """The assistant turn as the user saw it (partial text of an aborted run included)."""
        parts: list[dict] = [{"type": "text", "text": result.text}] if result.text else []
        parts += [{"type": "toolCall", "id": c.id, "name": c.name, "arguments": c.input()}
                  for c in result.tool_calls]
        if not parts:
            return
        call_sync(store, SessionStore.append, self.spec.session_key, {
            "role": "assistant", "content": parts, "runId": self.run_id, "stopReason": stop_reason,
            "usage": usage_of(result), "model": result.model, "provider": result.provider},
            session_id=self.spec.session_id)

    def _compact(self) -> RunOutcome:
        """sessions.compact (protocol §13.7) as a run, so it waits for the session's turns."""
        store = self._store()
        key = self.spec.session_key
        if self.spec.compact_lines is not None:
            result = call_sync(store, SessionStore.compact, key, self.spec.compact_lines)
            return self.outcome("ok", result=result)
        stored = call_sync(store, SessionStore.messages, self.spec.session_id, self.spec.agent_id)
        if len(stored) <= COMPACT_KEEP:
            return self.outcome("ok", result={"compacted": False, "reason": "too-short"})
        older, recent = stored[:-COMPACT_KEEP], stored[-COMPACT_KEEP:]
        transcript = "\n".join(f"{m['role']}: {_plain(m)}" for m in older)
        summary = self._stream([{"role": "user", "content": [
            {"type": "text", "text": f"{COMPACT_PROMPT}\n\n{transcript}"}]}], None)
        if summary.aborted:
            return self._cancelled() or self.outcome("aborted", error="aborted")
        result = call_sync(store, SessionStore.compact, key, COMPACT_KEEP,
                           summary=f"Summary of the earlier conversation:\n{summary.text}")
        if result.get("compacted"):
            before = _tokens(stored)
            after = _tokens(recent) + (len(summary.text) + 3) // 4
            result = {"compacted": True, "result": {"tokensBefore": before, "tokensAfter": after}}
        return self.outcome("ok", result=result)


def _plain(message: dict) -> str:
    return "".join(p.get("text", "") for p in message.get("content") or []
                   if p.get("type") == "text")


def _tokens(messages: list[dict]) -> int:
    """A rough count (4 characters a token): providers report usage per turn, not per message."""
    return sum(len(_plain(m)) for m in messages) // 4 + len(messages) * 4
