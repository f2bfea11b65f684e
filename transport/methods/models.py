"""`models.list` (protocol §16.2): the configured models plus the built-in `offline/echo`,
read from the applied config snapshot on the loop (no actor round trip)."""

from __future__ import annotations

from typing import Any

import msgspec

from actors.config.schema import Config
from transport.methods import READ, method


class ListParams(msgspec.Struct):
    """`view`, `preparedOnly` and `refresh` are accepted and ignored for now (§16.2)."""

    view: object = None
    preparedOnly: object = None
    refresh: object = None


def model_entries(config: Config) -> list[dict]:
    entries = [{"id": "echo", "name": "echo", "provider": "offline"}]
    for provider_id, provider in config.models.providers.items():
        for model in provider.models:
            entry: dict[str, Any] = {"id": model.id, "name": model.name or model.id, "provider": provider_id}
            if model.context_window is not None:
                entry["contextWindow"] = model.context_window
            if model.max_tokens is not None:
                entry["maxTokens"] = model.max_tokens
            entries.append(entry)
    return sorted(entries, key=lambda e: (e["provider"], e["id"]))


@method("models.list", scope=READ, params=ListParams)
async def models_list(params: ListParams, ctx) -> dict:
    return {"models": model_entries(ctx.state.snapshot.config)}
