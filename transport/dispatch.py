"""One dispatcher for WebSocket and HTTP RPC requests (protocol §6.3, §8.1): lookup, role,
scope, params, handler, and the mapping of every failure to an error object."""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import msgspec

from transport.bridge import ActorUnavailable
from transport.methods import ADMIN, READ, WRITE, Method, table
from transport.protocol import (
    FORBIDDEN,
    UNAVAILABLE,
    GatewayError,
    decode_json,
    describe_validation_error,
    invalid,
)
from transport.state import GatewayState

log = logging.getLogger("openclaw.ws")

SLOW_CALL_MS = 50


class Caller(msgspec.Struct, frozen=True):
    """Who is calling: the authority of one socket or one HTTP bearer."""

    conn_id: str
    role: str
    scopes: frozenset[str]
    remote_ip: str | None = None
    loopback: bool = False
    client_id: str = ""
    client_mode: str = ""
    device_id: str | None = None
    caps: frozenset[str] = frozenset()
    display_name: str = ""


@dataclass
class Context:
    state: GatewayState
    caller: Caller
    # Sends a first response on the request's id before the handler returns the final one
    # (`agent`, protocol §15.2); None where only one response fits (HTTP RPC).
    early: Callable[[Any], object] | None = None

    def has_scope(self, scope: str) -> bool:
        return scope_satisfied(self.caller.scopes, scope)


def scope_satisfied(granted: frozenset[str], scope: str) -> bool:
    """§6.2: admin satisfies every scope, write also satisfies read."""
    return ADMIN in granted or scope in granted or (scope == READ and WRITE in granted)


def satisfying_scopes(scope: str) -> list[str]:
    if scope == READ:
        return [READ, WRITE, ADMIN]
    return [scope] if scope == ADMIN else [scope, ADMIN]


def method_names() -> list[str]:
    return sorted(table())


def _authorize(spec: Method, caller: Caller, raw_params: bytes | msgspec.Raw = b"{}") -> None:
    if caller.role != "operator":
        raise GatewayError(FORBIDDEN, f"unauthorized role: {caller.role}")
    scope = spec.scope if spec.scope_of is None else spec.scope_of(bytes(raw_params))
    if not scope_satisfied(caller.scopes, scope):
        raise GatewayError(FORBIDDEN, f"missing scope: {scope}",
                           details={"code": "MISSING_SCOPE", "missingScope": scope,
                                    "requiredScopes": satisfying_scopes(scope)})


def decode_params(spec: Method, raw: bytes | msgspec.Raw) -> Any:
    # Omitted params arrive as `{}` (the frame's default); `null` is a non-object like any other.
    body = bytes(raw).strip()
    if not body.startswith(b"{"):
        raise invalid(f"invalid {spec.name} params: params must be an object")
    if spec.params is None:
        return None
    try:
        return decode_json(body, spec.params)
    except msgspec.ValidationError as exc:
        raise invalid(f"invalid {spec.name} params: {describe_validation_error(exc)}") from None
    except msgspec.DecodeError as exc:
        raise invalid(f"invalid {spec.name} params: {exc}") from None


async def dispatch(state: GatewayState, caller: Caller, method: str, raw_params: bytes | msgspec.Raw,
                   early: Callable[[Any], object] | None = None) -> Any:
    """Run one request; raises GatewayError for every failure the client should see."""
    spec = table().get(method)
    if spec is None:
        raise invalid(f"unknown method: {method}")
    _authorize(spec, caller, raw_params)
    params = decode_params(spec, raw_params)
    started = time.perf_counter()
    state.in_flight += 1
    try:
        return await spec.handler(params, Context(state, caller, early))
    except GatewayError:
        raise
    except ActorUnavailable as exc:
        raise GatewayError(UNAVAILABLE, str(exc), retryable=True) from None
    except Exception as exc:  # noqa: BLE001 - answered, logged, connection stays up
        log.error("method %s failed: %s", method, exc, exc_info=True,
                  extra={"method": method, "connId": caller.conn_id})
        details = {"traceback": traceback.format_exc()} if state.dev else msgspec.UNSET
        raise GatewayError(UNAVAILABLE, f"{method} failed: {exc}", details=details) from None
    finally:
        state.in_flight -= 1
        elapsed = (time.perf_counter() - started) * 1000
        if elapsed > SLOW_CALL_MS and not spec.waits:
            log.info("slow call %s %.0fms", method, elapsed,
                     extra={"method": method, "durationMs": int(elapsed), "connId": caller.conn_id})
