"""Gateway methods (protocol §11): `gateway.restart` and its official alias
`gateway.restart.request`, both an in-process restart through the restart scheduler."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from transport.methods import ADMIN, method


class RestartParams(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    reason: str | None = None
    delay_ms: Annotated[int, Meta(ge=0)] = 0
    drain_ms: Annotated[int, Meta(ge=0)] | None = None  # None: gateway.restartDrainTimeoutMs
    force: bool = False


@method("gateway.restart", scope=ADMIN, params=RestartParams, aliases=("gateway.restart.request",))
async def gateway_restart(params: RestartParams, ctx) -> dict:
    # The config is validated when the cycle starts (it may change until then); an invalid
    # one aborts the cycle and shows in configReload, the gateway keeps running.
    return ctx.state.restarts.request(params.reason or "gateway.restart", delay_ms=params.delay_ms,
                                      drain_ms=params.drain_ms, force=params.force)
