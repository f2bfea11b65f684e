"""The base class of every gateway actor, and the typed calls that let code outside an actor
call it without ever blocking on a pykka future.

pykka 4 futures have no completion callbacks, so the loop side cannot await them without
blocking. Instead it tells the actor a `Call` that carries a `reply` callable; the actor runs
the method in its own thread and hands the outcome to `reply`, which the caller
(transport/bridge.py) turns into an asyncio future result with `call_soon_threadsafe`.

Calls are typed: a caller names the method by its function object, never by a string, and
the target by a typed `ActorName[A]` (actors/registry.py) or an `ActorRef[A]`:

    send(EVENT_HUB, EventHub.publish, "chat", payload)          # fire and forget, False if down
    tell(ref, AgentActor.grant)                              # as ActorRef.tell: may raise
    tell_with_reply(ref, reply, ToolExecutor.invoke, req)    # the answer goes to `reply`
    call_sync(store, SessionStore.append, key, message)      # worker threads only
    await bridge.ask(SESSIONS, SessionStore.row, key)        # the event loop

The method parameter is `Callable[Concatenate[A, P], R]` and the call's arguments are
`P.args`/`P.kwargs`, so a type checker rejects a misspelt method, a method of another actor,
or wrong arguments, and infers the answer's type `R`. A timeout cannot share the keyword
space of `P.kwargs`, so calls with a timeout other than the default take it first:
`call_sync_within(5.0, ref, ...)`, `bridge.ask_within(5.0, NAME, ...)`. The `Call` still
carries the method's name (dispatched with `getattr`, so a subclass override is honoured and
the message stays plain data), but it is only built here, from a method object.

Supervision hooks (used by actors/supervisor.py): while a supervisor runs a child's factory it
publishes a `Supervision` handshake in a context variable; the first GatewayActor constructed
in that factory claims it, so a child needs no extra constructor argument. The claimed actor
then confirms the end of its `on_start` (the start barrier) and, when its thread ends for any
reason, tells its supervisor a `ChildExited`.

Why three private pykka methods are overridden (`_actor_loop_setup`, `_actor_loop`,
`_handle_failure`) rather than the public hooks: pykka's public hooks do not cover these
three moments.
- The start barrier must fire right after `on_start` returns or raises. No public hook runs
  then, and when `on_start` raises pykka calls neither `on_failure` nor `on_stop`; wrapping
  every subclass's `on_start` would be the same coupling, hidden.
- The exit report must come after the actor's last cleanup, whichever way it ended: pykka
  calls `on_stop` on a normal stop but `on_failure` only for a failed `tell`-ed message, and
  neither after a failing `on_start`, nor a second time when `on_stop`/`on_failure` raise.
  Only the end of `_actor_loop` follows all of them.
- The exit reason must be the first abnormal error, and every abnormal path (on_start, a
  message, on_failure, on_stop) goes through `_handle_failure` alone.
Public hooks in subclasses stay free for the actors' own use (no `super()` call to forget).
An import-time check below fails loudly if a pykka upgrade renames the private methods.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from types import TracebackType
from typing import Any, Callable, Concatenate, Iterator, ParamSpec, TypeVar

import msgspec
import pykka

from actors.registry import ActorName

log = logging.getLogger("openclaw.actors")

Reply = Callable[[Any, "BaseException | None"], None]

A = TypeVar("A", bound=pykka.Actor)
P = ParamSpec("P")
R = TypeVar("R")

# An actor or a registered name for one; calls through it are checked against A's methods.
Target = ActorName[A] | pykka.ActorRef[A]


class Call(msgspec.Struct, frozen=True):
    """Run `method(*args, **kwargs)` on the actor and pass the outcome to `reply`.

    Built only by the typed calls below and in transport/bridge.py, from a method object:
    `method` is that function's name."""

    method: str
    args: tuple = ()
    kwargs: dict = {}
    reply: Reply | None = None


class _Deferred:
    """Returned by a `Call` method that keeps `self._reply` to answer later (e.g. when a run
    ends), instead of answering now."""

    def __repr__(self) -> str:
        return "DEFERRED"


