"""The agents actor ("agents"): every run of the gateway (architecture §2).

It owns
- one `AgentActor` per busy session (started on the first turn, stopped when its last run
  ended, so idle sessions hold no thread);
- the global concurrency cap `agents.defaults.maxConcurrent`: slots granted first come,
  first served across sessions;
- the run records (`agent.wait` answers runs that ended in the last 10 minutes from
  memory) and the idempotency cache (protocol §18);
- the waiters: `agent` final responses and `agent.wait` calls, answered when a run ends.

Runs end through `run_done`, told by the run itself (its thread, or whoever ended it), so
the slot accounting lives here alone. The active run ids of each session go to the session
store (`set_runs`), which shows them in session rows and sends `sessions.changed`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import msgspec
import pykka

from actors.agents.agent import AgentActor, AgentOwner
from actors.agents.dedupe import DedupeCache
from actors.agents.run import Run, RunOutcome, RunSpec
from actors.base import DEFERRED, Reply, send, tell
from actors.base import answer as _answer
from actors.clock import CLOCK, Timer
from actors.events import EVENT_HUB, EventHub
from actors.registry import ActorName
from actors.sessions.store import SESSIONS, SessionStore

log = logging.getLogger("openclaw.agent")

ENDED_TTL_S = 600.0  # agent.wait answers from memory for runs that ended this recently
ENDED_MAX = 10_000  # ... and at most this many of them, oldest out first (memory under load)
STOP_JOIN_S = 2.0


class RunError(ValueError):
    """A request the agents actor refuses; the message is the client-facing text."""


class Claim(msgspec.Struct, frozen=True):
    """An earlier call with the same idempotency key: in flight, or its outcome."""
    run_id: str
    in_flight: bool
    outcome: RunOutcome | None = None


class _Wait:
    """One pending agent.wait: answered when its run ends, its timer fires, its socket closes
    (`owner`, a connection id; None over HTTP) or the gateway drains."""
    __slots__ = ("run_id", "reply", "owner", "timer")

    def __init__(self, run_id: str, reply: Reply | None, owner: str | None, timer: Timer) -> None:
        self.run_id, self.reply, self.owner, self.timer = run_id, reply, owner, timer


class _Record:
    __slots__ = ("run", "session_key", "state", "dedupe_key", "outcome", "ended_mono", "waiters")

    def __init__(self, run: Run, dedupe_key: str | None) -> None:
        self.run: Run | None = run  # dropped when the run ends: records outlive runs by minutes
        self.session_key = run.spec.session_key
        self.state = "queued"  # → running → ended
        self.dedupe_key = dedupe_key
        self.outcome: RunOutcome | None = None
        self.ended_mono = 0.0
        self.waiters: list[Reply | None] = []


AGENTS: ActorName[AgentManager] = ActorName("agents")


class AgentManager(AgentOwner):
    def __init__(self, max_concurrent: int = 4) -> None:
        super().__init__()
        self._cap = max_concurrent
        self._agents: dict[str, pykka.ActorRef] = {}
        self._pending: dict[str, int] = {}  # session key → runs not yet ended
        self._holders: dict[str, pykka.ActorRef] = {}  # sessions holding a slot
        self._waiting: deque[tuple[str, pykka.ActorRef]] = deque()
        self._runs: dict[str, _Record] = {}
        self._active: dict[str, list[str]] = {}  # session key → run ids not ended, in order
        self._ended: deque[str] = deque()  # run ids in the order they ended
        self._dedupe = DedupeCache()
        self._waits: dict[int, _Wait] = {}  # token → wait, indexed by run and by socket:
        self._waits_by_run: dict[str, set[int]] = {}
        self._waits_by_owner: dict[str, set[int]] = {}
        self._wait_ids = 0
        self._call_waiters: dict[str, list[Reply | None]] = {}  # dedupe key → wait_call replies

    # --- configuration and queries --------------------------------------------------------

    def configure(self, max_concurrent: int) -> None:
        """Hot reload of `agents.defaults.maxConcurrent`; a raise grants waiting runs now."""
        self._cap = max(1, int(max_concurrent))
        self._grant_waiting()

    def active(self, key: str) -> list[str]:
        """Run ids of the session that have not ended: the running one first (runs of a
        session start in the order they were queued), then the queued ones."""
        return list(self._active.get(key, ()))

    def in_flight(self, key: str) -> dict | None:
        """chat.history `inFlightRun`: the streaming run of the session and its text so far."""
        ids = self._active.get(key)
        if not ids:
            return None
        record = self._runs.get(ids[0])
        if record is None or record.state != "running" or record.run is None:
            return None
        return {"runId": ids[0], "text": record.run.text}

    # --- idempotency ----------------------------------------------------------------------

    def claim(self, dedupe_key: str, run_id: str) -> Claim | None:
        """None: the call is new (now in flight); else the earlier call with this key."""
        entry = self._dedupe.claim(dedupe_key, run_id)
        if entry is None:
            return None
        return Claim(entry.run_id, entry.in_flight, entry.payload)

    def release(self, dedupe_key: str) -> None:
        self._dedupe.release(dedupe_key)

    def finish_call(self, dedupe_key: str, payload: Any = None,
                    error: tuple[str, str] | None = None, keep: bool = True) -> None:
        """End a claimed call that is not a run (`send`): its result is cached (`keep`) or the
        claim dropped; callers in `wait_call` get `{"payload", "error"}` either way."""
        if keep:
            self._dedupe.finish(dedupe_key, payload, error)
        else:
            self._dedupe.release(dedupe_key)
        for reply in self._call_waiters.pop(dedupe_key, ()):
            _answer(reply, {"payload": payload, "error": error})

    def wait_call(self, dedupe_key: str) -> Any:
        """A repeat of a claimed call: `{"payload", "error"}` of the first one, when it ends."""
        entry = self._dedupe.get(dedupe_key)
        if entry is None:
            return {"payload": None, "error": ("UNAVAILABLE", "the earlier call was dropped")}
        if not entry.in_flight:
            return {"payload": entry.payload, "error": entry.error}
        self._call_waiters.setdefault(dedupe_key, []).append(self._reply)
        return DEFERRED

    # --- runs -----------------------------------------------------------------------------

    def submit(self, spec: RunSpec, dedupe_key: str | None = None) -> dict:
        """Queue a run on its session's agent actor; returns at once."""
        current = self._runs.get(spec.run_id)
        if current is not None and current.state != "ended":
            raise RunError(f"run {spec.run_id} is already active")
        me = self.actor_ref
        run = Run(spec, lambda outcome: send(me, AgentManager.run_done, outcome))
        self._runs[spec.run_id] = _Record(run, dedupe_key)
        key = spec.session_key
        self._active.setdefault(key, []).append(spec.run_id)
        self._pending[key] = self._pending.get(key, 0) + 1
        tell(self._agent(key), AgentActor.enqueue, run)
        self._tell_store(key, None)
        return {"runId": spec.run_id, "status": "started"}

    def abort(self, key: str, run_id: str | None = None) -> dict:
        """chat.abort (protocol §14.3)."""
        if run_id is not None:
            record = self._runs.get(run_id)
            if record is not None and record.session_key != key:
                raise RunError("runId does not match sessionKey")
            if record is None or record.state == "ended":
                return {"ok": True, "aborted": False, "runIds": []}
            ids = [run_id]
        else:
            ids = self.active(key)
        ref = self._agents.get(key)
        if not ids or ref is None:
            return {"ok": True, "aborted": False, "runIds": []}
        tell(ref, AgentActor.abort, ids)
        return {"ok": True, "aborted": True, "runIds": ids}

    def result(self, run_id: str) -> Any:
        """The outcome of a run, answered when it ends (the `agent` final response)."""
        record = self._runs.get(run_id)
        if record is None:
            raise RunError(f"unknown run: {run_id}")
        if record.outcome is not None:
            entry = self._dedupe.get(record.dedupe_key) if record.dedupe_key else None
            return entry.payload if entry is not None and not entry.in_flight else record.outcome
        record.waiters.append(self._reply)
        return DEFERRED

    def wait(self, run_id: str, timeout_ms: int = 30_000, owner: str | None = None) -> Any:
        """agent.wait (protocol §15.3): the run's end, or `timeout` after `timeout_ms`; an
        unknown run id waits too, in case it starts. `owner` is the socket whose close
        (`drop_waits`) ends the wait early."""
        self._prune()
        record = self._runs.get(run_id)
        if record is not None and record.outcome is not None:
            return wait_result(record.outcome)
        if timeout_ms <= 0:
            return {"runId": run_id, "status": "timeout"}
        self._wait_ids += 1
        token = self._wait_ids
        me = self.actor_ref
        timer = CLOCK.call_later(timeout_ms / 1000, lambda: send(me, AgentManager.wait_expired, token))
        self._waits[token] = _Wait(run_id, self._reply, owner, timer)
        self._waits_by_run.setdefault(run_id, set()).add(token)
        if owner is not None:
            self._waits_by_owner.setdefault(owner, set()).add(token)
        return DEFERRED

    def wait_count(self) -> int:
        """agent.wait calls not answered yet (admin `status.requests.agentWaits`)."""
        return len(self._waits)

    def wait_expired(self, token: int) -> None:
        wait = self._pop_wait(token)
        if wait is not None:
            _answer(wait.reply, {"runId": wait.run_id, "status": "timeout"})

    def drop_waits(self, owner: str) -> None:
        """The socket `owner` closed: its waits end now, not at their timeout. They are
        answered (`timeout`) so the loop side's pending futures settle too."""
        for token in list(self._waits_by_owner.get(owner, ())):
            self.wait_expired(token)

    def end_waits(self) -> None:
        """The gateway drains (stop or restart): every wait answers `timeout` now, so the drain
        never spends its budget on them (the runs themselves may go on)."""
        for token in list(self._waits):
            self.wait_expired(token)

    def _pop_wait(self, token: int) -> _Wait | None:
        wait = self._waits.pop(token, None)
        if wait is None:
            return None
        wait.timer.cancel()
        for index, key in ((self._waits_by_run, wait.run_id), (self._waits_by_owner, wait.owner)):
            if key is None:
                continue
            tokens = index.get(key)
            if tokens is not None:
                tokens.discard(token)
                if not tokens:
                    del index[key]
        return wait

    # --- told by agent actors and runs ----------------------------------------------------

    def want_slot(self, key: str, ref: pykka.ActorRef) -> None:
        self._waiting.append((key, ref))
        self._grant_waiting()

    def release_slot(self, key: str) -> None:
        self._holders.pop(key, None)
        self._grant_waiting()

    def run_started(self, run_id: str) -> None:
        record = self._runs.get(run_id)
        if record is not None and record.state == "queued":
            record.state = "running"
            self._tell_store(record.session_key, "run-start")

    def run_done(self, outcome: RunOutcome) -> None:
        record = self._runs.get(outcome.run_id)
        if record is None or record.state == "ended":
            return
        key = outcome.session_key
        if record.state == "running":
            self._holders.pop(key, None)
        # The record keeps what agent.wait needs; the reply text lives in the dedupe cache.
        record.state, record.ended_mono = "ended", time.monotonic()
        record.outcome = msgspec.structs.replace(outcome, text="")
        record.run = None
        self._ended.append(outcome.run_id)
        active = self._active.get(key, [])
        if outcome.run_id in active:
            active.remove(outcome.run_id)
        if not active:
            self._active.pop(key, None)
        if record.dedupe_key is not None:
            self._dedupe.finish(record.dedupe_key, outcome)
        answers: list[tuple[Reply | None, Any]] = [(reply, outcome) for reply in record.waiters]
        record.waiters.clear()
        for token in list(self._waits_by_run.get(outcome.run_id, ())):
            wait = self._pop_wait(token)
            if wait is not None:
                answers.append((wait.reply, wait_result(outcome)))
        if answers:
            _after_events(answers)
        self._tell_store(key, "run-end")
        self._pending[key] = self._pending.get(key, 1) - 1
        ref = self._agents.get(key)
        if self._pending[key] <= 0:
            self._pending.pop(key, None)
            if ref is not None:
                del self._agents[key]
                _stop(ref)
        elif ref is not None:
            send(ref, AgentActor.run_finished, outcome.run_id)
        self._grant_waiting()
        self._prune()

    def agent_exited(self, key: str, ref: pykka.ActorRef) -> None:
        """An agent actor crashed: its runs have ended (run_done); forget it and its slot."""
        if self._agents.get(key) is ref:
            del self._agents[key]
        self._waiting = deque((k, r) for k, r in self._waiting if r is not ref)
        if self._holders.get(key) is ref:
            del self._holders[key]
        self._grant_waiting()

    # --- internals ------------------------------------------------------------------------

    def _agent(self, key: str) -> pykka.ActorRef:
        ref = self._agents.get(key)
        if ref is None or not ref.is_alive():
            ref = AgentActor.start(key, self.actor_ref)
            self._agents[key] = ref
        return ref

    def _grant_waiting(self) -> None:
        while self._waiting and len(self._holders) < self._cap:
            key, ref = self._waiting.popleft()
            if not ref.is_alive():
                continue
            self._holders[key] = ref
            try:
                tell(ref, AgentActor.grant)
            except pykka.ActorDeadError:
                del self._holders[key]

    def _tell_store(self, key: str, reason: str | None) -> None:
        send(SESSIONS, SessionStore.set_runs, key, self.active(key), reason)

    def _prune(self) -> None:
        cutoff = time.monotonic() - ENDED_TTL_S
        while self._ended:
            record = self._runs.get(self._ended[0])
            if record is not None and record.state == "ended" and (
                    record.ended_mono >= cutoff and len(self._ended) <= ENDED_MAX):
                break
            run_id = self._ended.popleft()
            if record is not None and record.state == "ended":
                del self._runs[run_id]

    def on_stop(self) -> None:
        runs = [r.run for r in self._runs.values() if r.run is not None]
        for run in runs:
            run.cancel("aborted")
        for ref in self._agents.values():
            _stop(ref)
        deadline = time.monotonic() + STOP_JOIN_S
        for run in runs:
            run.join(max(0.0, deadline - time.monotonic()))
        self.end_waits()
        for replies in self._call_waiters.values():
            for reply in replies:
                _answer(reply, {"payload": None, "error": ("UNAVAILABLE", "gateway stopping")})
        self._call_waiters.clear()
        for record in self._runs.values():  # their run_done can no longer reach us
            for reply in record.waiters:
                _answer(reply, record.outcome or record.run.outcome(  # type: ignore[union-attr]
                    "aborted", error="gateway stopping"))
            record.waiters.clear()


def wait_result(outcome: RunOutcome) -> dict:
    """agent.wait's answer for an ended run."""
    out: dict[str, Any] = {"runId": outcome.run_id,
                           "status": "ok" if outcome.status == "ok" else "error",
                           "startedAt": outcome.started_at, "endedAt": outcome.ended_at}
    if outcome.status != "ok":
        out["error"] = outcome.error or outcome.status
    return out


def _after_events(answers: list[tuple[Reply | None, Any]]) -> None:
    """Answer through the EventHub's mailbox, after the run's terminal events: an `agent`
    final response never overtakes the run's last `chat`/`agent` events (protocol §15.2)."""
    def deliver() -> None:
        for reply, value in answers:
            _answer(reply, value)

    if not send(EVENT_HUB, EventHub.after_published, deliver):
        deliver()


def _stop(ref: pykka.ActorRef) -> None:
    try:
        ref.stop(block=False)
    except pykka.ActorDeadError:
        pass
