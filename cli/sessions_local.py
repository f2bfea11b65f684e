"""The sessions database without a gateway (cli-config §4.13).

Reads open `<state>/agents/<agentId>/sessions.sqlite` read-only, so a look never changes the
files (no migration, no new database, no WAL writes). Writes take the state-dir lock, exactly
as a starting gateway would, and run SessionStore in-process: the same code, and so the same
rules (main session refused, old messages kept on reset), as the gateway.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from typing import Any, Callable

from actors.sessions.keys import valid_agent_id
from actors.sessions.store import SessionError, SessionStore, db_path
from cli.output import EXIT_FAIL, CliError
from lifecycle.lock import InstanceLock, LockHeld

# Another CLI write holds the lock for milliseconds; a gateway holds it for good, so waiting
# longer than this only delays the error.
LOCK_WAIT_MS = 2000


def _connect_read_only(path: str) -> sqlite3.Connection:
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    db = sqlite3.connect(uri, uri=True, isolation_level=None)
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("SELECT version FROM schema_version").fetchone()  # fail early on a foreign file
    return db


def _empty_database() -> sqlite3.Connection:
    """An agent without a database reads as one with no sessions."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    SessionStore._migrate(db)
    return db


class ReadOnlySessions(SessionStore):
    """SessionStore's queries (list, history) over read-only connections. Never started as
    an actor: the CLI calls it from its own thread, which also owns the connections."""

    def __init__(self, state_dir: str, defaults: dict | None = None) -> None:
        super().__init__(state_dir, defaults=defaults, notify_health=False)
        agents_dir = os.path.join(state_dir, "agents")
        for name in sorted(os.listdir(agents_dir)) if os.path.isdir(agents_dir) else []:
            if valid_agent_id(name) and os.path.exists(db_path(state_dir, name)):
                self._open(name)

    def _open(self, agent_id: str) -> sqlite3.Connection:
        db = self._dbs.get(agent_id)
        if db is not None:
            return db
        path = db_path(self._state_dir, agent_id)
        if not os.path.exists(path):
            return _empty_database()  # not cached: list() must not count it as an agent
        db = self._dbs[agent_id] = _connect_read_only(path)
        return db

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
    try:
        ref = SessionStore.start(state_dir, notify_health=False)
        try:
            store = ref.proxy()
            return [_write_one(store, operation, key) for key in keys]
        finally:
            ref.stop(timeout=10)
    finally:
        lock.release()


def _write_one(store: Any, operation: str, key: str) -> tuple[str, dict | None, str | None]:
    try:
        if operation == "reset":
            entry = store.reset(key).get(timeout=30)
            return key, {"ok": True, "key": entry["key"], "entry": entry}, None
        return key, store.delete(key).get(timeout=30), None
    except SessionError as exc:
        return key, None, str(exc)
