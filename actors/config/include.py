"""`$include` (cli-config §5.3): a path or an array of paths whose documents replace the
containing object; an array is deep-merged in order and sibling keys merge last. Paths are
relative to the including file and, symlinks resolved, must stay inside the root config's
directory or an `OPENCLAW_INCLUDE_ROOTS` entry, so a config cannot pull in arbitrary files.

Errors name the chain of files that led to them, newest first:
`channels.$include: ./channels.json5: file not found (included from /home/u/.openclaw/openclaw.json)`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Iterator

from actors.config.reload import join
from actors.config.validate import Issue
from actors.paths import env

KEY = "$include"
MAX_DEPTH = 10
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_PATH_CHARS = 4096

# Parses a file's text; raises ValueError with a message already of the form
# `<file>:<line>:<col>: <message>` (the loader's parser, passed in to keep one parser).
Parser = Callable[[str, Path], Any]


# Included files to read from another path instead (real path → stand-in), for validating a
# write's candidate files before they replace the real ones; per context, so concurrent loads
# elsewhere never see it.
_STAND_INS: ContextVar[dict[Path, Path]] = ContextVar("include_stand_ins")


@contextmanager
def reading_instead(stand_ins: dict[Path, Path]) -> Iterator[None]:
    """Within the block, an include whose real path is a key is read from its value."""
    token = _STAND_INS.set({Path(os.path.realpath(k)): Path(v) for k, v in stand_ins.items()})
    try:
        yield
    finally:
        _STAND_INS.reset(token)


class _Failed(Exception):
    pass


class Includes:
    """Resolves every `$include` of one root document; collects issues and the files read."""

    def __init__(self, root_file: Path, parse: Parser, environ: dict | None = None) -> None:
        self.root_file = Path(os.path.abspath(root_file))
        self.parse = parse
        self.issues: list[Issue] = []
        self.files: list[str] = []
        self.roots = [Path(os.path.realpath(self.root_file.parent))]
        extra = env("OPENCLAW_INCLUDE_ROOTS", environ)
        self.roots += [Path(os.path.realpath(os.path.expanduser(p)))
                       for p in (extra or "").split(os.pathsep) if p]

    def resolve(self, doc: Any) -> Any:
        return self._node(doc, "", [self.root_file])

    def _node(self, node: Any, path: str, chain: list[Path]) -> Any:
        if isinstance(node, list):
            return [self._node(v, f"{path}[{i}]", chain) for i, v in enumerate(node)]
        if not isinstance(node, dict):
            return node
        if KEY not in node:
            return {k: self._node(v, join(path, k), chain) for k, v in node.items()}
        where = join(path, KEY)
        spec = node[KEY]
        specs = [spec] if isinstance(spec, str) else spec
        if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
            self.issues.append(Issue(where, "expected a path or an array of paths", "include"))
            return {}
        merged: dict = {}
        for each in specs:
            try:
                included = self._file(each, where, path, chain)
            except _Failed:
                continue
            merged = deep_merge(merged, included)
        siblings = {k: self._node(v, join(path, k), chain) for k, v in node.items() if k != KEY}
        return deep_merge(merged, siblings)

    def authored(self, spec: str, chain: list[Path]) -> tuple[Path, bytes, dict] | None:
        """(the included file, its bytes, its own unresolved document) for `spec` included from
        `chain[-1]`, by the same rules as resolving; None when it does not resolve."""
        try:
            return self._load(spec, KEY, chain)
        except _Failed:
            return None

    def _file(self, spec: str, where: str, path: str, chain: list[Path]) -> dict:
        target, _data, doc = self._load(spec, where, chain)
        return self._node(doc, path, [*chain, target])

    def _load(self, spec: str, where: str, chain: list[Path]) -> tuple[Path, bytes, dict]:
        def fail(message: str) -> _Failed:
            origin = ", ".join(f"included from {f}" for f in reversed(chain))
            self.issues.append(Issue(where, f"{spec}: {message} ({origin})", "include"))
            return _Failed()

        if len(spec) >= MAX_PATH_CHARS:
            raise fail(f"path longer than {MAX_PATH_CHARS - 1} characters")
        if len(chain) > MAX_DEPTH:
            raise fail(f"includes nested deeper than {MAX_DEPTH}")
        target = Path(os.path.expanduser(spec))
        target = Path(os.path.abspath(chain[-1].parent / target))
        real = Path(os.path.realpath(target))
        if not any(real == root or root in real.parents for root in self.roots):
            raise fail("outside the config directory (and OPENCLAW_INCLUDE_ROOTS)")
        if real in {Path(os.path.realpath(f)) for f in chain}:
            raise fail("include cycle")
        if not real.exists():
            raise fail("file not found")
        if not real.is_file():
            raise fail("not a regular file")
        try:
            data = _STAND_INS.get({}).get(real, real).read_bytes()
        except OSError as exc:
            raise fail(f"cannot read: {exc.strerror}") from None
        if len(data) > MAX_FILE_BYTES:
            raise fail("larger than 2 MiB")
        self.files.append(str(target))
        text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
        try:
            doc = self.parse(text, target)
        except ValueError as exc:
            raise fail(str(exc)) from None
        if not isinstance(doc, dict):
            raise fail("the included document must be an object")
        return target, data, doc


def deep_merge(base: dict, over: dict) -> dict:
    """`over` merged into a copy of `base`: objects merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_includes(doc: dict, root_file: Path, parse: Parser,
                     environ: dict | None = None) -> tuple[dict, list[str], list[Issue]]:
    """(the document with every `$include` resolved, the files included, the issues)."""
    includes = Includes(root_file, parse, environ)
    resolved = includes.resolve(doc)
    return resolved, includes.files, includes.issues
