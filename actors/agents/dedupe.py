"""The process-wide idempotency cache (protocol §18), owned by the agents actor.

Key `<method>:<idempotencyKey>`. An entry is in flight until `finish`; finished entries live
`TTL_S` seconds and at most `MAX_ENTRIES` are kept, oldest finished first out. In-flight
entries are never evicted. Empty after a restart (it lives in memory only).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgspec

TTL_S = 300.0
MAX_ENTRIES = 1000


class Entry(msgspec.Struct, kw_only=True):
    run_id: str
    in_flight: bool = True
    payload: Any = None  # the final payload, when finished
    error: tuple[str, str] | None = None  # (code, message) of a finished call that failed
    finished_at: float = 0.0


class DedupeCache:
    """`clock` (seconds, monotonic) is injectable so that tests can expire entries without
    sleeping through the TTL."""

    def __init__(self, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ttl = ttl_s
        self._max = max_entries
        self._in_flight: dict[str, Entry] = {}
        self._finished: OrderedDict[str, Entry] = OrderedDict()  # oldest finished first

    def get(self, key: str) -> Entry | None:
        self._expire()
        return self._in_flight.get(key) or self._finished.get(key)

    def claim(self, key: str, run_id: str) -> Entry | None:
        """The existing entry for `key`, or None after recording a new in-flight one."""
        found = self.get(key)
        if found is None:
            self._in_flight[key] = Entry(run_id=run_id)
        return found

    def release(self, key: str) -> None:
        """Forget an in-flight claim whose call failed before it started anything."""
        self._in_flight.pop(key, None)

    def finish(self, key: str, payload: Any = None, error: tuple[str, str] | None = None) -> None:
        entry = self._in_flight.pop(key, None)
        if entry is None:
            return
        entry.in_flight = False
        entry.payload, entry.error = payload, error
        entry.finished_at = self._clock()
        self._finished[key] = entry
        while len(self._finished) + len(self._in_flight) > self._max and self._finished:
            self._finished.popitem(last=False)

    def _expire(self) -> None:
        cutoff = self._clock() - self._ttl
        while self._finished:
            key, entry = next(iter(self._finished.items()))
            if entry.finished_at >= cutoff:
                break
            del self._finished[key]

    def __len__(self) -> int:
        return len(self._in_flight) + len(self._finished)
