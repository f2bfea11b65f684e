"""Gateway methods (protocol §11): `gateway.restart` and its official alias
`gateway.restart.request`, both an in-process restart through the restart scheduler. Each
name has its own control-plane rate limit budget (§19.2: per method), so each is its own
handler."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from transport.methods import ADMIN, MAX_DELAY_MS, method
from transport.ratelimit import check_control_plane


class RestartParams(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    reason: str | None = None
    delay_ms: Annotated[int, Meta(ge=0, le=MAX_DELAY_MS)] = 0
    drain_ms: Annotated[int, Meta(ge=0, le=MAX_DELAY_MS)] | None = None  # None: gateway.restartDrainTimeoutMs
    force: bool = False


@method("gateway.restart", scope=ADMIN, params=RestartParams)
async def gateway_restart(params: RestartParams, ctx) -> dict:
    return _request(params, ctx, "gateway.restart")


@method("gateway.restart.request", scope=ADMIN, params=RestartParams)
async def gateway_restart_request(params: RestartParams, ctx) -> dict:
    return _request(params, ctx, "gateway.restart.request")


def _request(params: RestartParams, ctx, name: str) -> dict:
    check_control_plane(ctx, name)
    # The config is validated when the cycle starts (it may still change until then); an
    # invalid one aborts the cycle and shows in configReload, and the gateway keeps running.
    return ctx.state.restarts.request(params.reason or name, delay_ms=params.delay_ms,
                                      drain_ms=params.drain_ms, force=params.force)
