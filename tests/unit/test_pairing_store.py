"""PairingStore (actors/channels/pairing.py) on real files and a real pykka actor: codes, the
pending limit, expiry with an injected clock, approval, atomic files and their modes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from actors.base import call_sync, call_sync_within
from actors.channels.pairing import (
    CODE_ALPHABET,
    CODE_TTL_MS,
    UNKNOWN_CODE,
    PairingError,
    PairingStore,
    allow_path,
    pairing_path,
)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def store(state: Path, clock: Clock):
    ref = PairingStore.start(str(state), clock=clock)
    yield lambda method, *args: call_sync_within(10, ref, method, *args)
    ref.stop(timeout=10)


def test_code_shape_and_same_sender_same_code(store, clock):
    code = store(PairingStore.request, "telegram", "123")
    assert len(code) == 6 and set(code) <= set(CODE_ALPHABET)
    assert not set(code) & set("01OIL")
    assert store(PairingStore.request, "telegram", "tg:123") == code   # prefix normalised: same sender
    listed = store(PairingStore.list, "telegram")
    assert listed == {"pending": [{"channel": "telegram", "code": code, "sender": "123",
                                   "createdAt": int(clock.t * 1000),
                                   "expiresAt": int(clock.t * 1000) + CODE_TTL_MS}],
                      "approved": {"telegram": []}}


def test_at_most_three_pending_per_channel(store):
    codes = [store(PairingStore.request, "telegram", str(n)) for n in range(3)]
    assert len(set(codes)) == 3
    assert store(PairingStore.request, "telegram", "4") is None
    assert store(PairingStore.request, "telegram", "1") == codes[1]       # existing senders still answered
    assert store(PairingStore.request, "irc", "alice!a@h") is not None     # the limit is per channel
    store(PairingStore.approve, "telegram", codes[0])
    assert store(PairingStore.request, "telegram", "4") is not None        # a slot freed up


def test_expiry(store, clock):
    old = [store(PairingStore.request, "telegram", str(n)) for n in range(3)]
    clock.t += 3599
    assert len(store(PairingStore.list)["pending"]) == 3
    clock.t += 2  # past one hour
    assert store(PairingStore.list)["pending"] == []
    with pytest.raises(PairingError, match=UNKNOWN_CODE):
        store(PairingStore.approve, "telegram", old[0])
    fresh = store(PairingStore.request, "telegram", "0")
    assert fresh is not None
    assert [p["sender"] for p in store(PairingStore.list, "telegram")["pending"]] == ["0"]


def test_approve_moves_sender(store, state):
    code = store(PairingStore.request, "telegram", "123")
    assert store(PairingStore.approve, "telegram", code.lower()) == "123"   # codes are case-insensitive
    assert store(PairingStore.approved, "telegram") == ["123"]
    assert store(PairingStore.list) == {"pending": [], "approved": {"irc": [], "telegram": ["123"]}}
    assert json.loads(Path(allow_path(str(state), "telegram")).read_text()) == \
        {"version": 1, "allowFrom": ["123"]}
    assert json.loads(Path(pairing_path(str(state), "telegram")).read_text()) == \
        {"version": 1, "requests": []}
    # the code is used up; an approved sender asks for no code
    with pytest.raises(PairingError, match=UNKNOWN_CODE):
        store(PairingStore.approve, "telegram", code)
    assert store(PairingStore.request, "telegram", "123") is None


def test_unknown_code_and_channel(store):
    with pytest.raises(PairingError, match=UNKNOWN_CODE):
        store(PairingStore.approve, "telegram", "ZZZZZZ")
    with pytest.raises(PairingError, match=UNKNOWN_CODE):
        store(PairingStore.approve, "telegram", "  ")
    with pytest.raises(PairingError, match="unknown channel: whatsapp"):
        store(PairingStore.approve, "whatsapp", "ZZZZZZ")
    with pytest.raises(PairingError, match="unknown channel"):
        store(PairingStore.list, "../etc")
    # a code of one channel does not approve on another
    code = store(PairingStore.request, "irc", "alice!a@h")
    with pytest.raises(PairingError, match=UNKNOWN_CODE):
        store(PairingStore.approve, "telegram", code)
    assert store(PairingStore.approve, "irc", code) == "alice!a@h"


def test_file_modes_and_no_temp_left(store, state):
    store(PairingStore.approve, "telegram", store(PairingStore.request, "telegram", "5"))
    creds = state / "credentials"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o700
    names = sorted(os.listdir(creds))
    assert names == ["telegram-allowFrom.json", "telegram-pairing.json"]
    for name in names:
        assert stat.S_IMODE((creds / name).stat().st_mode) == 0o600


def test_reads_seeded_and_hand_edited_files(state, clock):
    creds = state / "credentials"
    creds.mkdir(mode=0o700)
    now = int(clock.t * 1000)
    (creds / "telegram-pairing.json").write_text(json.dumps({"version": 1, "requests": [
        {"code": "K7Q2M9", "sender": "42", "createdAt": now, "expiresAt": now + 60_000},
        {"code": "OLDOLD", "sender": "43", "createdAt": now - 7_200_000, "expiresAt": now - 3_600_000}]}))
    ref = PairingStore.start(str(state), clock=clock)
    try:
        pending = call_sync(ref, PairingStore.list)["pending"]
        assert [p["code"] for p in pending] == ["K7Q2M9"]
        assert call_sync(ref, PairingStore.approve, "telegram", "K7Q2M9") == "42"
        # a hand edit of the approved list is seen on the next call
        path = creds / "telegram-allowFrom.json"
        path.write_text(json.dumps({"version": 1, "allowFrom": ["42", "99"]}))
        os.utime(path, ns=(1, 1))
        assert call_sync(ref, PairingStore.approved, "telegram") == ["42", "99"]
    finally:
        ref.stop(timeout=10)


def test_corrupt_file_is_moved_aside(state, clock):
    creds = state / "credentials"
    creds.mkdir(mode=0o700)
    (creds / "irc-allowFrom.json").write_text("{not json")
    ref = PairingStore.start(str(state), clock=clock)
    try:
        assert call_sync(ref, PairingStore.approved, "irc") == []
        code = call_sync(ref, PairingStore.request, "irc", "bob!b@h")
        assert call_sync(ref, PairingStore.approve, "irc", code) == "bob!b@h"
        assert json.loads((creds / "irc-allowFrom.json").read_text())["allowFrom"] == ["bob!b@h"]
        aside = [n for n in os.listdir(creds) if n.startswith("irc-allowFrom.json.corrupt-")]
        assert len(aside) == 1 and (creds / aside[0]).read_text() == "{not json"
    finally:
        ref.stop(timeout=10)


def test_state_survives_restart(state, clock):
    ref = PairingStore.start(str(state), clock=clock)
    code = call_sync(ref, PairingStore.request, "telegram", "7")
    ref.stop(timeout=10)
    ref = PairingStore.start(str(state), clock=clock)
    try:
        assert call_sync(ref, PairingStore.request, "telegram", "7") == code
        assert call_sync(ref, PairingStore.approve, "telegram", code) == "7"
    finally:
        ref.stop(timeout=10)
