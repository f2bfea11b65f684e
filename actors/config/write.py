"""The config write procedure (cli-config §5.5), shared by the ConfigActor (RPC writes, the one
writer while a gateway runs) and the CLI (when no gateway is reachable).

    lock <config>.lock → read bytes + hash → base-hash rule → compute the new authored document
    → restore redacted secrets → same result? no change → serialize → temp file (mode kept,
    fsync) → validate the temp file with the one loader → on-disk hash unchanged? → rotate
    backups → os.replace → fsync the directory

The candidate is validated by loading the very temp file that will be renamed into place, so
what was validated is byte for byte what gets installed, and `$include`/`${VAR}` resolve
exactly as they will for the real file (same directory).

A change under a single-file `$include` without sibling keys is written to that file (and so
on down nested ones), each changed file with its own temp file, mode, backups and rename, all
under the root's lock; the whole config is validated with the included files read from their
temp files (`reading_instead`) before any rename. Include arrays and overridden includes refuse.
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

from actors.config.include import KEY as INCLUDE_KEY
from actors.config.include import MAX_DEPTH as INCLUDE_MAX_DEPTH
from actors.config.include import Includes, reading_instead
from actors.config.load import ConfigSnapshot, Issue, _parse_file, load_config, revision
from actors.config.reload import join, split_path
from actors.config.schema import REDACTED

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

    `compute` sees the authored document with every single-file `$include` that has no
    sibling keys replaced by the included file's own authored document; a change there is
    written to that file (§5.5 step 4), the including file keeping its `$include`.
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
        root = _Source(target, None, old.parsed or {}, ())
        root.mounts = _find_mounts(Includes(target, _parse_file), root.authored, [target], (), set())
        view = root.view()
        new = compute(json.loads(json.dumps(view)))
        new = restore_redacted(new, view)
        paths = leaf_changes(view, new)
        writes: list[tuple[_Source, dict]] = []
        root_new = root.split(new, writes)
        writes.insert(0, (root, root_new))
        for source, authored in writes:
            _refuse_include_edits(source.authored, leaf_changes(source.authored, authored), source.prefix)
        writes = [(s, a) for s, a in writes if s is root or a != s.authored]
        if old.valid and old.parsed is not None and len(writes) == 1 and root_new == old.parsed:
            return WriteResult(str(target), old, old, False, [], dry_run=dry_run)  # a missing file parses as {}
        if root_new == old.parsed and old.parsed is not None and old.exists:
            writes = writes[1:]  # the root file itself stays byte for byte as it is
        return _install(target, old, writes, paths, dry_run)


@dataclass(eq=False)
class _Source:
    """One file of the authored config: the root or a single-file `$include` target."""
    path: Path  # real path: the file written
    data: bytes | None  # bytes read (None: the root, whose snapshot holds them)
    authored: dict
    prefix: tuple[str, ...]  # where its document sits in the whole config
    mounts: dict[tuple[str, ...], tuple[str, "_Source"]] = field(default_factory=dict)

    def view(self) -> Any:
        """The document with every mounted include replaced by its file's own view."""
        doc: Any = json.loads(json.dumps(self.authored))
        for at, (_spec, child) in self.mounts.items():
            doc = _put(doc, at, child.view())
        return doc

    def split(self, new: Any, writes: list[tuple["_Source", dict]]) -> Any:
        """`new` (a view of this file) back to this file's authored document; the new
        documents of mounted includes whose content `new` gives go to `writes`."""
        authored = json.loads(json.dumps(new))
        for at, (spec, child) in self.mounts.items():
            content = _get(new, at)
            # An `$include` node here (unchanged or not) stays this file's own edit.
            if isinstance(content, dict) and INCLUDE_KEY not in content:
                writes.append((child, child.split(content, writes)))
                authored = _put(authored, at, {INCLUDE_KEY: spec})
        return authored


def _find_mounts(includes: Includes, node: Any, chain: list[Path], at: tuple[str, ...],
                 seen: set[Path]) -> dict:
    """Object paths in `node` holding exactly `{"$include": "<one path>"}` that resolve, mapped
    to (the spec, the included file); includes nested in those files likewise, recursively."""
    if not isinstance(node, dict):
        return {}
    if INCLUDE_KEY not in node:
        out: dict = {}
        for key, value in node.items():
            out.update(_find_mounts(includes, value, chain, (*at, key), seen))
        return out
    spec = node[INCLUDE_KEY]
    if len(node) != 1 or not isinstance(spec, str) or len(chain) > INCLUDE_MAX_DEPTH:
        return {}
    found = includes.authored(spec, chain)
    if found is None:
        return {}
    target, data, doc = found
    real = Path(os.path.realpath(target))
    if real in seen:  # one file included twice: writing it through one place is ambiguous
        return {}
    seen.add(real)
    child = _Source(real, data, doc, at)
    child.mounts = _find_mounts(includes, doc, [*chain, target], (), seen)
    # Paths inside a child are relative to its own document; keep the whole-config prefix.
    for _at, (_spec, grandchild) in child.mounts.items():
        _shift(grandchild, at)
    return {at: (spec, child)}


