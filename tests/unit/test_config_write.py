"""The config write procedure (cli-config §5.5) on real files, with real processes for the
lock and the crash cases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actors.config import write as config_write
from actors.config.load import load_config
from actors.config.write import WriteError, merge_patch, replace_whole, write_config

ROOT = Path(__file__).resolve().parents[2]


def set_level(level: str):
    return lambda doc: merge_patch(doc, {"logging": {"level": level}})


def test_atomic_write_keeps_mode_key_order_and_format(tmp_path: Path) -> None:
    cfg = tmp_path / "openclaw.json"
    cfg.write_text('{"logging": {"level": "info"}, "gateway": {"port": 18789}}')
    os.chmod(cfg, 0o640)
    result = write_config(cfg, set_level("debug"))
    assert result.changed and result.changed_paths == ["logging.level"]
    assert cfg.stat().st_mode & 0o777 == 0o640
    assert cfg.read_text() == ('{\n  "logging": {\n    "level": "debug"\n  },\n'
                               '  "gateway": {\n    "port": 18789\n  }\n}\n')
    assert result.snapshot.hash == load_config(cfg).hash
    assert result.warnings == []
    assert not list(tmp_path.glob("*.tmp-*"))


def test_new_file_is_0600(tmp_path: Path) -> None:
    cfg = tmp_path / "openclaw.json"
    old = os.umask(0o022)
    try:
        write_config(cfg, set_level("debug"))
    finally:
        os.umask(old)
    assert cfg.stat().st_mode & 0o777 == 0o600
    assert json.loads(cfg.read_text()) == {"logging": {"level": "debug"}}


def test_backups_rotate_five_generations(tmp_path: Path) -> None:
    cfg = tmp_path / "openclaw.json"
    cfg.write_text('{"logging": {"level": "trace"}}')
    levels = ["debug", "info", "warn", "error", "fatal", "silent", "debug"]
    for level in levels:
        write_config(cfg, set_level(level))
    generations = [cfg.with_name("openclaw.json.bak")] + [cfg.with_name(f"openclaw.json.bak.{n}") for n in range(1, 5)]
    held = [json.loads(p.read_text())["logging"]["level"] for p in generations]
    # Newest backup first: the file before the last write, then the ones before it.
    assert held == ["silent", "fatal", "error", "warn", "info"]
    assert not cfg.with_name("openclaw.json.bak.5").exists()


def test_write_fsyncs_the_file_and_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "openclaw.json"
    cfg.write_text("{}")
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:  # records what is synced, then really syncs it
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_config(cfg, set_level("debug"))
    assert any(".tmp-" in p for p in synced), synced  # the temp file, before the rename
    assert str(tmp_path) in synced  # the directory, after the rename


def test_comments_warning_and_symlink_target(tmp_path: Path) -> None:
    real = tmp_path / "real" / "config.json5"
    real.parent.mkdir()
    real.write_text('// my gateway\n{ logging: { level: "info" } /* note */ }\n')
    link = tmp_path / "openclaw.json"
    link.symlink_to(real)
    result = write_config(link, set_level("debug"))
    assert link.is_symlink()  # the link stays; its target gets the new text
    assert json.loads(real.read_text()) == {"logging": {"level": "debug"}}
    assert result.warnings == [f"comments in {real} were not preserved"]
    assert real.with_name("config.json5.bak").exists()


def test_same_result_leaves_the_file_byte_identical(tmp_path: Path) -> None:
    cfg = tmp_path / "openclaw.json"
    cfg.write_text('{logging: {level: "debug"}}  // hand-written\n')
    before = cfg.read_bytes()
    result = write_config(cfg, set_level("debug"))
    assert not result.changed and result.changed_paths == []
    assert cfg.read_bytes() == before
    assert not cfg.with_name("openclaw.json.bak").exists()


def test_invalid_result_is_refused_with_every_issue(tmp_path: Path) -> None:
    cfg = tmp_path / "openclaw.json"
    cfg.write_text('{"logging": {"level": "info"}}')
    before = cfg.read_bytes()
    with pytest.raises(WriteError) as caught:
        write_config(cfg, lambda doc: merge_patch(doc, {"gateway": {"port": "abc"}}))
    assert caught.value.kind == "invalid"
    assert caught.value.message == 'invalid config: gateway.port: expected integer, got string "abc"'
    assert cfg.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp-*")) and not cfg.with_name("openclaw.json.bak").exists()


def test_base_hash_rule(tmp_path: Path) -> None:
    cfg = tmp_path / "openclaw.json"
    write_config(cfg, set_level("debug"), require_base="need hash")  # missing file: no check
    with pytest.raises(WriteError) as caught:
        write_config(cfg, set_level("info"), require_base="need hash")
    assert (caught.value.kind, caught.value.message) == ("base_required", "need hash")
    with pytest.raises(WriteError) as caught:
        write_config(cfg, set_level("info"), base_hash="sha256:v1:stale", require_base="need hash")
    assert caught.value.message == "config changed since last load; re-run config.get and retry"
    write_config(cfg, set_level("info"), base_hash=load_config(cfg).hash, require_base="need hash")
    assert json.loads(cfg.read_text())["logging"]["level"] == "info"


def test_lock_held_elsewhere_is_a_conflict(tmp_path: Path) -> None:
    cfg = tmp_path / "openclaw.json"
    cfg.write_text("{}")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(cfg) + '.lock'!r}, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WriteError) as caught:
            write_config(cfg, set_level("debug"), lock_wait=0.3)
        assert caught.value.kind == "conflict"
        assert cfg.read_text() == "{}"
    finally:
        holder.kill()
        holder.wait()
    write_config(cfg, set_level("debug"), lock_wait=0.3)  # the dead holder's lock is gone


def test_file_changed_on_disk_during_the_write_aborts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "openclaw.json"
    cfg.write_text('{"logging": {"level": "info"}}')

    def editor_saves(_tmp: str) -> None:  # an editor that ignores the lock saves meanwhile
        cfg.write_text('{"logging": {"level": "warn"}}')

    monkeypatch.setattr(config_write, "before_replace", editor_saves)
    with pytest.raises(WriteError) as caught:
        write_config(cfg, set_level("debug"))
    assert caught.value.kind == "conflict"
    assert json.loads(cfg.read_text())["logging"]["level"] == "warn"
    assert not list(tmp_path.glob("*.tmp-*"))


CRASH_CHILD = """
import os, sys, time
sys.path.insert(0, {root!r})
from actors.config import write as config_write
from actors.config.write import merge_patch, write_config

