"""OTP-style supervision for pykka actors, which have none of their own (architecture §2).

A `Supervisor` starts its children in spec order, each start confirmed before the next (the
startup barrier), stops them in reverse order, and restarts a child that exits according to
its restart policy (`one_for_one`). Past `max_restarts` restarts within `period` seconds it
gives up: it stops every child, then escalates: a nested supervisor exits abnormally so its
parent sees it; a root supervisor calls `on_escalate(reason)`.

How children are linked: the supervisor runs each child's factory inside
`base.supervising(...)`; the GatewayActor constructed there claims that handshake, so the
factory is a plain `lambda: MyActor.start(...)`. The child confirms the end of its `on_start`
through the handshake and `tell`s the supervisor a `ChildExited` when its thread ends.
Children never ask their supervisor anything, so the supervisor may block on their start and
stop (architecture §4).

Restart intensity counts every restart of every child of one supervisor, as OTP does.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import msgspec
import pykka

from actors import registry
from actors.base import ChildExited, GatewayActor, Supervision, exit_reason, supervising

__all__ = ["ChildExited", "ChildSpec", "Escalation", "RestartPolicy", "StartError", "Supervisor"]

log = logging.getLogger("openclaw.supervisor")

RestartPolicy = Literal["permanent", "transient", "temporary"]
_POLICIES = ("permanent", "transient", "temporary")


class ChildSpec(msgspec.Struct, frozen=True):
    """One child: `start` builds and starts the actor and returns its ref.

    `start_timeout` bounds the wait for the child's `on_start` (a hung start must not hang
    the gateway's barrier forever); `shutdown_timeout` bounds the wait for its stop.
    """

    id: str
    start: Callable[[], pykka.ActorRef]
    restart: RestartPolicy = "permanent"
    shutdown_timeout: float = 5.0
    start_timeout: float = 30.0

    def __post_init__(self) -> None:
        # msgspec does not validate on construction; a typo here would silently mean "never".
        if self.restart not in _POLICIES:
            raise ValueError(f"child {self.id!r}: restart must be one of {_POLICIES}, not {self.restart!r}")
        if self.shutdown_timeout <= 0 or self.start_timeout <= 0:
            raise ValueError(f"child {self.id!r}: timeouts must be positive")


class StartError(RuntimeError):
    """A child did not start. `child_id` names it; for a nested supervisor the message chains
    down to the grandchild that failed ("child 'channels' failed to start: child 'irc' ...")."""

    def __init__(self, child_id: str, reason: str) -> None:
        super().__init__(f"child {child_id!r} failed to start: {reason}")
        self.child_id = child_id
        self.reason = reason


class Escalation(RuntimeError):
    """Raised inside a nested supervisor that gave up, so that it exits abnormally."""


class _Restart(msgspec.Struct, frozen=True):
    """Told to itself to retry a restart whose start failed, letting other messages in between."""

    id: str
    reason: str


@dataclass
class _Child:
    spec: ChildSpec
    ref: pykka.ActorRef | None = None  # the running instance; None while stopped or stopping
    restarts: int = 0


class Supervisor(GatewayActor):
    """A `one_for_one` supervisor. Start it like any actor, then:

    - as a root: call `start_children()` (through the bridge, or a proxy off the loop thread);
    - as a child of another supervisor: nothing; it starts its children in its own `on_start`,
      so the parent's barrier covers the whole subtree.

    `on_escalate(reason)` (root only) runs in the supervisor's thread just before it stops:
    it must not block or ask the supervisor; the gateway uses it to schedule a non-zero exit.
    """

    def __init__(self, children: Sequence[ChildSpec], *, max_restarts: int = 3,
                 period: float = 5.0, on_escalate: Callable[[str], None] | None = None,
                 name: str | None = None) -> None:
        super().__init__()
        ids = [spec.id for spec in children]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate child ids in {ids}")
        if max_restarts < 0 or period <= 0:
            raise ValueError("max_restarts must be >= 0 and period > 0")
        self._children: dict[str, _Child] = {spec.id: _Child(spec) for spec in children}
        self._max_restarts = max_restarts
        self._period = period
        self._on_escalate = on_escalate
        self._restart_times: deque[float] = deque()
        self._active = False  # between a successful start_children() and stop_children()
        sup = self._supervision
        self._name = name or (sup.child_id if sup is not None else "root supervisor")

    # -- lifecycle -------------------------------------------------------------------------

    def on_start(self) -> None:
        if self._supervision is not None:
            self.start_children()

    def on_stop(self) -> None:
        self.stop_children()

    def on_failure(self, *exc_info: Any) -> None:
        # Children must not outlive their supervisor, whatever killed it.
        self.stop_children()

    # -- public API (also reachable as Call methods) ----------------------------------------

    def start_children(self) -> list[str]:
        """Start every stopped child in spec order, each confirmed before the next.

        On a failure the children started here are stopped in reverse order and a
        `StartError` naming the failed child is raised. Returns the ids started.
        """
        started: list[str] = []
        for child in self._children.values():
            if child.ref is not None:
                continue
            try:
                self._start_child(child)
            except StartError:
                self._stop_ids(reversed(started))
                raise
            started.append(child.spec.id)
        self._active = True
        return started

    def stop_children(self) -> None:
        """Stop the running children in reverse start order, each within its shutdown timeout."""
        self._active = False  # a pending restart retry must not bring one back
        self._stop_ids(reversed(list(self._children)))

    def which_children(self) -> list[dict[str, Any]]:
        return [{"id": cid, "alive": child.ref is not None and child.ref.is_alive(),
                 "restarts": child.restarts, "restart": child.spec.restart}
                for cid, child in self._children.items()]

    def restart_count(self, child_id: str) -> int:
        return self._child(child_id).restarts

    # -- messages ---------------------------------------------------------------------------

    def handle(self, message: Any) -> Any:
        if isinstance(message, ChildExited):
            return self._on_child_exited(message)
        if isinstance(message, _Restart):
            child = self._children.get(message.id)
            if child is not None and child.ref is None and self._active:
                return self._restart(child, message.reason)
            return None
        return super().handle(message)

    def _on_child_exited(self, msg: ChildExited) -> None:
        child = self._children.get(msg.id)
        # A mismatched ref is an instance we stopped ourselves (ref cleared first) or an old one.
        if child is None or child.ref is None or child.ref.actor_urn != msg.ref.actor_urn:
            return
        child.ref = None
        registry.unregister(msg.id, msg.ref)
        if not self._active or not self._wants_restart(child.spec.restart, msg.abnormal):
            log.info("%s: child %r exited (%s); %s: not restarted",
                     self._name, msg.id, msg.reason, child.spec.restart)
            return
        self._restart(child, msg.reason)

    @staticmethod
    def _wants_restart(policy: RestartPolicy, abnormal: bool) -> bool:
        return policy == "permanent" or (policy == "transient" and abnormal)

    # -- restarts and escalation ------------------------------------------------------------

    def _restart(self, child: _Child, reason: str) -> None:
        cid = child.spec.id
        if not self._within_intensity():
            self._give_up(f"child {cid!r} needed more than {self._max_restarts} restarts "
                          f"in {self._period:g}s; last exit: {reason}")
            return
        child.restarts += 1
        log.warning("%s: restarting child %r (restart %d) after: %s",
                    self._name, cid, child.restarts, reason)
        try:
            self._start_child(child)
        except StartError as exc:
            # Retry through the inbox: the failed attempt counts toward the intensity, so a
            # child that can no longer start ends in escalation, not in a loop.
            self.actor_ref.tell(_Restart(cid, exc.reason))

    def _within_intensity(self) -> bool:
        now = time.monotonic()
        self._restart_times.append(now)
        while now - self._restart_times[0] > self._period:
            self._restart_times.popleft()
        return len(self._restart_times) <= self._max_restarts

    def _give_up(self, reason: str) -> None:
        log.error("%s gives up: %s", self._name, reason)
        self.stop_children()
        if self._supervision is not None:
            # We are inside a tell-ed message: raising makes pykka stop us abnormally, and our
            # exit report carries the reason to the parent.
            raise Escalation(f"{self._name}: {reason}")
        try:
            if self._on_escalate is not None:
                self._on_escalate(reason)
        except Exception:  # noqa: BLE001 - we stop anyway; the traceback is the clue
            log.exception("%s: on_escalate failed", self._name)
        self.actor_ref.stop(block=False)

    # -- starting and stopping one child ----------------------------------------------------

    def _start_child(self, child: _Child) -> None:
        spec = child.spec
        handshake = Supervision(self.actor_ref, spec.id)
        with supervising(handshake):
            try:
                ref = spec.start()
            except Exception as exc:  # noqa: BLE001 - reported as this child's start failure
                raise StartError(spec.id, f"factory raised {exit_reason(exc)}") from exc
        if not isinstance(ref, pykka.ActorRef) or ref.actor_urn != handshake.child_urn:
            # A programming error in the spec; whatever it returned may not be ours to stop.
            raise StartError(spec.id, "the factory must return the ref of the GatewayActor "
                                      "it started")
        self._await_start(spec, ref, handshake)
        child.ref = ref
        registry.register(spec.id, ref)

    def _await_start(self, spec: ChildSpec, ref: pykka.ActorRef, handshake: Supervision) -> None:
        if not handshake.wait_started(spec.start_timeout):
            ref.stop(block=False)  # it stops once on_start returns; we do not wait for that
            raise StartError(spec.id, f"on_start did not finish within {spec.start_timeout:g}s")
        if handshake.start_error is not None:
            raise StartError(spec.id, _describe(handshake.start_error)) from handshake.start_error

    def _stop_ids(self, ids: Any) -> None:
        for cid in ids:
            self._stop_child(self._children[cid])

    def _stop_child(self, child: _Child) -> None:
        ref, child.ref = child.ref, None  # cleared first, so its exit report is ignored
        if ref is None:
            return
        registry.unregister(child.spec.id, ref)
        try:
            ref.stop(block=True, timeout=child.spec.shutdown_timeout)
        except pykka.Timeout:
            log.warning("%s: child %r did not stop within %gs; giving up on it",
                        self._name, child.spec.id, child.spec.shutdown_timeout)

    def _child(self, child_id: str) -> _Child:
        try:
            return self._children[child_id]
        except KeyError:
            raise KeyError(f"{self._name} has no child {child_id!r}") from None


def _describe(error: BaseException) -> str:
    """A nested supervisor's StartError already names the failing grandchild: keep that text."""
    return str(error) if isinstance(error, StartError) else exit_reason(error)
