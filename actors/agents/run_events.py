"""The `chat` and `agent` events of one run (protocol §7.3, §7.4), published through the
EventHub by `tell`.

Called from the run's worker thread and from the shared clock thread (the delayed delta
flush), so every emission happens under one lock: per-run `seq` numbers and the order of
events stay exact. Text deltas are coalesced to at most one `chat` delta (and one `agent`
assistant event) per `DELTA_INTERVAL_S`; whatever is held back goes out before the terminal
event.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from actors.base import tell
from actors.clock import CLOCK, Timer
from actors.events import EVENT_HUB, EventHub

DELTA_INTERVAL_S = 0.150


def now_ms() -> int:
    return int(time.time() * 1000)


def publish(event: str, payload: dict) -> None:
    hub = EVENT_HUB.whereis()
    if hub is None:
        return
    try:
        tell(hub, EventHub.publish, event, payload)
    except Exception:  # noqa: BLE001 - the hub stopped meanwhile (gateway stopping)
        pass


def assistant_message(text: str, ts: int) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}], "timestamp": ts}


class RunEvents:
    def __init__(self, run_id: str, session_key: str) -> None:
        self.run_id = run_id
        self.session_key = session_key
        self.started_at = 0
        self._lock = threading.Lock()
        self._chat_seq = 0
        self._agent_seq = 0
        self._text = ""  # everything received so far
        self._sent = 0  # length of _text already sent as deltas
        self._last_flush = 0.0
        self._timer: Timer | None = None
        self._closed = False
        self._new_paragraph = False  # the next text starts a new model turn's paragraph

    @property
    def text(self) -> str:
        return self._text

    # --- emission (under the lock) ------------------------------------------------------

    def _chat(self, state: str, **fields: Any) -> None:
        payload = {"runId": self.run_id, "sessionKey": self.session_key, "seq": self._chat_seq,
                   "state": state, **fields}
        self._chat_seq += 1
        publish("chat", payload)

    def _agent(self, stream: str, data: dict) -> None:
        payload = {"runId": self.run_id, "seq": self._agent_seq, "stream": stream, "ts": now_ms(),
                   "sessionKey": self.session_key, "data": data}
        self._agent_seq += 1
        publish("agent", payload)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sent >= len(self._text) or self._closed:
            return
        delta = self._text[self._sent:]
        self._sent = len(self._text)
        self._last_flush = time.monotonic()
        ts = now_ms()
        self._chat("delta", deltaText=delta, message=assistant_message(self._text, ts))
        self._agent("assistant", {"text": self._text, "delta": delta})

    def _flush_later(self) -> None:
        with self._lock:
            self._timer = None
            self._flush()

    # --- called by the run ----------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            self.started_at = now_ms()
            self._agent("lifecycle", {"phase": "start", "startedAt": self.started_at})

    def text_delta(self, piece: str) -> None:
        with self._lock:
            if self._closed or not piece:
                return
            if self._new_paragraph:
                self._new_paragraph = False
                piece = "\n\n" + piece
            self._text += piece
            wait = self._last_flush + DELTA_INTERVAL_S - time.monotonic()
            if wait <= 0:
                self._flush()
            elif self._timer is None:
                self._timer = CLOCK.call_later(wait, self._flush_later)

    def new_turn(self) -> None:
        """The model answers again after tool results: the run's text (what clients and
        channels show) gets its words as a new paragraph, not glued to the last turn's."""
        with self._lock:
            self._new_paragraph = bool(self._text)

    def tool(self, phase: str, name: str, tool_call_id: str, **data: Any) -> None:
        with self._lock:
            if not self._closed:
                self._agent("tool", {"phase": phase, "name": name, "toolCallId": tool_call_id,
                                     **data})

    def final(self, stop_reason: str, usage: dict | None) -> None:
        with self._lock:
            if self._closed:
                return
            self._flush()
            fields: dict[str, Any] = {"stopReason": stop_reason,
                                      "message": assistant_message(self._text, now_ms())}
            if usage:
                fields["usage"] = usage
            self._chat("final", **fields)
            self._end({"phase": "end"})

    def aborted(self, reason: str = "aborted") -> None:
        with self._lock:
            if self._closed:
                return
            self._flush()
            fields: dict[str, Any] = {"stopReason": reason}
            if self._text:
                fields["message"] = assistant_message(self._text, now_ms())
            self._chat("aborted", **fields)
            self._end({"phase": "error", "error": "aborted"})

    def error(self, message: str, kind: str = "unknown", usage: dict | None = None) -> None:
        with self._lock:
            if self._closed:
                return
            self._flush()
            fields: dict[str, Any] = {"errorMessage": message, "errorKind": kind}
            if usage:
                fields["usage"] = usage
            self._chat("error", **fields)
            self._end({"phase": "error", "error": message})

    def _end(self, data: dict) -> None:
        started = self.started_at or now_ms()
        self._agent("lifecycle", {**data, "startedAt": started, "endedAt": now_ms()})
        self._closed = True