DEFERRED: Any = _Deferred()


class ChildExited(msgspec.Struct, frozen=True):
    """Told by a supervised actor to its supervisor when its thread ends, normally or not."""

    id: str
    ref: Any  # the pykka.ActorRef that ended; a restarted child has a new one
    reason: str  # "normal", or "ExceptionType: message" for an abnormal exit
    abnormal: bool


class Supervision:
    """The link between one child instance and its supervisor.

    Created by the supervisor for each start attempt, claimed by the child's constructor,
    and read back by the supervisor to wait for the end of the child's `on_start`.
    A child reads `self._supervision.child_id` / `.supervisor` if it needs them.
    """

    def __init__(self, supervisor: pykka.ActorRef, child_id: str) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        self.child_urn: str | None = None
        self.start_error: BaseException | None = None
        self._started = threading.Event()

    def claim(self, actor_urn: str) -> bool:
        """Bind this handshake to the first actor built in the factory; later ones stay unsupervised."""
        # Only the supervisor's own thread sees the context variable, so no lock is needed.
        if self.child_urn is not None:
            return False
        self.child_urn = actor_urn
        return True

    def confirm_start(self, error: BaseException | None) -> None:
        if not self._started.is_set():
            self.start_error = error
            self._started.set()

    def wait_started(self, timeout: float | None) -> bool:
        """True once the child's on_start has finished (check `start_error` for how)."""
        return self._started.wait(timeout)


_pending_supervision: contextvars.ContextVar[Supervision | None] = contextvars.ContextVar(
    "openclaw_pending_supervision", default=None)


@contextlib.contextmanager
def supervising(supervision: Supervision) -> Iterator[None]:
    """Offer `supervision` to the actor constructed inside the block (the child's factory)."""
    token = _pending_supervision.set(supervision)
    try:
        yield
    finally:
        _pending_supervision.reset(token)


def exit_reason(error: BaseException | None) -> str:
    return "normal" if error is None else f"{type(error).__name__}: {error}"


# The hooks below override three private pykka methods (pykka 4.x); fail at import, not at the
# first crash, if a pykka upgrade renames them.
for _name in ("_actor_loop", "_actor_loop_setup", "_handle_failure"):
    if not callable(getattr(pykka.ThreadingActor, _name, None)):
        raise ImportError(f"pykka.ThreadingActor.{_name} is gone: actors/base.py supervision "
                          "hooks need updating for this pykka version")
del _name


