"""The channel supervisor ("channels" actor): one ChannelHost per enabled channel
(architecture §2). It starts the hosts of the channels whose config block exists and is not
disabled, registers each as `channel:<id>` for the RPC handlers, applies config changes per
channel (a changed block restarts only that channel; enabling or disabling starts or stops
it), and stops every host, so every channel process group, when it stops.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

import msgspec
import pykka

from actors import registry
from actors.base import DEFERRED, GatewayActor, tell, tell_with_reply
from actors.channels import credentials, frames
from actors.channels.host import ChannelHost, host_name
from actors.config.schema import Config
from actors.health import HEALTH, HealthActor
from actors.registry import ActorName

log = logging.getLogger("openclaw.channels")

CHANNELS = credentials.CHANNELS


# Policy keys are hot (the router reads them per message); any other key restarts the channel.
HOT_KEYS = ("dm_policy", "allow_from", "group_policy", "group_allow_from", "require_mention",
            "health_monitor")


def connection_view(block: Any) -> Any:
    """The block without its hot keys: what a channel process was started with."""
    if block is None:
        return None
    return msgspec.structs.replace(block, **{key: None for key in HOT_KEYS})


def channel_block(config: Config, channel: str) -> Any:
    return getattr(config.channels, channel, None)


def enabled(block: Any) -> bool:
    return block is not None and block.enabled is not False


def configured(channel: str, block: Any) -> bool:
    """The required keys are present (cli-config §6.3)."""
    if block is None:
        return False
    if channel == "irc":
        return bool(block.host)
    return bool(block.bot_token or block.token_file or os.environ.get("TELEGRAM_BOT_TOKEN"))


CHANNEL_SUPERVISOR: ActorName[ChannelSupervisor] = ActorName("channels")


class ChannelSupervisor(GatewayActor):
    def __init__(self, config: Config, state_dir: str,
                 on_inbound: Callable[[str, frames.Inbound], None] | None = None) -> None:
        super().__init__()
        self._config = config
        self._state_dir = state_dir
        self._on_inbound = on_inbound
        self._hosts: dict[str, pykka.ActorRef[ChannelHost]] = {}

    def on_start(self) -> None:
        for channel in CHANNELS:
            block = channel_block(self._config, channel)
            if enabled(block):
                self._start_host(channel, block)

    def on_stop(self) -> None:
        for channel in list(self._hosts):
            self._stop_host(channel)

    def on_failure(self, *_: Any) -> None:
        self.on_stop()

    # --- RPC ------------------------------------------------------------------------------

    def channels(self) -> list[dict]:
        """Every supported channel: whether it is in the config, enabled, configured, hosted."""
        out = []
        for channel in CHANNELS:
            block = channel_block(self._config, channel)
            out.append({"id": channel, "present": block is not None, "enabled": enabled(block),
                        "configured": configured(channel, block), "hosted": channel in self._hosts})
        return out

    def start_channel(self, channel: str) -> None:
        """channels.start: a stopped or failed channel runs again (runtime only)."""
        block = channel_block(self._config, channel)
        host = self._hosts.get(channel)
        if host is None:
            self._start_host(channel, block)
        else:
            tell(host, ChannelHost.start_process)

    def logout(self, channel: str) -> Any:
        """channels.logout: the channel's host stops its process and deletes the stored state,
        answering the caller itself; with no host, nothing runs that could write the state, so
        this actor deletes it. Either way after any start or reconfigure already asked for."""
        host = self._hosts.get(channel)
        if host is None:
            return credentials.logout(self._state_dir, channel)
        if self._reply is None:
            tell(host, ChannelHost.logout)
        else:
            tell_with_reply(host, self._reply, ChannelHost.logout)
        return DEFERRED

    def apply(self, config: Config) -> list[str]:
        """A config change: restart the channels whose block changed; returns their ids."""
        old, self._config = self._config, config
        touched = []
        heartbeat_changed = old.gateway.channel_heartbeat_ms != config.gateway.channel_heartbeat_ms
        for channel in CHANNELS:
            before, after = channel_block(old, channel), channel_block(config, channel)
            if connection_view(before) == connection_view(after) and not heartbeat_changed:
                continue
            touched.append(channel)
            if not enabled(after):
                self._stop_host(channel)
            elif channel not in self._hosts:
                self._start_host(channel, after)
            else:
                tell(self._hosts[channel], ChannelHost.reconfigure, after,
                     heartbeat_ms=config.gateway.channel_heartbeat_ms,
                     health_monitor=after.health_monitor.enabled)
        return touched

    # --- hosts ----------------------------------------------------------------------------

    def _start_host(self, channel: str, block: Any) -> None:
        host = ChannelHost.start(channel, block, self._state_dir,
                                 heartbeat_ms=self._config.gateway.channel_heartbeat_ms,
                                 health_monitor=block.health_monitor.enabled,
                                 on_inbound=self._on_inbound)
        self._hosts[channel] = host
        registry.register(host_name(channel).name, host)
        tell(host, ChannelHost.start_process)

    def _stop_host(self, channel: str) -> None:
        host = self._hosts.pop(channel, None)
        if host is None:
            return
        registry.unregister(host_name(channel).name, host)
        health = HEALTH.whereis()
        if health is not None:
            tell(health, HealthActor.set_channel, channel, channel, None)
        try:
            host.stop(block=True, timeout=10)
        except (pykka.ActorDeadError, pykka.Timeout):
            log.warning("channel host %s did not stop in time", channel)
