"""Session methods (protocol §13.1-§13.6) and `chat.history` (§14.2): thin handlers over the
SessionStore actor ("sessions"), reached only through `bridge.ask`. The store is the one
writer and also the one owner of the `sessions.changed` events (§7.5)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, Callable, Concatenate, Literal, ParamSpec, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from actors.agents.manager import AGENTS, AgentManager
from actors.agents.providers import NoProviderError, resolve_candidates
from actors.agents.run import RunSpec
from actors.sessions.keys import DEFAULT_AGENT_ID, SessionKeyError, normalize_key
from actors.sessions.store import LABEL_MAX, SESSIONS, SessionError, SessionStore, model_ref
from transport import bridge
from transport.methods import ADMIN, MAX_COUNT, READ, WRITE, method
from transport.protocol import UNAVAILABLE, GatewayError, decode_json, invalid

NonEmpty = Annotated[str, Meta(min_length=1)]

# sessions.patch fields that need operator.admin (§13.3); the rest need operator.write.
ADMIN_FIELDS = frozenset({"thinkingLevel", "verboseLevel", "reasoningLevel", "elevatedLevel",
                          "fastMode", "execHost", "execSecurity", "execAsk"})


class ListParams(msgspec.Struct, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=MAX_COUNT)] = 100
    offset: Annotated[int, Meta(ge=0, le=MAX_COUNT)] = 0
    activeMinutes: Annotated[int, Meta(ge=1, le=MAX_COUNT)] | None = None
    agentId: str | None = None
    label: str | None = None
    search: str | None = None
    includeGlobal: bool = False
    includeUnknown: bool = False
    includeLastMessage: bool = False


class PreviewParams(msgspec.Struct, kw_only=True):
    keys: Annotated[list[NonEmpty], Meta(min_length=1, max_length=64)]
    limit: Annotated[int, Meta(ge=1, le=1000)] = 12
    maxChars: Annotated[int, Meta(ge=20, le=500_000)] = 240


Level = NonEmpty | None | UnsetType


class PatchParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: NonEmpty
    label: Annotated[str, Meta(min_length=1, max_length=LABEL_MAX)] | None | UnsetType = UNSET
    model: NonEmpty | None | UnsetType = UNSET
    sendPolicy: Literal["allow", "deny"] | None | UnsetType = UNSET
    groupActivation: Literal["mention", "always"] | None | UnsetType = UNSET
    thinkingLevel: Level = UNSET
    verboseLevel: Level = UNSET
    reasoningLevel: Level = UNSET
    elevatedLevel: Level = UNSET
    fastMode: bool | None | UnsetType = UNSET
    execHost: Level = UNSET
    execSecurity: Level = UNSET
    execAsk: Level = UNSET


class ResetParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: NonEmpty
    reason: Literal["new", "reset"] = "reset"


class DeleteParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: NonEmpty
    deleteTranscript: bool = True


class CompactParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: NonEmpty
    agentId: str | None = None
    maxLines: Annotated[int, Meta(ge=1, le=MAX_COUNT)] | None = None


class HistoryParams(msgspec.Struct, kw_only=True):
    sessionKey: NonEmpty
    limit: Annotated[int, Meta(ge=1, le=1000)] = 200
    maxChars: Annotated[int, Meta(ge=1, le=500_000)] | None = None


def patch_scope(raw: bytes) -> str:
    """§13.3: the scope comes from the fields present, before validation."""
    try:
        params = decode_json(raw)
    except msgspec.DecodeError:  # TooDeep included; decode_params answers it
        return WRITE
    if isinstance(params, dict) and ADMIN_FIELDS.intersection(params):
        return ADMIN
    return WRITE


def _key(name: str, value: str) -> str:
    if not value.strip():
        raise invalid(f"invalid {name} params: key: must be non-empty")
    return value.strip()


P = ParamSpec("P")
R = TypeVar("R")


async def _ask(method: Callable[Concatenate[SessionStore, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    try:
        return await bridge.ask(SESSIONS, method, *args, **kwargs)
    except SessionError as exc:
        raise invalid(str(exc)) from None


# sessions.list asks in flight, by (loop, params): an identical request that arrives while
# one is still waiting for the store shares its answer instead of asking again, and the
# answer is encoded once for all of them (msgspec.Raw: immutable, embedded as is by the
# WebSocket and HTTP encoders). Safe for read-your-writes: the store answers in mailbox
# order and the loop settles answers in the order the store sent them, so a write whose
# acknowledgement a client saw before sending its list was settled after any list asked
# earlier had been settled and removed from here.
_lists_in_flight: dict[tuple, asyncio.Future] = {}


async def _list_encoded(**kwargs: Any) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(await _ask(SessionStore.list, **kwargs)))


@method("sessions.list", scope=READ, params=ListParams)
async def sessions_list(params: ListParams, ctx) -> msgspec.Raw:
    loop = asyncio.get_running_loop()
    key = (loop, params.limit, params.offset, params.activeMinutes, params.agentId, params.label,
           params.search, params.includeGlobal, params.includeUnknown, params.includeLastMessage)
    shared = _lists_in_flight.get(key)
    if shared is None:
        shared = loop.create_task(_list_encoded(
            limit=params.limit, offset=params.offset, activeMinutes=params.activeMinutes,
            agentId=params.agentId, label=params.label, search=params.search,
            includeGlobal=params.includeGlobal, includeUnknown=params.includeUnknown,
            includeLastMessage=params.includeLastMessage))
        _lists_in_flight[key] = shared
        shared.add_done_callback(lambda _: _lists_in_flight.pop(key, None))
    return await asyncio.shield(shared)


@method("sessions.preview", scope=READ, params=PreviewParams)
async def sessions_preview(params: PreviewParams, ctx) -> dict:
    return await _ask(SessionStore.preview, list(params.keys), limit=params.limit, maxChars=params.maxChars)


@method("sessions.patch", scope=WRITE, params=PatchParams, scope_of=patch_scope)
async def sessions_patch(params: PatchParams, ctx) -> dict:
    key = _key("sessions.patch", params.key)
    fields = {name: getattr(params, name) for name in params.__struct_fields__
              if name != "key" and getattr(params, name) is not UNSET}
    for name in ("label", "model", *sorted(ADMIN_FIELDS - {"fastMode"})):
        value = fields.get(name)
        if isinstance(value, str) and not value.strip():
            raise invalid(f"invalid sessions.patch params: {name}: must be non-empty")
    entry = await _ask(SessionStore.patch, key, fields)
    path = await _ask(SessionStore.path, entry.get("agentId") or DEFAULT_AGENT_ID)
    base = await _ask(SessionStore.defaults)
    if entry.get("model"):
        resolved = {"modelProvider": entry.get("modelProvider"), "model": entry["model"]}
    else:
        resolved = {"modelProvider": base.get("modelProvider"), "model": base.get("model")}
    return {"ok": True, "path": path, "key": entry["key"], "entry": entry,
            "resolved": resolved}


@method("sessions.reset", scope=ADMIN, params=ResetParams)
async def sessions_reset(params: ResetParams, ctx) -> dict:
    key = _key("sessions.reset", params.key)
    await _abort_runs(key)
    entry = await _ask(SessionStore.reset, key, reason=params.reason)
    return {"ok": True, "key": entry["key"], "entry": entry}


@method("sessions.delete", scope=ADMIN, params=DeleteParams)
async def sessions_delete(params: DeleteParams, ctx) -> dict:
    key = _key("sessions.delete", params.key)
    await _abort_runs(key)
    return await _ask(SessionStore.delete, key, delete_transcript=params.deleteTranscript)


async def _abort_runs(key: str) -> None:
    """§13.5, §13.6: a reset or delete first stops the session's runs."""
    await bridge.ask(AGENTS, AgentManager.abort, history_key(key), None)


