"""The channel access policy (cli-config §6.3): DM and group decisions, Telegram id and IRC
mask matching (actors/channels/access.py)."""

from __future__ import annotations

import msgspec
import pytest

from actors.channels.access import (
    DM_DISABLED,
    DM_NOT_ALLOWED,
    GROUP_DISABLED,
    GROUP_NOT_ALLOWED,
    GROUP_SENDER_NOT_ALLOWED,
    NOT_MENTIONED,
    decide,
    irc_mask,
    irc_matches,
    normalize_sender,
    normalize_telegram,
    sender_matches,
    telegram_matches,
)
from actors.channels.frames import Inbound
from actors.config.schema import IrcChannel, TelegramChannel


def tg(**cfg) -> TelegramChannel:
    return msgspec.convert({"botToken": "x", **cfg}, TelegramChannel)


def irc(**cfg) -> IrcChannel:
    return msgspec.convert({"host": "irc.example", **cfg}, IrcChannel)


def dm(sender: str, text: str = "hi") -> Inbound:
    return Inbound(id="1", sender=sender, chat=sender, kind="direct", text=text)


def group(sender: str, chat: str, mentioned: bool = True) -> Inbound:
    return Inbound(id="1", sender=sender, chat=chat, kind="group", text="hey", mentioned=mentioned)


ALICE = "alice!~al@host.example.org"


# --- sender matching ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw,norm", [("123", "123"), ("tg:123", "123"), ("telegram:123", "123"),
                                      ("TG:123", "123"), ("Telegram:123", "123"), (" 123 ", "123")])
def test_telegram_prefixes_normalised(raw, norm):
    assert normalize_telegram(raw) == norm
    assert normalize_sender("telegram", raw) == norm


@pytest.mark.parametrize("entry,sender,expected", [
    ("123", "123", True), ("tg:123", "123", True), ("123", "telegram:123", True),
    ("telegram:123", "tg:123", True), ("1234", "123", False), ("12", "123", False),
    ("*", "999", True), ("", "123", False), ("tg:", "", False)])
def test_telegram_matching(entry, sender, expected):
    assert telegram_matches(entry, sender) is expected


@pytest.mark.parametrize("entry,mask", [("alice", "alice!*@*"), ("alice@host", "alice!*@host"),
                                        ("alice!u@h", "alice!u@h"), ("*", "*"), ("*!*@h", "*!*@h")])
def test_irc_bare_nick_mask(entry, mask):
    assert irc_mask(entry) == mask


@pytest.mark.parametrize("mask,sender,expected", [
    ("alice", ALICE, True),
    ("ALICE", ALICE, True),                         # case-insensitive
    ("alice!*@*.example.org", ALICE, True),
    ("alice!*@*.example.com", ALICE, False),
    ("*!~al@*", ALICE, True),
    ("al?ce", ALICE, True),
    ("ali", ALICE, False),                          # whole nick, not a prefix
    ("alicex", ALICE, False),
    ("*", ALICE, True),
    ("*@host.example.org", ALICE, True),
    ("alice@other.org", ALICE, False),
    ("bob", ALICE, False),
    ("nick[a]", "nick{A}!u@h", True),               # RFC 1459 case mapping; brackets literal
    ("nick[a]", "nicka!u@h", False),                # not an fnmatch character class
    ("a.b", "axb!u@h", False),                      # regex metacharacters are literal
    ("alice", "alice", True),                       # sender without user@host
])
def test_irc_glob_matching(mask, sender, expected):
    assert irc_matches(mask, sender) is expected


def test_sender_matches_picks_the_channel_rule():
    assert sender_matches("irc", ["bob", "alice"], ALICE)
    assert not sender_matches("irc", [], ALICE)
    assert sender_matches("telegram", ["tg:5", "7"], "telegram:7")
    assert not sender_matches("telegram", ["tg:5"], "55")


# --- direct messages ---------------------------------------------------------------------------

