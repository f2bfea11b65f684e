"""The config write procedure (cli-config §5.5), shared by the ConfigActor (RPC writes, the one
writer while a gateway runs) and the CLI (when no gateway is reachable).

    lock <config>.lock → read bytes + hash → base-hash rule → compute the new authored document
    → restore redacted secrets → same result? no change → serialize → temp file (mode kept,
    fsync) → validate the temp file with the one loader → on-disk hash unchanged? → rotate
    backups → os.replace → fsync the directory

The candidate is validated by loading the very temp file that will be renamed into place, so
what was validated is byte for byte what gets installed, and `$include`/`${VAR}` resolve
exactly as they will for the real file (same directory).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import msgspec

from actors.config_include import KEY as INCLUDE_KEY
from actors.config_load import ConfigSnapshot, Issue, load_config, revision
from actors.config_reload import join, split_path
from actors.config_schema import REDACTED

LOCK_WAIT_S = 5.0
BACKUP_GENERATIONS = 5
NEW_FILE_MODE = 0o600

# Test seam: called with the temp path after it is written and fsynced, before the rename.
# Tests set it in a child process to pause there and kill the process (crash simulation).
before_replace: Callable[[str], None] | None = None


class WriteError(Exception):
    """A refused write. `kind`: base_required | stale | conflict | invalid | redacted |
    shrink | include | not_found | unreadable."""

    def __init__(self, kind: str, message: str, issues: tuple[Issue, ...] = ()) -> None:
        super().__init__(message)
        self.kind, self.message, self.issues = kind, message, issues


@dataclass
class WriteResult:
    path: str  # the file written (a symlink's target)
    old: ConfigSnapshot
    snapshot: ConfigSnapshot  # the new one, or `old` when nothing changed
    changed: bool
    changed_paths: list[str]
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False


# Computes the new authored document from the current one (a deep copy it may change).
Compute = Callable[[dict], dict]


def write_config(path: str | Path, compute: Compute, *, base_hash: str | None = None,
                 require_base: str | None = None, dry_run: bool = False,
                 lock_wait: float = LOCK_WAIT_S) -> WriteResult:
    """Run the write procedure on `path`.

    `require_base`: when set and the file exists, `base_hash` is required (this text is the
    error message when it is missing) and must equal the file's current hash.
    """
    target = Path(os.path.realpath(path))  # a symlinked config is written through to its target
    # A first `config set` on a fresh machine has no state dir yet; it holds secrets: 0700.
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(target, lock_wait):
        old = load_config(target)
        if require_base is not None and old.exists:
            if base_hash is None:
                raise WriteError("base_required", require_base)
            if base_hash != old.hash:
                raise WriteError("stale", "config changed since last load; re-run config.get and retry")
        if old.exists and old.parsed is None and not _replaces_whole(compute):
            raise WriteError("unreadable", "invalid config: " + "; ".join(i.line() for i in old.issues),
                             old.issues)
        current = json.loads(json.dumps(old.parsed or {}))
        new = compute(current)
        new = restore_redacted(new, old.parsed or {})
        paths = leaf_changes(old.parsed or {}, new)
        _refuse_include_edits(old.parsed or {}, paths)
        if old.valid and old.parsed is not None and new == old.parsed:  # a missing file parses as {}
            return WriteResult(str(target), old, old, False, [], dry_run=dry_run)
        return _install(target, old, new, paths, dry_run)


def _refuse_include_edits(authored: dict, paths: list[str]) -> None:
    """A change inside a subtree an `$include` supplies would shadow the included file with
    sibling keys the user never sees there; refuse it and name the file (§5.5 step 4).
    Writing single-file includes through to their file is not done yet: refusing never
    loses anything."""
    for path in paths:
        parts = split_path(path)
        node: Any = authored
        for i, part in enumerate(parts[:-1]):
            node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                break
            if INCLUDE_KEY in node and parts[i + 1] != INCLUDE_KEY:
                source = node[INCLUDE_KEY]
                files = ", ".join(source) if isinstance(source, list) else str(source)
                raise WriteError("include", f"{path} comes from $include {files}; edit that file directly")


def replace_whole(doc: dict) -> Compute:
    """A compute that ignores the current document (config.set / config.apply)."""
    def compute(_current: dict) -> dict:
        return doc
    compute.replaces_whole = True  # type: ignore[attr-defined]
    return compute


def _replaces_whole(compute: Compute) -> bool:
    return bool(getattr(compute, "replaces_whole", False))


class _locked:
    """Exclusive flock on `<config>.lock`, polled so the wait is bounded."""

    def __init__(self, target: Path, wait: float) -> None:
        self.lock_path, self.wait, self.fd = str(target) + ".lock", wait, -1

    def __enter__(self) -> None:
        self.fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, NEW_FILE_MODE)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    os.close(self.fd)
                    raise WriteError("conflict", f"config file {self.lock_path} is locked by another "
                                     f"writer (waited {self.wait:g}s)") from None
                time.sleep(0.02)

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def serialize(doc: dict) -> bytes:
    """Standard JSON, 2-space indent, key order kept, trailing newline (§5.5 step 3)."""
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def _install(target: Path, old: ConfigSnapshot, new: dict, paths: list[str],
             dry_run: bool) -> WriteResult:
    data = serialize(new)
    mode = (os.stat(target).st_mode & 0o7777) if old.exists else NEW_FILE_MODE
    tmp = f"{target}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        _write_synced(tmp, data, mode)
        loaded = load_config(tmp)
        if loaded.issues:
            first = loaded.issues[0]
            raise WriteError("invalid", f"invalid config: {first.line()}", loaded.issues)
        snapshot = msgspec.structs.replace(loaded, path=str(target))
        warnings = [f"comments in {target} were not preserved"] if old.raw and has_comments(old.raw) else []
        if dry_run:
            return WriteResult(str(target), old, snapshot, True, paths, warnings, dry_run=True)
        if before_replace is not None:
            before_replace(tmp)
        # Someone outside the lock (an editor) may have saved meanwhile: never overwrite that.
        if _disk_hash(target) != old.hash:
            raise WriteError("conflict", f"{target} changed on disk during the write; nothing written")
        _rotate_backups(target, old.exists)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        return WriteResult(str(target), old, snapshot, True, paths, warnings)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_synced(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not narrow or widen the kept mode
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_hash(target: Path) -> str:
    try:
        return revision(target.read_bytes())
    except FileNotFoundError:
        return revision(b"")


def _rotate_backups(target: Path, exists: bool) -> None:
    """`.bak.3`→`.bak.4` … `.bak`→`.bak.1`, then the current file → `.bak` (five generations)."""
    if not exists:
        return
    names = [f"{target}.bak"] + [f"{target}.bak.{n}" for n in range(1, BACKUP_GENERATIONS)]
    for older, newer in zip(reversed(names[1:]), reversed(names[:-1])):
        if os.path.exists(newer):
            os.replace(newer, older)
    shutil.copy2(target, names[0])  # copy2 keeps the mode: a backup holds the same secrets


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TOKEN = re.compile(r"""//[^\n]*|/\*.*?\*/|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'""", re.DOTALL)


