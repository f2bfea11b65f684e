"""Config methods (protocol §10): `config.get` with secrets redacted, and the writes
`config.set`, `config.patch`, `config.apply`, which the ConfigActor performs (the one writer).

`config.get` answers from the payload the ConfigActor encoded once for the config it holds and
pushed to the loop (`GatewayState.config_payload`). A write is planned and applied like a file
edit through `GatewayState.apply_config`, which the lifecycle installs."""

from __future__ import annotations

from typing import Annotated, Callable, Concatenate, ParamSpec

import json5
import msgspec
from msgspec import Meta

from actors.config.actor import CONFIG, ConfigActor
from actors.config.load import ConfigSnapshot, effective, redact
from actors.config.write import WriteError, WriteResult, first_leaf
from transport import bridge
from transport.methods import ADMIN, MAX_DELAY_MS, READ, NoParams, method
from transport.protocol import invalid
from transport.ratelimit import check_control_plane

DEFAULT_RESTART_DELAY_MS = 2000
# The write path waits up to 5 s for the file lock; leave room for the write itself.
WRITE_TIMEOUT_S = 20.0

BASE_REQUIRED = "config base hash required; re-run config.get and retry"


class _WriteParams(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    raw: Annotated[str, Meta(min_length=1)]
    base_hash: str | None = None
    session_key: str | None = None
    note: str | None = None
    restart_delay_ms: Annotated[int, Meta(ge=0, le=MAX_DELAY_MS)] = DEFAULT_RESTART_DELAY_MS


class SetParams(_WriteParams, forbid_unknown_fields=True):
    pass


class ApplyParams(_WriteParams, forbid_unknown_fields=True):
    pass


class PatchParams(_WriteParams, forbid_unknown_fields=True):
    replace_paths: list[str] = []


@method("config.get", scope=READ, params=NoParams)
async def config_get(params: NoParams, ctx) -> msgspec.Raw:
    payload = ctx.state.config_payload
    if payload is None:  # before the actor's first push
        payload = msgspec.Raw(await bridge.ask(CONFIG, ConfigActor.payload))
    return payload


@method("config.patch", scope=ADMIN, params=PatchParams)
async def config_patch(params: PatchParams, ctx) -> dict:
    check_control_plane(ctx, "config.patch")
    patch = _parse_raw("config.patch", params.raw)
    required = f"config base hash required for {first_leaf(patch)}; re-run config.get and retry"
    result = await _ask_write(ConfigActor.patch, patch, params.base_hash, list(params.replace_paths), required)
    return await _answer(ctx, "config.patch", result, params)


@method("config.set", scope=ADMIN, params=SetParams)
async def config_set(params: SetParams, ctx) -> dict:
    return await _replace("config.set", params, ctx)


@method("config.apply", scope=ADMIN, params=ApplyParams)
async def config_apply(params: ApplyParams, ctx) -> dict:
    return await _replace("config.apply", params, ctx)


async def _replace(name: str, params: SetParams | ApplyParams, ctx) -> dict:
    """config.set and config.apply: `raw` is the whole new file."""
    check_control_plane(ctx, name)
    doc = _parse_raw(name, params.raw)
    result = await _ask_write(ConfigActor.replace, doc, params.base_hash, BASE_REQUIRED)
    return await _answer(ctx, name, result, params)


def _parse_raw(name: str, raw: str) -> dict:
    if not raw.strip():
        raise invalid(f"invalid {name} params: raw: must be non-empty")
    try:
        doc = json5.loads(raw, allow_duplicate_keys=False)
    except ValueError as exc:
        raise invalid(f"invalid {name} params: raw: {str(exc).splitlines()[0]}") from None
    except RecursionError:  # the JSON5 parser recurses per level (a few hundred at most)
        raise invalid(f"invalid {name} params: raw: nested too deeply") from None
    if not isinstance(doc, dict):
        raise invalid(f"invalid {name} params: raw: must be a JSON5 object")
    return doc


P = ParamSpec("P")


async def _ask_write(method: Callable[Concatenate[ConfigActor, P], WriteResult],
                     /, *args: P.args, **kwargs: P.kwargs) -> WriteResult:
    try:
        return await bridge.ask_within(WRITE_TIMEOUT_S, CONFIG, method, *args, **kwargs)
    except WriteError as err:
        details: dict | msgspec.UnsetType = msgspec.UNSET
        if err.issues:
            details = {"issues": [{"path": i.path, "message": i.message} for i in err.issues]}
        raise invalid(err.message, details=details) from None


async def _answer(ctx, reason: str, result: WriteResult, params: _WriteParams) -> dict:
    snapshot = result.snapshot
    payload = {"ok": True, "path": result.path, "hash": snapshot.hash,
               "config": redact(effective(snapshot)), "changedPaths": result.changed_paths,
               "restart": None}
    if not result.changed:
        payload["noop"] = True
        payload["changedPaths"] = []
        return payload
    payload["restart"] = await _apply(ctx, snapshot, reason, params.restart_delay_ms)
    return payload


async def _apply(ctx, snapshot: ConfigSnapshot, reason: str, delay_ms: int) -> dict | None:
    """Apply the written snapshot exactly like a file edit (cli-config §5.7): the ConfigActor
    plans and adopts it, hot keys apply live, a restart is scheduled or deferred; the answer
    is the `restart` object of protocol §10.5."""
    apply = ctx.state.apply_config
    if apply is None:  # no lifecycle behind this state: nothing runs that could apply it
        return None
    return await apply(snapshot, reason, delay_ms)


async def append_allowlist(ctx, entries: list[dict]) -> None:
    """`exec.approval.resolve` with `allow-always` (protocol §17.2): the entries join
    `tools.exec.allowlist` in the authored file, applied like any config.patch (hot)."""
    snapshot: ConfigSnapshot = await bridge.ask(CONFIG, ConfigActor.snapshot)
    authored = snapshot.parsed if isinstance(snapshot.parsed, dict) else {}
    current = (((authored.get("tools") or {}).get("exec") or {}).get("allowlist")) or []
    patch = {"tools": {"exec": {"allowlist": [*current, *entries]}}}
    result = await _ask_write(ConfigActor.patch, patch, snapshot.hash, [], BASE_REQUIRED)
    if result.changed:
        await _apply(ctx, result.snapshot, "exec.approval.resolve", DEFAULT_RESTART_DELAY_MS)
