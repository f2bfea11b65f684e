"""AgentActor: one busy session's run queue (architecture §2).

Runs of one session are serial: a turn queues behind the running one. Before starting its
next run the actor asks the agents actor for one of the `agents.defaults.maxConcurrent`
slots and starts the run when granted. The run's provider stream lives in the run's own
thread, so this actor always hears `abort`. The agents actor stops the actor once it has no
run left.

If this actor crashes, `on_failure` ends its runs with a `chat` error (only this session's
runs fail) and tells the agents actor, which starts a fresh actor for the next turn.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import pykka

from actors import testhooks
from actors.agents.run import Run
from actors.base import GatewayActor, send

log = logging.getLogger("openclaw.agent")


class AgentOwner(GatewayActor):
    """What an AgentActor tells the actor that started it (the agents actor, which
    implements these): declared here so this module need not import the agents actor's.
    Told with `send`: when the owner is gone the gateway is stopping, and nobody listens."""

    def want_slot(self, key: str, ref: pykka.ActorRef) -> None:
        raise NotImplementedError

    def release_slot(self, key: str) -> None:
        raise NotImplementedError

    def run_started(self, run_id: str) -> None:
        raise NotImplementedError

    def agent_exited(self, key: str, ref: pykka.ActorRef) -> None:
        raise NotImplementedError


class AgentActor(GatewayActor):
    def __init__(self, key: str, manager: pykka.ActorRef[AgentOwner]) -> None:
        super().__init__()
        self._key = key
        self._manager = manager
        self._queue: deque[Run] = deque()
        self._current: Run | None = None
        self._asked = False  # a slot request is outstanding

    def enqueue(self, run: Run) -> None:
        self._queue.append(run)
        self._next()

    def grant(self) -> None:
        """A slot from the agents actor: start the head of the queue, or give it back."""
        self._asked = False
        if self._current is not None or not self._queue:
            send(self._manager, AgentOwner.release_slot, self._key)
            self._next()
            return
        run = self._queue.popleft()
        marker = testhooks.agent_crash_marker()  # crash-isolation tests only
        if marker and run.spec.message == marker:
            self._queue.appendleft(run)
            raise RuntimeError("agent actor crash requested by the test hook")
        self._current = run
        send(self._manager, AgentOwner.run_started, run.run_id)
        run.start()

    def run_finished(self, run_id: str) -> None:
        if self._current is not None and self._current.run_id == run_id:
            self._current = None
        self._next()

    def abort(self, run_ids: list[str] | None = None) -> list[str]:
        """Stop the running run and drop queued ones (all, or those in `run_ids`)."""
        hit = []
        for run in list(self._queue):
            if run_ids is None or run.run_id in run_ids:
                self._queue.remove(run)
                run.finish(run.outcome("aborted", error="aborted"))
                hit.append(run.run_id)
        current = self._current
        if current is not None and (run_ids is None or current.run_id in run_ids):
            current.cancel("aborted")
            hit.append(current.run_id)
        return hit

    def _next(self) -> None:
        if self._current is None and self._queue and not self._asked:
            self._asked = True
            send(self._manager, AgentOwner.want_slot, self._key, self.actor_ref)

    def on_failure(self, *exc_info: Any) -> None:
        error = exc_info[1] if len(exc_info) > 1 else None
        log.error("agent actor for %s crashed: %s", self._key, error)
        runs = ([self._current] if self._current is not None else []) + list(self._queue)
        self._current = None
        self._queue.clear()
        for run in runs:
            run.cancel("crashed")
            run.finish(run.outcome("error", error=f"agent crashed: {error}", error_kind="unknown"))
        send(self._manager, AgentOwner.agent_exited, self._key, self.actor_ref)

    def on_stop(self) -> None:
        for run in ([self._current] if self._current is not None else []) + list(self._queue):
            run.cancel("aborted")
