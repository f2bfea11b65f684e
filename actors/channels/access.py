"""The inbound access policy of a channel (cli-config §6.3): pure functions, no I/O.

`decide(cfg, inbound, approved)` says what the gateway does with one inbound message:
`allow` (hand it to the agent), `deny` (drop it; `reason` says why, for the log) or `pair`
(an unknown sender wrote a DM under `dmPolicy: "pairing"`: the host asks the PairingStore for
a one-time code and replies with it instead of running the agent).

Direct messages, by `dmPolicy`:
- `disabled`: every DM is dropped.
- `open`: everyone, provided `allowFrom` holds `"*"` (config validation insists on it); an
  `open` without `"*"` is treated as `allowlist`, so a half-written config fails closed.
- `allowlist`: senders matching `allowFrom` or the approved (paired) senders; others dropped.
- `pairing` (default): as `allowlist`, but an unknown sender gets `pair` instead of `deny`.

Group messages, in this order:
1. `groupPolicy: "disabled"` drops them.
2. `groupPolicy: "allowlist"` needs the group itself allowed. IRC: the group is allowed when it
   is one of the configured `channels` (the spec: "these are the allowed groups"; compared
   with IRC case mapping). Telegram has no group-list key in this schema, so the closest
   reading of the official "only these senders can trigger in groups" pattern is used: a
   Telegram group passes the allowlist only through `groupAllowFrom` (step 3 with a
   non-empty list); with `groupAllowFrom: []` no Telegram group is allowed (fail closed).
   `groupPolicy: "open"` allows every group.
3. `groupAllowFrom` limits the senders in an allowed group; `[]` = any sender. DM approvals
   (`allowFrom`, paired senders) do not apply to groups.
4. `requireMention` (default true) drops group messages that do not address the bot.
Pairing never happens in groups.

Sender ids:
- Telegram: numeric user ids, with an optional `tg:` or `telegram:` prefix (any case) on
  either side; `"*"` matches everyone.
- IRC: glob masks over `nick!user@host`, where only `*` and `?` are wildcards (brackets in
  nicks such as `[away]` are literal, unlike fnmatch), compared case-insensitively with the
  RFC 1459 case mapping (`[]\\~` fold to `{}|^`). A bare `nick` means `nick!*@*`, and
  `nick@host` means `nick!*@host`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Literal

from actors.channels.frames import Inbound
from actors.config.schema import IrcChannel, TelegramChannel

Action = Literal["allow", "deny", "pair"]

# Deny reasons (stable strings: logs and tests compare them).
DM_DISABLED = "dm disabled (dmPolicy=disabled)"
DM_NOT_ALLOWED = "dm sender not in allowlist"
GROUP_DISABLED = "groups disabled (groupPolicy=disabled)"
GROUP_NOT_ALLOWED = "group not in allowlist"
GROUP_SENDER_NOT_ALLOWED = "group sender not in groupAllowFrom"
NOT_MENTIONED = "not mentioned (requireMention=true)"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.action == "allow"

    @property
    def pair(self) -> bool:
        return self.action == "pair"


ALLOW = Decision("allow")


def channel_id_of(cfg: Any) -> str:
    """`irc` or `telegram` for a channel config block."""
    if isinstance(cfg, IrcChannel):
        return "irc"
    if isinstance(cfg, TelegramChannel):
        return "telegram"
    raise TypeError(f"not a channel config: {type(cfg).__name__}")


# --- sender matching ----------------------------------------------------------------------

_TG_PREFIX = re.compile(r"^(?:tg|telegram):", re.IGNORECASE)


def normalize_telegram(sender: str) -> str:
    """`tg:123`, `telegram:123`, ` 123 ` → `123`."""
    return _TG_PREFIX.sub("", str(sender).strip(), count=1).strip()


_IRC_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~", "abcdefghijklmnopqrstuvwxyz{}|^")


def irc_fold(text: str) -> str:
    """IRC case folding (RFC 1459 mapping)."""
    return text.translate(_IRC_FOLD)


def irc_mask(entry: str) -> str:
    """The full `nick!user@host` mask of an allowlist entry: bare nick → `nick!*@*`,
    `nick@host` → `nick!*@host`."""
    entry = entry.strip()
    if entry == "*" or "!" in entry:
        return entry
    if "@" in entry:
        nick, _, host = entry.partition("@")
        return f"{nick or '*'}!*@{host or '*'}"
    return f"{entry}!*@*"


@lru_cache(maxsize=1024)
def _mask_regex(mask: str) -> re.Pattern[str]:
    parts = []
    for ch in irc_fold(mask):
        parts.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def irc_matches(mask: str, sender: str) -> bool:
    """Does the allowlist entry `mask` match the IRC sender `nick!user@host`?"""
    full = irc_mask(mask)
    if full == "*":
        return True
    who = sender.strip()
    if "!" not in who and "@" not in who:
        who = f"{who}!@"  # a sender with no prefix details matches only nick-wide masks
    return _mask_regex(full).fullmatch(irc_fold(who)) is not None


def telegram_matches(entry: str, sender: str) -> bool:
    entry = normalize_telegram(entry)
    return entry == "*" or (entry != "" and entry == normalize_telegram(sender))


def sender_matches(channel: str, entries: Iterable[str], sender: str) -> bool:
    """True when any allowlist entry of `channel` matches `sender`."""
    match = irc_matches if channel == "irc" else telegram_matches
    return any(match(str(entry), sender) for entry in entries)


def normalize_sender(channel: str, sender: str) -> str:
    """The form a sender id is stored in (pairing files): Telegram ids without prefix, IRC
    prefixes as given."""
    return normalize_telegram(sender) if channel == "telegram" else sender.strip()


# --- the decision ---------------------------------------------------------------------------

def decide(cfg: Any, inbound: Inbound, approved: Iterable[str] = ()) -> Decision:
    """What to do with `inbound` under the channel config `cfg` (an IrcChannel or
    TelegramChannel); `approved` are the senders approved by pairing."""
    channel = channel_id_of(cfg)
    if inbound.kind == "group":
        return _decide_group(channel, cfg, inbound)
    return _decide_dm(channel, cfg, inbound, approved)


def _decide_dm(channel: str, cfg: Any, inbound: Inbound, approved: Iterable[str]) -> Decision:
    policy = cfg.dm_policy
    if policy == "disabled":
        return Decision("deny", DM_DISABLED)
    if policy == "open" and "*" in cfg.allow_from:
        return ALLOW
    if sender_matches(channel, cfg.allow_from, inbound.sender) or \
            sender_matches(channel, approved, inbound.sender):
        return ALLOW
    if policy == "pairing":
        return Decision("pair", "unknown dm sender (dmPolicy=pairing)")
    return Decision("deny", DM_NOT_ALLOWED)


def _group_listed(channel: str, cfg: Any, chat: str) -> bool:
    if channel == "irc":
        folded = irc_fold(chat.strip())
        return any(irc_fold(name.strip()) == folded for name in cfg.channels)
    # Telegram: no group list in the schema; only a sender allowlist can admit a group.
    return bool(cfg.group_allow_from)


def _decide_group(channel: str, cfg: Any, inbound: Inbound) -> Decision:
    if cfg.group_policy == "disabled":
        return Decision("deny", GROUP_DISABLED)
    if cfg.group_policy == "allowlist" and not _group_listed(channel, cfg, inbound.chat):
        return Decision("deny", GROUP_NOT_ALLOWED)
    if cfg.group_allow_from and not sender_matches(channel, cfg.group_allow_from, inbound.sender):
        return Decision("deny", GROUP_SENDER_NOT_ALLOWED)
    if cfg.require_mention and not inbound.mentioned:
        return Decision("deny", NOT_MENTIONED)
    return ALLOW
