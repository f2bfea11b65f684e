"""The method table (protocol §8.3). Each module in this package registers its methods with
`@method(...)`; `table()` imports them all once and returns name → Method."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import msgspec

READ, WRITE, ADMIN = "operator.read", "operator.write", "operator.admin"
APPROVALS, PAIRING = "operator.approvals", "operator.pairing"

Handler = Callable[[Any, Any], Awaitable[Any]]

# Upper bounds of integer params: msgspec takes any JSON integer, and a huge one reached SQLite
# ("Python int too large") or a timer; with a bound the error names the field and the limit.
MAX_COUNT = 1_000_000_000  # counts, offsets, minutes: past any store, well inside SQLite's int64
MAX_PROBE_MS = 600_000  # a health or channel probe wait
MAX_DELAY_MS = 3_600_000  # restart delays and drains (gateway.restartDrainTimeoutMs' own max)
MAX_RUN_S = 172_800  # a run's timeout (agents.defaults.timeoutSeconds' own max)


class NoParams(msgspec.Struct):
    """The params of a method that takes none (any object is accepted)."""


@dataclass(frozen=True)
class Method:
    name: str
    scope: str
    handler: Handler
    params: type | None = None  # a msgspec Struct; mutating methods forbid unknown fields
    # For a scope that depends on the params (sessions.patch): raw params bytes → scope,
    # computed before validation.
    scope_of: Callable[[bytes], str] | None = None
    # Waits for something outside the call (a run's end): its duration says nothing about
    # the gateway's health, so no `slow call` log line.
    waits: bool = False


_TABLE: dict[str, Method] = {}
_MODULES = ("system", "config", "gateway", "schema", "sessions", "models", "chat",
            "pairing", "channels", "tools")
_loaded: list[bool] = []


def method(name: str, *, scope: str, params: type | None = None, aliases: tuple[str, ...] = (),
           scope_of: Callable[[bytes], str] | None = None,
           waits: bool = False) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for each in (name, *aliases):
            _TABLE[each] = Method(each, scope, handler, params, scope_of, waits)
        return handler
    return register


def table() -> dict[str, Method]:
    if not _loaded:
        for module in _MODULES:
            importlib.import_module(f"{__name__}.{module}")
        _loaded.append(True)
    return _TABLE
