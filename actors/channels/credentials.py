"""A channel's stored login and cursor state, `<state>/credentials/<channel>/<accountId>/`
(protocol §12.3), and the logout that deletes it.

The folder is written by the channel process, so inside the gateway only that channel's owner
deletes it: its `ChannelHost` once the process is stopped, or the channel supervisor when no
host runs. Without a gateway, `openclaw channels logout` calls the same `logout` under the
state-dir lock. Config secrets (a bot token in the config) are not touched.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ACCOUNT = "default"  # one account per channel for now
CHANNELS = ("irc", "telegram")


def account_dir(state_dir: str | os.PathLike[str], channel: str, account: str = ACCOUNT) -> Path:
    """`<state>/credentials/<channel>/<account>/`; ValueError for a channel we do not know, so a
    client's string never reaches a path."""
    if channel not in CHANNELS or account != ACCOUNT:
        raise ValueError(f"unknown channel account: {channel}/{account}")
    return Path(state_dir) / "credentials" / channel / account


def logout(state_dir: str | os.PathLike[str], channel: str) -> dict:
    """Delete the channel's stored state; the `channels.logout` result. The channel must not
    be running (its process would write the folder again). OSError when it cannot be deleted."""
    folder = account_dir(state_dir, channel)
    cleared = folder.exists()
    if cleared:
        shutil.rmtree(folder)
    return {"channel": channel, "accountId": ACCOUNT, "cleared": cleared, "loggedOut": True}
