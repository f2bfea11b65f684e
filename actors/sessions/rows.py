"""How stored sessions and messages read: the row columns and their protocol names
(protocol §13.1), a message as chat.history shows it (§14.2), previews (§13.4)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import msgspec

HISTORY_MAX_MESSAGE_BYTES = 1_000_000
HISTORY_OMITTED = "[chat.history omitted: message too large]"
PREVIEW_ROLES = {"user": "user", "assistant": "assistant", "tool": "tool", "toolResult": "tool",
                 "system": "system"}

_decode = msgspec.json.decode

ROW_COLUMNS = ("key, agent_id, session_id, kind, channel, peer, display_name, label, model, "
               "model_provider, context_tokens, input_tokens, output_tokens, total_tokens, "
               "thinking_level, verbose_level, reasoning_level, send_policy, flags, created_at, "
               "updated_at, started_at, last_user_at")
_ROW_KEYS = [c.strip() for c in ROW_COLUMNS.split(",")]
_ROW_NAMES = {"agent_id": "agentId", "session_id": "sessionId", "display_name": "displayName",
              "model_provider": "modelProvider", "context_tokens": "contextTokens",
              "input_tokens": "inputTokens", "output_tokens": "outputTokens",
              "total_tokens": "totalTokens", "thinking_level": "thinkingLevel",
              "verbose_level": "verboseLevel", "reasoning_level": "reasoningLevel",
              "send_policy": "sendPolicy", "created_at": "createdAt", "updated_at": "updatedAt",
              "started_at": "sessionStartedAt", "last_user_at": "lastUserMessageAt"}
# For `row_dict`: (index, name) of the columns shown only when set, in output order, and
# where the fixed ones sit in a row.
_ROW_FIXED = ("key", "kind", "session_id", "updated_at", "flags")
_ROW_OPTIONAL = tuple((i, _ROW_NAMES.get(c, c)) for i, c in enumerate(_ROW_KEYS)
                      if c not in _ROW_FIXED)
KEY_AT, _KIND_AT, _SID_AT, UPDATED_AT, _FLAGS_AT = (_ROW_KEYS.index(c) for c in _ROW_FIXED)


def now_ms() -> int:
    return int(time.time() * 1000)


def model_ref(row: dict) -> str | None:
    """A session row's model override as `provider/model`, or None."""
    if not row.get("model"):
        return None
    return f"{row['modelProvider']}/{row['model']}" if row.get("modelProvider") else row["model"]


def row_dict(r: tuple) -> dict:
    """A `SELECT ROW_COLUMNS` row as a session entry, without the active-run fields."""
    out: dict[str, Any] = {"key": r[KEY_AT], "kind": r[_KIND_AT], "sessionId": r[_SID_AT],
                           "updatedAt": r[UPDATED_AT]}
    for i, name in _ROW_OPTIONAL:
        value = r[i]
        if value is not None:
            out[name] = value
    flags = r[_FLAGS_AT]
    if flags and flags != "{}":  # most rows: nothing to decode
        out.update(_decode(flags))
    return out


def message_dict(message_id: str, seq: int, role: str, content_json: str, run_id: str | None,
                 ts: int, extra_json: str | None, max_chars: int | None) -> dict:
    """A stored message as chat.history shows it; an oversized one is replaced by a marker."""
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


def preview_item(role: str, content_json: str, max_chars: int) -> dict:
    return {"role": PREVIEW_ROLES.get(role, "other"),
            "text": _cut(_text_of(_decode(content_json)), max_chars)}


def last_preview(db: sqlite3.Connection, session_id: str) -> str | None:
    r = db.execute("SELECT content FROM messages WHERE session_id = ? ORDER BY seq DESC "
                   "LIMIT 1", (session_id,)).fetchone()
    return _cut(_text_of(_decode(r[0])), 240) if r else None


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
