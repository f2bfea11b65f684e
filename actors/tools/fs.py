"""The file tools `read`, `write` and `edit`, confined to the workspace (`workspace.resolve`).

Each tool is `(workspace, args) -> dict` and raises `ToolError` with the message the model and
the client see. Arguments arrive as a JSON object; `decode_args` checks them against the
msgspec Structs below and raises `ToolArgsError` naming the tool and msgspec's problem.
Writes are atomic (temp file in the same directory, fsync, rename), so a reader or a crash
never sees half a file.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec

from actors.tools.workspace import WorkspaceError, resolve

READ_MAX_CHARS = 200_000
BINARY_SNIFF_BYTES = 8192
NEW_FILE_MODE = 0o644

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]


class ToolError(Exception):
    """A tool failure; str() is what the model and the client see."""


class ToolArgsError(ValueError):
    """Arguments that do not fit the tool's schema."""


class ReadArgs(msgspec.Struct, forbid_unknown_fields=True):
    path: str
    offset: PositiveInt | None = None  # 1-based first line
    limit: PositiveInt | None = None  # number of lines


class WriteArgs(msgspec.Struct, forbid_unknown_fields=True):
    path: str
    content: str


class EditArgs(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    path: str
    old_text: NonEmptyStr
    new_text: str
    replace_all: bool = False


S = TypeVar("S", bound=msgspec.Struct)


def decode_args(struct_type: type[S], args: Any, tool: str) -> S:
    """`args` (a dict from the wire) as `struct_type`, or ToolArgsError."""
    if isinstance(args, struct_type):
        return args
    try:
        return msgspec.convert(args, struct_type)
    except msgspec.ValidationError as exc:
        raise ToolArgsError(f"invalid args for {tool}: {exc}") from None


# -- read ---------------------------------------------------------------------------------

def read(workspace: Path, args: ReadArgs | dict, *, max_chars: int = READ_MAX_CHARS) -> dict:
    """{"path", "content", "lines", "truncated"[, "note"]} for a UTF-8 text file."""
    a = decode_args(ReadArgs, args, "read")
    target = _existing_file(workspace, a.path)
    try:
        with open(target, "rb") as raw:
            if b"\0" in raw.read(BINARY_SNIFF_BYTES):
                raise ToolError(f"binary file: {a.path}")
            raw.seek(0)
            text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
            content, lines, more = _select_lines(text, a.offset or 1, a.limit, max_chars)
    except OSError as exc:
        raise _os_error("read", a.path, exc) from None
    result = {"path": a.path, "content": content, "lines": lines, "truncated": more > 0}
    if more:
        result["note"] = f"[truncated: {more} more characters; use offset/limit]"
    return result


def _select_lines(text: io.TextIOWrapper, first: int, limit: int | None,
                  max_chars: int) -> tuple[str, int, int]:
    """Stream the file once: (kept text, total lines, characters of the selection beyond
    max_chars). Only max_chars characters are ever held, whatever the file size."""
    kept: list[str] = []
    kept_chars = 0
    more = 0
    last = None if limit is None else first + limit - 1
    lines = 0
    for lines, line in enumerate(text, start=1):
        if lines < first or (last is not None and lines > last):
            continue
        room = max_chars - kept_chars
        if room > 0:
            kept.append(line[:room])
            kept_chars += min(len(line), room)
        more += max(0, len(line) - max(room, 0))
    return "".join(kept), lines, more


# -- write --------------------------------------------------------------------------------

def write(workspace: Path, args: WriteArgs | dict) -> dict:
    """{"path", "bytes", "created"}; parent directories are created inside the workspace."""
    a = decode_args(WriteArgs, args, "write")
    target = _resolve(workspace, a.path)
    if target.is_dir():
        raise ToolError(f"not a file: {a.path}")
    created = not target.exists()
    data = a.content.encode("utf-8")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(target, data)
    except OSError as exc:
        raise _os_error("write", a.path, exc) from None
    return {"path": a.path, "bytes": len(data), "created": created}


def _atomic_write(target: Path, data: bytes) -> None:
    """Replace `target` with `data` in one rename, keeping its mode (0644 when new)."""
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    _fsync_dir(target.parent)  # make the rename itself durable


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the data is already synced
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- edit ---------------------------------------------------------------------------------

def edit(workspace: Path, args: EditArgs | dict) -> dict:
    """{"path", "replacements"}: exact replacement of old_text, unique unless replace_all."""
    a = decode_args(EditArgs, args, "edit")
    if not a.old_text:
        raise ToolArgsError("invalid args for edit: oldText must not be empty")
    target = _existing_file(workspace, a.path)
    try:
        data = target.read_bytes()
    except OSError as exc:
        raise _os_error("read", a.path, exc) from None
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        raise ToolError(f"binary file: {a.path}")
    # surrogateescape round-trips bytes that are not UTF-8, so the edit changes nothing else
    text = data.decode("utf-8", errors="surrogateescape")
    count = text.count(a.old_text)
    if count == 0:
        raise ToolError(f"oldText not found in {a.path}")
    if count > 1 and not a.replace_all:
        raise ToolError(f"oldText matches {count} times in {a.path}; make it unique or set replaceAll")
    new = text.replace(a.old_text, a.new_text)
    try:
        _atomic_write(target, new.encode("utf-8", errors="surrogateescape"))
    except OSError as exc:
        raise _os_error("write", a.path, exc) from None
    return {"path": a.path, "replacements": count}


# -- shared -------------------------------------------------------------------------------

def _resolve(workspace: Path, path: str) -> Path:
    try:
        return resolve(workspace, path)
    except WorkspaceError as exc:
        raise ToolError(str(exc)) from None


def _existing_file(workspace: Path, path: str) -> Path:
    target = _resolve(workspace, path)
    if target.is_dir():
        raise ToolError(f"not a file: {path}")
    if not target.exists():
        raise ToolError(f"no such file: {path}")
    if not target.is_file():
        raise ToolError(f"not a file: {path}")  # fifo, socket, device: reading could block
    return target


def _os_error(verb: str, path: str, exc: OSError) -> ToolError:
    return ToolError(f"cannot {verb} {path}: {exc.strerror or exc}")