def has_comments(raw: str) -> bool:
    """True when the JSON5 text has a comment outside string literals."""
    return any(m.group(0).startswith("/") for m in _TOKEN.finditer(raw))


# --- merge patch, redaction restore, array-shrink guard -----------------------------------------

_MISSING = object()


def merge_patch(current: dict, patch: dict, replace_paths: list[str] | tuple[str, ...] = (),
                _path: str = "") -> dict:
    """JSON merge patch (RFC 7396): objects merge recursively, `null` deletes, arrays and
    scalars replace. Shrinking or deleting an existing array needs its path in `replace_paths`
    (protocol §10.5), so a stale client cannot silently drop entries."""
    out = dict(current)
    for key, value in patch.items():
        path = join(_path, key)
        old = out.get(key, _MISSING)
        if isinstance(old, list) and _drops_entries(old, value) and not _listed(path, replace_paths):
            raise WriteError("shrink", f"config.patch would drop entries at {path}; "
                             "add it to replacePaths to confirm")
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            base = old if isinstance(old, dict) else {}
            out[key] = merge_patch(base, value, replace_paths, path)
        else:
            out[key] = value
    return out


def _drops_entries(old: list, new: Any) -> bool:
    if not old:
        return False
    return not isinstance(new, list) or len(new) < len(old)


def _listed(path: str, patterns: list[str] | tuple[str, ...]) -> bool:
    parts = split_path(path)
    for pattern in patterns:
        rule = split_path(pattern)
        if len(rule) == len(parts) and all(r in ("*", p) for r, p in zip(rule, parts)):
            return True
    return False


def restore_redacted(new: Any, stored: Any, path: str = "") -> Any:
    """Swap every redaction sentinel in `new` for the value stored at the same path; with
    none stored the write is refused (protocol §10.1)."""
    if isinstance(new, dict):
        base = stored if isinstance(stored, dict) else {}
        return {k: restore_redacted(v, base.get(k, _MISSING), join(path, k)) for k, v in new.items()}
    if isinstance(new, list):
        base = stored if isinstance(stored, list) else []
        return [restore_redacted(v, base[i] if i < len(base) else _MISSING, f"{path}[{i}]")
                for i, v in enumerate(new)]
    if new == REDACTED:
        if stored is _MISSING or stored is None or isinstance(stored, (dict, list)) or stored == REDACTED:
            raise WriteError("redacted", f"cannot restore redacted value at {path}")
        return stored
    return new


def leaf_changes(old: Any, new: Any, path: str = "") -> list[str]:
    """Paths of every changed leaf, new document order first, removed keys last. Unlike a
    plain diff, an added or removed object is expanded to its leaves, so each path gets the
    reload class of its own key (`gateway.port` restarts, `gateway.reload.mode` does not)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key, value in new.items():
            out += leaf_changes(old.get(key, _MISSING), value, join(path, key))
        for key, value in old.items():
            if key not in new:
                out += leaf_changes(value, _MISSING, join(path, key))
        return out
    if old is _MISSING and isinstance(new, dict) and new:
        return leaf_changes({}, new, path)
    if new is _MISSING and isinstance(old, dict) and old:
        return leaf_changes(old, {}, path)
    return [] if old == new else [path]


def first_leaf(doc: Any, path: str = "") -> str:
    """Dotted path of the first leaf of `doc` in document order (`{logging:{level:…}}` →
    `logging.level`), for the base-hash-required message of config.patch (protocol §4.4)."""
    if isinstance(doc, dict) and doc:
        key, value = next(iter(doc.items()))
        return first_leaf(value, join(path, key))
    return path
