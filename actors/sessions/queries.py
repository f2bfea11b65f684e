"""Reads and writes of one agent's sessions database, over a connection the caller owns
(protocol §13, §14.2; cli-config §6.4).

Plain functions of an open `sqlite3.Connection` (see `actors.sessions.schema`): the store
actor calls them from its own thread, and the offline CLI calls them under the state-dir
lock. They neither notify nor cache across calls; events, the active-run overlay and the
health summary are the actor's. Keys are canonical (`canonical()`) before they get here.
Every function returns fresh dicts, so nothing mutable is shared with the caller.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import sqlite3
import uuid
from typing import Any, Mapping, Sequence

import msgspec

from actors.sessions.keys import SessionKeyError, agent_id_of, kind_of, main_key, normalize_key
from actors.sessions.rows import (
    KEY_AT,
    ROW_COLUMNS,
    UPDATED_AT,
    last_preview,
    message_dict,
    now_ms,
    preview_item,
    row_dict,
)
from actors.sessions.schema import transaction

LABEL_MAX = 64
_LIST_CACHE_MAX = 64

_encode = msgspec.json.encode
_decode = msgspec.json.decode

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

# key → active run ids (the agents actor's view); the CLI has none.
Runs = Mapping[str, Sequence[str]]
NO_RUNS: Runs = {}


class SessionError(ValueError):
    """A request the store refuses; the message is the client-facing text (INVALID_REQUEST)."""


def canonical(key: str) -> tuple[str, str]:
    """(canonical key, agent id) of a client's key; SessionError when it is not a key."""
    try:
        normalized = normalize_key(key)
    except SessionKeyError as exc:
        raise SessionError(str(exc)) from None
    return normalized, agent_id_of(normalized)


# --- rows ---------------------------------------------------------------------------------------

def with_runs(entry: dict, runs: Runs) -> dict:
    """§13.1: `activeRunIds` (`[]` = idle) and `hasActiveRun`."""
    active = runs.get(entry["key"], [])
    entry["hasActiveRun"] = bool(active)
    entry["activeRunIds"] = list(active)
    return entry


def row(db: sqlite3.Connection, key: str, runs: Runs = NO_RUNS) -> dict | None:
    r = db.execute(f"SELECT {ROW_COLUMNS} FROM sessions WHERE key = ?", (key,)).fetchone()
    return with_runs(row_dict(r), runs) if r else None


def current_session_id(db: sqlite3.Connection, key: str) -> str | None:
    r = db.execute("SELECT session_id FROM sessions WHERE key = ?", (key,)).fetchone()
    return r[0] if r else None


def count(db: sqlite3.Connection) -> int:
    return db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]


def recent(db: sqlite3.Connection, stamp: int, limit: int = 5) -> list[dict]:
    """The most recently updated keys, for the health summary."""
    return [{"key": k, "updatedAt": u, "age": max(0, stamp - u)} for k, u in db.execute(
        "SELECT key, updated_at FROM sessions ORDER BY updated_at DESC, key LIMIT ?", (limit,))]


def ensure(db: sqlite3.Connection, key: str, agent_id: str, stamp: int,
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


def get_or_create(db: sqlite3.Connection, key: str, agent_id: str, stamp: int,
                  channel: str | None = None, peer: str | None = None,
                  display_name: str | None = None) -> bool:
    """The row for `key` exists afterwards; True if it was created."""
    with transaction(db):
        return ensure(db, key, agent_id, stamp, channel, peer, display_name)


# --- transcripts --------------------------------------------------------------------------------

def append(db: sqlite3.Connection, key: str, agent_id: str, message: dict, stamp: int,
           session_id: str | None = None) -> tuple[dict, bool]:
    """Store one message in the session's current transcript (or in the earlier one
    `session_id` names) and commit: (the message as chat.history shows it, whether the
    session was created)."""
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
    usage = message.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    tokens_in = int(usage.get("input") or usage.get("inputTokens") or 0)
    tokens_out = int(usage.get("output") or usage.get("outputTokens") or 0)
    tokens_total = int(usage.get("total") or usage.get("totalTokens") or tokens_in + tokens_out)
    message_id = uuid.uuid4().hex
    with transaction(db):
        created = ensure(db, key, agent_id, stamp, None, None, None)
        current = db.execute("SELECT session_id FROM sessions WHERE key = ?", (key,)).fetchone()[0]
        if session_id is None or session_id == current or not db.execute(
                "SELECT 1 FROM session_ids WHERE session_id = ? AND key = ?",
                (session_id, key)).fetchone():
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
            (stamp, role == "user", stamp, tokens_in, tokens_out, tokens_total, key))
    stored = message_dict(message_id, seq, role, content_json,
                          run_id if isinstance(run_id, str) else None, ts, extra_json, None)
    return stored, created