class GatewayActor(pykka.ThreadingActor):
    """An actor that answers `Call` messages; an exception inside a call goes back to the
    caller and leaves the actor running, like a pykka ask.

    When constructed inside a supervisor's child factory it is supervised: it confirms its
    start and reports its exit (`ChildExited`) to the supervisor by `tell`, never by ask.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pending = _pending_supervision.get()
        self._supervision: Supervision | None = (
            pending if pending is not None and pending.claim(self.actor_urn) else None)
        self._exit_error: BaseException | None = None
        self._reply: Reply | None = None  # the reply of the Call being handled, for DEFERRED

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
            self._reply = call.reply
            try:
                result, err = getattr(self, call.method)(*call.args, **call.kwargs), None
            except Exception as exc:  # noqa: BLE001 - the caller gets it
                result, err = None, exc
            finally:
                self._reply = None
            if result is DEFERRED and err is None:
                return
        if call.reply is not None:
            try:
                call.reply(result, err)
            except Exception:  # noqa: BLE001 - a dead caller must not crash the actor
                log.debug("reply to %s.%s failed", type(self).__name__, call.method, exc_info=True)
        elif err is not None:
            raise err

    # -- supervision hooks (pykka internals; see the import-time check above) ----------------

    def _handle_failure(self, exception_type: type[BaseException] | None,
                        exception_value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        # pykka funnels every abnormal exit through here (on_start, a tell-ed message,
        # on_failure, on_stop), unlike on_failure, which it skips for on_start and on_stop.
        if self._exit_error is None:
            self._exit_error = exception_value or RuntimeError("unknown failure")
        super()._handle_failure(exception_type, exception_value, traceback)

    def _actor_loop_setup(self) -> None:
        super()._actor_loop_setup()
        if self._supervision is not None:
            self._supervision.confirm_start(self._exit_error)

    def _actor_loop(self) -> None:
        try:
            super()._actor_loop()
        finally:
            # Reported after on_stop/on_failure ran, so the supervisor never restarts a child
            # whose previous instance is still cleaning up.
            self._report_exit()

    def _report_exit(self) -> None:
        supervision = self._supervision
        if supervision is None:
            return
        error = self._exit_error
        supervision.confirm_start(error or RuntimeError("stopped before on_start finished"))
        try:
            supervision.supervisor.tell(ChildExited(
                id=supervision.child_id, ref=self.actor_ref, reason=exit_reason(error),
                abnormal=error is not None))
        except pykka.ActorDeadError:
            pass  # the supervisor is gone: nobody left to restart us


def answer(reply: Reply | None, value: Any) -> None:
    """Hand `value` to a kept `reply` (a DEFERRED answer); a caller that went away is fine."""
    if reply is None:
        return
    try:
        reply(value, None)
    except Exception:  # noqa: BLE001 - the caller went away
        pass


def tell(ref: pykka.ActorRef[A], method: Callable[Concatenate[A, P], Any],
         /, *args: P.args, **kwargs: P.kwargs) -> None:
    """Fire-and-forget `method` on an actor; raises pykka.ActorDeadError, as `ActorRef.tell`."""
    ref.tell(Call(method.__name__, args, kwargs, None))


def tell_with_reply(ref: pykka.ActorRef[A], reply: Reply, method: Callable[Concatenate[A, P], Any],
                    /, *args: P.args, **kwargs: P.kwargs) -> None:
    """Run `method` on an actor and hand the outcome to `reply` (called in the actor's thread,
    or later for a DEFERRED answer); raises pykka.ActorDeadError, as `ActorRef.tell`."""
    ref.tell(Call(method.__name__, args, kwargs, reply))


def send(target: Target[A], method: Callable[Concatenate[A, P], Any],
         /, *args: P.args, **kwargs: P.kwargs) -> bool:
    """Fire-and-forget `method` on an actor or a registered name; False when it is not running."""
    ref = target.whereis() if isinstance(target, ActorName) else target
    if ref is None:
        return False
    try:
        ref.tell(Call(method.__name__, args, kwargs, None))
    except pykka.ActorDeadError:
        return False
    return True


class CallTimeout(Exception):
    """`call_sync` got no answer in time."""


DEFAULT_SYNC_TIMEOUT = 30.0


def call_sync(ref: pykka.ActorRef[A], method: Callable[Concatenate[A, P], R],
              /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Call an actor and wait (at most 30 s) for the outcome. Only for worker threads (a run,
    a channel host's reader): never on the event loop and never inside another actor's
    message handler. Raises pykka.ActorDeadError when the actor is gone."""
    return _call_sync(DEFAULT_SYNC_TIMEOUT, ref, method.__name__, args, kwargs)


def call_sync_within(timeout: float, ref: pykka.ActorRef[A], method: Callable[Concatenate[A, P], R],
                     /, *args: P.args, **kwargs: P.kwargs) -> R:
    """`call_sync` with its own timeout in seconds."""
    return _call_sync(timeout, ref, method.__name__, args, kwargs)


def _call_sync(timeout: float, ref: pykka.ActorRef[Any], name: str, args: tuple, kwargs: dict) -> Any:
    done = threading.Event()
    box: list = []

    def reply(result: Any, err: BaseException | None) -> None:
        box.append((result, err))
        done.set()

    ref.tell(Call(name, args, kwargs, reply))
    if not done.wait(timeout):
        raise CallTimeout(f"{name} got no answer within {timeout:g}s")
    result, err = box[0]
    if err is not None:
        raise err
    return result
