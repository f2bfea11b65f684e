"""Reload classes of config keys (cli-config §5.7, §6) and the diff that finds changed keys.

Every changed path gets one class: `none` (nothing to do), `hot` (its owner swaps it in),
`channel` (only that channel's process restarts), `restart` (in-process gateway restart).
Rules are tried in order; `*` matches one segment, a trailing `**` a whole subtree. A path no
rule names restarts the gateway: the safe choice for a key we do not know how to apply.

What one reload does with them under `gateway.reload.mode` is planned in `plan.py`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

ReloadClass = Literal["none", "hot", "channel", "restart"]

_RULES: list[tuple[str, ReloadClass]] = [
    ("$schema", "none"),
    ("gateway.auth.rateLimit.**", "hot"),
    ("gateway.controlUi.allowedOrigins", "hot"),
    ("gateway.trustedProxies", "hot"),
    ("gateway.allowRealIpFallback", "hot"),
    ("gateway.reload.**", "none"),
    ("gateway.remote.**", "none"),
    ("gateway.channelHeartbeatMs", "channel"),
    ("gateway.**", "restart"),
    ("logging.**", "hot"),
    ("channels.*.dmPolicy", "hot"),
    ("channels.*.allowFrom", "hot"),
    ("channels.*.groupPolicy", "hot"),
    ("channels.*.groupAllowFrom", "hot"),
    ("channels.*.requireMention", "hot"),
    ("channels.*.healthMonitor.**", "hot"),
    ("channels.**", "channel"),
    ("session.**", "hot"),
    ("agents.**", "hot"),
    ("models.**", "hot"),
    ("tools.**", "hot"),
]

_SEGMENT = re.compile(r'\["([^"]*)"\]|\[(\d+)\]|([^.\[\]]+)')


def split_path(path: str) -> list[str]:
    """`channels.irc.channels[0]` → ['channels', 'irc', 'channels', '0'];
    `channels["my.chan"]` keeps the dotted key whole."""
    return [m.group(1) if m.group(1) is not None else m.group(2) or m.group(3)
            for m in _SEGMENT.finditer(path)]


def _matches(pattern: str, parts: list[str]) -> bool:
    rule = pattern.split(".")
    if rule[-1] == "**":
        head = rule[:-1]
        return len(parts) >= len(head) and all(r in ("*", p) for r, p in zip(head, parts, strict=False))
    return len(rule) == len(parts) and all(r in ("*", p) for r, p in zip(rule, parts, strict=False))


def reload_class(path: str) -> ReloadClass:
    parts = split_path(path)
    for pattern, cls in _RULES:
        if _matches(pattern, parts):
            return cls
    return "restart"


def join(path: str, key: str) -> str:
    if "." in key or "[" in key:
        return f'{path}["{key}"]'
    return f"{path}.{key}" if path else key


# Collections whose members are the unit a change acts on (one channel restarts, not "the
# channels"): adding or removing the whole collection reports one path per member.
UNIT_COLLECTIONS = frozenset({"channels"})


def changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths of every leaf that differs, in the new document's order (removed keys
    last). Lists count as leaves: a changed list is one changed path. An added or removed
    object is one path, except a UNIT_COLLECTIONS one: `channels.<id>` for each member."""
    if path in UNIT_COLLECTIONS and (isinstance(old, dict) or isinstance(new, dict)):
        old, new = (v if isinstance(v, dict) else {} for v in (old, new))
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key, value in new.items():
            sub = join(path, key)
            out += changed_paths(old[key] if key in old else _MISSING, value, sub) \
                if key in old or sub in UNIT_COLLECTIONS else [sub]
        for key in old:
            if key not in new:
                sub = join(path, key)
                out += changed_paths(old[key], _MISSING, sub) if sub in UNIT_COLLECTIONS else [sub]
        return out
    return [] if old == new else [path]


_MISSING = object()


def classify(paths: list[str]) -> dict[ReloadClass, list[str]]:
    """Paths grouped by class, each group in the given order."""
    groups: dict[ReloadClass, list[str]] = {"none": [], "hot": [], "channel": [], "restart": []}
    for path in paths:
        groups[reload_class(path)].append(path)
    return groups
