"""Chat and agent runs (protocol §14.1, §14.3, §15.2, §15.3, §18): `chat.send`, `chat.abort`,
`agent`, `agent.wait`.

A turn is accepted in this order: idempotency claim (agents actor) → model provider check on
the applied config (no provider: UNAVAILABLE, nothing recorded) → the user turn committed by
the session store (the acknowledgement point) → the run queued on the session's agent actor
→ the ack. Output then streams as `chat` and `agent` events from the run.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from actors.agents.manager import AGENTS, ENDED_TTL_S, AgentManager, Claim, RunError
from actors.agents.providers import NoProviderError, resolve_candidates
from actors.agents.run import RunOutcome, RunSpec
from actors.sessions.keys import SessionKeyError, agent_id_of, main_key, normalize_key, valid_agent_id
from actors.sessions.store import LABEL_MAX, SESSIONS, SessionError, SessionStore, model_ref
from transport import bridge
from transport.methods import ADMIN, MAX_RUN_S, WRITE, method
from transport.protocol import AGENT_TIMEOUT, UNAVAILABLE, GatewayError, invalid
from transport.state import DRAINING, GatewayState

NonEmpty = Annotated[str, Meta(min_length=1)]
IMAGE_MAX_BYTES = 6291456
# The longest agent.wait (10 min): as long as an ended run stays answerable from memory, so a
# client that waits again right after a `timeout` never misses the end of its run.
MAX_WAIT_MS = int(ENDED_TTL_S * 1000)


class Attachment(msgspec.Struct, kw_only=True):
    mimeType: str
    content: str  # base64
    type: str | None = None
    fileName: str | None = None


class SendParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    sessionKey: NonEmpty
    message: str
    idempotencyKey: NonEmpty
    sessionId: str | None = None
    thinking: str | None = None
    deliver: bool = False
    attachments: list[Attachment] = []
    timeoutMs: Annotated[int, Meta(ge=0, le=MAX_RUN_S * 1000)] | None = None


class AbortParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    sessionKey: NonEmpty
    runId: str | None = None


class AgentParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    message: NonEmpty
    idempotencyKey: NonEmpty
    agentId: str | None = None
    sessionKey: str | None = None
    sessionId: str | None = None
    to: str | None = None
    channel: str | None = None
    accountId: str | None = None
    threadId: str | None = None
    deliver: bool = False
    thinking: str | None = None
    extraSystemPrompt: str | None = None
    timeout: Annotated[int, Meta(ge=0, le=MAX_RUN_S)] | None = None
    label: Annotated[str, Meta(max_length=LABEL_MAX)] | None = None
    attachments: list[Attachment] = []


class WaitParams(msgspec.Struct, kw_only=True):
    runId: NonEmpty
    timeoutMs: Annotated[int, Meta(ge=0, le=MAX_WAIT_MS)] = 30_000


def now_ms() -> int:
    return int(time.time() * 1000)


def _text(method_name: str, field: str, value: str) -> str:
    if not value.strip():
        raise invalid(f"invalid {method_name} params: {field}: must be non-empty")
    return value.strip()


def _session_key(method_name: str, raw: str) -> str:
    try:
        return normalize_key(_text(method_name, "sessionKey", raw))
    except SessionKeyError as exc:
        raise invalid(f"invalid {method_name} params: sessionKey: {exc}") from None


# Also told to clients in hello-ok (transport/handshake.py).
def attachment_max_bytes(state: GatewayState) -> int:
    return state.snapshot.config.agents.defaults.media_max_mb * 1048576


def _check_running(ctx) -> None:
    if ctx.state.phase == DRAINING:
        raise GatewayError(UNAVAILABLE, "gateway is restarting", retryable=True)


def content_parts(ctx, text: str, attachments: list[Attachment]) -> list[dict]:
    """The user turn as stored: its text and one part per attachment (no bytes kept)."""
    limit = attachment_max_bytes(ctx.state)
    parts: list[dict] = [{"type": "text", "text": text}] if text else []
    for each in attachments:
        name = each.fileName or "attachment"
        try:
            size = len(base64.b64decode(each.content, validate=True))
        except (binascii.Error, ValueError):
            raise invalid(f"invalid attachment content (not base64): {name}") from None
        is_image = each.mimeType.startswith("image/")
        if size > (min(limit, IMAGE_MAX_BYTES) if is_image else limit):
            raise invalid(f"attachment too large: {name}")
        part: dict[str, Any] = {"type": "image" if is_image else "file", "mimeType": each.mimeType}
        if each.fileName:
            part["fileName"] = each.fileName
        parts.append(part)
    return parts


async def _claim(dedupe_key: str, run_id: str) -> Claim | None:
    return await bridge.ask(AGENTS, AgentManager.claim, dedupe_key, run_id)


async def _model_ref(ctx, key: str) -> str | None:
    """The session's model override as `provider/model`; checks that a provider is usable."""
    row = await bridge.ask(SESSIONS, SessionStore.row, key)
    ref = model_ref(row) if row else None
    try:
        resolve_candidates(ctx.state.snapshot.config, ref)
    except NoProviderError as exc:
        raise GatewayError(UNAVAILABLE, str(exc)) from None
    return ref


