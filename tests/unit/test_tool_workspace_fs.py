"""Workspace confinement (actors/tools/workspace.py) and the read/write/edit file tools
(actors/tools/fs.py), on real files in a temporary workspace."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from actors.tools import fs
from actors.tools.fs import ToolArgsError, ToolError
from actors.tools.workspace import WorkspaceError, ensure, resolve


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return ensure(tmp_path / "ws")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text("secret\n")
    return out


# -- workspace.resolve / ensure ------------------------------------------------------------

def test_ensure_creates_0700_with_parents_and_returns_realpath(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    got = ensure(tmp_path / "alias" / "a" / "ws")
    assert got == (tmp_path / "real" / "a" / "ws").resolve()
    assert stat.S_IMODE(got.stat().st_mode) == 0o700
    assert ensure(tmp_path / "alias" / "a" / "ws") == got  # idempotent


def test_ensure_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(WorkspaceError, match="workspace is not a directory"):
        ensure(tmp_path / "f")


def test_relative_absolute_and_inner_dotdot(ws):
    assert resolve(ws, "a/b.txt") == ws / "a" / "b.txt"
    assert resolve(ws, "a/../b") == ws / "b"
    assert resolve(ws, str(ws / "x")) == ws / "x"
    assert resolve(ws, ".") == ws


@pytest.mark.parametrize("path", ["../x", "a/../../x", "..", "a/b/../../../ws2/x"])
def test_dotdot_escape(ws, path):
    with pytest.raises(WorkspaceError) as err:
        resolve(ws, path)
    assert str(err.value) == f"path escapes the workspace: {path}"


def test_absolute_outside_refused(ws, outside):
    path = str(outside / "secret.txt")
    with pytest.raises(WorkspaceError, match="^path escapes the workspace: /"):
        resolve(ws, path)
    with pytest.raises(WorkspaceError, match="path escapes the workspace: /etc/passwd"):
        resolve(ws, "/etc/passwd")


def test_sibling_with_common_prefix_is_outside(ws):
    sibling = ws.parent / (ws.name + "2")
    sibling.mkdir()
    with pytest.raises(WorkspaceError):
        resolve(ws, str(sibling / "x"))


def test_empty_and_nul(ws):
    with pytest.raises(WorkspaceError, match="path is empty"):
        resolve(ws, "")
    with pytest.raises(WorkspaceError, match="NUL byte") as err:
        resolve(ws, "a\0b")
    assert "'a\\x00b'" in str(err.value)


def test_symlink_to_outside_file_and_dir(ws, outside):
    (ws / "f").symlink_to(outside / "secret.txt")
    (ws / "d").symlink_to(outside)
    for path in ("f", "d", "d/secret.txt", "d/new/file.txt"):
        with pytest.raises(WorkspaceError) as err:
            resolve(ws, path)
        assert str(err.value) == f"path escapes the workspace through a symlink: {path}"


def test_symlink_then_dotdot_follows_the_link_first(ws, outside):
    # d -> outside, so d/../x is outside's parent, not the workspace (open(2) semantics)
    (ws / "d").symlink_to(outside)
    with pytest.raises(WorkspaceError, match="through a symlink"):
        resolve(ws, "d/../x")


def test_symlink_inside_is_fine(ws):
    (ws / "real").mkdir()
    (ws / "real" / "t.txt").write_text("t")
    (ws / "link").symlink_to("real")
    (ws / "flink").symlink_to(ws / "real" / "t.txt")
    assert resolve(ws, "link/t.txt") == ws / "real" / "t.txt"
    assert resolve(ws, "flink") == ws / "real" / "t.txt"


def test_workspace_given_through_a_symlink(tmp_path):
    real = ensure(tmp_path / "real")
    (tmp_path / "alias").symlink_to(real)
    alias = tmp_path / "alias"
    assert resolve(alias, "a") == real / "a"
    assert resolve(alias, str(alias / "a")) == real / "a"  # absolute through the alias
    with pytest.raises(WorkspaceError, match="escapes the workspace: ../x"):
        resolve(alias, "../x")


# -- read ---------------------------------------------------------------------------------

def test_read_whole_file(ws):
    (ws / "t.txt").write_text("one\ntwo\nthree\n")
    assert fs.read(ws, {"path": "t.txt"}) == {
        "path": "t.txt", "content": "one\ntwo\nthree\n", "lines": 3, "truncated": False}


def test_read_offset_limit(ws):
    (ws / "t.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    got = fs.read(ws, {"path": "t.txt", "offset": 3, "limit": 2})
    assert got["content"] == "line 3\nline 4\n"
    assert got["lines"] == 10 and got["truncated"] is False
    assert fs.read(ws, {"path": "t.txt", "offset": 9})["content"] == "line 9\nline 10\n"
    assert fs.read(ws, {"path": "t.txt", "limit": 1})["content"] == "line 1\n"
    assert fs.read(ws, {"path": "t.txt", "offset": 50})["content"] == ""


def test_read_counts_a_last_line_without_newline_and_keeps_crlf(ws):
    (ws / "t.txt").write_bytes(b"a\r\nb")
    got = fs.read(ws, {"path": "t.txt"})
    assert got["content"] == "a\r\nb" and got["lines"] == 2
    (ws / "empty").write_bytes(b"")
    assert fs.read(ws, {"path": "empty"})["lines"] == 0


def test_read_truncation_note(ws):
    (ws / "big.txt").write_text("x" * 95 + "\n" + "y" * 9 + "\n")  # 106 characters
    got = fs.read(ws, {"path": "big.txt"}, max_chars=40)
    assert got["content"] == "x" * 40
    assert got["truncated"] is True and got["lines"] == 2
    assert got["note"] == "[truncated: 66 more characters; use offset/limit]"
    # the cap counts characters of the selected lines only
    assert fs.read(ws, {"path": "big.txt", "offset": 2}, max_chars=40)["truncated"] is False


def test_read_invalid_utf8_is_replaced(ws):
    (ws / "t.txt").write_bytes(b"caf\xe9\n")
    assert fs.read(ws, {"path": "t.txt"})["content"] == "caf\ufffd\n"


def test_read_refusals(ws, outside):
    (ws / "bin").write_bytes(b"\x7fELF\0\0\x01")
    (ws / "dir").mkdir()
    (ws / "out").symlink_to(outside / "secret.txt")
    cases = {"bin": "binary file: bin", "dir": "not a file: dir", "nope.txt": "no such file: nope.txt",
             "../x": "path escapes the workspace: ../x",
             "out": "path escapes the workspace through a symlink: out"}
    for path, message in cases.items():
        with pytest.raises(ToolError) as err:
            fs.read(ws, {"path": path})
        assert str(err.value) == message


def test_read_fifo_refused_without_blocking(ws):
    os.mkfifo(ws / "fifo")
    with pytest.raises(ToolError, match="not a file: fifo"):
        fs.read(ws, {"path": "fifo"})


# -- write --------------------------------------------------------------------------------

def test_write_creates_dirs_and_reports(ws):
    got = fs.write(ws, {"path": "a/b/c.txt", "content": "héllo\n"})
    assert got == {"path": "a/b/c.txt", "bytes": 7, "created": True}
    assert (ws / "a/b/c.txt").read_text() == "héllo\n"
    assert stat.S_IMODE((ws / "a/b/c.txt").stat().st_mode) == 0o644
    again = fs.write(ws, {"path": "a/b/c.txt", "content": ""})
    assert again == {"path": "a/b/c.txt", "bytes": 0, "created": False}


def test_write_is_atomic_keeps_mode_and_leaves_no_temp_files(ws):
    target = ws / "s.sh"
    target.write_text("old")
    target.chmod(0o751)
    inode = target.stat().st_ino
    fs.write(ws, {"path": "s.sh", "content": "new"})
    assert target.read_text() == "new"
    assert target.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o751
    assert sorted(p.name for p in ws.iterdir()) == ["s.sh"]


def test_write_failure_leaves_no_temp_file(ws, monkeypatch):
    def boom(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fs.os, "replace", boom)
    with pytest.raises(ToolError, match="cannot write t.txt: No space left on device"):
        fs.write(ws, {"path": "t.txt", "content": "x"})
    assert list(ws.iterdir()) == []


def test_write_through_symlinks(ws, outside):
    (ws / "out").symlink_to(outside / "secret.txt")
    with pytest.raises(ToolError, match="through a symlink: out"):
        fs.write(ws, {"path": "out", "content": "pwned"})
    (ws / "outdir").symlink_to(outside)
    with pytest.raises(ToolError, match="through a symlink: outdir/new.txt"):
        fs.write(ws, {"path": "outdir/new.txt", "content": "pwned"})
    assert (outside / "secret.txt").read_text() == "secret\n"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    # a link inside the workspace writes its target and stays a link
    (ws / "real.txt").write_text("a")
    (ws / "in").symlink_to("real.txt")
    fs.write(ws, {"path": "in", "content": "b"})
    assert (ws / "in").is_symlink() and (ws / "real.txt").read_text() == "b"


def test_write_onto_a_directory(ws):
    (ws / "d").mkdir()
    with pytest.raises(ToolError, match="not a file: d"):
        fs.write(ws, {"path": "d", "content": "x"})


# -- edit ---------------------------------------------------------------------------------

def test_edit_unique(ws):
    (ws / "t.py").write_text("a = 1\nb = 2\n")
    assert fs.edit(ws, {"path": "t.py", "oldText": "b = 2", "newText": "b = 3"}) == {
        "path": "t.py", "replacements": 1}
    assert (ws / "t.py").read_text() == "a = 1\nb = 3\n"
    assert sorted(p.name for p in ws.iterdir()) == ["t.py"]


def test_edit_not_found_and_multiple(ws):
    (ws / "t.txt").write_text("x x x")
    with pytest.raises(ToolError) as err:
        fs.edit(ws, {"path": "t.txt", "oldText": "y", "newText": "z"})
    assert str(err.value) == "oldText not found in t.txt"
    with pytest.raises(ToolError) as err:
        fs.edit(ws, {"path": "t.txt", "oldText": "x", "newText": "z"})
    assert str(err.value) == "oldText matches 3 times in t.txt; make it unique or set replaceAll"
    assert (ws / "t.txt").read_text() == "x x x"


def test_edit_replace_all(ws):
    (ws / "t.txt").write_text("x x x")
    got = fs.edit(ws, {"path": "t.txt", "oldText": "x", "newText": "yy", "replaceAll": True})
    assert got == {"path": "t.txt", "replacements": 3}
    assert (ws / "t.txt").read_text() == "yy yy yy"


def test_edit_keeps_bytes_that_are_not_utf8(ws):
    (ws / "t.txt").write_bytes(b"\xff\xfe keep\nold\n")
    fs.edit(ws, {"path": "t.txt", "oldText": "old", "newText": "new"})
    assert (ws / "t.txt").read_bytes() == b"\xff\xfe keep\nnew\n"


def test_edit_refusals(ws):
    (ws / "bin").write_bytes(b"a\0b")
    with pytest.raises(ToolError, match="binary file: bin"):
        fs.edit(ws, {"path": "bin", "oldText": "a", "newText": "b"})
    with pytest.raises(ToolError, match="no such file: nope"):
        fs.edit(ws, {"path": "nope", "oldText": "a", "newText": "b"})
    with pytest.raises(ToolArgsError, match=r"^invalid args for edit: .*\$\.oldText"):
        fs.edit(ws, {"path": "bin", "oldText": "", "newText": "b"})
    with pytest.raises(ToolArgsError, match="oldText must not be empty"):
        fs.edit(ws, fs.EditArgs(path="bin", old_text="", new_text="b"))


# -- argument validation ------------------------------------------------------------------

@pytest.mark.parametrize("tool,args,message", [
    ("read", {}, "invalid args for read: Object missing required field `path`"),
    ("read", {"path": 3}, "invalid args for read: Expected `str`, got `int` - at `$.path`"),
    ("read", {"path": "a", "offset": 0}, "invalid args for read: Expected `int` >= 1 - at `$.offset`"),
    ("read", {"path": "a", "lines": 2}, "invalid args for read: Object contains unknown field `lines`"),
    ("write", {"path": "a"}, "invalid args for write: Object missing required field `content`"),
    ("edit", {"path": "a", "old_text": "x", "newText": "y"},
     "invalid args for edit: Object contains unknown field `old_text`"),
    ("edit", {"path": "a", "oldText": "x", "newText": "y", "replaceAll": "yes"},
     "invalid args for edit: Expected `bool`, got `str` - at `$.replaceAll`"),
    ("write", None, "invalid args for write: Expected `object`, got `null`"),
])
def test_bad_args(ws, tool, args, message):
    with pytest.raises(ToolArgsError) as err:
        getattr(fs, tool)(ws, args)
    assert str(err.value) == message
    assert isinstance(err.value, ValueError)


def test_decode_args_passes_structs_through():
    args = fs.ReadArgs(path="a", offset=2)
    assert fs.decode_args(fs.ReadArgs, args, "read") is args
    edit = fs.decode_args(fs.EditArgs, {"path": "p", "oldText": "o", "newText": "n"}, "edit")
    assert (edit.old_text, edit.new_text, edit.replace_all) == ("o", "n", False)
