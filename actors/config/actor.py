"""ConfigActor: the one owner of the config (architecture §2, §3).

It holds the snapshot the file holds now (`config.get` shows it, valid or not), the one
applied (what the gateway runs on, the base of every diff), the one this boot started with
(what a restart-class change is compared with) and the applied hash. Only a reload plan
changes them: a file edit or SIGHUP (`reload`, which reads the file in this thread, never on
the event loop) or an RPC write (`plan`, after `patch`/`replace`). The actor plans
(actors/config/plan.py), adopts the plan, writes its audit line and hands hot keys to their
owners; the transport's part (logging, the auth limiter, channel hooks, restarts, the
`configReload` status) is done on the loop from the returned plan (lifecycle/reload.py).

After every change the actor pushes a `ConfigView` to the loop (`publish`, tell-only): the
applied snapshot, read-only there, and `config.get`'s answer (protocol §10.2, every secret
redacted) encoded once, so a `config.get` is answered on the loop without a call.

What the actor needs from the process (loading with the run flags, the audit file, the
credential check, the hot keys' owners) is injected by the gateway (lifecycle/reload.py
`config_actor_factory`): this package imports no other owner's package.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

import msgspec

from actors.base import GatewayActor
from actors.config.load import ConfigSnapshot, effective, load_config, redact, redact_raw
from actors.config.plan import ReloadPlan, plan_reload
from actors.config.write import Compute, WriteResult, merge_patch, replace_whole, write_config
from actors.registry import ActorName

if TYPE_CHECKING:
    from actors.config.watcher import KnownHash

log = logging.getLogger("openclaw.gateway")

CONFIG: ActorName[ConfigActor] = ActorName("config")


class ConfigView(msgspec.Struct, frozen=True):
    """What the loop holds of the config: pushed by the actor after every change."""

    applied: ConfigSnapshot  # what the gateway runs on (GatewayState.snapshot)
    payload: bytes  # config.get's answer, encoded


class ConfigActor(GatewayActor):
    def __init__(self, snapshot: ConfigSnapshot, *,
                 load: Callable[[], ConfigSnapshot] | None = None,
                 known: KnownHash | None = None,
                 refusal: Callable[[ConfigSnapshot], str | None] | None = None,
                 audit: Callable[[str, str], None] | None = None,
                 handover: Callable[[ReloadPlan], None] | None = None,
                 publish: Callable[[ConfigView], None] | None = None) -> None:
        """`load` reads the file as a reload sees it; `known` is the hash the watcher ignores;
        `refusal` says why a restart onto a snapshot must not run; `audit(event, reason)`
        writes an audit line; `handover` gives a live plan's hot keys to their owners;
        `publish` pushes the loop's copy."""
        super().__init__()
        self._current = self._applied = self._boot = snapshot
        self._applied_hash = snapshot.revision_hash
        self._load = load or (lambda: load_config(snapshot.path))
        self._known, self._refusal, self._audit = known, refusal, audit
        self._handover, self._publish = handover, publish
        self._payload = b""

    def on_start(self) -> None:
        self._changed()

    def snapshot(self) -> ConfigSnapshot:
        """The snapshot the file holds now."""
        return self._current

    def payload(self) -> bytes:
        """config.get's answer, encoded (the loop normally has it already)."""
        return self._payload

    # A reload: the plan is made and adopted here, in one message, so no other write or reload
    # can slip between the diff and the adoption. The loop serialises reloads with its
    # restarts (GatewayState.reload_lock) and carries out the rest of the plan.

    def reload(self, reason: str, mode: str | None = None) -> ReloadPlan:
        """A file edit or SIGHUP: load the file, then `plan` it."""
        return self.plan(self._load(), reason, mode)

    def plan(self, snapshot: ConfigSnapshot, reason: str, mode: str | None = None) -> ReloadPlan:
        """Plan `snapshot` under `mode` (default: its own `gateway.reload.mode`) and adopt it.
        Never raises for a bad config: an invalid one is shown by config.get and skipped."""
        if self._known is not None:
            self._known.set(snapshot.hash)
        plan = plan_reload(self._applied, self._boot, snapshot, reason, mode,
                           self._refusal or (lambda _snapshot: None))
        if plan.action == "skip":
            log.error("config reload skipped (invalid config): %s", plan.summary)
            for issue in snapshot.issues[1:]:
                log.error("  - %s", issue.line())
            self._write_audit("reload-skipped", f"{reason}: {plan.summary}")
        if plan.action == "live":
            self._applied = snapshot
            if (plan.hot or plan.channel) and self._handover is not None:
                self._handover(plan)
        if plan.audit is not None:
            self._write_audit("reload", plan.audit)
        self._current = snapshot
        if plan.action == "live" and not plan.pending:
            self._applied_hash = snapshot.revision_hash
        self._changed()
        return plan

    def _write_audit(self, event: str, reason: str) -> None:
        if self._audit is not None:
            self._audit(event, reason)

    def _changed(self) -> None:
        """Encode config.get's answer once and push the loop's copy."""
        self._payload = msgspec.json.encode(self._get_payload())
        if self._publish is None:
            return
        try:
            self._publish(ConfigView(self._applied, self._payload))
        except Exception as exc:  # noqa: BLE001 - stale but running beats a dead config actor
            log.error("config not pushed to the event loop; config.get and live settings may be "
                      "stale until the next change: %s", exc)

    # Writes run here, in the actor thread, so the actor is the one writer (architecture §2);
    # the file lock also orders them against a CLI writing while no gateway was reachable.
    # They do not adopt the result: the caller has it planned (`plan`) by the reload rules
    # (§5.7), in turn with the other reloads.

    def patch(self, patch: dict, base_hash: str | None, replace_paths: list[str],
              require_base: str) -> WriteResult:
        """config.patch: JSON merge patch onto the authored document."""
        return self._write(lambda doc: merge_patch(doc, patch, replace_paths), base_hash, require_base)

    def replace(self, doc: dict, base_hash: str | None, require_base: str) -> WriteResult:
        """config.set / config.apply: `doc` becomes the whole authored document."""
        return self._write(replace_whole(doc), base_hash, require_base)

    def _write(self, compute: Compute, base_hash: str | None, require_base: str) -> WriteResult:
        return write_config(self._current.path, compute, base_hash=base_hash, require_base=require_base)

    def _get_payload(self) -> dict:
        snap = self._current
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