async def start_run(ctx, *, kind: Literal["chat", "agent"], key: str, run_id: str, dedupe_key: str, parts: list[dict],
                    text: str, timeout_ms: int, expected_session_id: str | None = None,
                    extra_system_prompt: str | None = None, label: str | None = None) -> dict:
    """Claimed already: check the provider, commit the user turn, queue the run. Releases the
    claim when anything fails before the run is queued."""
    try:
        ref = await _model_ref(ctx, key)
        if label is not None:
            await bridge.ask(SESSIONS, SessionStore.patch, key, {"label": label})
        recorded = await bridge.ask(SESSIONS, SessionStore.record_turn, key, {
            "role": "user", "content": parts, "runId": run_id, "timestamp": now_ms()},
            expected_session_id=expected_session_id)
        session = recorded["session"]
        spec = RunSpec(run_id=run_id, session_key=session["key"],
                       agent_id=session.get("agentId") or agent_id_of(session["key"]),
                       session_id=session["sessionId"], kind=kind, config=ctx.state.snapshot.config,
                       model_ref=ref, timeout_ms=timeout_ms, message=text,
                       extra_system_prompt=extra_system_prompt, accepted_at=now_ms())
        return await bridge.ask(AGENTS, AgentManager.submit, spec, dedupe_key)
    except BaseException as exc:
        bridge.tell(AGENTS, AgentManager.release, dedupe_key)
        if isinstance(exc, (SessionError, RunError)):
            raise invalid(str(exc)) from None
        raise


def _timeout_ms(ctx, given: int | None) -> int:
    return given if given is not None else ctx.state.snapshot.config.agents.defaults.timeout_seconds * 1000


# --- chat.send ------------------------------------------------------------------------------

@method("chat.send", scope=WRITE, params=SendParams)
async def chat_send(params: SendParams, ctx) -> dict:
    _check_running(ctx)
    key = _session_key("chat.send", params.sessionKey)
    run_id = _text("chat.send", "idempotencyKey", params.idempotencyKey)
    if not params.message.strip() and not params.attachments:
        raise invalid("invalid chat.send params: message: must be non-empty without attachments")
    command = params.message.strip()
    if command == "/stop":
        result = await bridge.ask(AGENTS, AgentManager.abort, key, None)
        return {"runId": run_id, "status": "ok", "aborted": result["aborted"],
                "runIds": result["runIds"]}
    if command in ctx.state.snapshot.config.session.reset_triggers:
        return await _reset_command(ctx, key, run_id, command)
    parts = content_parts(ctx, params.message, params.attachments)
    earlier = await _claim(f"chat.send:{run_id}", run_id)
    if earlier is not None:
        return send_status(earlier)
    return await start_run(ctx, kind="chat", key=key, run_id=run_id,
                           dedupe_key=f"chat.send:{run_id}", parts=parts, text=params.message,
                           timeout_ms=_timeout_ms(ctx, params.timeoutMs),
                           expected_session_id=params.sessionId or None)


def send_status(earlier: Claim) -> dict:
    """§14.1: a repeat answers with the first call's state, never a second run."""
    if earlier.in_flight:
        return {"runId": earlier.run_id, "status": "in_flight"}
    ok = earlier.outcome is not None and earlier.outcome.status == "ok"
    return {"runId": earlier.run_id, "status": "ok" if ok else "error"}


async def _reset_command(ctx, key: str, run_id: str, command: str) -> dict:
    if not ctx.has_scope(ADMIN):
        raise GatewayError("FORBIDDEN", f"missing scope: {ADMIN}",
                           details={"code": "MISSING_SCOPE", "missingScope": ADMIN})
    await bridge.ask(AGENTS, AgentManager.abort, key, None)
    await bridge.ask(SESSIONS, SessionStore.get_or_create, key)
    entry = await bridge.ask(SESSIONS, SessionStore.reset, key, reason="new" if command == "/new" else "reset")
    return {"runId": run_id, "status": "ok", "reset": True, "sessionId": entry["sessionId"]}