def _shift(source: _Source, by: tuple[str, ...]) -> None:
    source.prefix = (*by, *source.prefix)
    for _at, (_spec, child) in source.mounts.items():
        _shift(child, by)


def _get(doc: Any, at: tuple[str, ...]) -> Any:
    for key in at:
        if not isinstance(doc, dict) or key not in doc:
            return _MISSING
        doc = doc[key]
    return doc


def _put(doc: Any, at: tuple[str, ...], value: Any) -> Any:
    if not at:
        return value
    node = doc
    for key in at[:-1]:
        node = node[key]
    node[at[-1]] = value
    return doc


def _refuse_include_edits(authored: dict, paths: list[str], prefix: tuple[str, ...] = ()) -> None:
    """A change inside a subtree an include array or an `$include` with sibling keys supplies
    would shadow the included files with sibling keys the user never sees there; refuse it
    and name the file (§5.5 step 4). `paths` are relative to `authored`, which sits at
    `prefix` in the whole config (the message names the whole path)."""
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
                whole = ""
                for key in (*prefix, *parts):
                    whole = join(whole, key)
                raise WriteError("include", f"{whole} comes from $include {files}; edit that file directly")


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


def _install(target: Path, old: ConfigSnapshot, writes: list[tuple[_Source, dict]], paths: list[str],
             dry_run: bool) -> WriteResult:
    """Write every changed file (the root and/or included files) to its own temp file,
    validate the whole config as loaded from those temp files, then replace each file."""
    temps: list[tuple[_Source, str, str]] = []  # (file, temp path, hash it had when read)
    warnings: list[str] = []
    try:
        for source, authored in writes:
            is_root = source.path == target
            exists = old.exists if is_root else True
            mode = (os.stat(source.path).st_mode & 0o7777) if exists else NEW_FILE_MODE
            tmp = f"{source.path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
            temps.append((source, tmp, old.hash if is_root else revision(source.data or b"")))
            _write_synced(tmp, serialize(authored), mode)
            raw = old.raw if is_root else (source.data or b"").decode("utf-8", errors="replace")
            if raw and has_comments(raw):
                warnings.append(f"comments in {source.path} were not preserved")
        root_tmp = next((tmp for s, tmp, _h in temps if s.path == target), None)
        with reading_instead({s.path: Path(tmp) for s, tmp, _h in temps if s.path != target}):
            loaded = load_config(root_tmp or target)
        if loaded.issues:
            first = loaded.issues[0]
            raise WriteError("invalid", f"invalid config: {first.line()}", loaded.issues)
        snapshot = msgspec.structs.replace(loaded, path=str(target))
        if dry_run:
            return WriteResult(str(target), old, snapshot, True, paths, warnings, dry_run=True)
        if before_replace is not None:
            for _s, tmp, _h in temps:
                before_replace(tmp)
        # Someone outside the lock (an editor) may have saved meanwhile: never overwrite that.
        for source, _tmp, read_hash in temps:
            if _disk_hash(source.path) != read_hash:
                raise WriteError("conflict", f"{source.path} changed on disk during the write; nothing written")
        for source, tmp, _h in temps:
            _rotate_backups(source.path, old.exists if source.path == target else True)
            os.replace(tmp, source.path)
            _fsync_dir(source.path.parent)
        return WriteResult(str(target), old, snapshot, True, paths, warnings)
    finally:
        for _s, tmp, _h in temps:
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
    for older, newer in zip(reversed(names[1:]), reversed(names[:-1]), strict=True):
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
        if len(rule) == len(parts) and all(r in ("*", p) for r, p in zip(rule, parts, strict=True)):
            return True
    return False


def restore_redacted(new: Any, stored: Any, path: str = "") -> Any:
    """Swap every redaction sentinel in `new` for the value stored at the same path; with
    none stored the write is refused (protocol §10.1)."""
    if isinstance(new, dict):
        base = stored if isinstance(stored, dict) else {}
        return {k: restore_redacted(v, base.get(k, _MISSING), join(path, k)) for k, v in new.items()}
    if isinstance(new, list):
        stored_items = stored if isinstance(stored, list) else []
        return [restore_redacted(v, stored_items[i] if i < len(stored_items) else _MISSING, f"{path}[{i}]")
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