def key_of(db: sqlite3.Connection, session_id: str) -> str | None:
    """The key a session id belongs to (current or earlier), or None."""
    r = db.execute("SELECT key FROM session_ids WHERE session_id = ?", (session_id,)).fetchone()
    return r[0] if r else None


def compact(db: sqlite3.Connection, key: str, keep: int, summary: str | None = None) -> dict:
    """sessions.compact (protocol §13.7): move every message but the newest `keep` of the
    current session id to the archive; with `summary`, one system message holding it takes
    their place, ahead of the kept ones. Returns `{"compacted", "kept"|"reason"}`."""
    session_id = current_session_id(db, key)
    if session_id is None:
        return {"compacted": False, "reason": "no-session"}
    stamp = now_ms()
    seqs = [r[0] for r in db.execute("SELECT seq FROM messages WHERE session_id = ? "
                                     "ORDER BY seq DESC", (session_id,))]
    if len(seqs) <= keep:
        return {"compacted": False, "reason": "too-short"}
    cut = seqs[keep]  # the newest seq that goes
    with transaction(db):
        db.execute("INSERT INTO archived_messages (session_id, seq, id, key, role, content, "
                   "tool_calls, tool_call_id, run_id, ts, extra, archived_at) "
                   "SELECT session_id, seq, id, ?, role, content, tool_calls, tool_call_id, "
                   "run_id, ts, extra, ? FROM messages WHERE session_id = ? AND seq <= ?",
                   (key, stamp, session_id, cut))
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
        db.execute("UPDATE sessions SET updated_at = ? WHERE key = ?", (stamp, key))
    return {"compacted": True, "kept": keep}


