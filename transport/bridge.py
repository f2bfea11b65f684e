"""The loop/actor bridge: the only way code on the event loop talks to an actor.

`await ask(CONFIG, ConfigActor.snapshot)` tells the actor a `Call` and returns when the actor
thread hands back the outcome through `loop.call_soon_threadsafe`; the loop thread never calls
a pykka `.get()` and never awaits a pykka future (architecture §4).

Calls are typed as in actors/base.py: the target is an `ActorName[A]` or `ActorRef[A]`, the
method a function of `A`, and the arguments are checked against its signature. A call with a
timeout other than the default 30 s goes through `ask_within(timeout, ...)`; `None` waits
without limit.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Concatenate, Coroutine, ParamSpec, TypeVar

import pykka

from actors.base import Call, Target, send
from actors.registry import ActorName


class ActorUnavailable(Exception):
    """The actor is not running, died before answering, or did not answer in time."""


DEFAULT_TIMEOUT = 30.0

A = TypeVar("A", bound=pykka.Actor)
P = ParamSpec("P")
R = TypeVar("R")


def _settle(fut: asyncio.Future, result: Any, err: BaseException | None) -> None:
    if fut.done():  # timed out or cancelled meanwhile
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(result)


# Plain functions returning the coroutine: awaiting `ask(...)` costs one coroutine, not two.
def ask(target: Target[A], method: Callable[Concatenate[A, P], R],
        /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
    """Run `method` on the actor `target`; await the result (at most 30 s)."""
    return _ask(DEFAULT_TIMEOUT, target, method.__name__, args, kwargs)


def ask_within(timeout: float | None, target: Target[A], method: Callable[Concatenate[A, P], R],
               /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
    """`ask` with its own timeout in seconds; None waits as long as the actor takes."""
    return _ask(timeout, target, method.__name__, args, kwargs)


async def _ask(timeout: float | None, target: Target[Any], name: str, args: tuple, kwargs: dict) -> Any:
    ref = target.whereis() if isinstance(target, ActorName) else target
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
        ref.tell(Call(name, args, kwargs, reply))
    except pykka.ActorDeadError:
        raise ActorUnavailable(f"{target} is not running") from None
    if timeout is None:
        return await fut
    # One timer on the same future: cheaper than wait_for, which wraps it in another task.
    timer = loop.call_later(timeout, _expire, fut, f"{target} did not answer {name} within {timeout:g}s")
    try:
        return await fut
    finally:
        timer.cancel()


def _expire(fut: asyncio.Future, message: str) -> None:
    if not fut.done():
        fut.set_exception(ActorUnavailable(message))


# Fire-and-forget is the same from the loop as from an actor: a tell never waits.
tell = send
