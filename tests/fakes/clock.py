"""A clock for tests that only moves when told to, for the parts that take a `clock` callable
(the failed-auth limiter, the dedupe cache): a test steps through a time window instead of
sleeping through it."""

from __future__ import annotations


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
