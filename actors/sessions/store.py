"""SessionStore: the sessions database (protocol §13, §14.2; cli-config §6.4, §7.1).

One SQLite database per agent at `<state>/agents/<agentId>/sessions.sqlite`, opened and used
only in the actor's own thread (the one writer). Every public method returns fresh dicts
built per call, so nothing mutable is shared with the caller's thread.

Durability: WAL journal with `synchronous=FULL`. `append` commits before it returns, and that
return is the acknowledgement point. In WAL mode a committed transaction is already in the
kernel once `COMMIT` returns, so even `synchronous=NORMAL` survives `kill -9` of the process;
but NORMAL only fsyncs the WAL at checkpoints, so a power loss or kernel crash could roll
back transactions that were acknowledged. FULL fsyncs the WAL on every commit, so an
acknowledged message survives both; the cost is one fsync per write transaction.

Callers outside the actor system reach the public methods through `Call` (actors/base.py);
tests and other actors may use a pykka proxy off the event loop.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import logging
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import msgspec

from actors import registry
from actors.base import Call, GatewayActor
from actors.sessions.keys import (
    DEFAULT_AGENT_ID,
    SessionKeyError,
    agent_id_of,
    kind_of,
    main_key,
    normalize_key,
    valid_agent_id,
)

log = logging.getLogger("openclaw.sessions")

DB_NAME = "sessions.sqlite"
HISTORY_MAX_MESSAGE_BYTES = 1_000_000
HISTORY_OMITTED = "[chat.history omitted: message too large]"
LABEL_MAX = 64
PREVIEW_ROLES = {"user": "user", "assistant": "assistant", "tool": "tool", "toolResult": "tool",
                 "system": "system"}

_encode = msgspec.json.encode
_decode = msgspec.json.decode


class SessionError(ValueError):
    """A request the store refuses; the message is the client-facing text (INVALID_REQUEST)."""


# --- schema and migrations ----------------------------------------------------------------

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

_ROW_COLUMNS = ("key, agent_id, session_id, kind, channel, peer, display_name, label, model, "
                "model_provider, context_tokens, input_tokens, output_tokens, total_tokens, "
                "thinking_level, verbose_level, reasoning_level, send_policy, flags, created_at, "
                "updated_at, started_at, last_user_at")
_ROW_KEYS = [c.strip() for c in _ROW_COLUMNS.split(",")]
_ROW_NAMES = {"agent_id": "agentId", "session_id": "sessionId", "display_name": "displayName",
              "model_provider": "modelProvider", "context_tokens": "contextTokens",
              "input_tokens": "inputTokens", "output_tokens": "outputTokens",
              "total_tokens": "totalTokens", "thinking_level": "thinkingLevel",
              "verbose_level": "verboseLevel", "reasoning_level": "reasoningLevel",
              "send_policy": "sendPolicy", "created_at": "createdAt", "updated_at": "updatedAt",
              "started_at": "sessionStartedAt", "last_user_at": "lastUserMessageAt"}
# For `_row_dict`: (index, name) of the columns shown only when set, in output order, and
# where the fixed ones sit in a row.
_ROW_FIXED = ("key", "kind", "session_id", "updated_at", "flags")
_ROW_OPTIONAL = tuple((i, _ROW_NAMES.get(c, c)) for i, c in enumerate(_ROW_KEYS)
                      if c not in _ROW_FIXED)
_KEY_AT, _KIND_AT, _SID_AT, _UPDATED_AT, _FLAGS_AT = (_ROW_KEYS.index(c) for c in _ROW_FIXED)
_LIST_CACHE_MAX = 64

# sessions.patch fields (protocol §13.3): field → (column or None for `flags`, validator kind)
_PATCH_FIELDS: dict[str, tuple[str | None, str]] = {
    "label": ("label", "label"),
    "model": ("model", "model"),
    "sendPolicy": ("send_policy", "sendPolicy"),
    "groupActivation": (None, "groupActivation"),
    "thinkingLevel": ("thinking_level", "level"),
    "verboseLevel": ("verbose_level", "level"),
    "reasoningLevel": ("reasoning_level", "level"),
    "elevatedLevel": (None, "level"),
    "fastMode": (None, "bool"),
    "execHost": (None, "level"),
    "execSecurity": (None, "level"),
    "execAsk": (None, "level"),
}
_ENUMS = {"sendPolicy": ("allow", "deny"), "groupActivation": ("mention", "always")}


def now_ms() -> int:
    return int(time.time() * 1000)


def model_ref(row: dict) -> str | None:
    """A session row's model override as `provider/model`, or None."""
    if not row.get("model"):
        return None
    return f"{row['modelProvider']}/{row['model']}" if row.get("modelProvider") else row["model"]


