"""DM pairing methods (protocol §12.4, scope operator.pairing): thin handlers over the
PairingStore actor (`PAIRING_STORE`), reached only through `bridge.ask`; the store owns the
pairing files and does their I/O in its own thread."""

from __future__ import annotations

from typing import Callable, Concatenate, ParamSpec, TypeVar

import msgspec

from actors.channels.pairing import PAIRING_STORE, PairingError, PairingStore
from transport import bridge
from transport.methods import PAIRING, method
from transport.protocol import invalid


class ListParams(msgspec.Struct, kw_only=True):
    channel: str | None = None


class ApproveParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    channel: str
    code: str


def _non_empty(name: str, field: str, value: str) -> str:
    if not value.strip():
        raise invalid(f"invalid {name} params: {field}: must be non-empty")
    return value.strip()


P = ParamSpec("P")
R = TypeVar("R")


async def _ask(method: Callable[Concatenate[PairingStore, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    try:
        return await bridge.ask(PAIRING_STORE, method, *args, **kwargs)
    except PairingError as exc:
        raise invalid(str(exc)) from None


@method("pairing.list", scope=PAIRING, params=ListParams)
async def pairing_list(params: ListParams, ctx) -> dict:
    channel = params.channel.strip() if params.channel is not None else None
    return await _ask(PairingStore.list, channel or None)


@method("pairing.approve", scope=PAIRING, params=ApproveParams)
async def pairing_approve(params: ApproveParams, ctx) -> dict:
    channel = _non_empty("pairing.approve", "channel", params.channel)
    code = _non_empty("pairing.approve", "code", params.code)
    sender = await _ask(PairingStore.approve, channel, code)
    return {"ok": True, "channel": channel.lower(), "sender": sender}
