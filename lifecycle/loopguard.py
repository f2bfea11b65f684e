"""The slow-callback guard: a record naming every event loop callback that ran longer than a
threshold, so a test run catches work that blocks the loop (file I/O, a pykka `.get()`, a big
encode) instead of it surfacing later as latency.

Off unless the test knob `OPENCLAW_TEST_SLOW_CALLBACK_MS` is set (actors/testhooks.py). asyncio's
own detection needs debug mode, which also records a stack for every scheduled callback and
checks the thread of each `call_soon`; timing `Handle._run` costs two clock reads per callback.
A watchdog thread looks at the loop thread's stack while a callback is over the threshold, so
the record also says where it was stuck, not only which task it was.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

from actors import testhooks

log = logging.getLogger("openclaw.loop")

MESSAGE = "slow loop callback"  # the start of every record; tests/conftest.py looks for it
STACK_FRAMES = 6  # innermost frames of the loop thread shown in a record

_installed: float | None = None


def describe(handle: asyncio.Handle) -> str:
    """What a handle runs: the task and its coroutine's code for a task step, else the callback."""
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
        return f"task {owner.get_name()} {getattr(coro, '__qualname__', repr(coro))}{where}"
    return repr(handle)


class _Watch:
    """The callback now running on the loop thread, and the stack seen while it was late."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.thread_id: int | None = None
        self.started = 0.0  # 0 between callbacks
        self.serial = 0
        self.stack: tuple[int, str] | None = None  # (serial, text) of the last late callback

    def run(self) -> None:
        while True:
            time.sleep(self.limit / 2)
            started, serial, tid = self.started, self.serial, self.thread_id
            if not started or tid is None or time.perf_counter() - started < self.limit:
                continue
            if self.stack is not None and self.stack[0] == serial:
                continue  # one look per late callback
            frame = sys._current_frames().get(tid)
            if frame is not None and self.serial == serial:
                # The import machinery's own frames say nothing about which import it was.
                frames = [f for f in traceback.extract_stack(frame)
                          if not f.filename.startswith("<frozen")][-STACK_FRAMES:]
                self.stack = (serial, " | ".join(f"{f.filename}:{f.lineno} {f.name}" for f in frames))


def install(limit_s: float | None = None) -> bool:
    """Time every loop callback of this process from now on; True if the guard is on.

    Idempotent (an in-process restart calls it again)."""
    global _installed
    limit = testhooks.slow_callback_s() if limit_s is None else limit_s
    if limit is None or _installed is not None:
        return _installed is not None
    run = asyncio.Handle._run  # TimerHandle inherits it
    watch = _Watch(limit)
    threading.Thread(target=watch.run, name="openclaw-loopguard", daemon=True).start()

    def timed_run(handle: asyncio.Handle) -> None:
        watch.thread_id = threading.get_ident()
        watch.serial += 1
        serial = watch.serial
        started = watch.started = time.perf_counter()
        try:
            run(handle)
        finally:
            watch.started = 0.0
            elapsed = time.perf_counter() - started
            if elapsed >= limit:
                seen = watch.stack
                where = f"; stuck in: {seen[1]}" if seen is not None and seen[0] == serial else ""
                log.warning("%s: %s ran %.0f ms (threshold %.0f ms)%s", MESSAGE, describe(handle),
                            elapsed * 1000, limit * 1000, where)

    asyncio.Handle._run = timed_run  # type: ignore[method-assign,assignment]  # test-only wrapper
    _installed = limit
    log.debug("slow-callback guard on: loop callbacks over %.0f ms are logged", limit * 1000)
    return True
