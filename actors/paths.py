"""Where the gateway keeps its state and finds its config (cli-config §1, §2).

Every `OPENCLAW_X` variable is also read as its `CLAWDBOT_X` twin; `env()` is the one place
that knows this, so server and CLI resolve paths and secrets the same way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("openclaw.config")

_warned_twins: set[str] = set()


def env(name: str, environ: os._Environ | dict | None = None) -> str | None:
    """Value of `OPENCLAW_<X>` or its twin `CLAWDBOT_<X>`; empty counts as unset."""
    environ = os.environ if environ is None else environ
    suffix = name.removeprefix("OPENCLAW_").removeprefix("CLAWDBOT_")
    primary, twin = f"OPENCLAW_{suffix}", f"CLAWDBOT_{suffix}"
    a, b = environ.get(primary) or None, environ.get(twin) or None
    if a and b and a != b and primary not in _warned_twins:
        _warned_twins.add(primary)
        log.warning("env %s and %s differ; using %s", primary, twin, primary)
    return a or b


def home() -> Path:
    return Path(os.path.expanduser("~"))


def resolve_state_dir(dev: bool = False) -> tuple[Path, str]:
    """The state directory and how it was chosen: dev | env | default | legacy."""
    if dev:
        return home() / ".openclaw-dev", "dev"
    from_env = env("OPENCLAW_STATE_DIR")
    if from_env:
        return Path(os.path.expanduser(from_env)).absolute(), "env"
    modern, legacy = home() / ".openclaw", home() / ".clawdbot"
    if not modern.exists() and legacy.exists():
        return legacy, "legacy"
    return modern, "default"


def resolve_config_path(state_dir: Path) -> tuple[Path, str]:
    """The config file and how it was chosen: env | default | legacy."""
    from_env = env("OPENCLAW_CONFIG_PATH")
    if from_env:
        return Path(os.path.expanduser(from_env)).absolute(), "env"
    modern, legacy = state_dir / "openclaw.json", state_dir / "clawdbot.json"
    if not modern.exists() and legacy.exists():
        return legacy, "legacy"
    return modern, "default"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) with mode 0700 if missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path

