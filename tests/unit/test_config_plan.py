"""The reload plan (cli-config §5.7) the ConfigActor makes, and what the actor holds and pushes
to the loop after it: the applied snapshot and config.get's answer, encoded once."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from actors.base import call_sync
from actors.config.actor import ConfigActor, ConfigView
from actors.config.load import ConfigSnapshot, load_config
from actors.config.plan import plan_reload


def snap(tmp_path: Path, doc: dict | str, name: str = "openclaw.json") -> ConfigSnapshot:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return load_config(path)


def no_refusal(_snapshot: ConfigSnapshot) -> str | None:
    return None


def test_invalid_is_skipped_with_its_first_error(tmp_path: Path) -> None:
    old = snap(tmp_path, {})
    new = snap(tmp_path, {"gateway": {"port": "x"}, "logging": {"level": "loud"}}, "bad.json")
    plan = plan_reload(old, old, new, "watcher", None, no_refusal)
    assert plan.action == "skip"
    assert plan.summary is not None and plan.summary.endswith("(+1 more)")
    assert plan.audit is None


def test_hybrid_applies_hot_keys_and_restarts_for_restart_keys(tmp_path: Path) -> None:
    old = snap(tmp_path, {"logging": {"level": "info"}, "gateway": {"port": 18789}})
    new = snap(tmp_path, {"logging": {"level": "debug"}, "gateway": {"port": 18800}}, "new.json")
    plan = plan_reload(old, old, new, "watcher", None, no_refusal)
    assert plan.action == "live" and plan.mode == "hybrid"
    assert plan.hot == ["logging.level"] and plan.logging
    assert plan.restart == ["gateway.port"] == plan.pending
    assert plan.audit == "watcher: logging.level, gateway.port"


def test_hot_mode_leaves_restart_keys_pending(tmp_path: Path) -> None:
    old = snap(tmp_path, {"gateway": {"reload": {"mode": "hot"}}})
    new = snap(tmp_path, {"gateway": {"reload": {"mode": "hot"}, "port": 18800}}, "new.json")
    plan = plan_reload(old, old, new, "watcher", None, lambda _s: "never asked")
    assert plan.action == "live" and plan.restart == [] and plan.refused is None
    assert plan.pending == ["gateway.port"]


def test_off_defers_and_restart_mode_restarts_for_everything(tmp_path: Path) -> None:
    old = snap(tmp_path, {"gateway": {"reload": {"mode": "off"}}, "logging": {"level": "info"}})
    new = snap(tmp_path, {"gateway": {"reload": {"mode": "off"}}, "logging": {"level": "debug"}}, "new.json")
    off = plan_reload(old, old, new, "watcher", None, no_refusal)
    assert off.action == "defer" and off.pending == ["logging.level"] and off.audit is None
    every = plan_reload(old, old, new, "watcher", "restart", lambda _s: "kept the token")
    assert every.action == "restart" and every.restart == ["logging.level"]
    assert every.refused == "kept the token" and every.audit == "watcher: logging.level"


def test_a_schema_only_change_does_nothing(tmp_path: Path) -> None:
    old = snap(tmp_path, {})
    new = snap(tmp_path, {"$schema": "https://example.invalid/s.json"}, "new.json")
    plan = plan_reload(old, old, new, "SIGHUP", "hybrid", no_refusal)
    assert plan.action == "live" and plan.paths == ["$schema"]
    assert plan.hot == plan.channel == plan.restart == plan.pending == [] and plan.audit is None


def test_the_actor_pushes_the_applied_snapshot_and_the_encoded_answer(tmp_path: Path) -> None:
    boot = snap(tmp_path, {"logging": {"level": "info"}, "gateway": {"auth": {"token": "s3cret-value"}}})
    views: list[ConfigView] = []
    audits: list[tuple[str, str]] = []
    ref = ConfigActor.start(boot, publish=views.append, audit=lambda e, r: audits.append((e, r)))
    try:
        assert len(views) == 1 and views[0].applied is boot  # on_start
        first = msgspec.json.decode(views[0].payload)
        assert first["appliedConfigHash"] == boot.revision_hash
        assert "s3cret-value" not in views[0].payload.decode()
        assert call_sync(ref, ConfigActor.payload) == views[0].payload

        restart_key = snap(tmp_path, {"logging": {"level": "info"}, "gateway": {"port": 18800,
                                      "auth": {"token": "s3cret-value"}}}, "b.json")
        plan = call_sync(ref, ConfigActor.plan, restart_key, "config.patch", "hot")
        assert plan.pending == ["gateway.port"]
        answer = msgspec.json.decode(views[-1].payload)
        assert views[-1].applied is restart_key  # the loop diffs and reads from it
        assert answer["configRevisionHash"] == restart_key.revision_hash
        assert answer["appliedConfigHash"] == boot.revision_hash  # waits for a restart

        invalid = snap(tmp_path, "{ nope", "c.json")
        assert call_sync(ref, ConfigActor.plan, invalid, "watcher").action == "skip"
        answer = msgspec.json.decode(views[-1].payload)
        assert answer["valid"] is False and views[-1].applied is restart_key
        assert [e for e, _ in audits] == ["reload", "reload-skipped"]
    finally:
        ref.stop()
