"""One timer thread for the whole process: run deadlines and delta flushes (actors/agents/run.py).

pykka actors have no timers, and a `threading.Timer` per run (or per 150 ms delta window)
would start a thread each time. `CLOCK.call_later(delay, fn)` queues `fn` on a heap served by
one daemon thread; callbacks must be quick and must not block (they tell actors or set flags).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable

log = logging.getLogger("openclaw.actors")


class Timer:
    __slots__ = ("when", "fn", "cancelled", "_clock")

    def __init__(self, when: float, fn: Callable[[], object], clock: "Clock") -> None:
        self.when = when
        self.fn: Callable[[], object] | None = fn
        self.cancelled = False
        self._clock = clock

    def cancel(self) -> None:
        self._clock._cancel(self)


class Clock:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._cond = threading.Condition()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._cancelled = 0  # cancelled timers still in the heap

    def call_later(self, delay: float, fn: Callable[[], object]) -> Timer:
        timer = Timer(time.monotonic() + max(0.0, delay), fn, self)
        with self._cond:
            heapq.heappush(self._heap, (timer.when, next(self._order), timer))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="openclaw-clock",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        return timer

    def _cancel(self, timer: Timer) -> None:
        """Forget the callback at once (it may hold a whole run); a run's deadline is usually
        cancelled long before it is due, so the heap is swept when half of it is dead."""
        with self._cond:
            if timer.cancelled:
                return
            timer.cancelled, timer.fn = True, None
            self._cancelled += 1
            if self._cancelled > 256 and self._cancelled * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                _, _, timer = heapq.heappop(self._heap)
                fn = timer.fn
                if timer.cancelled:
                    self._cancelled -= 1
                    continue
                timer.fn = None
            if fn is None:  # fired already: a timer runs once
                continue
            try:
                fn()
            except Exception:  # noqa: BLE001 - one bad callback must not stop the clock
                log.exception("timer callback failed")


CLOCK = Clock()