def db_path(state_dir: str, agent_id: str = DEFAULT_AGENT_ID) -> str:
    return os.path.join(state_dir, "agents", agent_id, DB_NAME)


def _text_of(content: list) -> str:
    out = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            out.append(part["text"])
        elif kind == "image":
            out.append("[image]")
        elif kind == "toolCall":
            out.append(f"[tool call: {part.get('name', '')}]")
    return " ".join(t for t in out if t)


def _cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max(0, max_chars - 1)] + "…"


def _cap_text_parts(content: list, max_chars: int) -> list:
    """Copy of `content` whose text parts together hold at most `max_chars` characters."""
    budget, out = max_chars, []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            text = part["text"]
            if len(text) > budget:
                part = {**part, "text": text[:budget]}
            budget -= len(part["text"])
        out.append(part)
    return out


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: taken at once (IMMEDIATE), committed on leaving the block, rolled
    back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


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
        if db is not None:
            return db
        path = db_path(self._state_dir, agent_id)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=5000")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        try:
            os.chmod(path, 0o600)
        except OSError:
            pass
        self._dbs[agent_id] = db
        return db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        with _transaction(db):
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

    def _db_for(self, key: str) -> tuple[str, str, sqlite3.Connection]:
        try:
            canonical = normalize_key(key)
        except SessionKeyError as exc:
            raise SessionError(str(exc)) from None
        agent_id = agent_id_of(canonical)
        return canonical, agent_id, self._open(agent_id)

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
        with _transaction(db):
            created = self._ensure(db, canonical, agent_id, now or now_ms(), channel, peer,
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
        if not isinstance(message, dict):
            raise SessionError("message must be an object")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise SessionError("message role must be a non-empty string")
        content = message.get("content", [])
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
            raise SessionError("message content must be a string or a list of parts")
        ts = message.get("timestamp")
        stamp = now or now_ms()
        if not isinstance(ts, int) or isinstance(ts, bool):
            ts = stamp
        run_id = message.get("runId")
        tool_calls = [p for p in content if p.get("type") == "toolCall"] or None
        tool_call_id = message.get("toolCallId")
        extra = {k: v for k, v in message.items()
                 if k not in ("role", "content", "timestamp", "runId", "__openclaw")}
        content_json = _encode(content).decode()
        extra_json = _encode(extra).decode() if extra else None
        tool_calls_json = _encode(tool_calls).decode() if tool_calls else None
        usage = message.get("usage") if isinstance(message.get("usage"), dict) else {}
        tokens_in = int(usage.get("input") or usage.get("inputTokens") or 0)
        tokens_out = int(usage.get("output") or usage.get("outputTokens") or 0)
        tokens_total = int(usage.get("total") or usage.get("totalTokens") or tokens_in + tokens_out)
        message_id = uuid.uuid4().hex
        with _transaction(db):
            created = self._ensure(db, canonical, agent_id, stamp, None, None, None)
            current = db.execute("SELECT session_id FROM sessions WHERE key = ?",
                                 (canonical,)).fetchone()[0]
            if session_id is None or session_id == current or not db.execute(
                    "SELECT 1 FROM session_ids WHERE session_id = ? AND key = ?",
                    (session_id, canonical)).fetchone():
                session_id = current
            elif role != "user":  # a late reply to an earlier transcript: not this one's usage
                tokens_in = tokens_out = tokens_total = 0
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE session_id = ?",
                             (session_id,)).fetchone()[0]
            db.execute(
                "INSERT INTO messages (session_id, seq, id, role, content, tool_calls, "
                "tool_call_id, run_id, ts, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (session_id, seq, message_id, role, content_json, tool_calls_json,
                 tool_call_id if isinstance(tool_call_id, str) else None,
                 run_id if isinstance(run_id, str) else None, ts, extra_json))
            db.execute(
                "UPDATE sessions SET updated_at = MAX(updated_at, ?), "
                "last_user_at = CASE WHEN ? THEN ? ELSE last_user_at END, "
                "input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, "
                "total_tokens = total_tokens + ? WHERE key = ?",
                (stamp, role == "user", stamp, tokens_in, tokens_out, tokens_total, canonical))
        self._tell_health(agent_id)
        if created:
            self._publish("create", canonical, self._row(db, canonical))
        return self._message(message_id, seq, role, content_json, run_id if isinstance(
            run_id, str) else None, ts, extra_json, None)

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
            row = db.execute("SELECT session_id FROM sessions WHERE key = ?",
                             (canonical,)).fetchone()
            if row is None or row[0] != expected_session_id:
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
        r = self._open(agent_id).execute("SELECT key FROM session_ids WHERE session_id = ?",
                                         (session_id,)).fetchone()
        return r[0] if r else None

    def compact(self, key: str, keep: int, summary: str | None = None) -> dict:
        """sessions.compact (protocol §13.7): move every message but the newest `keep` of the
        current session id to the archive; with `summary`, one system message holding it takes
        their place, ahead of the kept ones. Returns `{"compacted", "kept"|"reason"}`."""
        canonical, agent_id, db = self._db_for(key)
        row = db.execute("SELECT session_id FROM sessions WHERE key = ?", (canonical,)).fetchone()
        if row is None:
            return {"compacted": False, "reason": "no-session"}
        session_id, stamp = row[0], now_ms()
        seqs = [r[0] for r in db.execute("SELECT seq FROM messages WHERE session_id = ? "
                                         "ORDER BY seq DESC", (session_id,))]
        if len(seqs) <= keep:
            return {"compacted": False, "reason": "too-short"}
        cut = seqs[keep]  # the newest seq that goes
        with _transaction(db):
            db.execute("INSERT INTO archived_messages (session_id, seq, id, key, role, content, "
                       "tool_calls, tool_call_id, run_id, ts, extra, archived_at) "
                       "SELECT session_id, seq, id, ?, role, content, tool_calls, tool_call_id, "
                       "run_id, ts, extra, ? FROM messages WHERE session_id = ? AND seq <= ?",
                       (canonical, stamp, session_id, cut))
            db.execute("DELETE FROM messages WHERE session_id = ? AND seq <= ?", (session_id, cut))
            if summary is not None:
                # Below every seq the session id ever used, so it sorts first and never
                # collides with an archived row.
                low = db.execute("SELECT MIN(m) FROM (SELECT MIN(seq) AS m FROM messages WHERE "
                                 "session_id = ?1 UNION ALL SELECT MIN(seq) FROM archived_messages "
                                 "WHERE session_id = ?1)", (session_id,)).fetchone()[0]
                content = _encode([{"type": "text", "text": summary}]).decode()
                db.execute("INSERT INTO messages (session_id, seq, id, role, content, ts, extra) "
                           "VALUES (?, ?, ?, 'system', ?, ?, ?)",
                           (session_id, min(low, 1) - 1, uuid.uuid4().hex, content, stamp,
                            '{"compaction":true}'))
            db.execute("UPDATE sessions SET updated_at = ? WHERE key = ?", (stamp, canonical))
        self._publish("compact", canonical, self._row(db, canonical))
        return {"compacted": True, "kept": keep}

    def history(self, key: str, limit: int = 200, before: int | None = None,
                max_chars: int | None = None) -> dict:
        """chat.history (protocol §14.2): the newest `limit` messages of the current session id
        (with `before`, those with a lower `seq`), oldest first."""
        canonical, _, db = self._db_for(key)
        limit = max(1, min(int(limit), 1000))
        row = db.execute("SELECT session_id, thinking_level FROM sessions WHERE key = ?",
                         (canonical,)).fetchone()
        if row is None:
            return {"sessionKey": canonical, "sessionId": None, "thinkingLevel": None,
                    "hasMore": False, "inFlightRun": None, "messages": []}
        session_id, thinking = row
        bound = before if isinstance(before, int) and not isinstance(before, bool) else 2 ** 62
        rows = db.execute(
            "SELECT id, seq, role, content, run_id, ts, extra FROM messages "
            "WHERE session_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (session_id, bound, limit + 1)).fetchall()
        has_more = len(rows) > limit
        messages = [self._message(r[0], r[1], r[2], r[3], r[4], r[5], r[6], max_chars)
                    for r in reversed(rows[:limit])]
        result = {"sessionKey": canonical, "sessionId": session_id, "hasMore": has_more,
                  "inFlightRun": None, "messages": messages}
        if thinking is not None:
            result["thinkingLevel"] = thinking
        return result

    def messages(self, session_id: str, agent_id: str = DEFAULT_AGENT_ID,
                 last: int | None = None) -> list[dict]:
        """The messages stored under one session id (current or earlier), oldest first: all,
        or the newest `last`."""
        db = self._open(agent_id)
        rows = db.execute("SELECT id, seq, role, content, run_id, ts, extra FROM messages "
                          "WHERE session_id = ? ORDER BY seq DESC LIMIT ?",
                          (session_id, -1 if last is None else last)).fetchall()
        return [self._message(*r, None) for r in reversed(rows)]

    def session_ids(self, key: str) -> list[dict]:
        """Every session id the key has had, oldest first."""
        canonical, _, db = self._db_for(key)
        return [{"sessionId": r[0], "startedAt": r[1], "endedAt": r[2], "endReason": r[3]}
                for r in db.execute("SELECT session_id, started_at, ended_at, end_reason FROM "
                                    "session_ids WHERE key = ? ORDER BY started_at, rowid",
                                    (canonical,))]

    def list(self, limit: int = 100, offset: int = 0, activeMinutes: int | None = None,
             agentId: str | None = None, label: str | None = None, search: str | None = None,
             includeGlobal: bool = False, includeUnknown: bool = False,
             includeLastMessage: bool = False, now: int | None = None) -> dict:
        """sessions.list (protocol §13.2), rows newest `updatedAt` first."""
        limit = max(1, int(limit))
        offset = max(0, int(offset))
        stamp = now or now_ms()
        where, params = [], []
        kinds = ["direct", "group"] + (["global"] if includeGlobal else []) + (
            ["unknown"] if includeUnknown else [])
        where.append(f"kind IN ({','.join('?' * len(kinds))})")
        params += kinds
        if activeMinutes is not None:
            where.append("updated_at >= ?")
            params.append(stamp - int(activeMinutes) * 60_000)
        if label is not None:
            where.append("label = ?")
            params.append(label)
        if search:
            pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace(
                "_", "\\_") + "%"
            where.append("(key LIKE ? ESCAPE '\\' OR lower(COALESCE(label, '')) LIKE ? ESCAPE '\\'"
                         " OR lower(COALESCE(display_name, '')) LIKE ? ESCAPE '\\')")
            params += [pattern, pattern, pattern]
        clause = " AND ".join(where)
        if agentId is not None:
            agent = str(agentId).lower()
            agents = [agent] if valid_agent_id(agent) and (
                agent in self._dbs or os.path.exists(db_path(self._state_dir, agent))) else []
        else:
            agents = sorted(self._dbs)
        total, pages = 0, []
        # One database (the usual case): page in SQL. Several: each gives its first
        # offset+limit rows and the pages are merged by (updatedAt desc, key).
        single = len(agents) == 1
        # The count and the page rows (immutable tuples) of recent queries are kept per
        # database version: this connection's change count (every write of the store) and
        # `data_version` (commits by any other connection); any change misses the cache.
        cache = self._list_pages
        for agent in agents:
            db = self._open(agent)
            agent_clause, agent_params = clause, params
            if label is not None:  # lets the (agent_id, label) index answer
                agent_clause, agent_params = clause + " AND agent_id = ?", [*params, agent]
            page = (*agent_params, limit if single else offset + limit, offset if single else 0)
            version = (db.total_changes, db.execute("PRAGMA data_version").fetchone()[0])
            cache_key = (agent, agent_clause, page)
            hit = cache.get(cache_key)
            if hit is not None and hit[0] == version:
                count, rows = hit[1], hit[2]
            else:
                count = db.execute(f"SELECT COUNT(*) FROM sessions WHERE {agent_clause}",
                                   agent_params).fetchone()[0]
                rows = db.execute(
                    f"SELECT {_ROW_COLUMNS} FROM sessions WHERE {agent_clause} "
                    "ORDER BY updated_at DESC, key LIMIT ? OFFSET ?", page).fetchall()
                if len(cache) >= _LIST_CACHE_MAX:
                    cache.clear()
                cache[cache_key] = (version, count, rows)
            total += count
            pages.append([(-r[_UPDATED_AT], r[_KEY_AT], agent, r) for r in rows])
        merged = pages[0] if single else list(heapq.merge(*pages))[offset: offset + limit]
        sessions = []
        for _, _, agent, r in merged:
            entry = self._with_runs(self._row_dict(r))
            if includeLastMessage:
                preview = self._last_preview(self._dbs[agent], entry["sessionId"])
                if preview is not None:
                    entry["lastMessagePreview"] = preview
            sessions.append(entry)
        has_more = offset + len(sessions) < total
        return {"ts": stamp, "path": db_path(self._state_dir, agentId.lower() if agentId else
                                             DEFAULT_AGENT_ID),
                "count": len(sessions), "totalCount": total, "limitApplied": limit,
                "nextOffset": offset + len(sessions) if has_more else None, "hasMore": has_more,
                "defaults": dict(self._defaults), "sessions": sessions}

    def preview(self, keys: Iterable[str], limit: int = 12, maxChars: int = 240) -> dict:
        """sessions.preview (protocol §13.4)."""
        limit, max_chars = max(1, int(limit)), max(20, int(maxChars))
        previews = []
        for key in keys:
            try:
                canonical, _, db = self._db_for(key)
                row = db.execute("SELECT session_id FROM sessions WHERE key = ?",
                                 (canonical,)).fetchone()
                if row is None:
                    previews.append({"key": canonical, "status": "missing", "items": []})
                    continue
                rows = db.execute("SELECT role, content FROM messages WHERE session_id = ? "
                                  "ORDER BY seq DESC LIMIT ?", (row[0], limit)).fetchall()
                items = [{"role": PREVIEW_ROLES.get(role, "other"),
                          "text": _cut(_text_of(_decode(content)), max_chars)}
                         for role, content in reversed(rows)]
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
        columns: dict[str, Any] = {}
        flags: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "key":
                continue
            spec = _PATCH_FIELDS.get(name)
            if spec is None:
                raise SessionError(f"unknown field: {name}")
            column, kind = spec
            if value is not None:
                self._validate(name, kind, value)
            if name == "model":
                provider, model = (value.split("/", 1) if value and "/" in value else (None, value))
                columns.update(model=model, model_provider=provider,
                               model_auto=1 if auto and value is not None else 0)
            elif column is not None:
                columns[column] = value
            else:
                flags[name] = value
        stamp = now or now_ms()
        with _transaction(db):
            self._ensure(db, canonical, agent_id, stamp, None, None, None)
            if "label" in columns and columns["label"] is not None:
                taken = db.execute("SELECT key FROM sessions WHERE agent_id = ? AND label = ? "
                                   "AND key != ?", (agent_id, columns["label"], canonical)).fetchone()
                if taken:
                    raise SessionError(f"label already in use: {columns['label']}")
            if flags:
                current = _decode(db.execute("SELECT flags FROM sessions WHERE key = ?",
                                             (canonical,)).fetchone()[0])
                for name, value in flags.items():
                    if value is None:
                        current.pop(name, None)
                    else:
                        current[name] = value
                columns["flags"] = _encode(current).decode()
            columns["updated_at"] = stamp
            assignments = ", ".join(f"{c} = ?" for c in columns)  # column names from our table
            db.execute(f"UPDATE sessions SET {assignments} WHERE key = ?",
                       (*columns.values(), canonical))
        self._tell_health(agent_id)
        row = self._row(db, canonical)
        self._publish("patch", canonical, row)
        return row  # type: ignore[return-value]

    def reset(self, key: str, reason: str = "reset", now: int | None = None) -> dict:
        """sessions.reset (protocol §13.5): a new session id under the same key; earlier
        messages stay under the old id. Automatic model overrides and token counts are cleared."""
        canonical, agent_id, db = self._db_for(key)
        stamp = now or now_ms()
        with _transaction(db):
            row = db.execute("SELECT session_id FROM sessions WHERE key = ?", (canonical,)).fetchone()
            if row is None:
                raise SessionError(f"session not found: {canonical}")
            self._new_session_id(db, canonical, row[0], stamp, reason)
        self._tell_health(agent_id)
        entry = self._row(db, canonical)
        self._publish("reset", canonical, entry)
        return entry  # type: ignore[return-value]

    def delete(self, key: str, delete_transcript: bool = True) -> dict:
        """sessions.delete (protocol §13.6): the row and every transcript the key ever had
        (deleted, or moved to `archived_messages` when `delete_transcript` is false)."""
        canonical, agent_id, db = self._db_for(key)
        if canonical == main_key(agent_id):
            raise SessionError(f"cannot delete the main session ({canonical})")
        stamp = now_ms()
        with _transaction(db):
            row = db.execute("SELECT session_id FROM sessions WHERE key = ?", (canonical,)).fetchone()
            if row is None:
                return {"ok": True, "key": canonical, "deleted": False, "archived": []}
            ids = [r[0] for r in db.execute("SELECT session_id FROM session_ids WHERE key = ? "
                                            "ORDER BY started_at, rowid", (canonical,))]
            if row[0] not in ids:
                ids.append(row[0])
            archived = []
            for session_id in ids:
                if not delete_transcript:
                    moved = db.execute(
                        "INSERT INTO archived_messages (session_id, seq, id, key, role, content, "
                        "tool_calls, tool_call_id, run_id, ts, extra, archived_at) "
                        "SELECT session_id, seq, id, ?, role, content, tool_calls, tool_call_id, "
                        "run_id, ts, extra, ? FROM messages WHERE session_id = ?",
                        (canonical, stamp, session_id)).rowcount
                    if moved:
                        archived.append(session_id)
                db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM session_ids WHERE key = ?", (canonical,))
            db.execute("DELETE FROM sessions WHERE key = ?", (canonical,))
        self._tell_health(agent_id)
        self._publish("delete", canonical, None)
        return {"ok": True, "key": canonical, "deleted": True, "archived": archived}

    def apply_reset_policy(self, key: str, now: int | None = None,
                           policy: dict | None = None) -> bool:
        """Apply `session.reset` (cli-config §6.4) before a new inbound message; True if the
        session was reset. `daily`: the latest `atHour` boundary (local time) at or before
        `now` is later than the session start. `idle`: the last user message (or the session
        start) is more than `idleMinutes` old."""
        policy = self._policy if policy is None else policy
        mode = policy.get("mode", "none")
        if mode not in ("daily", "idle"):
            return False
        canonical, _, db = self._db_for(key)
        row = db.execute("SELECT started_at, last_user_at FROM sessions WHERE key = ?",
                         (canonical,)).fetchone()
        if row is None:
            return False
        started_at, last_user_at = row
        stamp = now or now_ms()
        if mode == "daily":
            at_hour = int(policy.get("atHour", 4))
            local = _dt.datetime.fromtimestamp(stamp / 1000)  # naive local time
            boundary = local.replace(hour=at_hour, minute=0, second=0, microsecond=0)
            if boundary > local:
                boundary -= _dt.timedelta(days=1)
            stale = started_at < int(boundary.timestamp() * 1000)
        else:
            idle_ms = int(policy.get("idleMinutes", 60)) * 60_000
            stale = stamp - (last_user_at or started_at) > idle_ms
        if stale:
            self.reset(canonical, reason=mode, now=stamp)
        return stale

    def checkpoint(self) -> dict:
        """Fold the WAL back into each database (also done on stop)."""
        out = {}
        for agent_id, db in self._dbs.items():
            busy, log_frames, done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            out[agent_id] = {"busy": busy, "walFrames": log_frames, "checkpointed": done}
        return out

    def counts(self) -> dict[str, int]:
        return {agent_id: db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
                for agent_id, db in self._dbs.items()}

    # --- internals --------------------------------------------------------------------------

    @staticmethod
    def _validate(name: str, kind: str, value: Any) -> None:
        if kind == "label":
            if not isinstance(value, str) or not value.strip() or len(value) > LABEL_MAX:
                raise SessionError(f"invalid {name}: expected a non-empty string of at most "
                                   f"{LABEL_MAX} characters")
        elif kind in ("model", "level"):
            if not isinstance(value, str) or not value.strip():
                raise SessionError(f"invalid {name}: expected a non-empty string")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise SessionError(f"invalid {name}: expected a boolean")
        elif value not in _ENUMS[kind]:
            raise SessionError(f"invalid {name}: expected one of {', '.join(_ENUMS[kind])}")

    @staticmethod
    def _ensure(db: sqlite3.Connection, key: str, agent_id: str, stamp: int,
                channel: str | None, peer: str | None, display_name: str | None) -> bool:
        """Inside a transaction: create the row if missing (True), else fill origin gaps."""
        exists = db.execute("SELECT 1 FROM sessions WHERE key = ?", (key,)).fetchone()
        if exists:
            if channel or peer or display_name:
                db.execute("UPDATE sessions SET channel = COALESCE(channel, ?), "
                           "peer = COALESCE(peer, ?), display_name = COALESCE(display_name, ?) "
                           "WHERE key = ?", (channel, peer, display_name, key))
            return False
        session_id = str(uuid.uuid4())
        db.execute("INSERT INTO sessions (key, agent_id, session_id, kind, channel, peer, "
                   "display_name, created_at, updated_at, started_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (key, agent_id, session_id, kind_of(key), channel, peer, display_name,
                    stamp, stamp, stamp))
        db.execute("INSERT INTO session_ids (session_id, key, started_at) VALUES (?, ?, ?)",
                   (session_id, key, stamp))
        return True

    @staticmethod
    def _new_session_id(db: sqlite3.Connection, key: str, old_id: str, stamp: int,
                        reason: str) -> str:
        session_id = str(uuid.uuid4())
        db.execute("UPDATE session_ids SET ended_at = ?, end_reason = ? WHERE session_id = ?",
                   (stamp, reason, old_id))
        db.execute("INSERT INTO session_ids (session_id, key, started_at) VALUES (?, ?, ?)",
                   (session_id, key, stamp))
        db.execute("UPDATE sessions SET session_id = ?, started_at = ?, updated_at = ?, "
                   "last_user_at = NULL, input_tokens = 0, output_tokens = 0, total_tokens = 0, "
                   "model = CASE WHEN model_auto THEN NULL ELSE model END, "
                   "model_provider = CASE WHEN model_auto THEN NULL ELSE model_provider END, "
                   "model_auto = 0 WHERE key = ?", (session_id, stamp, stamp, key))
        return session_id

    def _row(self, db: sqlite3.Connection, key: str) -> dict | None:
        r = db.execute(f"SELECT {_ROW_COLUMNS} FROM sessions WHERE key = ?", (key,)).fetchone()
        return self._with_runs(self._row_dict(r)) if r else None

    def _with_runs(self, entry: dict) -> dict:
        """§13.1: `activeRunIds` (`[]` = idle) and `hasActiveRun`, from the agents actor."""
        runs = self._runs.get(entry["key"], [])
        entry["hasActiveRun"] = bool(runs)
        entry["activeRunIds"] = list(runs)
        return entry

    @staticmethod
    def _row_dict(r: tuple) -> dict:
        out: dict[str, Any] = {"key": r[_KEY_AT], "kind": r[_KIND_AT], "sessionId": r[_SID_AT],
                               "updatedAt": r[_UPDATED_AT]}
        for i, name in _ROW_OPTIONAL:
            value = r[i]
            if value is not None:
                out[name] = value
        flags = r[_FLAGS_AT]
        if flags and flags != "{}":  # most rows: nothing to decode
            out.update(_decode(flags))
        return out

    @staticmethod
    def _message(message_id: str, seq: int, role: str, content_json: str, run_id: str | None,
                 ts: int, extra_json: str | None, max_chars: int | None) -> dict:
        if len(content_json) > HISTORY_MAX_MESSAGE_BYTES:
            content: list = [{"type": "text", "text": HISTORY_OMITTED}]
        else:
            content = _decode(content_json)
            if max_chars is not None:
                content = _cap_text_parts(content, int(max_chars))
        out: dict[str, Any] = {"role": role, "content": content, "timestamp": ts}
        if extra_json:
            out.update(_decode(extra_json))
        if run_id is not None:
            out["runId"] = run_id
        out["__openclaw"] = {"id": message_id, "seq": seq}
        return out

    @staticmethod
    def _last_preview(db: sqlite3.Connection, session_id: str) -> str | None:
        r = db.execute("SELECT content FROM messages WHERE session_id = ? ORDER BY seq DESC "
                       "LIMIT 1", (session_id,)).fetchone()
        return _cut(_text_of(_decode(r[0])), 240) if r else None

    def _publish(self, reason: str, key: str, row: dict | None) -> None:
        """`sessions.changed` (protocol §7.5) through the EventHub, tell-only; the store is
        the one owner of these events since every row change goes through it."""
        if not self._notify:
            return
        hub = registry.whereis("events")
        if hub is None:
            return
        payload = {"ts": now_ms(), "reason": reason, "key": key,
                   "session": dict(row) if row is not None else None}
        try:
            hub.tell(Call("publish", ("sessions.changed", payload)))
        except Exception:  # noqa: BLE001 - the hub stopped meanwhile
            pass

    def _tell_health(self, agent_id: str) -> None:
        if not self._notify:
            return
        health = registry.whereis("health")
        if health is None:
            return
        db = self._dbs.get(agent_id)
        if db is None:
            return
        stamp = now_ms()
        count = db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
        recent = [{"key": k, "updatedAt": u, "age": max(0, stamp - u)} for k, u in db.execute(
            "SELECT key, updated_at FROM sessions ORDER BY updated_at DESC, key LIMIT 5")]
        try:
            health.tell(Call("set_sessions", (agent_id, count, recent)))
        except Exception:  # noqa: BLE001 - health stopped meanwhile
            pass
