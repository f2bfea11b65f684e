"""The sessions database without a gateway (cli-config §4.13).

Reads open `<state>/agents/<agentId>/sessions.sqlite` read-only, so a look never changes the
files (no migration, no new database, no WAL writes). Writes take the state-dir lock, exactly
as a starting gateway would, and run the store's own queries (actors/sessions/queries.py) on a
connection opened as the store opens it: the same code, and so the same rules (main session
refused, old messages kept on reset), as the gateway.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Callable

from actors.sessions import queries, schema
from actors.sessions.keys import DEFAULT_AGENT_ID, valid_agent_id
from actors.sessions.queries import SessionError
from actors.sessions.rows import now_ms
from actors.sessions.schema import db_path
from cli.output import EXIT_FAIL, CliError
from lifecycle.lock import InstanceLock, LockHeld

# Another CLI write holds the lock for milliseconds; a gateway holds it for good, so waiting
# longer than this only delays the error.
LOCK_WAIT_MS = 2000


class ReadOnlySessions:
    """sessions.list and chat.history as the gateway answers them, over read-only connections
    to every agent's database. Used from one thread, which also owns the connections."""

    def __init__(self, state_dir: str, defaults: dict | None = None) -> None:
        self._state_dir = state_dir
        self._defaults = dict(defaults or {})
        self._dbs: dict[str, sqlite3.Connection] = {}
        agents_dir = os.path.join(state_dir, "agents")
        for name in sorted(os.listdir(agents_dir)) if os.path.isdir(agents_dir) else []:
            if valid_agent_id(name) and os.path.exists(db_path(state_dir, name)):
                self._dbs[name] = schema.open_read_only(db_path(state_dir, name))

    def list(self, agentId: str | None = None, **params: Any) -> dict:
        if agentId is not None:
            agent = str(agentId).lower()
            agents = [agent] if agent in self._dbs else []
        else:
            agents = sorted(self._dbs)
        path = db_path(self._state_dir, agentId.lower() if agentId else DEFAULT_AGENT_ID)
        return queries.list_sessions({agent: self._dbs[agent] for agent in agents}, path=path,
                                     defaults=self._defaults, **params)

    def history(self, key: str, **params: Any) -> dict:
        canonical, agent_id = queries.canonical(key)
        db = self._dbs.get(agent_id)
        if db is not None:
            return queries.history(db, canonical, **params)
        empty = schema.empty_db()  # an agent without a database reads as one with no sessions
        try:
            return queries.history(empty, canonical, **params)
        finally:
            empty.close()

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()


def read_locally(state_dir: str, defaults: dict, work: Callable[[ReadOnlySessions], Any]) -> Any:
    try:
        store = ReadOnlySessions(state_dir, defaults)
        try:
            return work(store)
        finally:
            store.close()
    except (sqlite3.Error, OSError) as exc:
        raise CliError("internal", f"cannot read the sessions database in {state_dir}: {exc}",
                       EXIT_FAIL) from None


def write_locally(state_dir: str, operation: str, keys: list[str]) -> list[tuple[str, dict | None, str | None]]:
    """Run `operation` ("reset" or "delete") on every key under the state-dir lock:
    (key, payload like the RPC's, None) or (key, None, error message) per key."""
    lock = InstanceLock(state_dir)
    try:
        lock.acquire(LOCK_WAIT_MS, {"command": f"openclaw sessions {operation}"})
    except LockHeld as exc:
        holder = f"pid {exc.pid}" if exc.pid is not None else "another process"
        raise CliError("conflict", f"the state lock is held ({holder}) but no gateway answers; "
                       f"cannot {operation} sessions now", EXIT_FAIL) from None
    dbs: dict[str, sqlite3.Connection] = {}
    try:
        return [_write_one(state_dir, dbs, operation, key) for key in keys]
    finally:
        try:
            for db in dbs.values():
                try:
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as the store does on stop
                finally:
                    db.close()
        finally:
            lock.release()


def _write_one(state_dir: str, dbs: dict[str, sqlite3.Connection], operation: str,
               key: str) -> tuple[str, dict | None, str | None]:
    try:
        canonical, agent_id = queries.canonical(key)
        db = dbs.get(agent_id)
        if db is None:
            db = dbs[agent_id] = schema.open_db(db_path(state_dir, agent_id))
        if operation == "reset":
            queries.reset(db, canonical, "reset", now_ms())
            entry = queries.row(db, canonical)
            assert entry is not None
            return key, {"ok": True, "key": entry["key"], "entry": entry}, None
        return key, queries.delete(db, canonical, agent_id, True, now_ms()), None
    except SessionError as exc:
        return key, None, str(exc)
