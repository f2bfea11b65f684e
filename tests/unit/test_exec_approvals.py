"""The pending exec approvals (actors/tools/approvals.py) with a fake clock."""

from __future__ import annotations

import re

import pytest

from actors.tools import approvals as mod
from actors.tools.approvals import (
    TTL_MS,
    AmbiguousApproval,
    ApprovalError,
    ApprovalNotFound,
    Approvals,
    InvalidDecision,
    Pending,
    new_id,
)

T0 = 1_795_494_263_000
REQUEST = {"command": "rm -rf build", "commandArgv": ["rm", "-rf", "build"], "cwd": ".",
           "host": "gateway", "security": "allowlist", "ask": "on-miss", "agentId": "main",
           "resolvedPath": "/usr/bin/rm", "sessionKey": "agent:main:main"}


class Clock:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ap(clock: Clock) -> Approvals:
    return Approvals(now_ms=clock)


def with_ids(ap: Approvals, monkeypatch: pytest.MonkeyPatch, *ids: str) -> list[Pending]:
    """Create approvals with chosen ids (to test prefixes)."""
    it = iter(ids)
    monkeypatch.setattr(mod, "new_id", lambda: next(it))
    return [ap.create(dict(REQUEST, command=i)) for i in ids]


def test_id_format() -> None:
    ids = {new_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"ap_[0-9A-Za-z]{16}", i) for i in ids)


def test_create(ap: Approvals) -> None:
    p = ap.create(REQUEST, owner="call-1")
    assert (p.created_at_ms, p.expires_at_ms) == (T0, T0 + 1_800_000)
    assert TTL_MS == 1_800_000
    assert (p.request, p.owner) == (REQUEST, "call-1")
    assert ap.requested_payload(p) == {"id": p.id, "createdAtMs": T0,
                                       "expiresAtMs": T0 + 1_800_000, "request": REQUEST}


def test_create_retries_a_taken_id(ap: Approvals, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["ap_same", "ap_same", "ap_other"])
    monkeypatch.setattr(mod, "new_id", lambda: next(ids))
    assert [ap.create(REQUEST).id for _ in range(2)] == ["ap_same", "ap_other"]


def test_custom_ttl(clock: Clock) -> None:
    p = Approvals(now_ms=clock, ttl_ms=1000).create(REQUEST)
    assert p.expires_at_ms == T0 + 1000


def test_list_oldest_first(ap: Approvals, clock: Clock) -> None:
    first = ap.create(REQUEST)
    clock.ms += 10
    second = ap.create(REQUEST)
    third = ap.create(REQUEST)  # same ms: creation order still decides
    assert [a["id"] for a in ap.list()] == [first.id, second.id, third.id]
    assert ap.list()[0] == {"id": first.id, "createdAtMs": T0, "expiresAtMs": T0 + TTL_MS,
                            "request": REQUEST}


def test_list_empty(ap: Approvals) -> None:
    assert ap.list() == []
    assert ap.next_expiry_ms() is None


