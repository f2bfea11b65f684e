"""Event-loop delay probe for `status.eventLoop` (protocol §9.2): a 1000 ms timer on the
loop records how late it fires; p99 over 500 ms marks the loop degraded."""

from __future__ import annotations

import asyncio
import time
from collections import deque

INTERVAL_S = 1.0
DEGRADED_P99_MS = 500.0


class LoopProbe:
    def __init__(self, samples: int = 60) -> None:
        self._delays: deque[float] = deque(maxlen=samples)
        self._handle: asyncio.TimerHandle | None = None
        self._expected = 0.0
        self._cpu = (time.process_time(), time.monotonic())
        self._utilization = 0.0
        self._degraded_since: int | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._expected = loop.time() + INTERVAL_S
        self._handle = loop.call_at(self._expected, self._fire)

    def stop(self) -> None:
        if self._handle:
            self._handle.cancel()

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        self._delays.append(max(0.0, (loop.time() - self._expected) * 1000))
        cpu, wall = time.process_time(), time.monotonic()
        self._utilization = min(1.0, (cpu - self._cpu[0]) / max(wall - self._cpu[1], 1e-6))
        self._cpu = (cpu, wall)
        self._expected = loop.time() + INTERVAL_S
        self._handle = loop.call_at(self._expected, self._fire)

    def report(self) -> dict:
        delays = sorted(self._delays)
        p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else 0.0
        degraded = p99 > DEGRADED_P99_MS
        if degraded and self._degraded_since is None:
            self._degraded_since = int(time.time() * 1000)
        elif not degraded:
            self._degraded_since = None
        return {"degraded": degraded, "degradedSinceMs": self._degraded_since,
                "reasons": ["event loop delay p99 over 500 ms"] if degraded else [],
                "intervalMs": int(INTERVAL_S * 1000), "delayP99Ms": round(p99, 1),
                "delayMaxMs": round(delays[-1], 1) if delays else 0.0,
                "utilization": round(self._utilization, 3)}
