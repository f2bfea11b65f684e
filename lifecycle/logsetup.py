"""Logging from the config and the run flags (cli-config §8.4): at start-up, and again on
every reload and restart, so a `logging.*` change takes effect without a restart."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from actors import logs
from actors.config.load import ConfigSnapshot, secret_values
from actors.config.settings import AuthSettings
from lifecycle.startup import RunOptions

log = logging.getLogger("openclaw.gateway")


def configure_logging(opts: RunOptions, snapshot: ConfigSnapshot, auth: AuthSettings,
                      state_dir: Path, from_env: bool) -> logs.LoggingHandle:
    """Install the handlers `snapshot` asks for; the flags and OPENCLAW_LOG_LEVEL still win.
    Raises OSError (previous setup kept) when the log file cannot be opened."""
    cfg = snapshot.config.logging
    early: list[str] = []
    file_level, console_level = logs.resolve_levels(
        cli_level=opts.log_level, verbose=opts.verbose, env_level=os.environ.get("OPENCLAW_LOG_LEVEL"),
        config_level=cfg.level, config_console_level=cfg.console_level, warn=early.append)
    path = logs.log_file_path(cfg.file, str(state_dir), opts.dev, state_dir_from_env=from_env,
                              warn=early.append)
    secrets = [auth.token, auth.password, *secret_values(snapshot.resolved)]
    handle = logs.setup_logging(file_path=path, file_level=file_level, console_level=console_level,
                                console_style=cfg.console_style, daily=not cfg.file,
                                no_color=opts.no_color, secrets=secrets)
    for line in early:
        log.warning(line)
    return handle
