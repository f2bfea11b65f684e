"""HealthActor: the gateway's health summary (protocol §9.1) and the `health` event.

Facts are pushed here (tell-only): the loop-side reload glue (lifecycle/reload.py) its
`configReload` status, later the session store its counts and the channel supervisor its
accounts. Every few seconds the summary
is rebuilt and, when its content changed (ignoring `ts` and `durationMs`), published through the
EventHub, so `health` events go out at most once per rebuild period.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from typing import Any, Callable

import msgspec

from actors.base import GatewayActor, tell
from actors.events import EVENT_HUB, EventHub
from actors.registry import ActorName

log = logging.getLogger("openclaw.gateway")

DEFAULT_AGENT_ID = "main"


def sessions_path(state_dir: str, agent_id: str = DEFAULT_AGENT_ID) -> str:
    return os.path.join(state_dir, "agents", agent_id, "sessions.sqlite")


def default_reload_status(mode: str) -> dict:
    return {"mode": mode, "status": "ok", "lastReloadAt": None, "lastError": None,
            "pendingRestart": []}


HEALTH: ActorName[HealthActor] = ActorName("health")


class HealthActor(GatewayActor):
    def __init__(self, state_dir: str, reload_mode: str = "hybrid", period_s: float = 5.0,
                 mirror: Callable[[dict], None] | None = None,
                 reload_status: dict | None = None) -> None:
        super().__init__()
        self._mirror = mirror
        self._state_dir = state_dir
        self._period = period_s
        # A restarted gateway keeps reporting the reload outcome that led to the restart.
        self._reload = dict(reload_status) if reload_status else default_reload_status(reload_mode)
        self._channels: dict[str, dict] = {}
        self._channel_labels: dict[str, str] = {}
        self._sessions: dict[str, dict] = {}
        self._last_content: Any = None
        self._timer: threading.Timer | None = None

    def on_start(self) -> None:
        summary = self.summary()
        self._last_content = self._content(summary)
        self._push(summary)
        self._schedule()

    def on_stop(self) -> None:
        if self._timer:
            self._timer.cancel()

    # --- facts pushed by other actors -----------------------------------------------------

    def set_config_reload(self, status: dict) -> None:
        """`configReload` (protocol §9.1): the loop-side reload glue owns it and pushes every
        change; a changed status is published as a `health` event at the next rebuild."""
        self._reload = dict(status)
        self._push(self.summary())

    def set_sessions(self, agent_id: str, count: int, recent: list[dict]) -> None:
        self._sessions[agent_id] = {"count": count, "recent": recent[:5]}
        self._push(self.summary())

    def set_channel(self, channel: str, label: str, summary: dict | None) -> None:
        if summary is None:
            self._channels.pop(channel, None)
            self._channel_labels.pop(channel, None)
        else:
            self._channels[channel] = summary
            self._channel_labels[channel] = label
        self._push(self.summary())

    # --- the summary -----------------------------------------------------------------------

    def summary(self) -> dict:
        started = time.perf_counter()
        result = self._build(0)
        result["durationMs"] = int((time.perf_counter() - started) * 1000)
        return result

    def refresh(self) -> None:
        """Rebuild, publish if the content changed, and schedule the next rebuild."""
        summary = self.summary()
        self._push(summary)
        content = self._content(summary)
        if content != self._last_content:
            self._last_content = content
            events = EVENT_HUB.whereis()
            if events is not None:
                tell(events, EventHub.publish_health, summary)
        self._schedule()

    def _push(self, summary: dict) -> None:
        if self._mirror is not None:
            self._mirror(summary)

    def _build(self, duration_ms: int) -> dict:
        main = self._agent_sessions(DEFAULT_AGENT_ID)
        return {
            "ok": True, "ts": int(time.time() * 1000), "durationMs": duration_ms,
            "channels": copy.deepcopy(self._channels),
            "channelOrder": list(self._channels),
            "channelLabels": dict(self._channel_labels),
            "heartbeatSeconds": 0, "defaultAgentId": DEFAULT_AGENT_ID,
            "agents": [{"agentId": DEFAULT_AGENT_ID, "isDefault": True,
                        "heartbeat": {"enabled": False, "every": "disabled", "everyMs": None},
                        "sessions": main}],
            "sessions": dict(main),
            "configReload": dict(self._reload),
        }

    def _agent_sessions(self, agent_id: str) -> dict:
        facts = self._sessions.get(agent_id, {"count": 0, "recent": []})
        return {"path": sessions_path(self._state_dir, agent_id), "count": facts["count"],
                "recent": list(facts["recent"])}

    @staticmethod
    def _content(summary: dict) -> bytes:
        rest = copy.deepcopy({k: v for k, v in summary.items() if k not in ("ts", "durationMs")})
        for agent in [rest["sessions"], *(a["sessions"] for a in rest["agents"])]:
            agent["recent"] = [{k: v for k, v in r.items() if k != "age"} for r in agent["recent"]]
        return msgspec.json.encode(rest)

    def _schedule(self) -> None:
        self._timer = threading.Timer(self._period, self._tell_refresh)
        self._timer.daemon = True
        self._timer.start()

    def _tell_refresh(self) -> None:
        try:
            tell(self.actor_ref, HealthActor.refresh)
        except Exception:  # noqa: BLE001 - stopped meanwhile
            pass
