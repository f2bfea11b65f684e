"""The base class of every gateway actor, and the one message that lets code outside the
actor system call an actor without ever blocking on a pykka future.

pykka 4 futures have no completion callbacks, so the loop side cannot await them without
blocking. Instead it tells the actor a `Call` that carries a `reply` callable; the actor runs
the named method in its own thread and hands the outcome to `reply`, which the caller
(transport/bridge.py) turns into an asyncio future result with `call_soon_threadsafe`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import msgspec
import pykka

log = logging.getLogger("openclaw.actors")

Reply = Callable[[Any, "BaseException | None"], None]


class Call(msgspec.Struct, frozen=True):
    """Run `method(*args, **kwargs)` on the actor and pass the outcome to `reply`."""

    method: str
    args: tuple = ()
    kwargs: dict = {}
    reply: Reply | None = None


class GatewayActor(pykka.ThreadingActor):
    """An actor that answers `Call` messages; an exception inside a call goes back to the
    caller and leaves the actor running, like a pykka ask."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Call):
            return self._run_call(message)
        return self.handle(message)

    def handle(self, message: Any) -> Any:
        """Hook for subclasses that take plain messages."""
        raise TypeError(f"{type(self).__name__} does not handle {type(message).__name__}")

    def _run_call(self, call: Call) -> None:
        if call.method.startswith("_"):
            err: BaseException | None = AttributeError(f"{call.method} is private")
            result = None
        else:
            try:
                result, err = getattr(self, call.method)(*call.args, **call.kwargs), None
            except Exception as exc:  # noqa: BLE001 - the caller gets it
                result, err = None, exc
        if call.reply is not None:
            try:
                call.reply(result, err)
            except Exception:  # noqa: BLE001 - a dead caller must not crash the actor
                log.debug("reply to %s.%s failed", type(self).__name__, call.method, exc_info=True)
        elif err is not None:
            raise err
