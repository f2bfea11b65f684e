"""Registered names for actors, as in OTP: a restarted actor gets a new ref under the same
name, so callers look the name up each time instead of keeping a ref that may be dead."""

from __future__ import annotations

import threading

import pykka

_lock = threading.Lock()
_names: dict[str, pykka.ActorRef] = {}


def register(name: str, ref: pykka.ActorRef) -> None:
    with _lock:
        _names[name] = ref


def unregister(name: str, ref: pykka.ActorRef | None = None) -> None:
    """Remove `name`; with `ref`, only if the name still points at that ref."""
    with _lock:
        if ref is None or _names.get(name) is ref:
            _names.pop(name, None)


def whereis(name: str) -> pykka.ActorRef | None:
    with _lock:
        ref = _names.get(name)
    return ref if ref is not None and ref.is_alive() else None


def clear() -> None:
    with _lock:
        _names.clear()