def test_default_policy_is_pairing():
    cfg = tg()
    assert decide(cfg, dm("42")).action == "pair"
    assert decide(cfg, dm("42"), approved={"42"}).allowed
    assert decide(tg(allowFrom=["tg:42"]), dm("42")).allowed


def test_allowlist_uses_allow_from_and_approved():
    cfg = tg(dmPolicy="allowlist", allowFrom=["1"])
    assert decide(cfg, dm("1")).allowed
    assert decide(cfg, dm("2"), approved=["2"]).allowed
    d = decide(cfg, dm("3"))
    assert d.action == "deny" and d.reason == DM_NOT_ALLOWED


def test_open_requires_star():
    assert decide(tg(dmPolicy="open", allowFrom=["*"]), dm("77")).allowed
    # an open policy without "*" (invalid config) fails closed, like allowlist
    cfg = TelegramChannel(dm_policy="open", allow_from=["1"], bot_token="x")
    assert decide(cfg, dm("1")).allowed
    assert decide(cfg, dm("2")).action == "deny"


def test_disabled_drops_every_dm():
    cfg = tg(dmPolicy="disabled", allowFrom=["*"])
    d = decide(cfg, dm("1"), approved=["1"])
    assert d.action == "deny" and d.reason == DM_DISABLED


def test_irc_dm_pairing_and_masks():
    cfg = irc(allowFrom=["bob!*@*.trusted.net"])
    assert decide(cfg, dm("bob!b@x.trusted.net")).allowed
    assert decide(cfg, dm("bob!b@evil.net")).action == "pair"
    assert decide(cfg, dm(ALICE), approved=[ALICE]).allowed
    assert decide(irc(dmPolicy="allowlist"), dm(ALICE)).action == "deny"


# --- groups --------------------------------------------------------------------------------------

def test_group_disabled():
    d = decide(irc(groupPolicy="disabled", channels=["#a"]), group(ALICE, "#a"))
    assert d.action == "deny" and d.reason == GROUP_DISABLED


def test_irc_group_allowlist_is_the_channels_list():
    cfg = irc(channels=["#Ops"])
    assert decide(cfg, group(ALICE, "#ops")).allowed           # IRC case mapping
    d = decide(cfg, group(ALICE, "#other"))
    assert d.action == "deny" and d.reason == GROUP_NOT_ALLOWED
    assert decide(irc(groupPolicy="open"), group(ALICE, "#other")).allowed


def test_group_allow_from_limits_senders():
    cfg = irc(channels=["#ops"], groupAllowFrom=["alice"])
    assert decide(cfg, group(ALICE, "#ops")).allowed
    d = decide(cfg, group("bob!b@h", "#ops"))
    assert d.action == "deny" and d.reason == GROUP_SENDER_NOT_ALLOWED
    # DM approvals do not open groups
    assert decide(cfg, group("bob!b@h", "#ops"), approved=["bob!b@h"]).action == "deny"


def test_require_mention():
    cfg = irc(channels=["#ops"])
    d = decide(cfg, group(ALICE, "#ops", mentioned=False))
    assert d.action == "deny" and d.reason == NOT_MENTIONED
    assert decide(irc(channels=["#ops"], requireMention=False),
                  group(ALICE, "#ops", mentioned=False)).allowed


def test_telegram_group_allowlist_needs_group_allow_from():
    # no group list in the schema: with groupAllowFrom [] no Telegram group passes "allowlist"
    assert decide(tg(), group("1", "-1001")).reason == GROUP_NOT_ALLOWED
    cfg = tg(groupAllowFrom=["tg:1"])
    assert decide(cfg, group("1", "-1001")).allowed
    assert decide(cfg, group("2", "-1001")).reason == GROUP_SENDER_NOT_ALLOWED
    assert decide(tg(groupPolicy="open"), group("2", "-1001")).allowed
    assert decide(tg(groupPolicy="open"), group("2", "-1001", mentioned=False)).reason == NOT_MENTIONED


def test_groups_never_pair():
    assert decide(tg(groupPolicy="open", groupAllowFrom=["9"]), group("1", "-5")).action == "deny"
