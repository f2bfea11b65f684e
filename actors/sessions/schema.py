"""The sessions database on disk: its file, its DDL and migrations, and how a connection to it
is opened (protocol §13; cli-config §7.1).

Durability: WAL journal with `synchronous=FULL`. A write commits before the store answers,
and that answer is the acknowledgement point. In WAL mode a committed transaction is already
in the kernel once `COMMIT` returns, so even `synchronous=NORMAL` survives `kill -9` of the
process; but NORMAL only fsyncs the WAL at checkpoints, so a power loss or kernel crash could
roll back transactions that were acknowledged. FULL fsyncs the WAL on every commit, so an
acknowledged message survives both; the cost is one fsync per write transaction.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from contextlib import contextmanager
from typing import Iterator

from actors.sessions.keys import DEFAULT_AGENT_ID

DB_NAME = "sessions.sqlite"

MIGRATIONS: list[str] = [
    # 1: sessions, their session ids, transcripts and the archive.
    """
    CREATE TABLE sessions (
        key TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        channel TEXT,
        peer TEXT,
        display_name TEXT,
        label TEXT,
        model TEXT,
        model_provider TEXT,
        model_auto INTEGER NOT NULL DEFAULT 0,
        context_tokens INTEGER,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        total_tokens INTEGER NOT NULL DEFAULT 0,
        thinking_level TEXT,
        verbose_level TEXT,
        reasoning_level TEXT,
        send_policy TEXT,
        flags TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        last_user_at INTEGER
    );
    CREATE INDEX sessions_updated ON sessions(updated_at DESC, key);
    CREATE UNIQUE INDEX sessions_label ON sessions(agent_id, label) WHERE label IS NOT NULL;
    CREATE TABLE session_ids (
        session_id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        end_reason TEXT
    );
    CREATE INDEX session_ids_key ON session_ids(key);
    CREATE TABLE messages (
        session_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        tool_calls TEXT,
        tool_call_id TEXT,
        run_id TEXT,
        ts INTEGER NOT NULL,
        extra TEXT,
        PRIMARY KEY (session_id, seq)
    );
    CREATE INDEX messages_run ON messages(run_id) WHERE run_id IS NOT NULL;
    CREATE TABLE archived_messages (
        session_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        key TEXT NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        tool_calls TEXT,
        tool_call_id TEXT,
        run_id TEXT,
        ts INTEGER NOT NULL,
        extra TEXT,
        archived_at INTEGER NOT NULL,
        PRIMARY KEY (session_id, seq)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def db_path(state_dir: str, agent_id: str = DEFAULT_AGENT_ID) -> str:
    return os.path.join(state_dir, "agents", agent_id, DB_NAME)


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: taken at once (IMMEDIATE), committed on leaving the block, rolled
    back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def migrate(db: sqlite3.Connection) -> None:
    """Bring the schema up to SCHEMA_VERSION in one transaction; a database newer than this
    code is refused."""
    with transaction(db):
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        if row is None:
            db.execute("INSERT INTO schema_version (version) VALUES (0)")
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"sessions database schema {version} is newer than this "
                               f"gateway ({SCHEMA_VERSION})")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("UPDATE schema_version SET version = ?", (number,))


def schema_version(db: sqlite3.Connection) -> int:
    return db.execute("SELECT version FROM schema_version").fetchone()[0]


def open_db(path: str) -> sqlite3.Connection:
    """The database at `path` for reading and writing, created (mode 0600, in a 0700
    directory) and migrated as needed. Usable only in the calling thread."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=5000")
        migrate(db)
    except BaseException:
        db.close()
        raise
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass
    return db


def open_read_only(path: str) -> sqlite3.Connection:
    """An existing database for reading only: no migration, no new file, no WAL writes, so a
    look never changes the files."""
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    db = sqlite3.connect(uri, uri=True, isolation_level=None)
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("SELECT version FROM schema_version").fetchone()  # fail early on a foreign file
    return db


def empty_db() -> sqlite3.Connection:
    """An in-memory database with the current schema and no sessions."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    migrate(db)
    return db