@method("chat.history", scope=READ, params=HistoryParams)
async def chat_history(params: HistoryParams, ctx) -> dict:
    key = params.sessionKey.strip()
    if not key:
        raise invalid("invalid chat.history params: sessionKey: must be non-empty")
    history, running = await asyncio.gather(
        _ask(SessionStore.history, key, limit=params.limit, max_chars=params.maxChars),
        bridge.ask(AGENTS, AgentManager.in_flight, history_key(key)))
    history["inFlightRun"] = running
    return history


def history_key(key: str) -> str:
    try:
        return normalize_key(key)
    except SessionKeyError:
        return key


@method("sessions.compact", scope=ADMIN, params=CompactParams)
async def sessions_compact(params: CompactParams, ctx) -> dict:
    """§13.7: runs on the session's agent actor, so it waits for no turn and no turn runs
    while the transcript is rewritten."""
    key = history_key(_key("sessions.compact", params.key))
    if await bridge.ask(AGENTS, AgentManager.active, key):
        raise GatewayError(UNAVAILABLE, "session has an active run", retryable=True)
    row = await _ask(SessionStore.row, key)
    if row is None:
        return {"ok": True, "key": key, "compacted": False, "reason": "no-session"}
    if params.maxLines is None:
        try:
            resolve_candidates(ctx.state.snapshot.config, model_ref(row))
        except NoProviderError as exc:
            raise GatewayError(UNAVAILABLE, str(exc)) from None
    spec = RunSpec(run_id=f"compact-{uuid.uuid4().hex[:12]}", session_key=row["key"],
                   agent_id=row.get("agentId") or DEFAULT_AGENT_ID, session_id=row["sessionId"],
                   kind="compact", config=ctx.state.snapshot.config, model_ref=model_ref(row),
                   compact_lines=params.maxLines,
                   timeout_ms=ctx.state.snapshot.config.agents.defaults.timeout_seconds * 1000)
    await bridge.ask(AGENTS, AgentManager.submit, spec)
    outcome = await bridge.ask_within(None, AGENTS, AgentManager.result, spec.run_id)
    if outcome.status != "ok" or outcome.result is None:
        raise GatewayError(UNAVAILABLE, f"compaction failed: {outcome.error or outcome.status}")
    return {"ok": True, "key": row["key"], **outcome.result}

