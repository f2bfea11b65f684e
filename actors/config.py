"""ConfigActor: the owner of the loaded config snapshot (architecture §2).

Loading lives in `config_load.py` so that the CLI and this actor share one pipeline. The
actor starts with the snapshot the gateway validated before binding, and answers
`config.get` (protocol §10.2) with every secret redacted.
"""

from __future__ import annotations

from actors.base import GatewayActor
from actors.config_load import ConfigSnapshot, effective, redact, redact_raw


class ConfigActor(GatewayActor):
    def __init__(self, snapshot: ConfigSnapshot) -> None:
        super().__init__()
        self._snapshot = snapshot
        self._applied_hash = snapshot.revision_hash

    def snapshot(self) -> ConfigSnapshot:
        return self._snapshot

    def adopt(self, snapshot: ConfigSnapshot, applied: bool = True) -> None:
        """Make `snapshot` the current one (a reload or a write accepted it); `applied=False`
        keeps the applied hash where it was, for changes that wait for a restart."""
        self._snapshot = snapshot
        if applied:
            self._applied_hash = snapshot.revision_hash

    def get_payload(self) -> dict:
        snap = self._snapshot
        return {
            "path": snap.path,
            "exists": snap.exists,
            "raw": redact_raw(snap.raw, snap.parsed) if snap.raw is not None else None,
            "parsed": redact(snap.parsed) if snap.parsed is not None else None,
            "resolved": redact(snap.resolved),
            "config": redact(effective(snap)),
            "valid": snap.valid,
            "issues": [{"path": i.path, "message": i.message} for i in snap.issues],
            "warnings": [{"path": w.path, "message": w.message} for w in snap.warnings],
            "legacyIssues": [],
            "hash": snap.hash,
            "configRevisionHash": snap.revision_hash,
            "appliedConfigHash": self._applied_hash,
        }
