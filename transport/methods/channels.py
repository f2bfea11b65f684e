"""Channel methods (protocol §12.1-§12.3, §15.1): `channels.status`, `channels.start`,
`channels.stop`, `channels.logout` and `send`, over the "channels" supervisor and the `channel:<id>`
hosts, through the bridge only."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated

import msgspec
from msgspec import Meta

from actors.agents.manager import AGENTS, AgentManager
from actors.channels.host import ChannelDown, ChannelHost, host_name
from actors.channels.supervisor import CHANNEL_SUPERVISOR, CHANNELS, ChannelSupervisor
from actors.sessions.store import SESSIONS, SessionStore
from transport import bridge
from transport.methods import ADMIN, MAX_PROBE_MS, READ, WRITE, method
from transport.protocol import NOT_LINKED, UNAVAILABLE, GatewayError, invalid

log = logging.getLogger("openclaw.channels")

NonEmpty = Annotated[str, Meta(min_length=1)]
LABELS = {"irc": "IRC", "telegram": "Telegram"}
DETAIL_LABELS = {"irc": "IRC", "telegram": "Telegram Bot"}
ACCOUNT = "default"
DELIVER_TIMEOUT_S = 30
LOGOUT_TIMEOUT_S = 20  # the process's graceful stop (a few seconds), then the deletion


class StatusParams(msgspec.Struct, kw_only=True):
    probe: bool = False
    timeoutMs: Annotated[int, Meta(ge=0, le=MAX_PROBE_MS)] = 10_000


class ChannelParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    channel: NonEmpty
    accountId: str | None = None


def now_ms() -> int:
    return int(time.time() * 1000)


async def _account(entry: dict, probe: bool, timeout_s: float) -> dict:
    """One account snapshot: the host's status (and a live probe), or the config-only view."""
    channel = entry["id"]
    base = {"accountId": ACCOUNT, "enabled": entry["enabled"], "configured": entry["configured"],
            "state": "stopped", "stateSince": None, "restartCount": 0, "lastError": None,
            "running": False}
    if not entry["hosted"]:
        return base
    try:
        status = await bridge.ask_within(5, host_name(channel), ChannelHost.status)
    except bridge.ActorUnavailable:
        return base
    detail = status.pop("detail", {}) or {}
    account = {**base, **{k: v for k, v in status.items() if v is not None or k == "lastError"},
               **detail}
    if probe and status.get("state") == "running":
        started = time.perf_counter()
        try:
            result = await bridge.ask_within(timeout_s, host_name(channel), ChannelHost.probe)
        except bridge.ActorUnavailable as exc:
            result = {"ok": False, "error": str(exc)}
        account["probe"] = {**result, "elapsedMs": int((time.perf_counter() - started) * 1000)}
        account["lastProbeAt"] = now_ms()
    return account


@method("channels.status", scope=READ, params=StatusParams)
async def channels_status(params: StatusParams, ctx) -> dict:
    entries = [e for e in await bridge.ask(CHANNEL_SUPERVISOR, ChannelSupervisor.channels) if e["present"]]
    timeout_s = max(1.0, params.timeoutMs / 1000)
    accounts = await asyncio.gather(*(_account(e, params.probe, timeout_s) for e in entries))
    order = [e["id"] for e in entries]
    issues = [{"channel": c, "accountId": ACCOUNT, "kind": a["state"], "message": a["lastError"]}
              for c, a in zip(order, accounts, strict=True) if a["state"] in ("failed", "backoff") and a["lastError"]]
    return {
        "ts": now_ms(), "channelOrder": order,
        "channelLabels": {c: LABELS[c] for c in order},
        "channelDetailLabels": {c: DETAIL_LABELS[c] for c in order},
        "channelSystemImages": {},
        "channelMeta": [{"id": c, "label": LABELS[c], "detailLabel": DETAIL_LABELS[c]} for c in order],
        "channels": {c: {"configured": a["configured"], "running": a["running"]}
                     for c, a in zip(order, accounts, strict=True)},
        "channelAccounts": {c: [a] for c, a in zip(order, accounts, strict=True)},
        "channelDefaultAccountId": {c: ACCOUNT for c in order},
        "statusIssues": issues,
    }


async def _known(params: ChannelParams) -> dict:
    channel = params.channel.strip().lower()
    if channel not in CHANNELS:
        raise invalid(f"unknown channel: {params.channel}")
    account = params.accountId or ACCOUNT
    entry = next(e for e in await bridge.ask(CHANNEL_SUPERVISOR, ChannelSupervisor.channels) if e["id"] == channel)
    if account != ACCOUNT or not entry["present"]:
        raise invalid(f"channel account not configured: {channel}/{account}")
    return entry


@method("channels.start", scope=ADMIN, params=ChannelParams)
async def channels_start(params: ChannelParams, ctx) -> dict:
    entry = await _known(params)
    channel = entry["id"]
    if not entry["enabled"]:
        raise invalid(f"channel {channel} is disabled in config "
                      f"(openclaw config set channels.{channel}.enabled true)")
    await bridge.ask(CHANNEL_SUPERVISOR, ChannelSupervisor.start_channel, channel)
    status = await bridge.ask(host_name(channel), ChannelHost.status)
    return {"ok": True, "channel": channel, "accountId": ACCOUNT,
            "running": status["state"] in ("starting", "running")}