def history(db: sqlite3.Connection, key: str, limit: int = 200, before: int | None = None,
            max_chars: int | None = None) -> dict:
    """chat.history (protocol §14.2): the newest `limit` messages of the current session id
    (with `before`, those with a lower `seq`), oldest first."""
    limit = max(1, min(int(limit), 1000))
    r = db.execute("SELECT session_id, thinking_level FROM sessions WHERE key = ?",
                   (key,)).fetchone()
    if r is None:
        return {"sessionKey": key, "sessionId": None, "thinkingLevel": None,
                "hasMore": False, "inFlightRun": None, "messages": []}
    session_id, thinking = r
    bound = before if isinstance(before, int) and not isinstance(before, bool) else 2 ** 62
    rows = db.execute(
        "SELECT id, seq, role, content, run_id, ts, extra FROM messages "
        "WHERE session_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        (session_id, bound, limit + 1)).fetchall()
    has_more = len(rows) > limit
    messages = [message_dict(m[0], m[1], m[2], m[3], m[4], m[5], m[6], max_chars)
                for m in reversed(rows[:limit])]
    result = {"sessionKey": key, "sessionId": session_id, "hasMore": has_more,
              "inFlightRun": None, "messages": messages}
    if thinking is not None:
        result["thinkingLevel"] = thinking
    return result


def messages(db: sqlite3.Connection, session_id: str, last: int | None = None) -> list[dict]:
    """The messages stored under one session id (current or earlier), oldest first: all,
    or the newest `last`."""
    rows: list[tuple[str, int, str, str, str | None, int, str | None]]
    rows = db.execute("SELECT id, seq, role, content, run_id, ts, extra FROM messages "
                      "WHERE session_id = ? ORDER BY seq DESC LIMIT ?",
                      (session_id, -1 if last is None else last)).fetchall()
    return [message_dict(*m, None) for m in reversed(rows)]


def session_ids(db: sqlite3.Connection, key: str) -> list[dict]:
    """Every session id the key has had, oldest first."""
    return [{"sessionId": r[0], "startedAt": r[1], "endedAt": r[2], "endReason": r[3]}
            for r in db.execute("SELECT session_id, started_at, ended_at, end_reason FROM "
                                "session_ids WHERE key = ? ORDER BY started_at, rowid", (key,))]


def preview_items(db: sqlite3.Connection, key: str, limit: int, max_chars: int) -> list[dict] | None:
    """The newest `limit` messages of the session as sessions.preview items (protocol
    §13.4), oldest first; None when there is no such session."""
    session_id = current_session_id(db, key)
    if session_id is None:
        return None
    rows = db.execute("SELECT role, content FROM messages WHERE session_id = ? "
                      "ORDER BY seq DESC LIMIT ?", (session_id, limit)).fetchall()
    return [preview_item(role, content, max_chars) for role, content in reversed(rows)]


# --- list ---------------------------------------------------------------------------------------

def list_sessions(dbs: Mapping[str, sqlite3.Connection], *, path: str, defaults: dict,
                  runs: Runs = NO_RUNS, cache: dict | None = None, limit: int = 100,
                  offset: int = 0, activeMinutes: int | None = None, label: str | None = None,
                  search: str | None = None, includeGlobal: bool = False,
                  includeUnknown: bool = False, includeLastMessage: bool = False,
                  now: int | None = None) -> dict:
    """sessions.list (protocol §13.2) over the databases `dbs` (agent id → connection, the
    agents to list), rows newest `updatedAt` first. `cache` keeps recent pages between calls
    (its owner's dict); `path` and `defaults` are echoed."""
    limit = max(1, int(limit))
    offset = max(0, int(offset))
    stamp = now or now_ms()
    where: list[str] = []
    params: list[Any] = []
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
    total, pages = 0, []
    # One database (the usual case): page in SQL. Several: each gives its first
    # offset+limit rows and the pages are merged by (updatedAt desc, key).
    single = len(dbs) == 1
    # The count and the page rows (immutable tuples) of recent queries are kept per
    # database version: this connection's change count (every write of the store) and
    # `data_version` (commits by any other connection); any change misses the cache.
    cache = {} if cache is None else cache
    for agent, db in dbs.items():
        agent_clause, agent_params = clause, params
        if label is not None:  # lets the (agent_id, label) index answer
            agent_clause, agent_params = clause + " AND agent_id = ?", [*params, agent]
        page = (*agent_params, limit if single else offset + limit, offset if single else 0)
        version = (db.total_changes, db.execute("PRAGMA data_version").fetchone()[0])
        cache_key = (agent, agent_clause, page)
        hit = cache.get(cache_key)
        if hit is not None and hit[0] == version:
            found, rows = hit[1], hit[2]
        else:
            found = db.execute(f"SELECT COUNT(*) FROM sessions WHERE {agent_clause}",
                               agent_params).fetchone()[0]
            rows = db.execute(
                f"SELECT {ROW_COLUMNS} FROM sessions WHERE {agent_clause} "
                "ORDER BY updated_at DESC, key LIMIT ? OFFSET ?", page).fetchall()
            if len(cache) >= _LIST_CACHE_MAX:
                cache.clear()
            cache[cache_key] = (version, found, rows)
        total += found
        pages.append([(-r[UPDATED_AT], r[KEY_AT], agent, r) for r in rows])
    merged = pages[0] if single else list(heapq.merge(*pages))[offset: offset + limit]
    sessions = []
    for _, _, agent, r in merged:
        entry = with_runs(row_dict(r), runs)
        if includeLastMessage:
            preview = last_preview(dbs[agent], entry["sessionId"])
            if preview is not None:
                entry["lastMessagePreview"] = preview
        sessions.append(entry)
    has_more = offset + len(sessions) < total
    return {"ts": stamp, "path": path, "count": len(sessions), "totalCount": total,
            "limitApplied": limit, "nextOffset": offset + len(sessions) if has_more else None,
            "hasMore": has_more, "defaults": dict(defaults), "sessions": sessions}


# --- changes ------------------------------------------------------------------------------------

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


def patch(db: sqlite3.Connection, key: str, agent_id: str, fields: dict, auto: bool,
          stamp: int) -> None:
    """sessions.patch (protocol §13.3): set or (with None) clear overrides; a missing session
    is created. `auto=True` marks a model as set automatically (cleared on reset)."""
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
            _validate(name, kind, value)
        if name == "model":
            provider, model = (value.split("/", 1) if value and "/" in value else (None, value))
            columns.update(model=model, model_provider=provider,
                           model_auto=1 if auto and value is not None else 0)
        elif column is not None:
            columns[column] = value
        else:
            flags[name] = value
    with transaction(db):
        ensure(db, key, agent_id, stamp, None, None, None)
        if "label" in columns and columns["label"] is not None:
            taken = db.execute("SELECT key FROM sessions WHERE agent_id = ? AND label = ? "
                               "AND key != ?", (agent_id, columns["label"], key)).fetchone()
            if taken:
                raise SessionError(f"label already in use: {columns['label']}")
        if flags:
            current = _decode(db.execute("SELECT flags FROM sessions WHERE key = ?",
                                         (key,)).fetchone()[0])
            for name, value in flags.items():
                if value is None:
                    current.pop(name, None)
                else:
                    current[name] = value
            columns["flags"] = _encode(current).decode()
        columns["updated_at"] = stamp
        assignments = ", ".join(f"{c} = ?" for c in columns)  # column names from our table
        db.execute(f"UPDATE sessions SET {assignments} WHERE key = ?", (*columns.values(), key))


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


def reset(db: sqlite3.Connection, key: str, reason: str, stamp: int) -> None:
    """sessions.reset (protocol §13.5): a new session id under the same key; earlier messages
    stay under the old id. Automatic model overrides and token counts are cleared."""
    with transaction(db):
        session_id = current_session_id(db, key)
        if session_id is None:
            raise SessionError(f"session not found: {key}")
        _new_session_id(db, key, session_id, stamp, reason)


def delete(db: sqlite3.Connection, key: str, agent_id: str, delete_transcript: bool,
           stamp: int) -> dict:
    """sessions.delete (protocol §13.6): the row and every transcript the key ever had
    (deleted, or moved to `archived_messages` when `delete_transcript` is false)."""
    if key == main_key(agent_id):
        raise SessionError(f"cannot delete the main session ({key})")
    with transaction(db):
        current = current_session_id(db, key)
        if current is None:
            return {"ok": True, "key": key, "deleted": False, "archived": []}
        ids = [r[0] for r in db.execute("SELECT session_id FROM session_ids WHERE key = ? "
                                        "ORDER BY started_at, rowid", (key,))]
        if current not in ids:
            ids.append(current)
        archived = []
        for session_id in ids:
            if not delete_transcript:
                moved = db.execute(
                    "INSERT INTO archived_messages (session_id, seq, id, key, role, content, "
                    "tool_calls, tool_call_id, run_id, ts, extra, archived_at) "
                    "SELECT session_id, seq, id, ?, role, content, tool_calls, tool_call_id, "
                    "run_id, ts, extra, ? FROM messages WHERE session_id = ?",
                    (key, stamp, session_id)).rowcount
                if moved:
                    archived.append(session_id)
            db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
        db.execute("DELETE FROM session_ids WHERE key = ?", (key,))
        db.execute("DELETE FROM sessions WHERE key = ?", (key,))
    return {"ok": True, "key": key, "deleted": True, "archived": archived}


def is_stale(db: sqlite3.Connection, key: str, policy: dict, stamp: int) -> bool:
    """Whether `session.reset` (cli-config §6.4) resets the session before a new inbound
    message. `daily`: the latest `atHour` boundary (local time) at or before `stamp` is later
    than the session start. `idle`: the last user message (or the session start) is more than
    `idleMinutes` old."""
    mode = policy.get("mode", "none")
    if mode not in ("daily", "idle"):
        return False
    r = db.execute("SELECT started_at, last_user_at FROM sessions WHERE key = ?", (key,)).fetchone()
    if r is None:
        return False
    started_at, last_user_at = r
    if mode == "daily":
        at_hour = int(policy.get("atHour", 4))
        local = _dt.datetime.fromtimestamp(stamp / 1000)  # naive local time
        boundary = local.replace(hour=at_hour, minute=0, second=0, microsecond=0)
        if boundary > local:
            boundary -= _dt.timedelta(days=1)
        return started_at < int(boundary.timestamp() * 1000)
    idle_ms = int(policy.get("idleMinutes", 60)) * 60_000
    return stamp - (last_user_at or started_at) > idle_ms


def checkpoint(db: sqlite3.Connection) -> dict:
    """Fold the WAL back into the database."""
    busy, log_frames, done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return {"busy": busy, "walFrames": log_frames, "checkpointed": done}
