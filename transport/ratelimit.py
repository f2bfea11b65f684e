"""The control-plane write rate limit (protocol §19.2): 30 calls per 60 s per method per
(client IP, device id or "-") for config.set/patch/apply and gateway.restart(.request).

Handlers call `check_control_plane(ctx, method)` first thing. The limiter lives on the
loop-side `GatewayState` (only the loop thread touches it), in memory, with a bounded map.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from typing import Any

from transport.protocol import UNAVAILABLE, GatewayError

CONTROL_PLANE_METHODS = frozenset({"config.set", "config.patch", "config.apply", "gateway.restart",
                                   "gateway.restart.request"})
LIMIT, WINDOW_S = 30, 60.0
MAX_KEYS = 4096
_STATE_KEY = "control_plane_limiter"


class SlidingWindowLimiter:
    """At most `limit` calls per `window` seconds per key; the oldest keys are evicted past
    `max_keys`, so a flood of distinct callers cannot grow memory without bound."""

    def __init__(self, limit: int = LIMIT, window: float = WINDOW_S, max_keys: int = MAX_KEYS) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._calls: OrderedDict[tuple, deque[float]] = OrderedDict()

    def hit(self, key: tuple, now: float | None = None) -> float:
        """Count one call; 0 when allowed, else the seconds until one is allowed again."""
        now = time.monotonic() if now is None else now
        calls = self._calls.pop(key, None) or deque()
        while calls and calls[0] <= now - self.window:
            calls.popleft()
        self._calls[key] = calls  # re-inserted last: most recently used
        if len(calls) >= self.limit:
            return calls[0] + self.window - now
        calls.append(now)
        while len(self._calls) > self.max_keys:
            self._calls.popitem(last=False)
        return 0.0


def limiter_for(state: Any) -> SlidingWindowLimiter:
    limiter = state.extra.get(_STATE_KEY)
    if limiter is None:
        limiter = state.extra[_STATE_KEY] = SlidingWindowLimiter()
    return limiter


def check_control_plane(ctx: Any, method: str) -> None:
    """Raise the §4.1 UNAVAILABLE error when `ctx.caller` is over the limit for `method`."""
    caller = ctx.caller
    key = (method, caller.remote_ip or "-", caller.device_id or "-")
    wait = limiter_for(ctx.state).hit(key)
    if wait <= 0:
        return
    retry_ms = math.ceil(wait * 1000)
    raise GatewayError(UNAVAILABLE, f"rate limit exceeded for {method}; retry after {math.ceil(retry_ms / 1000)}s",
                       retryable=True, retry_after_ms=retry_ms,
                       details={"method": method, "limit": f"{LIMIT} per {int(WINDOW_S)}s"})
