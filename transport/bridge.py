"""The loop/actor bridge: the only way code on the event loop talks to an actor.

`await ask("config", "snapshot")` tells the actor a `Call` and returns when the actor thread
hands back the outcome through `loop.call_soon_threadsafe`; the loop thread never calls a pykka
`.get()` and never awaits a pykka future (architecture §4).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pykka

from actors import registry
from actors.base import Call


class ActorUnavailable(Exception):
    """The actor is not running, died before answering, or did not answer in time."""


DEFAULT_TIMEOUT = 30.0


def _settle(fut: asyncio.Future, result: Any, err: BaseException | None) -> None:
    if fut.done():  # timed out or cancelled meanwhile
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(result)


async def ask(target: str | pykka.ActorRef, method: str, *args: Any,
              timeout: float | None = DEFAULT_TIMEOUT, **kwargs: Any) -> Any:
    """Run `method` on the actor registered as `target` (or the given ref) and await its result."""
    ref = registry.whereis(target) if isinstance(target, str) else target
    if ref is None:
        raise ActorUnavailable(f"{target} is not running")
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()

    def reply(result: Any, err: BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(_settle, fut, result, err)
        except RuntimeError:  # loop already closed: nobody is waiting any more
            pass

    try:
        ref.tell(Call(method, args, kwargs, reply))
    except pykka.ActorDeadError:
        raise ActorUnavailable(f"{target} is not running") from None
    if timeout is None:
        return await fut
    # One timer on the same future: cheaper than wait_for, which wraps it in another task.
    timer = loop.call_later(timeout, _expire, fut, f"{target} did not answer {method} within {timeout:g}s")
    try:
        return await fut
    finally:
        timer.cancel()


def _expire(fut: asyncio.Future, message: str) -> None:
    if not fut.done():
        fut.set_exception(ActorUnavailable(message))


def tell(target: str | pykka.ActorRef, method: str, *args: Any, **kwargs: Any) -> bool:
    """Fire-and-forget `method` on an actor; False when it is not running."""
    ref = registry.whereis(target) if isinstance(target, str) else target
    if ref is None:
        return False
    try:
        ref.tell(Call(method, args, kwargs, None))
    except pykka.ActorDeadError:
        return False
    return True
