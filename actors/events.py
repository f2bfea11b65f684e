"""EventHub: who gets which event (protocol §6.4, §7), and the presence list (§9.3).

The hub owns the subscribed connections with their role, scopes and caps. For each event it
encodes the payload once, picks the recipients and hands them to the event loop through the
injected `deliver` callable, in publish order. It never numbers events: `seq` belongs to each
connection on the loop side.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import msgspec

from actors.base import GatewayActor
from actors.registry import ActorName

log = logging.getLogger("openclaw.gateway")

# deliver(recipient conn ids, event name, payload json, stateVersion json | None, droppable)
Deliver = Callable[[tuple[str, ...], str, bytes, "bytes | None", bool], None]

PRESENCE_TTL_MS = 5 * 60 * 1000
PRESENCE_MAX = 200
UNTRACKED_MODES = frozenset({"cli", "backend", "probe"})
READ_SCOPES = frozenset({"operator.read", "operator.write", "operator.admin"})
APPROVAL_SCOPES = frozenset({"operator.approvals", "operator.admin"})
EVERYONE = frozenset({"tick", "presence", "health", "shutdown"})
READERS = frozenset({"chat", "agent", "sessions.changed"})
APPROVERS = frozenset({"exec.approval.requested", "exec.approval.resolved"})
# Events a slow socket may skip (§20); terminal chat states are decided per payload.
DROPPABLE = frozenset({"tick", "presence", "health", "agent", "sessions.changed",
                       "exec.approval.requested", "exec.approval.resolved"})

_encoder = msgspec.json.Encoder()


def now_ms() -> int:
    return int(time.time() * 1000)


class Subscriber(msgspec.Struct, frozen=True):
    conn_id: str
    role: str
    scopes: frozenset[str]
    caps: frozenset[str]
    presence_key: str | None = None


def visible(sub: Subscriber, event: str, payload: Any) -> bool:
    """Event visibility of §6.4; unknown events are never broadcast (fail closed)."""
    if event in EVERYONE:
        return True
    if sub.role != "operator":
        return False
    if event in READERS:
        if not sub.scopes & READ_SCOPES:
            return False
        is_tool = event == "agent" and isinstance(payload, dict) and payload.get("stream") == "tool"
        return not is_tool or "tool-events" in sub.caps
    if event in APPROVERS:
        return bool(sub.scopes & APPROVAL_SCOPES)
    return False


def droppable(event: str, payload: Any) -> bool:
    if event == "chat":
        return isinstance(payload, dict) and payload.get("state") == "delta"
    return event in DROPPABLE


def with_text(entry: dict) -> dict:
    """Add the one-line `text` of a presence entry (§9.3)."""
    kind = "Gateway" if entry.get("reason") == "self" else (
        "Node" if "node" in entry.get("roles", ()) else "Client")
    ip = f" ({entry['ip']})" if entry.get("ip") else ""
    entry["text"] = (f"{kind}: {entry.get('host', '?')}{ip} · app {entry.get('version', '?')}"
                     f" · mode {entry.get('mode', '?')} · reason {entry.get('reason', '?')}")
    return entry


EVENT_HUB: ActorName[EventHub] = ActorName("events")


class EventHub(GatewayActor):
    def __init__(self, deliver: Deliver, self_presence: dict) -> None:
        super().__init__()
        self._deliver = deliver
        self._subs: dict[str, Subscriber] = {}
        self._self = dict(self_presence)
        self._presence: dict[str, dict] = {}
        self._versions = {"presence": 1, "health": 1}
        self._timer: threading.Timer | None = None

    def on_start(self) -> None:
        self._self = with_text(dict(self._self, mode="gateway", reason="self", ts=now_ms()))
        self._schedule_prune()

    def on_stop(self) -> None:
        if self._timer:
            self._timer.cancel()

    # --- subscriptions -------------------------------------------------------------------

    def subscribe(self, sub: Subscriber, presence: dict | None = None) -> None:
        self._subs[sub.conn_id] = sub
        if presence is not None and sub.presence_key:
            entry = with_text(dict(presence, reason="connect", ts=now_ms()))
            self._presence.pop(sub.presence_key, None)
            self._presence[sub.presence_key] = entry
            self._trim()
            self._publish_presence()

    def unsubscribe(self, conn_id: str) -> None:
        sub = self._subs.pop(conn_id, None)
        if sub is None or not sub.presence_key or sub.presence_key not in self._presence:
            return
        if any(s.presence_key == sub.presence_key for s in self._subs.values()):
            return  # another socket of the same client is still connected
        entry = self._presence.pop(sub.presence_key)
        self._presence[sub.presence_key] = with_text(dict(entry, reason="disconnect", ts=now_ms()))
        self._publish_presence()

    def has_approver(self) -> bool:
        """Is an operator that may answer exec approvals connected (protocol §17)?"""
        return any(s.role == "operator" and s.scopes & APPROVAL_SCOPES for s in self._subs.values())

    def subscriber_count(self) -> int:
        return len(self._subs)

    # --- publishing ----------------------------------------------------------------------

    def publish(self, event: str, payload: Any) -> None:
        """Send `event` to every subscriber allowed to see it."""
        self._send(event, payload, None)

    def after_published(self, fn: Callable[[], None]) -> None:
        """Run `fn` here, after every event published before it was handed to the loop: a
        reply sent from `fn` through the loop reaches clients after those events."""
        fn()

    def publish_health(self, summary: dict) -> None:
        self._versions["health"] += 1
        self._send("health", summary, self._versions)

    def _send(self, event: str, payload: Any, versions: dict | None) -> None:
        recipients = tuple(c for c, s in self._subs.items() if visible(s, event, payload))
        if not recipients:
            return
        state = _encoder.encode(versions) if versions is not None else None
        self._deliver(recipients, event, _encoder.encode(payload), state, droppable(event, payload))

    # --- presence ------------------------------------------------------------------------

    def presence(self) -> list[dict]:
        """Self first, then newest `ts` first (§9.3)."""
        self._prune()
        others = sorted(self._presence.values(), key=lambda e: e["ts"], reverse=True)
        return [self._self, *others]

    def state_version(self) -> dict:
        return dict(self._versions)

    def snapshot(self) -> dict:
        """The presence list and state versions for a `hello-ok`, built at one instant."""
        return {"presence": self.presence(), "stateVersion": self.state_version()}

    def prune(self) -> None:
        self._prune()
        self._schedule_prune()

    def _prune(self) -> None:
        cutoff = now_ms() - PRESENCE_TTL_MS
        expired = [k for k, e in self._presence.items() if e["ts"] < cutoff]
        for key in expired:
            del self._presence[key]
        if expired:
            self._publish_presence()

    def _trim(self) -> None:
        while len(self._presence) > PRESENCE_MAX - 1:
            oldest = min(self._presence, key=lambda k: self._presence[k]["ts"])
            del self._presence[oldest]

    def _publish_presence(self) -> None:
        self._versions["presence"] += 1
        self._send("presence", {"presence": self.presence()}, self._versions)

    def _schedule_prune(self) -> None:
        self._timer = threading.Timer(30.0, self._tell_prune)
        self._timer.daemon = True
        self._timer.start()

    def _tell_prune(self) -> None:
        if self.actor_ref.is_alive():
            self.actor_ref.tell(_Prune())

    def handle(self, message: Any) -> Any:
        if isinstance(message, _Prune):
            return self.prune()
        return super().handle(message)


class _Prune(msgspec.Struct, frozen=True):
    pass