@method("channels.stop", scope=ADMIN, params=ChannelParams)
async def channels_stop(params: ChannelParams, ctx) -> dict:
    entry = await _known(params)
    if entry["hosted"]:
        await bridge.ask_within(15, host_name(entry["id"]), ChannelHost.stop_process)
    return {"ok": True, "channel": entry["id"], "accountId": ACCOUNT, "running": False}


@method("channels.logout", scope=ADMIN, params=ChannelParams)
async def channels_logout(params: ChannelParams, ctx) -> dict:
    """§12.3: stop the account and delete `<state>/credentials/<channel>/default/` (the
    channel's own login and cursor state); config secrets stay. The channel's owner does both
    (actors/channels/credentials.py), so no restart of the channel can slip in between."""
    entry = await _known(params)
    return await bridge.ask_within(LOGOUT_TIMEOUT_S, CHANNEL_SUPERVISOR, ChannelSupervisor.logout,
                                   entry["id"])


# --- send (§15.1) ---------------------------------------------------------------------------

class SendParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    to: NonEmpty
    idempotencyKey: NonEmpty
    message: str | None = None
    mediaUrl: str | None = None
    mediaUrls: list[str] | None = None
    channel: str | None = None
    accountId: str | None = None
    threadId: str | None = None
    sessionKey: str | None = None


def _send_text(params: SendParams) -> str:
    """The message, then each media URL on its own line (media go out as links for now)."""
    urls = [u.strip() for u in ([params.mediaUrl] if params.mediaUrl else []) + (params.mediaUrls or [])
            if u and u.strip()]
    lines = ([params.message] if params.message and params.message.strip() else []) + urls
    if not lines:
        raise invalid("invalid send params: message or mediaUrl or mediaUrls: required")
    return "\n".join(lines)


async def _send_channel(params: SendParams) -> str:
    present = [e["id"] for e in await bridge.ask(CHANNEL_SUPERVISOR, ChannelSupervisor.channels) if e["present"]]
    if params.channel is None or not params.channel.strip():
        if len(present) > 1:
            raise invalid("channel is required when multiple channels are configured")
        if not present:
            raise invalid("channel is required: no channels are configured")
        return present[0]
    channel = params.channel.strip().lower()
    if channel not in CHANNELS or channel not in present:  # webchat is no target
        raise invalid(f"unknown channel: {params.channel}")
    return channel


def _send_error(error: tuple[str, str]) -> GatewayError:
    code, message = error
    return GatewayError(code, message, **({"retryable": True} if code == UNAVAILABLE else {}))


@method("send", scope=WRITE, params=SendParams)
async def send(params: SendParams, ctx) -> dict:
    """§15.1: one message out through a channel, outside any agent run. Idempotent (§18): a
    repeat waits for and shares the first call's result. A channel that is not running sends
    nothing, so that error drops the claim (a retry with the same key may succeed); a failed
    delivery attempt is cached like a result."""
    text = _send_text(params)
    channel = await _send_channel(params)
    account = params.accountId or ACCOUNT
    if account != ACCOUNT:
        raise GatewayError(NOT_LINKED, f"{channel} account {account} is not linked")
    key = params.idempotencyKey
    dedupe_key = f"send:{key}"
    if await bridge.ask(AGENTS, AgentManager.claim, dedupe_key, key) is not None:
        shared = await bridge.ask_within(DELIVER_TIMEOUT_S + 15, AGENTS, AgentManager.wait_call, dedupe_key)
        if shared["error"]:
            raise _send_error(tuple(shared["error"]))
        return shared["payload"]
    try:
        result = await bridge.ask_within(DELIVER_TIMEOUT_S, host_name(channel), ChannelHost.deliver,
                                         params.to, text)
    except (ChannelDown, bridge.ActorUnavailable) as exc:
        message = str(exc) if isinstance(exc, ChannelDown) else \
            f"channel {channel} is not running ({await _state(channel)})"
        bridge.tell(AGENTS, AgentManager.finish_call, dedupe_key, None, (UNAVAILABLE, message), keep=False)
        raise GatewayError(UNAVAILABLE, message, retryable=True) from None
    except BaseException:
        bridge.tell(AGENTS, AgentManager.finish_call, dedupe_key, None,
                    (UNAVAILABLE, "send failed"), keep=False)
        raise
    if not result.get("ok"):
        error = (UNAVAILABLE, f"{channel} delivery failed: {result.get('error') or 'unknown error'}")
        bridge.tell(AGENTS, AgentManager.finish_call, dedupe_key, None, error)
        raise _send_error(error)
    payload = {"runId": key, "messageId": str(result.get("messageId") or ""), "channel": channel,
               "accountId": ACCOUNT}
    bridge.tell(AGENTS, AgentManager.finish_call, dedupe_key, payload)
    if params.sessionKey:
        try:
            await bridge.ask(SESSIONS, SessionStore.append, params.sessionKey, {
                "role": "assistant", "content": [{"type": "text", "text": text}], "runId": key,
                "timestamp": now_ms()})
        except Exception as exc:  # noqa: BLE001 - delivered already: the send succeeded
            log.warning("send %s: not appended to session %s: %s", key, params.sessionKey, exc)
    return payload


async def _state(channel: str) -> str:
    try:
        return (await bridge.ask_within(5, host_name(channel), ChannelHost.status))["state"]
    except Exception:  # noqa: BLE001 - no host: the channel is stopped (disabled)
        return "stopped"