def test_find_exact_and_prefix(ap: Approvals, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = with_ids(ap, monkeypatch, "ap_abc111", "ap_abd222")
    assert ap.find("ap_abc111") is a
    assert ap.find("ap_abc") is a
    assert ap.find("ap_abd") is b


def test_find_exact_beats_a_longer_match(ap: Approvals, monkeypatch: pytest.MonkeyPatch) -> None:
    short, _long = with_ids(ap, monkeypatch, "ap_x", "ap_xy")
    assert ap.find("ap_x") is short


def test_find_is_case_sensitive(ap: Approvals, monkeypatch: pytest.MonkeyPatch) -> None:
    with_ids(ap, monkeypatch, "ap_Abc")
    with pytest.raises(ApprovalNotFound):
        ap.find("ap_a")


@pytest.mark.parametrize("key", ["ap_zzz", "", "nope"])
def test_find_unknown(ap: Approvals, monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    with_ids(ap, monkeypatch, "ap_abc")
    with pytest.raises(ApprovalNotFound) as err:
        ap.find(key)
    assert str(err.value) == "unknown or expired approval id"
    assert err.value.code == "APPROVAL_NOT_FOUND"


def test_ambiguous_lists_three_in_creation_order(ap: Approvals,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with_ids(ap, monkeypatch, "ap_k3", "ap_k1", "ap_k4", "ap_k2", "ap_other")
    with pytest.raises(AmbiguousApproval) as err:
        ap.find("ap_k")
    assert str(err.value) == \
        "ambiguous approval id prefix; matches: ap_k3, ap_k1, ap_k4. Use the full id."
    assert err.value.code == "INVALID_REQUEST"
    assert err.value.ids == ["ap_k3", "ap_k1", "ap_k4", "ap_k2"]


def test_ambiguous_two(ap: Approvals, monkeypatch: pytest.MonkeyPatch) -> None:
    with_ids(ap, monkeypatch, "ap_a1", "ap_a2")
    with pytest.raises(AmbiguousApproval, match=r"matches: ap_a1, ap_a2\. Use the full id\.$"):
        ap.resolve("ap_a", "deny", "cli")
    assert len(ap) == 2  # nothing resolved


def test_resolve(ap: Approvals, clock: Clock) -> None:
    p = ap.create(REQUEST, owner="c1")
    clock.ms += 7000
    pending, payload = ap.resolve(p.id[:8], "allow-once", "cli")
    assert pending is p
    assert payload == {"id": p.id, "decision": "allow-once", "resolvedBy": "cli",
                       "ts": T0 + 7000, "request": REQUEST}
    assert ap.list() == []
    with pytest.raises(ApprovalNotFound):
        ap.resolve(p.id, "deny", "cli")  # at most once


@pytest.mark.parametrize("decision", ["allow-once", "allow-always", "deny"])
def test_resolve_decisions(ap: Approvals, decision: str) -> None:
    p = ap.create(REQUEST)
    assert ap.resolve(p.id, decision, "op")[1]["decision"] == decision


@pytest.mark.parametrize("decision", ["allow", "ALLOW-ONCE", "", "approve"])
def test_invalid_decision(ap: Approvals, decision: str) -> None:
    p = ap.create(REQUEST)
    with pytest.raises(InvalidDecision) as err:
        ap.resolve(p.id, decision, "cli")
    assert str(err.value) == "invalid decision"
    assert err.value.code == "INVALID_REQUEST"
    assert len(ap) == 1


def test_invalid_decision_checked_before_the_id(ap: Approvals) -> None:
    with pytest.raises(InvalidDecision):
        ap.resolve("ap_missing", "maybe", "cli")


def test_errors_are_value_errors() -> None:
    for cls in (ApprovalNotFound, AmbiguousApproval, InvalidDecision):
        assert issubclass(cls, ApprovalError) and issubclass(cls, ValueError)


def test_expiry(ap: Approvals, clock: Clock) -> None:
    old = ap.create(REQUEST)
    clock.ms += 60_000
    young = ap.create(REQUEST)
    assert ap.next_expiry_ms() == T0 + TTL_MS
    clock.ms = T0 + TTL_MS - 1
    assert ap.expire() == []
    clock.ms = T0 + TTL_MS  # expiresAtMs itself is expired
    assert [a["id"] for a in ap.list()] == [young.id]  # hidden at once
    with pytest.raises(ApprovalNotFound):
        ap.find(old.id)
    with pytest.raises(ApprovalNotFound):
        ap.resolve(old.id, "allow-once", "cli")
    assert len(ap) == 2  # but only expire() removes it
    ((pending, payload),) = ap.expire()
    assert pending is old
    assert payload == {"id": old.id, "decision": None, "reason": "expired", "ts": T0 + TTL_MS,
                       "request": REQUEST}
    assert ap.expire() == []
    assert ap.next_expiry_ms() == T0 + 60_000 + TTL_MS


def test_next_expiry_may_be_past(ap: Approvals, clock: Clock) -> None:
    ap.create(REQUEST)
    clock.ms += 2 * TTL_MS
    assert ap.next_expiry_ms() == T0 + TTL_MS  # a timer for it fires at once


def test_expire_many(ap: Approvals, clock: Clock) -> None:
    made = [ap.create(REQUEST) for _ in range(3)]
    clock.ms += TTL_MS
    assert [p for p, _ in ap.expire()] == made
    assert len(ap) == 0


def test_drop(ap: Approvals, clock: Clock) -> None:
    a1 = ap.create(REQUEST, owner="call-a")
    b = ap.create(REQUEST, owner="call-b")
    a2 = ap.create(REQUEST, owner="call-a")
    clock.ms += 5
    dropped = ap.drop("call-a")
    assert [p for p, _ in dropped] == [a1, a2]
    assert dropped[0][1] == {"id": a1.id, "decision": None, "reason": "cancelled",
                             "ts": T0 + 5, "request": REQUEST}
    assert [a["id"] for a in ap.list()] == [b.id]
    assert ap.drop("call-a") == []


def test_drop_none_owner(ap: Approvals) -> None:
    ap.create(REQUEST)
    assert ap.drop(None) == []
    assert len(ap) == 1


def test_instances_are_independent(clock: Clock) -> None:
    one, two = Approvals(now_ms=clock), Approvals(now_ms=clock)
    p = one.create(REQUEST)
    with pytest.raises(ApprovalNotFound):
        two.find(p.id)


def test_default_clock_is_wall_time() -> None:
    import time
    p = Approvals().create(REQUEST)
    assert abs(p.created_at_ms - time.time() * 1000) < 5000
