"""Config methods (protocol §10). Read-only here: `config.get` with secrets redacted."""

from __future__ import annotations

import msgspec

from transport import bridge
from transport.methods import READ, method


class NoParams(msgspec.Struct):
    pass


@method("config.get", scope=READ, params=NoParams)
async def config_get(params: NoParams, ctx) -> dict:
    return await bridge.ask("config", "get_payload")
