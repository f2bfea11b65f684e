"""System methods (protocol §9): health, status, system-presence."""

from __future__ import annotations

import os
import resource
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from actors.agents.manager import AGENTS, AgentManager
from actors.events import EVENT_HUB, EventHub
from actors.health import DEFAULT_AGENT_ID, HEALTH, HealthActor
from transport import bridge
from transport.methods import ADMIN, MAX_PROBE_MS, READ, NoParams, method
from transport.protocol import PROJECT_VERSION, SERVER_VERSION


class HealthParams(msgspec.Struct, rename="camel"):
    probe: bool = False
    timeout_ms: Annotated[int, Meta(ge=0, le=MAX_PROBE_MS)] = 10000


class StatusParams(msgspec.Struct, rename="camel"):
    include_channel_summary: bool = True


async def health_summary(state, probe: bool = False, timeout_ms: int = 10000) -> dict:
    """The mirrored summary when it is fresh enough, else a rebuild by the HealthActor."""
    cached = None if probe else state.cached_health()
    if cached is not None:
        return cached
    return await bridge.ask_within(max(timeout_ms, 1000) / 1000, HEALTH, HealthActor.summary)


@method("health", scope=READ, params=HealthParams)
async def health(params: HealthParams, ctx) -> dict:
    return await health_summary(ctx.state, params.probe, params.timeout_ms)


@method("system-presence", scope=READ, params=NoParams)
async def system_presence(params: NoParams, ctx) -> list:
    return await bridge.ask(EVENT_HUB, EventHub.presence)


@method("status", scope=READ, params=StatusParams)
async def status(params: StatusParams, ctx) -> dict:
    state = ctx.state
    summary = await health_summary(state)
    result: dict[str, Any] = {
        "runtimeVersion": SERVER_VERSION,
        "heartbeat": {"defaultAgentId": DEFAULT_AGENT_ID,
                      "agents": [{"agentId": DEFAULT_AGENT_ID, "enabled": False,
                                  "every": "disabled", "everyMs": None}]},
        "channelSummary": channel_summary(summary) if params.include_channel_summary else [],
        "queuedSystemEvents": [],
        "degradedSecretOwners": [],
        "tasks": _tasks(),
        "taskAudit": _task_audit(),
        "sessions": _sessions(summary),
        "gateway": {"version": PROJECT_VERSION, "uptimeMs": state.uptime_ms(),
                    "bind": state.bind_mode, "port": state.port, "authMode": state.auth.mode,
                    "configReload": summary["configReload"]},
    }
    if state.loop_probe is not None:
        result["eventLoop"] = state.loop_probe.report()
    if ctx.has_scope(ADMIN):
        result["pid"] = os.getpid()
        result["processMemory"] = {"rssBytes": rss_bytes()}
        # What long-lived requests hold (issue 11): a leak of waiters shows here first.
        result["requests"] = {"inFlight": state.in_flight,
                              "agentWaits": await bridge.ask_within(5, AGENTS, AgentManager.wait_count)}
    return result


def channel_summary(summary: dict) -> list[str]:
    lines = []
    for channel in summary["channelOrder"]:
        info = summary["channels"][channel]
        label = summary["channelLabels"].get(channel, channel)
        lines.append(f"{label}: {info.get('state') or ('linked' if info.get('linked') else 'configured')}")
    return lines


def _sessions(summary: dict) -> dict:
    main = summary["sessions"]
    recent = [dict(r, agentId=DEFAULT_AGENT_ID) for r in main["recent"]]
    return {"paths": [main["path"]], "count": main["count"],
            "defaults": {"model": None, "contextTokens": None},
            "recent": recent[:10],
            "byAgent": [{"agentId": DEFAULT_AGENT_ID, "path": main["path"], "count": main["count"],
                         "recent": recent[:5]}]}


def _tasks() -> dict:
    return {"total": 0, "active": 0, "terminal": 0, "failures": 0,
            "byStatus": {k: 0 for k in ("queued", "running", "succeeded", "failed", "timed_out",
                                        "cancelled", "lost")},
            "byRuntime": {k: 0 for k in ("subagent", "acp", "cli", "cron")}}


def _task_audit() -> dict:
    return {"total": 0, "warnings": 0, "errors": 0,
            "byCode": {k: 0 for k in ("stale_queued", "stale_running", "lost", "delivery_failed",
                                      "missing_cleanup", "inconsistent_timestamps")}}


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: peak RSS is the best we have
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
