"""Tool methods (protocol §16.3, §17): `tools.invoke`, `exec.approval.list`,
`exec.approval.resolve`, over the ToolExecutor actor ("tools") through the bridge only.

`invoke_tool` is shared with `POST /tools/invoke` (transport/http_tools.py).
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any, Callable, Concatenate, ParamSpec, TypeVar

import msgspec
from msgspec import Meta

from actors.agents.manager import AGENTS, AgentManager
from actors.sessions.keys import SessionKeyError, agent_id_of, main_key, normalize_key
from actors.tools.approvals import ApprovalError
from actors.tools.executor import TOOLS, ToolExecutor, ToolOutcome, ToolRequest, UnknownTool
from actors.tools.fs import ToolArgsError
from transport import bridge
from transport.methods import APPROVALS, WRITE, NoParams, method
from transport.protocol import UNAVAILABLE, GatewayError, invalid

log = logging.getLogger("openclaw.tools")

NonEmpty = Annotated[str, Meta(min_length=1)]
# An exec may wait 30 min for its approval, then run up to yieldMs in the foreground.
INVOKE_TIMEOUT_S = 1800 + 130
DECISIONS = ("allow-once", "allow-always", "deny")


class InvokeParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: NonEmpty
    args: dict[str, Any] = {}
    sessionKey: str | None = None
    agentId: str | None = None
    confirm: bool = False
    idempotencyKey: str | None = None


class ResolveParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: NonEmpty
    decision: str


def tool_request(name: str, args: dict, session_key: str | None, agent_id: str | None,
                 call_id: str | None) -> ToolRequest:
    agent = agent_id or "main"
    key = session_key.strip() if session_key else ""
    try:
        key = main_key(agent) if key in ("", "main") else normalize_key(key, agent)
    except SessionKeyError as exc:
        raise invalid(f"invalid tools.invoke params: sessionKey: {exc}") from None
    return ToolRequest(name=name.strip(), args=args, call_id=call_id or uuid.uuid4().hex,
                       session_key=key, agent_id=agent_id or agent_id_of(key))


async def invoke_tool(request: ToolRequest, dedupe: str | None = None) -> ToolOutcome:
    """One tool call; `dedupe` (the idempotency key) makes repeats share the first result."""
    if dedupe is None:
        return await _invoke(request)
    key = f"tools.invoke:{dedupe}"
    if await bridge.ask(AGENTS, AgentManager.claim, key, request.call_id) is not None:
        shared = await bridge.ask_within(INVOKE_TIMEOUT_S, AGENTS, AgentManager.wait_call, key)
        if shared["error"]:
            raise GatewayError(*shared["error"])
        return msgspec.convert(shared["payload"], ToolOutcome)
    try:
        outcome = await _invoke(request)
    except GatewayError as exc:
        bridge.tell(AGENTS, AgentManager.finish_call, key, None, (exc.code, exc.message), keep=False)
        raise
    except BaseException:
        bridge.tell(AGENTS, AgentManager.finish_call, key, None, (UNAVAILABLE, "tool call failed"), keep=False)
        raise
    bridge.tell(AGENTS, AgentManager.finish_call, key, msgspec.to_builtins(outcome))
    return outcome


async def _invoke(request: ToolRequest) -> ToolOutcome:
    try:
        return await bridge.ask_within(INVOKE_TIMEOUT_S, TOOLS, ToolExecutor.invoke, request)
    except (UnknownTool, ToolArgsError) as exc:
        raise invalid(str(exc)) from None
    except bridge.ActorUnavailable as exc:
        raise GatewayError(UNAVAILABLE, f"tool executor unavailable: {exc}", retryable=True) from None


@method("tools.invoke", scope=WRITE, params=InvokeParams)
async def tools_invoke(params: InvokeParams, ctx) -> dict:
    request = tool_request(params.name, params.args, params.sessionKey, params.agentId,
                           params.idempotencyKey)
    outcome = await invoke_tool(request, params.idempotencyKey)
    if outcome.ok:
        return {"ok": True, "toolName": outcome.tool, "output": outcome.output}
    error: dict[str, Any] = {"message": outcome.error or "tool failed"}
    if outcome.output is not None:
        error["output"] = outcome.output
    return {"ok": False, "toolName": outcome.tool, "error": error}


@method("exec.approval.list", scope=APPROVALS, params=NoParams)
async def approval_list(params: NoParams, ctx) -> dict:
    return {"approvals": await _tools(ToolExecutor.approvals)}


@method("exec.approval.resolve", scope=APPROVALS, params=ResolveParams)
async def approval_resolve(params: ResolveParams, ctx) -> dict:
    if params.decision not in DECISIONS:
        raise invalid("invalid decision")
    caller = ctx.caller
    resolved_by = caller.display_name or caller.client_id or caller.conn_id
    try:
        result = await _tools(ToolExecutor.resolve_approval, params.id.strip(), params.decision, resolved_by)
    except ApprovalError as exc:
        raise GatewayError(exc.code, str(exc)) from None
    if result["entries"]:
        await _allow_always(ctx, result["entries"])
    return {"ok": True}


P = ParamSpec("P")
R = TypeVar("R")


async def _tools(method: Callable[Concatenate[ToolExecutor, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    try:
        return await bridge.ask(TOOLS, method, *args, **kwargs)
    except bridge.ActorUnavailable as exc:
        raise GatewayError(UNAVAILABLE, f"tool executor unavailable: {exc}", retryable=True) from None


async def _allow_always(ctx, entries: list[dict]) -> None:
    """`allow-always` extends tools.exec.allowlist through the config writer (one writer, the
    same reload rules as config.patch); a failed write is logged: the command ran already."""
    from transport.methods.config import append_allowlist  # config's module imports ours lazily
    try:
        await append_allowlist(ctx, entries)
    except Exception as exc:  # noqa: BLE001 - the approval itself stands
        log.error("allow-always: could not extend tools.exec.allowlist: %s", exc)
