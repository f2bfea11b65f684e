"""The built-in `offline/echo` provider (cli-config §6.5): answers by echoing the last user
message as a stream of word deltas, with no network. Used only when selected explicitly."""

from __future__ import annotations

import re
from typing import Callable

from actors.agents.providers import (
    CancelToken,
    ChatRequest,
    Event,
    Provider,
    Result,
    ResultBuilder,
    Stop,
    TextDelta,
    Usage,
)


class OfflineProvider(Provider):
    api = "offline"

    def __init__(self) -> None:
        super().__init__("offline")

    def stream(self, request: ChatRequest, on_event: Callable[[Event], None] | None = None,
               cancel: CancelToken | None = None) -> Result:
        out = ResultBuilder(self.id, request.model, on_event)
        last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        for piece in re.findall(r"\S+\s*|\s+", last):
            if cancel is not None and cancel.cancelled:
                return out.finish(aborted=True)
            out.emit(TextDelta(text=piece))
        prompt = sum(len(m.content) for m in request.messages) + len(request.system or "")
        out.emit(Usage(input_tokens=(prompt + 3) // 4, output_tokens=(len(last) + 3) // 4))
        out.emit(Stop(reason="stop", raw="end_turn"))
        return out.finish()
