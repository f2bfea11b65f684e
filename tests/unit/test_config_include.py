"""`$include` (cli-config §5.3) through the one loader: merge rules, the directory fence,
limits, and errors that name the chain of including files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from actors.config.load import ConfigSnapshot, load_config

ROOT_NAME = "openclaw.json"


def write(path: Path, doc: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def load(tmp_path: Path, doc: dict, environ: dict | None = None) -> ConfigSnapshot:
    return load_config(write(tmp_path / "cfg" / ROOT_NAME, doc), environ or {})


def lines(snap: ConfigSnapshot) -> list[str]:
    return [i.line() for i in snap.issues]


def test_single_include_replaces_the_object(tmp_path):
    write(tmp_path / "cfg" / "gateway.json5", "{port: 19100, auth: {mode: 'none'}}")
    snap = load(tmp_path, {"gateway": {"$include": "./gateway.json5"}})
    assert snap.valid, lines(snap)
    assert snap.config.gateway.port == 19100 and snap.config.gateway.auth.mode == "none"
    assert snap.resolved == {"gateway": {"port": 19100, "auth": {"mode": "none"}}}
    assert snap.included_files == (str(tmp_path / "cfg" / "gateway.json5"),)
    assert snap.parsed == {"gateway": {"$include": "./gateway.json5"}}  # the authored file


def test_array_is_deep_merged_in_order_and_siblings_override(tmp_path):
    write(tmp_path / "cfg" / "a.json", {"port": 1000, "auth": {"mode": "token", "token": "a"},
                                        "reload": {"mode": "hot"}})
    write(tmp_path / "cfg" / "b.json", {"port": 2000, "auth": {"token": "b"}})
    snap = load(tmp_path, {"gateway": {"$include": ["a.json", "b.json"], "reload": {"debounceMs": 5},
                                       "port": 3000}})
    assert snap.valid, lines(snap)
    gw = snap.config.gateway
    assert gw.port == 3000  # sibling keys merge last
    assert (gw.auth.mode, gw.auth.token) == ("token", "b")  # later file wins, objects merge
    assert (gw.reload.mode, gw.reload.debounce_ms) == ("hot", 5)


def test_nested_include_is_relative_to_the_including_file(tmp_path):
    write(tmp_path / "cfg" / "parts" / "channels.json5", "{irc: {$include: './irc.json5'}}")
    write(tmp_path / "cfg" / "parts" / "irc.json5", "{host: 'irc.example', channels: ['#a']}")
    snap = load(tmp_path, {"channels": {"$include": "parts/channels.json5"}})
    assert snap.valid, lines(snap)
    assert snap.config.channels.irc.host == "irc.example"
    assert len(snap.included_files) == 2


def test_root_include_and_env_substitution_after_include(tmp_path):
    write(tmp_path / "cfg" / "base.json", {"gateway": {"auth": {"token": "${MY_TOKEN}"}}})
    snap = load(tmp_path, {"$include": "base.json"}, environ={"MY_TOKEN": "secret-1"})
    assert snap.valid, lines(snap)
    assert snap.config.gateway.auth.token == "secret-1"


def test_missing_file_reports_the_chain(tmp_path):
    snap = load(tmp_path, {"channels": {"$include": "./channels.json5"}})
    root = tmp_path / "cfg" / ROOT_NAME
    assert lines(snap) == [f"channels.$include: ./channels.json5: file not found (included from {root})"]
    assert snap.issues[0].code == "include"


def test_error_in_a_nested_file_names_every_including_file(tmp_path):
    write(tmp_path / "cfg" / "a.json", {"irc": {"$include": "gone.json"}})
    snap = load(tmp_path, {"channels": {"$include": "a.json"}})
    root, a = tmp_path / "cfg" / ROOT_NAME, tmp_path / "cfg" / "a.json"
    assert lines(snap) == [f"channels.irc.$include: gone.json: file not found "
                           f"(included from {a}, included from {root})"]


def test_cycle(tmp_path):
    write(tmp_path / "cfg" / "a.json", {"x": {"$include": "b.json"}})
    write(tmp_path / "cfg" / "b.json", {"y": {"$include": "a.json"}})
    snap = load(tmp_path, {"gateway": {"$include": "a.json"}})
    assert len(snap.issues) == 1
    assert snap.issues[0].path == "gateway.x.y.$include"
    assert snap.issues[0].message.startswith("a.json: include cycle (included from ")


def test_self_include_is_a_cycle(tmp_path):
    snap = load(tmp_path, {"$include": ROOT_NAME})
    assert snap.issues[0].message.startswith(f"{ROOT_NAME}: include cycle")


def test_escape_with_dotdot_is_refused(tmp_path):
    write(tmp_path / "outside.json", {"port": 1})
    snap = load(tmp_path, {"gateway": {"$include": "../outside.json"}})
    assert len(snap.issues) == 1
    assert snap.issues[0].line().startswith(
        "gateway.$include: ../outside.json: outside the config directory")


def test_escape_through_a_symlink_is_refused(tmp_path):
    write(tmp_path / "outside.json", {"port": 1})
    (tmp_path / "cfg").mkdir()
    os.symlink(tmp_path / "outside.json", tmp_path / "cfg" / "link.json")
    snap = load(tmp_path, {"gateway": {"$include": "link.json"}})
    assert "outside the config directory" in snap.issues[0].message


def test_include_roots_allow_another_directory(tmp_path):
    write(tmp_path / "shared" / "gw.json", {"port": 19200})
    doc = {"gateway": {"$include": str(tmp_path / "shared" / "gw.json")}}
    assert "outside the config directory" in load(tmp_path, doc).issues[0].message
    snap = load(tmp_path, doc, environ={"OPENCLAW_INCLUDE_ROOTS": str(tmp_path / "shared")})
    assert snap.valid, lines(snap)
    assert snap.config.gateway.port == 19200


def test_depth_limit(tmp_path):
    for i in range(12):
        write(tmp_path / "cfg" / f"d{i}.json", {"n": {"$include": f"d{i + 1}.json"}})
    write(tmp_path / "cfg" / "d12.json", {})
    snap = load(tmp_path, {"gateway": {"$include": "d0.json"}})
    assert len(snap.issues) == 1
    assert "d10.json: includes nested deeper than 10" in snap.issues[0].message
    # Ten levels are fine (the last file includes nothing).
    write(tmp_path / "cfg" / "d9.json", {})
    assert all(i.code != "include" for i in load(tmp_path, {"gateway": {"$include": "d0.json"}}).issues)


def test_size_limit(tmp_path):
    write(tmp_path / "cfg" / "big.json", '{"port": 1, "pad": "' + "x" * (2 * 1024 * 1024) + '"}')
    snap = load(tmp_path, {"gateway": {"$include": "big.json"}})
    assert lines(snap)[0].startswith("gateway.$include: big.json: larger than 2 MiB")


def test_parse_error_in_an_included_file(tmp_path):
    bad = write(tmp_path / "cfg" / "bad.json5", "{\n  port: ,\n}")
    snap = load(tmp_path, {"gateway": {"$include": "bad.json5"}})
    assert len(snap.issues) == 1
    assert snap.issues[0].message.startswith(f"bad.json5: {bad}:2:")


def test_empty_included_file_is_an_error(tmp_path):
    empty = write(tmp_path / "cfg" / "gw.json5", "  \n")
    snap = load(tmp_path, {"gateway": {"$include": "gw.json5"}})
    assert len(snap.issues) == 1
    assert lines(snap)[0].startswith(f"gateway.$include: gw.json5: {empty}: the file is empty (truncated "
                                     "while being written?)")


def test_include_value_of_the_wrong_type(tmp_path):
    snap = load(tmp_path, {"gateway": {"$include": 5}})
    assert lines(snap) == ["gateway.$include: expected a path or an array of paths"]


def test_included_keys_are_validated_like_any_other(tmp_path):
    write(tmp_path / "cfg" / "gw.json", {"prot": 1})
    snap = load(tmp_path, {"gateway": {"$include": "gw.json"}})
    assert lines(snap) == ['gateway.prot: unknown key (did you mean "port"?)']
