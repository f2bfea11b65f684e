"""Registered names for actors, as in OTP: a restarted actor gets a new ref under the same
name, so callers look the name up each time instead of keeping a ref that may be dead.

An `ActorName[A]` carries the name together with the actor class registered under it, so a
call through the name (actors/base.py `send`, transport/bridge.py `ask`) is type-checked
against that class's methods. Each actor module defines its own name next to the class.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

import pykka

A = TypeVar("A", bound=pykka.Actor)

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


class ActorName(Generic[A]):
    """A registered name typed by the actor class behind it, e.g.
    `SESSIONS: ActorName[SessionStore] = ActorName("sessions")`."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def whereis(self) -> pykka.ActorRef[A] | None:
        return whereis(self.name)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"ActorName({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorName) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


def clear() -> None:
    with _lock:
        _names.clear()
