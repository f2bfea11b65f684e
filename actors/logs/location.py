"""Where the log file lives (cli-config §8.1): the daily name, the instance tag, and a
private directory checked against a shared /tmp."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import tempfile
from datetime import date
from pathlib import Path

from actors.logs.levels import Warn

DEFAULT_LOG_DIR = Path("/tmp/openclaw")
DATED_NAME = re.compile(r"^(?P<stem>.+)-(?P<day>\d{4}-\d{2}-\d{2})\.log$")


def state_dir_tag(state_dir: str | os.PathLike[str], from_env: bool,
                  *, home: str | os.PathLike[str] | None = None) -> str | None:
    """The instance tag an OPENCLAW_STATE_DIR gives the daily log name, or None.

    Pure (no filesystem access): only an environment-chosen directory other than
    `~/.openclaw`/`~/.clawdbot` gets a tag, so default instances keep `openclaw-DATE.log`.
    """
    if not from_env:
        return None
    path = _norm(state_dir)
    home_dir = _norm(home if home is not None else os.path.expanduser("~"))
    if path in (os.path.join(home_dir, ".openclaw"), os.path.join(home_dir, ".clawdbot")):
        return None
    tag = re.sub(r"[^a-z0-9-]", "-", os.path.basename(path).lstrip(".").lower())
    if not tag:  # e.g. "/" or "/x/..." : hash the path so instances still never share a file
        return hashlib.sha1(path.encode()).hexdigest()[:8]
    if len(tag) > 32:
        return hashlib.sha1(tag.encode()).hexdigest()[:8]
    return tag


def _norm(path: str | os.PathLike[str]) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(path))))


def dated_log_name(tag: str | None, day: date) -> str:
    """`openclaw-2026-01-05.log`, or `openclaw-<tag>-2026-01-05.log`."""
    stem = f"openclaw-{tag}" if tag else "openclaw"
    return f"{stem}-{day.isoformat()}.log"


def log_file_path(
    config_file: str | None,
    state_dir: str | os.PathLike[str],
    dev: bool,
    *,
    base_dir: str | os.PathLike[str] = DEFAULT_LOG_DIR,
    state_dir_from_env: bool | None = None,
    today: date | None = None,
    home: str | os.PathLike[str] | None = None,
    warn: Warn | None = None,
) -> Path:
    """The gateway's log file (§8.1): `logging.file` if set, else today's dated file.

    `state_dir_from_env` says whether OPENCLAW_STATE_DIR chose `state_dir` (pass
    `source == "env"` from `resolve_state_dir`); None checks the environment itself. Creates
    the log directory (0700) as a side effect and may fall back to a private temp directory,
    reported through `warn`. Raises PermissionError if no safe directory can be found.
    """
    if config_file:
        return Path(config_file).expanduser().absolute()
    if dev:
        tag: str | None = "dev"
    else:
        if state_dir_from_env is None:
            state_dir_from_env = bool(os.environ.get("OPENCLAW_STATE_DIR")
                                      or os.environ.get("CLAWDBOT_STATE_DIR"))
        tag = state_dir_tag(state_dir, state_dir_from_env, home=home)
    directory = safe_log_dir(Path(base_dir), warn=warn)
    return directory / dated_log_name(tag, today or date.today())


def safe_log_dir(base_dir: Path, *, warn: Warn | None = None) -> Path:
    """`base_dir` if it is (or can be made) a private directory, else `<tmp>/openclaw-<uid>/`.

    A shared /tmp lets another user pre-create or symlink the directory and read or redirect
    our logs, hence the ownership and mode checks.
    """
    problem = _dir_problem(base_dir)
    if problem is None:
        return base_dir
    fallback = Path(tempfile.gettempdir()) / f"openclaw-{os.getuid()}"
    (warn or logging.getLogger("openclaw.gateway").warning)(
        f"log directory {base_dir} is unsafe ({problem}); using {fallback}")
    fallback_problem = _dir_problem(fallback)
    if fallback_problem == "group/other-writable":
        os.chmod(fallback, 0o700)  # our own, uid-named directory: tightening it is safe
    elif fallback_problem is not None:
        raise PermissionError(f"no safe log directory: {fallback} is unsafe ({fallback_problem})")
    return fallback


def _dir_problem(path: Path) -> str | None:
    """Why `path` must not hold our logs, or None; creates it 0700 when absent."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        return f"cannot create it: {exc.strerror or exc}"
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot stat it: {exc.strerror or exc}"
    if stat.S_ISLNK(st.st_mode):
        return "a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}"
    if st.st_mode & 0o022:
        return "group/other-writable"
    return None
