"""The pending exec approvals (protocol §7.6, §17): ids, expiry after 30 minutes, lookup by a
unique id prefix, and the payloads of `exec.approval.requested` / `exec.approval.resolved`.

Owned by one actor and used from its thread only, so there is no locking; the clock is
injected so expiry is testable. Expired approvals are invisible to `list` and `find` at once,
but only `expire()` removes them, so their owner always gets their resolved payloads.
"""

from __future__ import annotations

import builtins
import secrets
import string
import time
from collections.abc import Callable
from typing import Any

import msgspec

TTL_MS = 1_800_000
DECISIONS = ("allow-once", "allow-always", "deny")
_ALPHABET = string.digits + string.ascii_letters  # base62
_ID_CHARS = 16
_AMBIGUOUS_SHOWN = 3


class ApprovalError(ValueError):
    """A refused approval lookup or resolve; str() is the client-facing message."""
    code = "INVALID_REQUEST"


class ApprovalNotFound(ApprovalError):
    code = "APPROVAL_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("unknown or expired approval id")


class AmbiguousApproval(ApprovalError):
    def __init__(self, ids: list[str]) -> None:
        shown = ", ".join(ids[:_AMBIGUOUS_SHOWN])
        super().__init__(f"ambiguous approval id prefix; matches: {shown}. Use the full id.")
        self.ids = ids


class InvalidDecision(ApprovalError):
    def __init__(self) -> None:
        super().__init__("invalid decision")


class Pending(msgspec.Struct, kw_only=True):
    id: str
    created_at_ms: int
    expires_at_ms: int
    request: dict
    owner: Any = None  # opaque to us: who waits (e.g. the tool call id), for drop()


def new_id() -> str:
    """`ap_` + 16 random base62 characters."""
    return "ap_" + "".join(secrets.choice(_ALPHABET) for _ in range(_ID_CHARS))


def _wall_ms() -> int:
    return int(time.time() * 1000)


class Approvals:
    def __init__(self, now_ms: Callable[[], int] = _wall_ms, ttl_ms: int = TTL_MS) -> None:
        self._now = now_ms
        self._ttl = ttl_ms
        self._pending: dict[str, Pending] = {}  # insertion order = creation order

    def create(self, request: dict, *, owner: Any = None) -> Pending:
        approval_id = new_id()
        while approval_id in self._pending:  # 62**16 ids: only for peace of mind
            approval_id = new_id()
        now = self._now()
        pending = Pending(id=approval_id, created_at_ms=now, expires_at_ms=now + self._ttl,
                          request=request, owner=owner)
        self._pending[approval_id] = pending
        return pending

    def _live(self) -> list[Pending]:
        now = self._now()
        return [p for p in self._pending.values() if now < p.expires_at_ms]

    def list(self) -> list[dict]:
        """The pending approvals, oldest first (`exec.approval.list`)."""
        return [self.requested_payload(p) for p in self._live()]

    def find(self, id_or_prefix: str) -> Pending:
        """The live approval with this id, or the only one whose id starts with it."""
        live = self._live()
        exact = [p for p in live if p.id == id_or_prefix]
        if exact:
            return exact[0]
        matches = [p for p in live if id_or_prefix and p.id.startswith(id_or_prefix)]
        if not matches:
            raise ApprovalNotFound()
        if len(matches) > 1:
            raise AmbiguousApproval([p.id for p in matches])
        return matches[0]

    def resolve(self, id_or_prefix: str, decision: str, resolved_by: str) -> tuple[Pending, dict]:
        """Remove the approval and return it with its `exec.approval.resolved` payload."""
        if decision not in DECISIONS:
            raise InvalidDecision()
        pending = self.find(id_or_prefix)
        del self._pending[pending.id]
        return pending, {"id": pending.id, "decision": decision, "resolvedBy": resolved_by,
                         "ts": self._now(), "request": pending.request}

    # builtins.list: inside the class, `list` is the method above.
    def expire(self) -> builtins.list[tuple[Pending, dict]]:
        """Remove the expired approvals; each with its resolved payload (decision null)."""
        now = self._now()
        gone = [p for p in self._pending.values() if now >= p.expires_at_ms]
        return [self._ended(p, "expired", now) for p in gone]

    def drop(self, owner: Any) -> builtins.list[tuple[Pending, dict]]:
        """Remove the approvals `owner` waits for (its call was aborted); each with its
        resolved payload (decision null, reason `cancelled`). No owner drops nothing."""
        if owner is None:
            return []
        now = self._now()
        mine = [p for p in self._pending.values() if p.owner == owner]
        return [self._ended(p, "cancelled", now) for p in mine]

    def _ended(self, pending: Pending, reason: str, now: int) -> tuple[Pending, dict]:
        del self._pending[pending.id]
        return pending, {"id": pending.id, "decision": None, "reason": reason, "ts": now,
                         "request": pending.request}

    def next_expiry_ms(self) -> int | None:
        """When the next approval expires (possibly already past), for a timer; None if none."""
        return min((p.expires_at_ms for p in self._pending.values()), default=None)

    def __len__(self) -> int:
        return len(self._pending)

    @staticmethod
    def requested_payload(pending: Pending) -> dict:
        """The `exec.approval.requested` payload; also one row of `exec.approval.list`."""
        return {"id": pending.id, "createdAtMs": pending.created_at_ms,
                "expiresAtMs": pending.expires_at_ms, "request": pending.request}
