"""The restart scheduler (cli-config §7.6, protocol §11): coalescing and cooldown of
in-process restart requests. Loop-side only: every method runs on the event loop thread.

A request while another is pending joins it (`coalesced: true`, reasons added). A cycle starts
no sooner than `cooldownMs` after the end of the previous restart (start-up does not count);
a request inside that window is scheduled for its end and reports the wait as `delayMs`.
`force` skips the cooldown (the gateway also skips the drain for it).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable

RESTART_EXPECTED_MS = 5000


@dataclass
class RestartRequest:
    reasons: list[str]
    drain_ms: int | None = None
    force: bool = False
    due: float = 0.0  # monotonic time the cycle may start
    paths: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return ", ".join(dict.fromkeys(self.reasons)) or "restart"


class RestartScheduler:
    """`request(...)` schedules; `wake` (given by the Gateway) is called when a request is due;
    the Gateway then `take()`s it and calls `finished()` when the cycle is over."""

    def __init__(self, wake: Callable[[], None], cooldown_ms: Callable[[], int]) -> None:
        self._wake, self._cooldown_ms = wake, cooldown_ms
        self._pending: RestartRequest | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._running = False
        self._last_end: float | None = None  # monotonic end of the last completed restart

    @property
    def pending(self) -> RestartRequest | None:
        return self._pending

    def request(self, reason: str, delay_ms: int = 0, drain_ms: int | None = None,
                force: bool = False, paths: list[str] | None = None) -> dict:
        now = time.monotonic()
        if self._pending is not None:
            pending = self._pending
            pending.reasons.append(reason)
            pending.paths += [p for p in paths or () if p not in pending.paths]
            if force and not pending.force:
                # A forced request does not wait for the cooldown another one waits for.
                pending.force = True
                pending.due = min(pending.due, now + delay_ms / 1000)
                self._arm()
            if drain_ms is not None:
                pending.drain_ms = drain_ms if pending.drain_ms is None else min(pending.drain_ms, drain_ms)
            return self._result(pending, now, coalesced=True)
        due = now + delay_ms / 1000
        if not force:
            due = max(due, self._cooldown_end(now))
        self._pending = RestartRequest([reason], drain_ms, force, due, list(paths or ()))
        self._arm()
        return self._result(self._pending, now, coalesced=False)

    def take(self) -> RestartRequest | None:
        """The due request, now running; None if nothing is due."""
        pending = self._pending
        if pending is None or self._running or pending.due > time.monotonic() + 0.001:
            return None
        self._pending, self._running = None, True
        return pending

    def finished(self, restarted: bool) -> None:
        """The cycle is over; an aborted one (invalid config, bind failure) starts no cooldown."""
        self._running = False
        if restarted:
            self._last_end = time.monotonic()
        if self._pending is not None:
            if not self._pending.force:
                self._pending.due = max(self._pending.due, self._cooldown_end(time.monotonic()))
            self._arm()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _cooldown_end(self, now: float) -> float:
        if self._running:  # the cycle under way ends at an unknown time: count from now
            return now + self._cooldown_ms() / 1000
        if self._last_end is None:
            return now
        return self._last_end + self._cooldown_ms() / 1000

    def _arm(self) -> None:
        self.cancel()
        if self._pending is None or self._running:
            return  # finished() arms it once the running cycle is over
        delay = max(0.0, self._pending.due - time.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._wake)

    @staticmethod
    def _result(req: RestartRequest, now: float, coalesced: bool) -> dict:
        return {"ok": True, "scheduled": True, "delayMs": max(0, round((req.due - now) * 1000)),
                "coalesced": coalesced, "restartExpectedMs": RESTART_EXPECTED_MS}