# --- chat.abort -----------------------------------------------------------------------------

@method("chat.abort", scope=WRITE, params=AbortParams)
async def chat_abort(params: AbortParams, ctx) -> dict:
    key = _session_key("chat.abort", params.sessionKey)
    try:
        return await bridge.ask(AGENTS, AgentManager.abort, key, params.runId or None)
    except RunError as exc:
        raise invalid(str(exc)) from None


# --- agent ----------------------------------------------------------------------------------

async def _agent_key(params: AgentParams) -> str:
    if params.sessionKey and params.sessionKey.strip():
        return _session_key("agent", params.sessionKey)
    agent_id = (params.agentId or "main").strip().lower()
    if not valid_agent_id(agent_id):
        raise invalid(f"invalid agent params: agentId: invalid agent id: {params.agentId}")
    if params.sessionId:
        key = await bridge.ask(SESSIONS, SessionStore.key_of, params.sessionId, agent_id)
        if key is None:
            raise invalid(f"unknown sessionId: {params.sessionId}")
        return key
    return main_key(agent_id)


@method("agent", scope=WRITE, params=AgentParams, waits=True)
async def agent(params: AgentParams, ctx) -> dict:
    _check_running(ctx)
    run_id = _text("agent", "idempotencyKey", params.idempotencyKey)
    text = _text("agent", "message", params.message)
    if params.deliver:
        target = params.channel or params.to or "(none)"
        raise invalid(f"cannot resolve delivery target: {target} (no channel is configured)")
    key = await _agent_key(params)
    parts = content_parts(ctx, text, params.attachments)
    dedupe_key = f"agent:{run_id}"
    earlier = await _claim(dedupe_key, run_id)
    if earlier is not None:
        if earlier.in_flight:
            return {"runId": run_id, "status": "in_flight"}
        return agent_final(earlier.outcome)
    timeout_ms = params.timeout * 1000 if params.timeout is not None else _timeout_ms(ctx, None)
    await start_run(ctx, kind="agent", key=key, run_id=run_id, dedupe_key=dedupe_key,
                    parts=parts, text=text, timeout_ms=timeout_ms,
                    extra_system_prompt=params.extraSystemPrompt, label=params.label)
    if ctx.early is not None:
        ctx.early({"runId": run_id, "status": "accepted", "acceptedAt": now_ms()})
    outcome = await bridge.ask_within(None, AGENTS, AgentManager.result, run_id)
    return agent_final(outcome)


def agent_final(outcome: RunOutcome | None) -> dict:
    """§15.2's final response; a run past its timeout is an AGENT_TIMEOUT error."""
    if outcome is None:
        raise GatewayError(UNAVAILABLE, "run outcome unknown")
    if outcome.status == "timeout":
        raise GatewayError(AGENT_TIMEOUT, f"agent run timed out after {outcome.timeout_s}s")
    if outcome.status != "ok":
        return {"runId": outcome.run_id, "status": "error",
                "summary": outcome.error or outcome.status}
    meta: dict[str, Any] = {"durationMs": max(0, outcome.ended_at - outcome.started_at)}
    if outcome.model:
        meta["model"] = outcome.model.split("/", 1)[-1]
    return {"runId": outcome.run_id, "status": "ok", "summary": "completed",
            "result": {"payloads": [{"text": outcome.text}], "meta": meta}}


# --- agent.wait -----------------------------------------------------------------------------

@method("agent.wait", scope=WRITE, params=WaitParams, waits=True)
async def agent_wait(params: WaitParams, ctx) -> dict:
    run_id = _text("agent.wait", "runId", params.runId)
    # A socket's waits end when it closes (`drop_waits`, told by its on_close); over HTTP the
    # request is the whole exchange. `early` is only set for sockets.
    owner = ctx.caller.conn_id if ctx.early is not None else None
    timeout_ms = params.timeoutMs
    if ctx.state.phase == DRAINING or (owner is not None and owner not in ctx.state.connections):
        timeout_ms = 0  # the drain does not wait on waits; a closed socket waits for nothing
    return await bridge.ask_within(timeout_ms / 1000 + 30, AGENTS, AgentManager.wait, run_id, timeout_ms, owner)
