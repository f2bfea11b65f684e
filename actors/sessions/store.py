"""SessionStore: the actor that owns the sessions databases (protocol §13, §14.2; cli-config
§6.4, §7.1).

One SQLite database per agent at `<state>/agents/<agentId>/sessions.sqlite` (see
`actors.sessions.schema` for the file, the migrations and the durability rule), opened and used
only in the actor's own thread (the one writer). The reads and writes themselves are
`actors.sessions.queries`; the actor adds what needs one owner: the open connections, the
reset policy and list defaults from the config, the active runs the agents actor reports,
the `sessions.changed` events and the health summary. Every public method returns fresh
dicts built per call, so nothing mutable is shared with the caller's thread.

Callers outside the actor system reach the public methods through actors/base.py; tests and
other actors may use a pykka proxy off the event loop.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from typing import Any, Iterable

import msgspec

from actors.base import GatewayActor, tell
from actors.events import EVENT_HUB, EventHub
from actors.health import HEALTH, HealthActor
from actors.registry import ActorName
from actors.sessions import queries
from actors.sessions.keys import DEFAULT_AGENT_ID, normalize_key, valid_agent_id
from actors.sessions.queries import LABEL_MAX, SessionError
from actors.sessions.rows import HISTORY_MAX_MESSAGE_BYTES, HISTORY_OMITTED, model_ref, now_ms
from actors.sessions.schema import DB_NAME, db_path, open_db

# Re-exported: the store's module is where the gateway's callers look for these.
__all__ = ["DB_NAME", "HISTORY_MAX_MESSAGE_BYTES", "HISTORY_OMITTED", "LABEL_MAX", "SessionError",
           "SessionStore", "db_path", "model_ref", "now_ms"]

log = logging.getLogger("openclaw.sessions")

SESSIONS: ActorName[SessionStore] = ActorName("sessions")


class SessionStore(GatewayActor):
    """The one writer of every agent's sessions database.

    `reset_policy` is the resolved `session.reset` config (`mode`, `atHour`, `idleMinutes`);
    `defaults` is the `defaults` object of `sessions.list` (model, provider, thinking levels).
    """

    def __init__(self, state_dir: str, reset_policy: dict | None = None,
                 defaults: dict | None = None, notify_health: bool = True) -> None:
        super().__init__()
        self._state_dir = str(state_dir)
        self._policy = dict(reset_policy or {"mode": "none"})
        self._defaults = dict(defaults or {})
        self._notify = notify_health
        self._dbs: dict[str, sqlite3.Connection] = {}
        self._runs: dict[str, list[str]] = {}  # key → active run ids, told by the agents actor
        self._list_pages: dict[tuple, tuple] = {}  # recent list pages by query (see `list`)

    # --- lifecycle --------------------------------------------------------------------------

    def on_start(self) -> None:
        self._open(DEFAULT_AGENT_ID)
        agents_dir = os.path.join(self._state_dir, "agents")
        for name in sorted(os.listdir(agents_dir)):
            if valid_agent_id(name) and os.path.exists(db_path(self._state_dir, name)):
                self._open(name)
        for agent_id in list(self._dbs):
            self._tell_health(agent_id)

    def on_stop(self) -> None:
        self._close_all()

    def on_failure(self, *_: Any) -> None:
        self._close_all()

    def _close_all(self) -> None:
        for agent_id, db in list(self._dbs.items()):
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                log.warning("checkpoint of %s failed", agent_id, exc_info=True)
            try:
                db.close()
            except sqlite3.Error:
                log.warning("closing %s failed", agent_id, exc_info=True)
        self._dbs.clear()

    def _open(self, agent_id: str) -> sqlite3.Connection:
        db = self._dbs.get(agent_id)
        if db is None:
            db = self._dbs[agent_id] = open_db(db_path(self._state_dir, agent_id))
        return db

    def _db_for(self, key: str) -> tuple[str, str, sqlite3.Connection]:
        canonical, agent_id = queries.canonical(key)
        return canonical, agent_id, self._open(agent_id)

    def _row(self, db: sqlite3.Connection, key: str) -> dict | None:
        return queries.row(db, key, self._runs)

    # --- public API -------------------------------------------------------------------------

    def path(self, agent_id: str = DEFAULT_AGENT_ID) -> str:
        return db_path(self._state_dir, agent_id)

    def schema_version(self, agent_id: str = DEFAULT_AGENT_ID) -> int:
        return self._open(agent_id).execute("SELECT version FROM schema_version").fetchone()[0]

    def set_reset_policy(self, policy: dict) -> None:
        """Hot reload of `session.reset`."""
        self._policy = dict(policy)

    def set_defaults(self, defaults: dict) -> None:
        self._defaults = dict(defaults)

    def defaults(self) -> dict:
        return dict(self._defaults)

    def row(self, key: str) -> dict | None:
        canonical, _, db = self._db_for(key)
        return self._row(db, canonical)

    def get_or_create(self, key: str, channel: str | None = None, peer: str | None = None,
                      display_name: str | None = None, now: int | None = None) -> dict:
        """The session row for `key`, created if missing; origin fields fill in gaps only."""
        canonical, agent_id, db = self._db_for(key)
        created = queries.get_or_create(db, canonical, agent_id, now or now_ms(), channel, peer,
                                        display_name)
        row = self._row(db, canonical)
        if created:
            self._tell_health(agent_id)
            self._publish("create", canonical, row)
        return row  # type: ignore[return-value]

    def append(self, key: str, message: dict, now: int | None = None,
               session_id: str | None = None) -> dict:
        """Store one message in the session's current transcript (or in the earlier one
        `session_id` names: a run's reply stays with the transcript it answered, even after a
        reset) and return it as chat.history shows it. Committed (fsynced) before it returns:
        the acknowledgement point. A missing session is created."""
        canonical, agent_id, db = self._db_for(key)
        stored, created = queries.append(db, canonical, agent_id, message, now or now_ms(),
                                         session_id)
        self._tell_health(agent_id)
        if created:
            self._publish("create", canonical, self._row(db, canonical))
        return stored

    def record_turn(self, key: str, message: dict, expected_session_id: str | None = None,
                    channel: str | None = None, peer: str | None = None) -> dict:
        """A new inbound turn: create the session if missing, apply the reset policy, check
        the session id the client expects, then `append` (the acknowledgement point).
        Returns `{"session": row, "message": stored message}`."""
        canonical, _, db = self._db_for(key)
        if channel or peer:
            self.get_or_create(canonical, channel=channel, peer=peer)
        self.apply_reset_policy(canonical)
        if expected_session_id:
            if queries.current_session_id(db, canonical) != expected_session_id:
                raise SessionError("session changed; reload history")
        stored = self.append(canonical, message)
        return {"session": self._row(db, canonical), "message": stored}

    def set_runs(self, key: str, run_ids: list[str], reason: str | None = None) -> None:
        """The agents actor's view of the session's active runs; with `reason` (`run-start`,
        `run-end`) a `sessions.changed` event goes out."""
        canonical = normalize_key(key)
        if run_ids:
            self._runs[canonical] = list(run_ids)
        else:
            self._runs.pop(canonical, None)
        if reason is None:
            return
        _, _, db = self._db_for(canonical)
        row = self._row(db, canonical)
        if row is not None:
            self._publish(reason, canonical, row)

    def key_of(self, session_id: str, agent_id: str = DEFAULT_AGENT_ID) -> str | None:
        """The key a session id belongs to (current or earlier), or None."""
        return queries.key_of(self._open(agent_id), session_id)

    def compact(self, key: str, keep: int, summary: str | None = None) -> dict:
        """sessions.compact (protocol §13.7): move every message but the newest `keep` of the
        current session id to the archive; with `summary`, one system message holding it takes
        their place, ahead of the kept ones. Returns `{"compacted", "kept"|"reason"}`."""
        canonical, _, db = self._db_for(key)
        result = queries.compact(db, canonical, keep, summary)
        if result["compacted"]:
            self._publish("compact", canonical, self._row(db, canonical))
        return result

    def history(self, key: str, limit: int = 200, before: int | None = None,
                max_chars: int | None = None) -> dict:
        """chat.history (protocol §14.2): the newest `limit` messages of the current session id
        (with `before`, those with a lower `seq`), oldest first."""
        canonical, _, db = self._db_for(key)
        return queries.history(db, canonical, limit, before, max_chars)

    def messages(self, session_id: str, agent_id: str = DEFAULT_AGENT_ID,
                 last: int | None = None) -> list[dict]:
        """The messages stored under one session id (current or earlier), oldest first: all,
        or the newest `last`."""
        return queries.messages(self._open(agent_id), session_id, last)

    def session_ids(self, key: str) -> list[dict]:
        """Every session id the key has had, oldest first."""
        canonical, _, db = self._db_for(key)
        return queries.session_ids(db, canonical)

    def list(self, limit: int = 100, offset: int = 0, activeMinutes: int | None = None,
             agentId: str | None = None, label: str | None = None, search: str | None = None,
             includeGlobal: bool = False, includeUnknown: bool = False,
             includeLastMessage: bool = False, now: int | None = None) -> dict:
        """sessions.list (protocol §13.2), rows newest `updatedAt` first."""
        if agentId is not None:
            agent = str(agentId).lower()
            agents = [agent] if valid_agent_id(agent) and (
                agent in self._dbs or os.path.exists(db_path(self._state_dir, agent))) else []
        else:
            agents = sorted(self._dbs)
        return queries.list_sessions(
            {agent: self._open(agent) for agent in agents},
            path=db_path(self._state_dir, agentId.lower() if agentId else DEFAULT_AGENT_ID),
            defaults=self._defaults, runs=self._runs, cache=self._list_pages, limit=limit,
            offset=offset, activeMinutes=activeMinutes, label=label, search=search,
            includeGlobal=includeGlobal, includeUnknown=includeUnknown,
            includeLastMessage=includeLastMessage, now=now)

    def preview(self, keys: Iterable[str], limit: int = 12, maxChars: int = 240) -> dict:
        """sessions.preview (protocol §13.4)."""
        limit, max_chars = max(1, int(limit)), max(20, int(maxChars))
        previews: list[dict[str, Any]] = []
        for key in keys:
            try:
                canonical, _, db = self._db_for(key)
                items = queries.preview_items(db, canonical, limit, max_chars)
                if items is None:
                    previews.append({"key": canonical, "status": "missing", "items": []})
                else:
                    previews.append({"key": canonical, "status": "ok" if items else "empty",
                                     "items": items})
            except (SessionError, sqlite3.Error, msgspec.DecodeError):
                previews.append({"key": key, "status": "error", "items": []})
        return {"ts": now_ms(), "previews": previews}

    def patch(self, key: str, fields: dict, auto: bool = False, now: int | None = None) -> dict:
        """sessions.patch (protocol §13.3): set or (with None) clear overrides; a missing
        session is created. `auto=True` marks a model as set automatically (cleared on reset).
        Returns the stored row."""
        canonical, agent_id, db = self._db_for(key)
        queries.patch(db, canonical, agent_id, fields, auto, now or now_ms())
        self._tell_health(agent_id)
        row = self._row(db, canonical)
        self._publish("patch", canonical, row)
        return row  # type: ignore[return-value]

    def reset(self, key: str, reason: str = "reset", now: int | None = None) -> dict:
        """sessions.reset (protocol §13.5): a new session id under the same key; earlier
        messages stay under the old id. Automatic model overrides and token counts are cleared."""
        canonical, agent_id, db = self._db_for(key)
        queries.reset(db, canonical, reason, now or now_ms())
        self._tell_health(agent_id)
        entry = self._row(db, canonical)
        self._publish("reset", canonical, entry)
        return entry  # type: ignore[return-value]

    def delete(self, key: str, delete_transcript: bool = True) -> dict:
        """sessions.delete (protocol §13.6): the row and every transcript the key ever had
        (deleted, or moved to `archived_messages` when `delete_transcript` is false)."""
        canonical, agent_id, db = self._db_for(key)
        result = queries.delete(db, canonical, agent_id, delete_transcript, now_ms())
        if result["deleted"]:
            self._tell_health(agent_id)
            self._publish("delete", canonical, None)
        return result

    def apply_reset_policy(self, key: str, now: int | None = None,
                           policy: dict | None = None) -> bool:
        """Apply `session.reset` (cli-config §6.4) before a new inbound message; True if the
        session was reset (see `queries.is_stale` for the rule)."""
        policy = self._policy if policy is None else policy
        if policy.get("mode", "none") not in ("daily", "idle"):
            return False
        canonical, _, db = self._db_for(key)
        stamp = now or now_ms()
        stale = queries.is_stale(db, canonical, policy, stamp)
        if stale:
            self.reset(canonical, reason=policy["mode"], now=stamp)
        return stale

    def checkpoint(self) -> dict:
        """Fold the WAL back into each database (also done on stop)."""
        return {agent_id: queries.checkpoint(db) for agent_id, db in self._dbs.items()}

    def counts(self) -> dict[str, int]:
        return {agent_id: queries.count(db) for agent_id, db in self._dbs.items()}

    # --- notifications ----------------------------------------------------------------------

    def _publish(self, reason: str, key: str, row: dict | None) -> None:
        """`sessions.changed` (protocol §7.5) through the EventHub, tell-only; the store is
        the one owner of these events since every row change goes through it."""
        if not self._notify:
            return
        hub = EVENT_HUB.whereis()
        if hub is None:
            return
        payload = {"ts": now_ms(), "reason": reason, "key": key,
                   "session": dict(row) if row is not None else None}
        try:
            tell(hub, EventHub.publish, "sessions.changed", payload)
        except Exception:  # noqa: BLE001 - the hub stopped meanwhile
            pass

    def _tell_health(self, agent_id: str) -> None:
        if not self._notify:
            return
        health = HEALTH.whereis()
        if health is None:
            return
        db = self._dbs.get(agent_id)
        if db is None:
            return
        count, recent = queries.count(db), queries.recent(db, now_ms())
        try:
            tell(health, HealthActor.set_sessions, agent_id, count, recent)
        except Exception:  # noqa: BLE001 - health stopped meanwhile
            pass
