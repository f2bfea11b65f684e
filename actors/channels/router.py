"""The channel router ("channel-router" actor): inbound channel messages to agent runs and
their replies back out (architecture §3).

    inbound → access policy (dmPolicy / groupPolicy / mentions; actors/channels/access.py)
      allow → SessionStore.record_turn (commit) → InboundAck to the channel → agent run
              → the reply (or the error text) delivered through the same channel
      pair  → a pairing code for the sender, sent back; the message itself is not stored
      deny  → dropped (acknowledged, so the channel does not deliver it again)

Every step is an asynchronous `Call` whose reply comes back to this actor as a message, so
the router never blocks on the store, the agents actor or a channel host.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Callable, Concatenate, ParamSpec, TypeVar

import msgspec
import pykka

from actors.agents.manager import AGENTS, AgentManager
from actors.agents.providers import NoProviderError, resolve_candidates
from actors.agents.run import RunOutcome, RunSpec
from actors.base import GatewayActor, tell, tell_with_reply
from actors.channels import access, frames
from actors.channels.host import ChannelHost, host_name
from actors.channels.pairing import PAIRING_STORE, PairingStore
from actors.channels.supervisor import channel_block
from actors.config.schema import Config
from actors.registry import ActorName
from actors.sessions.keys import DEFAULT_AGENT_ID
from actors.sessions.store import SESSIONS, SessionStore, model_ref

log = logging.getLogger("openclaw.channels")

PAIRING_TEXT = ("Hi! I don't know you yet. Your pairing code is {code} (valid for 1 hour). "
                "Ask my owner to run: openclaw pairing approve {channel} {code}")
PAIRING_FULL = "Too many pending pairing requests; please try again later."

A = TypeVar("A", bound=pykka.Actor)
P = ParamSpec("P")


class Turn(msgspec.Struct, frozen=True):
    """One inbound message on its way through the router."""
    channel: str
    message: frames.Inbound
    key: str = ""
    run_id: str = ""


def session_key(config: Config, channel: str, message: frames.Inbound) -> str:
    """`agent:main:<channel>:direct:<peer>` / `…:group:<group>`, or `global` (cli-config §4.13)."""
    if config.session.scope == "global":
        return "global"
    peer = message.chat.lower() if channel == "irc" else message.chat
    return f"agent:{DEFAULT_AGENT_ID}:{channel}:{message.kind}:{peer}"


CHANNEL_ROUTER: ActorName[ChannelRouter] = ActorName("channel-router")


class ChannelRouter(GatewayActor):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self._config = config

    def set_config(self, config: Config) -> None:
        """Policy keys are hot: the next inbound message uses them."""
        self._config = config

    # --- the steps ------------------------------------------------------------------------

    def inbound(self, channel: str, message: frames.Inbound) -> None:
        turn = Turn(channel, message)
        if PAIRING_STORE.whereis() is None:
            self.approved(turn, [], None)
            return
        self._ask(ChannelRouter.approved, turn, PAIRING_STORE, PairingStore.approved, channel)

    def approved(self, turn: Turn, senders: Any, err: BaseException | None) -> None:
        block = channel_block(self._config, turn.channel)
        if block is None:  # the channel left the config while its message was on the way
            self._ack(turn, True)
            return
        decision = access.decide(block, turn.message, senders if err is None else ())
        if decision.pair:
            self._ask(ChannelRouter.paired, turn, PAIRING_STORE, PairingStore.request, turn.channel,
                      turn.message.sender)
            return
        if not decision.allowed:
            log.info("%s: dropped message from %s: %s", turn.channel, turn.message.sender,
                     decision.reason)
            self._ack(turn, True)
            return
        key = session_key(self._config, turn.channel, turn.message)
        turn = msgspec.structs.replace(turn, key=key, run_id=f"{turn.channel}-{uuid.uuid4().hex[:16]}")
        user = {"role": "user", "content": [{"type": "text", "text": turn.message.text}],
                "runId": turn.run_id, "timestamp": turn.message.ts or None,
                "sender": turn.message.sender_name or turn.message.sender}
        self._ask(ChannelRouter.recorded, turn, SESSIONS, SessionStore.record_turn, key, user,
                  channel=turn.channel, peer=turn.message.chat)

    def paired(self, turn: Turn, code: Any, err: BaseException | None) -> None:
        self._ack(turn, True)
        if err is not None:
            log.warning("%s: pairing request failed: %s", turn.channel, err)
            return
        text = PAIRING_TEXT.format(code=code, channel=turn.channel) if code else PAIRING_FULL
        self._deliver(turn, text)

    def recorded(self, turn: Turn, stored: Any, err: BaseException | None) -> None:
        self._ack(turn, err is None)
        if err is not None:
            log.error("%s: could not store a message from %s: %s", turn.channel,
                      turn.message.sender, err)
            return
        session = stored["session"]
        ref = model_ref(session)
        try:
            resolve_candidates(self._config, ref)
        except NoProviderError as exc:
            self._deliver(turn, str(exc))
            return
        spec = RunSpec(run_id=turn.run_id, session_key=session["key"],
                       agent_id=session.get("agentId") or DEFAULT_AGENT_ID,
                       session_id=session["sessionId"], config=self._config, model_ref=ref,
                       timeout_ms=self._config.agents.defaults.timeout_seconds * 1000,
                       message=turn.message.text)
        agents = AGENTS.whereis()
        if agents is None:
            self._deliver(turn, "the agent runtime is not running")
            return
        tell(agents, AgentManager.submit, spec)
        self._ask(ChannelRouter.finished, turn, AGENTS, AgentManager.result, turn.run_id)

    def finished(self, turn: Turn, outcome: Any, err: BaseException | None) -> None:
        if err is not None or not isinstance(outcome, RunOutcome):
            self._deliver(turn, f"Sorry, that failed: {err}")
        elif outcome.status == "ok":
            if outcome.text.strip():
                self._deliver(turn, outcome.text)
        elif outcome.status != "aborted":
            self._deliver(turn, f"Sorry, that failed: {outcome.error or outcome.status}")

    def delivered(self, turn: Turn, result: Any, err: BaseException | None) -> None:
        failed = err or (result.get("error") if isinstance(result, dict) and not result.get("ok")
                         else None)
        if failed:
            log.warning("%s: reply to %s not delivered: %s", turn.channel, turn.message.chat, failed)

    # --- plumbing -------------------------------------------------------------------------

    def _ack(self, turn: Turn, ok: bool) -> None:
        host = host_name(turn.channel).whereis()
        if host is not None:
            tell(host, ChannelHost.ack, turn.message.id, ok)

    def _deliver(self, turn: Turn, text: str) -> None:
        self._ask(ChannelRouter.delivered, turn, host_name(turn.channel), ChannelHost.deliver,
                  turn.message.chat, text)

    def _ask(self, then: Callable[[ChannelRouter, Turn, Any, BaseException | None], None], turn: Turn,
             target: ActorName[A], method: Callable[Concatenate[A, P], Any],
             /, *args: P.args, **kwargs: P.kwargs) -> None:
        """Call `method` on `target`; its outcome comes back as `then(turn, result, err)`."""
        me = self.actor_ref
        ref = target.whereis()

        def reply(result: Any, err: BaseException | None) -> None:
            try:
                tell(me, then, turn, result, err)
            except Exception:  # noqa: BLE001 - the router stopped meanwhile
                pass

        if ref is None:
            reply(None, RuntimeError(f"{target} is not running"))
            return
        try:
            tell_with_reply(ref, reply, method, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the target died meanwhile
            reply(None, exc)


def route(channel: str, message: frames.Inbound) -> None:
    """The hosts' `on_inbound`: hand the message to the router (tell-only)."""
    router = CHANNEL_ROUTER.whereis()
    if router is not None:
        tell(router, ChannelRouter.inbound, channel, message)
