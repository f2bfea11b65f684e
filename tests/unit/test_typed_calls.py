"""The typed actor calls (actors/base.py, transport/bridge.py): a call names its method by the
function object and its target by a typed `ActorName`, so the call works at run time exactly
as the string calls did, and a type checker catches a misspelt method or wrong arguments."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors import registry
from actors.base import DEFERRED, GatewayActor, Reply, call_sync, call_sync_within, send, tell, tell_with_reply
from actors.base import answer as answer_later
from actors.registry import ActorName
from tests.needs import require_tool
from transport import bridge

ROOT = Path(__file__).resolve().parents[2]


class Counter(GatewayActor):
    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self._parked: list[Reply | None] = []

    def add(self, amount: int, *, times: int = 1) -> int:
        self.total += amount * times
        return self.total

    def wait_for(self, timeout: float) -> float:
        """A method whose own keyword is named like the bridge's timeout."""
        return timeout

    def park(self) -> Any:
        """Answers later, when `release` comes (a DEFERRED answer)."""
        self._parked.append(self._reply)
        return DEFERRED

    def release(self, value: str) -> None:
        for reply in self._parked:
            answer_later(reply, value)
        self._parked.clear()

    def fail(self) -> None:
        raise ValueError("refused")

    def _private(self) -> str:
        return "secret"


COUNTER: ActorName[Counter] = ActorName("typed-calls-counter")


@pytest.fixture
def counter():
    ref = Counter.start()
    registry.register(COUNTER.name, ref)
    try:
        yield ref
    finally:
        registry.unregister(COUNTER.name, ref)
        ref.stop(timeout=5)


def test_worker_thread_calls(counter: pykka.ActorRef[Counter]) -> None:
    assert call_sync(counter, Counter.add, 2) == 2
    assert call_sync(counter, Counter.add, 3, times=2) == 8
    assert call_sync_within(5, counter, Counter.wait_for, timeout=1.5) == 1.5
    with pytest.raises(ValueError, match="refused"):
        call_sync(counter, Counter.fail)
    tell(counter, Counter.add, 1)
    assert send(COUNTER, Counter.add, 1) is True
    assert call_sync(counter, Counter.add, 0) == 10  # mailbox order: the tells came first

    got: list = []
    done = threading.Event()
    tell_with_reply(counter, lambda result, err: (got.append((result, err)), done.set()), Counter.add, 5)
    assert done.wait(5) and got == [(15, None)]


def test_private_methods_are_refused(counter: pykka.ActorRef[Counter]) -> None:
    with pytest.raises(AttributeError, match="_private is private"):
        call_sync(counter, Counter._private)


def test_a_name_that_is_not_running() -> None:
    gone: ActorName[Counter] = ActorName("typed-calls-nobody")
    assert gone.whereis() is None
    assert send(gone, Counter.add, 1) is False
    assert bridge.tell(gone, Counter.add, 1) is False

    async def ask() -> None:
        with pytest.raises(bridge.ActorUnavailable, match="typed-calls-nobody is not running"):
            await bridge.ask(gone, Counter.add, 1)

    asyncio.run(ask())


def test_loop_calls_and_deferred_answers(counter: pykka.ActorRef[Counter]) -> None:
    async def main() -> None:
        assert await bridge.ask(COUNTER, Counter.add, 4, times=2) == 8
        assert await bridge.ask(counter, Counter.add, 1) == 9  # by ref as well as by name
        assert await bridge.ask_within(5, COUNTER, Counter.wait_for, timeout=2.0) == 2.0
        assert bridge.tell(COUNTER, Counter.add, 1) is True
        parked = asyncio.ensure_future(bridge.ask_within(None, COUNTER, Counter.park))
        await asyncio.sleep(0)
        assert not parked.done()
        await bridge.ask(COUNTER, Counter.release, "later")
        assert await parked == "later"
        with pytest.raises(bridge.ActorUnavailable, match="did not answer park within 0.05s"):
            await bridge.ask_within(0.05, COUNTER, Counter.park)
        await bridge.ask(COUNTER, Counter.release, "late")  # the timed-out reply goes nowhere

    asyncio.run(main())


# Each line marked `# error` must draw a mypy error, and no other line may.
SNIPPET = '''
import pykka

from actors.base import GatewayActor, call_sync
from actors.registry import ActorName
from transport import bridge


class Store(GatewayActor):
    def append(self, key: str, message: dict) -> int:
        return 1


class Other(GatewayActor):
    def ping(self) -> str:
        return "pong"


STORE: ActorName[Store] = ActorName("store")


async def calls(ref: pykka.ActorRef[Store]) -> None:
    count: int = await bridge.ask(STORE, Store.append, "k", {})
    count = call_sync(ref, Store.append, "k", {})
    await bridge.ask(STORE, Store.apend, "k", {})  # error: a misspelt method
    await bridge.ask(STORE, Store.append, "k")  # error: a missing argument
    await bridge.ask(STORE, Store.append, 1, {})  # error: a wrong argument type
    await bridge.ask(STORE, Other.ping)  # error: another actor's method
    text: str = await bridge.ask(STORE, Store.append, "k", {})  # error: a wrong result type
    call_sync(ref, Store.append, "k", {}, timeout=3)  # error: no such keyword
'''


def test_mypy_catches_wrong_calls(tmp_path: Path) -> None:
    require_tool(importlib.util.find_spec("mypy") is not None, "mypy is not installed")
    snippet = tmp_path / "typed_calls_snippet.py"
    snippet.write_text(SNIPPET)
    expected = {n for n, line in enumerate(SNIPPET.splitlines(), 1) if "# error" in line}
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--show-error-codes", "--follow-imports=silent",
         "--ignore-missing-imports", "--cache-dir", str(tmp_path / "cache"), "--config-file", os.devnull,
         str(snippet)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    errors = {int(line.split(":")[1]) for line in proc.stdout.splitlines() if ": error:" in line}
    assert errors == expected, proc.stdout + proc.stderr
    assert '"type[Store]" has no attribute "apend"' in proc.stdout
