"""Session keys (protocol §8.2): `agent:<agentId>:<rest>`, bare keys scoped to the default
agent, `global` and `unknown` kept as they are, every comparison lowercase.

Pure functions, no state: safe to call from any thread.
"""

from __future__ import annotations

import re

DEFAULT_AGENT_ID = "main"
SPECIAL_KEYS = ("global", "unknown")
KINDS = ("direct", "group", "global", "unknown")

_AGENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Segments that mark a shared conversation (official: `<channel>:group:<id>`, `:channel:<id>`).
_GROUP_SEGMENTS = frozenset({"group", "channel"})


class SessionKeyError(ValueError):
    """A key that cannot name a session; the message is safe to show to a client."""


def valid_agent_id(agent_id: str) -> bool:
    return bool(_AGENT_ID.match(agent_id))


def normalize_key(key: str, default_agent: str = DEFAULT_AGENT_ID) -> str:
    """The canonical, lowercase form of `key`.

    `Main` → `agent:main:main`; `telegram:direct:123` → `agent:main:telegram:direct:123`;
    `agent:Work:main` → `agent:work:main`; `global` / `unknown` stay themselves.
    """
    if not isinstance(key, str):
        raise SessionKeyError("session key must be a string")
    text = key.strip().lower()
    if not text:
        raise SessionKeyError("session key is empty")
    if text in SPECIAL_KEYS:
        return text
    if text.startswith("agent:"):
        parts = text.split(":", 2)
        if len(parts) < 3 or not parts[2]:
            raise SessionKeyError(f"invalid session key: {key}")
        agent_id, rest = parts[1], parts[2]
    else:
        agent_id, rest = default_agent, text
    if not valid_agent_id(agent_id):
        raise SessionKeyError(f"invalid agent id in session key: {key}")
    if any(not segment for segment in rest.split(":")):
        raise SessionKeyError(f"invalid session key: {key}")
    return f"agent:{agent_id}:{rest}"


def agent_id_of(key: str, default_agent: str = DEFAULT_AGENT_ID) -> str:
    """The agent that owns `key` (`global` and `unknown` belong to the default agent)."""
    canonical = normalize_key(key, default_agent)
    if canonical in SPECIAL_KEYS:
        return default_agent
    return canonical.split(":", 2)[1]


def rest_of(key: str, default_agent: str = DEFAULT_AGENT_ID) -> str:
    """The part after `agent:<agentId>:` (the key itself for `global` / `unknown`)."""
    canonical = normalize_key(key, default_agent)
    if canonical in SPECIAL_KEYS:
        return canonical
    return canonical.split(":", 2)[2]


def kind_of(key: str, default_agent: str = DEFAULT_AGENT_ID) -> str:
    """`global`, `unknown`, `group` (a `group` or `channel` segment) or `direct`."""
    canonical = normalize_key(key, default_agent)
    if canonical in SPECIAL_KEYS:
        return canonical
    segments = rest_of(canonical, default_agent).split(":")
    return "group" if _GROUP_SEGMENTS.intersection(segments) else "direct"


def main_key(agent_id: str = DEFAULT_AGENT_ID) -> str:
    return f"agent:{agent_id}:main"


def same_key(a: str, b: str, default_agent: str = DEFAULT_AGENT_ID) -> bool:
    return normalize_key(a, default_agent) == normalize_key(b, default_agent)
