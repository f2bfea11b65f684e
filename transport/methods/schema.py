"""`config.schema` (protocol §10.3): the config JSON Schema generated from the Structs, with
UI hints. Admin scope: it describes every key, secrets included (not their values)."""

from __future__ import annotations

from actors.config.jsonschema import schema_payload
from transport.methods import ADMIN, NoParams, method


@method("config.schema", scope=ADMIN, params=NoParams)
async def config_schema(params: NoParams, ctx: object) -> dict:
    # Built once per process (cached): the schema is fixed for a build.
    return schema_payload()
