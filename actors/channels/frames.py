"""The pipe protocol between a ChannelHost (gateway process) and its channel process.

One msgspec-encoded frame per pipe message, a tagged union on `type`. Gateway → channel:
`Start`, `InboundAck`, `Outbound`, `Probe`, `Stop`. Channel → gateway: `Inbound`,
`OutboundResult`, `Status`, `Heartbeat`, `ProbeResult`, `Log`.

Delivery rule (architecture §3): the channel advances its network cursor (the Telegram update
offset, …) for an inbound message only after the gateway answered `InboundAck` with
`ok=True`, which it sends once the session store committed the message. A channel that dies
before that gets the message again from the network after its restart.
"""

from __future__ import annotations

from typing import Literal

import msgspec


# Subclasses inherit frozen=True from msgspec; they repeat it because type checkers do not
# carry a dataclass_transform's frozen over to subclasses.
class _Frame(msgspec.Struct, tag_field="type", kw_only=True, frozen=True):
    pass


# --- gateway → channel ------------------------------------------------------------------

class Start(_Frame, tag="start", kw_only=True, frozen=True):
    """First frame: the channel's config block (its JSON, camelCase keys as in the config
    file) and the state dir, where the channel keeps its own cursor files."""
    channel: str  # "irc" | "telegram"
    account_id: str = "default"
    config: bytes  # msgspec JSON of the channel's config Struct
    state_dir: str
    heartbeat_ms: int = 5000


class InboundAck(_Frame, tag="inbound_ack", kw_only=True, frozen=True):
    id: str  # Inbound.id
    ok: bool = True  # False: not stored (the channel may drop it or deliver it again later)


class Outbound(_Frame, tag="outbound", kw_only=True, frozen=True):
    id: str  # request id, echoed in OutboundResult
    to: str  # channel-specific target: an IRC nick or #channel, a Telegram chat id
    text: str
    reply_to: str | None = None  # channel message id to reply to, when the channel has threads


class Probe(_Frame, tag="probe", kw_only=True, frozen=True):
    id: str


class Stop(_Frame, tag="stop", kw_only=True, frozen=True):
    reason: str = "stop"


# --- channel → gateway ------------------------------------------------------------------

class Inbound(_Frame, tag="inbound", kw_only=True, frozen=True):
    """One message from the network. `id` is unique per channel (e.g. `tg:<update_id>`)."""
    id: str
    sender: str  # the sender id the access policy matches (IRC `nick!user@host`, Telegram user id)
    sender_name: str | None = None  # display name
    chat: str  # where a reply goes: the peer (DM) or the group / IRC #channel
    kind: Literal["direct", "group"] = "direct"
    text: str
    mentioned: bool = False  # the bot was addressed (IRC `nick:` prefix, Telegram @username)
    ts: int = 0  # ms since the epoch, from the network when it has one


class OutboundResult(_Frame, tag="outbound_result", kw_only=True, frozen=True):
    id: str  # Outbound.id
    ok: bool
    message_id: str | None = None  # the channel's id of the (last) sent part
    error: str | None = None


class Status(_Frame, tag="status", kw_only=True, frozen=True):
    """Connection state changes: `connected` once logged in / polling, with details for
    `channels.status` (e.g. the IRC nick in use, the Telegram bot username)."""
    connected: bool
    error: str | None = None
    detail: dict = {}


class Heartbeat(_Frame, tag="heartbeat", kw_only=True, frozen=True):
    ts: int


class ProbeResult(_Frame, tag="probe_result", kw_only=True, frozen=True):
    id: str
    ok: bool
    detail: dict = {}
    error: str | None = None


class Log(_Frame, tag="log", kw_only=True, frozen=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    message: str


ToChannel = Start | InboundAck | Outbound | Probe | Stop
ToGateway = Inbound | OutboundResult | Status | Heartbeat | ProbeResult | Log

encode = msgspec.msgpack.Encoder().encode
decode_to_channel = msgspec.msgpack.Decoder(ToChannel).decode
decode_to_gateway = msgspec.msgpack.Decoder(ToGateway).decode
