"""Confinement of tool paths to the agent workspace.

Every path a tool touches goes through `resolve`: it follows each symlink that exists (the
kernel would follow them too when the tool opens the path) and refuses anything whose real
location is outside the real workspace directory.
"""

from __future__ import annotations

import os
from pathlib import Path


class WorkspaceError(ValueError):
    """A refused tool path; str() is the message the client sees and names the path given."""


def resolve(workspace: Path, path: str) -> Path:
    """The real location of `path` (relative to `workspace`, or absolute) inside the workspace.

    Symlinks are followed wherever they exist; a tail that does not exist yet is kept as
    written (so `write` can create it). `..` is fine while it stays inside.
    """
    if not path:
        raise WorkspaceError("path is empty")
    if "\0" in path:
        raise WorkspaceError(f"path contains a NUL byte: {path!r}")
    given_root = os.path.abspath(workspace)
    real_root = os.path.realpath(workspace)
    absolute = path if os.path.isabs(path) else os.path.join(real_root, path)
    # realpath (non-strict) resolves symlinks component by component before applying `..`,
    # exactly as open(2) would; a lexical normpath would get `link/..` wrong.
    real = os.path.realpath(absolute)
    if _inside(real, real_root):
        return Path(real)
    lexical = os.path.normpath(absolute)
    if _inside(lexical, real_root) or _inside(lexical, given_root):
        raise WorkspaceError(f"path escapes the workspace through a symlink: {path}")
    raise WorkspaceError(f"path escapes the workspace: {path}")


def _inside(candidate: str, root: str) -> bool:
    return candidate == root or Path(candidate).is_relative_to(root)


def ensure(workspace: Path) -> Path:
    """Create the workspace directory if needed (0700, parents too) and return its real path."""
    try:
        Path(workspace).mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise WorkspaceError(f"workspace is not a directory: {workspace}") from None
    except OSError as exc:
        raise WorkspaceError(f"cannot create the workspace {workspace}: {exc.strerror}") from None
    return Path(os.path.realpath(workspace))