def pause(tmp):
    print(tmp, flush=True)
    time.sleep(60)  # killed here: the temp file is written and fsynced, the rename not done

config_write.before_replace = pause
write_config({cfg!r}, lambda doc: merge_patch(doc, {{"logging": {{"level": "debug"}}}}))
"""


def test_crash_between_write_and_rename_leaves_the_old_file(tmp_path: Path) -> None:
    """A real writer process is SIGKILLed after it wrote and fsynced the temp file and before
    `os.replace`: the config must still be the old bytes, and the next write must work."""
    cfg = tmp_path / "openclaw.json"
    cfg.write_text('{"logging": {"level": "info"}}\n')
    before = cfg.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", CRASH_CHILD.format(root=str(ROOT), cfg=str(cfg))],
                             stdout=subprocess.PIPE, text=True)
    try:
        tmp = Path(child.stdout.readline().strip())
        assert tmp.name.startswith("openclaw.json.tmp-") and tmp.exists()
        assert json.loads(tmp.read_text())["logging"]["level"] == "debug"  # the new text was there
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert cfg.read_bytes() == before
    assert load_config(cfg).valid
    tmp.unlink()  # a leftover temp file never becomes the config; cleaning it is harmless
    write_config(cfg, set_level("warn"), lock_wait=1.0)  # the kernel released the dead writer's lock
    assert json.loads(cfg.read_text())["logging"]["level"] == "warn"


def test_replace_whole_and_unparseable_current(tmp_path: Path) -> None:
    cfg = tmp_path / "openclaw.json"
    cfg.write_text("{not json")
    with pytest.raises(WriteError) as caught:
        write_config(cfg, set_level("debug"))
    assert caught.value.kind == "unreadable"
    write_config(cfg, replace_whole({"logging": {"level": "warn"}}))
    assert json.loads(cfg.read_text()) == {"logging": {"level": "warn"}}
    assert cfg.with_name("openclaw.json.bak").read_text() == "{not json"


def test_redaction_sentinel_restores_or_refuses(tmp_path: Path) -> None:
    cfg = tmp_path / "openclaw.json"
    cfg.write_text('{"gateway": {"auth": {"mode": "token", "token": "s3cret"}}}')
    write_config(cfg, lambda doc: merge_patch(doc, {"gateway": {"auth": {"token": "__OPENCLAW_REDACTED__"},
                                                                "port": 19001}}))
    assert json.loads(cfg.read_text())["gateway"]["auth"]["token"] == "s3cret"
    with pytest.raises(WriteError) as caught:
        write_config(cfg, lambda doc: merge_patch(doc, {"gateway": {"auth": {"password": "__OPENCLAW_REDACTED__"}}}))
    assert caught.value.message == "cannot restore redacted value at gateway.auth.password"


def test_merge_patch_rules() -> None:
    current = {"a": {"list": [1, 2, 3], "keep": True}, "b": 1}
    assert merge_patch(current, {"a": {"keep": None}, "c": {"d": 1}}) == {"a": {"list": [1, 2, 3]}, "b": 1,
                                                                         "c": {"d": 1}}
    assert merge_patch(current, {"a": {"list": [1, 2, 3, 4]}})["a"]["list"] == [1, 2, 3, 4]
    for shrink in ([1], None, "x"):
        with pytest.raises(WriteError) as caught:
            merge_patch(current, {"a": {"list": shrink}})
        assert caught.value.message == "config.patch would drop entries at a.list; add it to replacePaths to confirm"
    assert merge_patch(current, {"a": {"list": [9]}}, ["*.list"])["a"]["list"] == [9]
    assert current == {"a": {"list": [1, 2, 3], "keep": True}, "b": 1}  # the input is not changed


def test_edit_inside_a_single_file_include_is_written_to_that_file(tmp_path: Path) -> None:
    cfg = tmp_path / "openclaw.json"
    inc = tmp_path / "log.json5"
    inc.write_text('{level: "info", /* note */ file: "/tmp/x.log"}')
    os.chmod(inc, 0o640)
    cfg.write_text('{"logging": {"$include": "./log.json5"}, "gateway": {"port": 18789}}')
    before = cfg.read_bytes()
    result = write_config(cfg, set_level("debug"))
    assert result.changed and result.changed_paths == ["logging.level"]
    assert cfg.read_bytes() == before  # the root is left byte for byte
    assert json.loads(inc.read_text()) == {"level": "debug", "file": "/tmp/x.log"}
    assert inc.read_text().endswith("}\n") and inc.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "log.json5.bak").read_text() == '{level: "info", /* note */ file: "/tmp/x.log"}'
    assert not (tmp_path / "openclaw.json.bak").exists()
    assert result.warnings == [f"comments in {inc} were not preserved"]
    assert result.snapshot.resolved["logging"]["level"] == "debug"
    assert load_config(cfg).resolved["logging"]["level"] == "debug"
    assert not list(tmp_path.glob("*.tmp-*"))
    # Unset inside the included file, and an edit beside the include, each go to their own file.
    write_config(cfg, lambda doc: merge_patch(doc, {"logging": {"file": None}, "gateway": {"port": 19001}}))
    assert json.loads(inc.read_text()) == {"level": "debug"}
    assert json.loads(cfg.read_text()) == {"logging": {"$include": "./log.json5"}, "gateway": {"port": 19001}}
    # A whole document that keeps the `$include` node as authored leaves the included file alone.
    write_config(cfg, replace_whole({"logging": {"$include": "./log.json5"}, "gateway": {"port": 19002}}))
    assert json.loads(inc.read_text()) == {"level": "debug"}


def test_nested_single_file_includes_write_through(tmp_path: Path) -> None:
    cfg = tmp_path / "openclaw.json"
    (tmp_path / "sub").mkdir()
    outer, inner = tmp_path / "sub" / "gw.json", tmp_path / "sub" / "reload.json"
    inner.write_text('{"mode": "hot"}')
    outer.write_text('{"port": 18789, "reload": {"$include": "./reload.json"}}')
    cfg.write_text('{"gateway": {"$include": "./sub/gw.json"}}')
    before_root, before_outer = cfg.read_bytes(), outer.read_bytes()
    write_config(cfg, lambda doc: merge_patch(doc, {"gateway": {"reload": {"mode": "off"}}}))
    assert json.loads(inner.read_text()) == {"mode": "off"}
    assert cfg.read_bytes() == before_root and outer.read_bytes() == before_outer


def test_invalid_write_through_writes_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "openclaw.json"
    inc = tmp_path / "gw.json"
    inc.write_text('{"port": 18789}')
    cfg.write_text('{"gateway": {"$include": "./gw.json"}}')
    before_root, before_inc = cfg.read_bytes(), inc.read_bytes()
    with pytest.raises(WriteError) as caught:
        write_config(cfg, lambda doc: merge_patch(doc, {"gateway": {"port": "abc"}, "logging": {"level": "debug"}}))
    assert caught.value.kind == "invalid" and "gateway.port" in caught.value.message
    assert cfg.read_bytes() == before_root and inc.read_bytes() == before_inc
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gw.json", "openclaw.json", "openclaw.json.lock"]
    # dry run validates the same way and writes nothing either
    result = write_config(cfg, lambda doc: merge_patch(doc, {"gateway": {"port": 19001}}), dry_run=True)
    assert result.dry_run and result.snapshot.resolved["gateway"]["port"] == 19001
    assert inc.read_bytes() == before_inc


@pytest.mark.parametrize("include", ['{"$include": ["./log.json5"]}',
                                     '{"$include": "./log.json5", "file": "/tmp/x.log"}'])
def test_edit_inside_an_include_array_or_overridden_include_is_refused(tmp_path: Path, include: str) -> None:
    cfg = tmp_path / "openclaw.json"
    inc = tmp_path / "log.json5"
    inc.write_text('{level: "info"}')
    cfg.write_text('{"logging": %s}' % include)
    before, before_inc = cfg.read_bytes(), inc.read_bytes()
    with pytest.raises(WriteError) as caught:
        write_config(cfg, set_level("debug"))
    assert caught.value.kind == "include"
    assert caught.value.message == "logging.level comes from $include ./log.json5; edit that file directly"
    assert cfg.read_bytes() == before and inc.read_bytes() == before_inc
    # Edits beside the include stay possible.
    write_config(cfg, lambda doc: merge_patch(doc, {"gateway": {"port": 19001}}))
    assert json.loads(cfg.read_text()) == {"logging": json.loads(include), "gateway": {"port": 19001}}


def test_cli_patch_for_paths_and_secret_shift_guard() -> None:
    from cli.config import _DELETE, _shifts_secrets, parse_path, patch_for

    authored = {"gateway": {"controlUi": {"allowedOrigins": ["https://a", "https://b"]}}}
    assert patch_for(authored, parse_path("logging.level"), "debug") == ({"logging": {"level": "debug"}}, [])
    assert patch_for(authored, parse_path("logging.level"), _DELETE) == ({"logging": {"level": None}}, [])
    # Merge patches replace arrays whole: an index sends the new array, confirmed by replacePaths.
    assert patch_for(authored, parse_path("gateway.controlUi.allowedOrigins[0]"), _DELETE) == (
        {"gateway": {"controlUi": {"allowedOrigins": ["https://b"]}}}, ["gateway.controlUi.allowedOrigins"])
    assert patch_for(authored, parse_path("gateway.controlUi.allowedOrigins[2]"), "https://c")[0] == {
        "gateway": {"controlUi": {"allowedOrigins": ["https://a", "https://b", "https://c"]}}}
    assert parse_path('channels["my.chan"].x[3]') == ["channels", "my.chan", "x", 3]
    # Removing an item before a redacted one would shift the secret the gateway restores by index.
    redacted = {"x": [{"token": "__OPENCLAW_REDACTED__"}, {"token": "__OPENCLAW_REDACTED__"}]}
    assert _shifts_secrets(redacted, parse_path("x[0]"))
    assert not _shifts_secrets(redacted, parse_path("x[1]"))
    assert not _shifts_secrets(redacted, parse_path("x[0].token"))


def test_empty_patch_on_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "openclaw.json"
    result = write_config(cfg, lambda doc: merge_patch(doc, {}))
    assert not result.changed and not cfg.exists()
