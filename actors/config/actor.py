"""ConfigActor: the owner of the loaded config snapshot (architecture §2).

Loading lives in `config_load.py` so that the CLI and this actor share one pipeline. The
actor starts with the snapshot the gateway validated before binding, and answers
`config.get` (protocol §10.2) with every secret redacted.
"""

from __future__ import annotations

from actors.base import GatewayActor
from actors.config.load import ConfigSnapshot, effective, redact, redact_raw
from actors.config.write import Compute, WriteResult, merge_patch, replace_whole, write_config
from actors.registry import ActorName

CONFIG: ActorName[ConfigActor] = ActorName("config")


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

    # Writes run here, in the actor thread, so the actor is the one writer (architecture §2);
    # the file lock also orders them against a CLI writing while no gateway was reachable.
    # They do not adopt the result: the caller applies it by the reload rules (§5.7).

    def patch(self, patch: dict, base_hash: str | None, replace_paths: list[str],
              require_base: str) -> WriteResult:
        """config.patch: JSON merge patch onto the authored document."""
        return self._write(lambda doc: merge_patch(doc, patch, replace_paths), base_hash, require_base)

    def replace(self, doc: dict, base_hash: str | None, require_base: str) -> WriteResult:
        """config.set / config.apply: `doc` becomes the whole authored document."""
        return self._write(replace_whole(doc), base_hash, require_base)

    def _write(self, compute: Compute, base_hash: str | None, require_base: str) -> WriteResult:
        return write_config(self._snapshot.path, compute, base_hash=base_hash, require_base=require_base)

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
            "legacyIssues": [{"path": w.path, "message": w.message} for w in snap.warnings
                             if w.code == "deprecated"],
            "hash": snap.hash,
            "configRevisionHash": snap.revision_hash,
            "appliedConfigHash": self._applied_hash,
        }
