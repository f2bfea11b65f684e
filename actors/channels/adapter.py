"""What a channel adapter implements. Adapters run only inside a channel process, driven by
the process's adapter actor (actors/channels/process.py); their blocking network reads run in
their own worker threads, which report through the `Emitter`.

    class MyAdapter(Adapter):
        def start(self) -> None: ...            # connect, start reader threads; return at once
        def send(self, to, text) -> str: ...    # blocking; message id of the last part
        def ack(self, inbound_id) -> None: ...  # stored by the gateway: advance the cursor
        def probe(self) -> dict: ...            # live check (blocking, short)
        def stop(self) -> None: ...             # close sockets so reader threads end at once
"""

from __future__ import annotations

from typing import Any, Protocol

from actors.channels.frames import Inbound


class Emitter(Protocol):
    """How an adapter reports to its gateway; safe to call from any thread."""

    def inbound(self, message: Inbound) -> None: ...

    def status(self, connected: bool, error: str | None = None, **detail: Any) -> None: ...

    def log(self, level: str, message: str) -> None: ...


class Adapter:
    """Base class. `config` is the channel's typed config block (actors/config/schema.py:
    IrcChannel or TelegramChannel); `state_dir` the gateway's state dir (a channel keeps its
    cursor under `<state>/credentials/<channel>/<accountId>/`)."""

    name = ""

    def __init__(self, config: Any, state_dir: str, emit: Emitter, account_id: str = "default") -> None:
        self.config = config
        self.state_dir = state_dir
        self.emit = emit
        self.account_id = account_id

    def start(self) -> None:
        raise NotImplementedError

    def send(self, to: str, text: str) -> str | None:
        raise NotImplementedError

    def ack(self, inbound_id: str) -> None:
        """The gateway committed this inbound message; cursors may move past it."""

    def probe(self) -> dict:
        return {}

    def stop(self) -> None:
        raise NotImplementedError


def chunks(text: str, limit: int) -> list[str]:
    """`text` cut into parts of at most `limit` characters, at a newline or a space when one
    is near the end of the part (`channels.<id>.textChunkLimit`)."""
    limit = max(1, limit)
    out: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = max(rest.rfind("\n", 0, limit + 1), rest.rfind(" ", 0, limit + 1))
        if cut < limit // 2:
            cut = limit
        part, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if part:
            out.append(part)
    if rest.strip() or not out:
        out.append(rest)
    return out
