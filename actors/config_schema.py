"""The config schema as msgspec Structs: types, ranges and defaults of every key the gateway
reads (cli-config §6). Sections the gateway does not read yet stay plain dicts; the schema
issue turns them into Structs and adds the error-collecting walker and unknown-key rules.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, field

Port = Annotated[int, Meta(ge=1, le=65535)]
LogLevel = Literal["silent", "fatal", "error", "warn", "info", "debug", "trace"]


class _Section(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=False):
    pass


class RateLimit(_Section):
    max_attempts: Annotated[int, Meta(ge=1)] = 10
    window_ms: Annotated[int, Meta(ge=1000)] = 60000
    lockout_ms: Annotated[int, Meta(ge=1000)] = 300000
    exempt_loopback: bool = True


class Auth(_Section):
    mode: Literal["none", "token", "password"] | None = None
    token: str | None = None
    password: str | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)


class Reload(_Section):
    mode: Literal["off", "restart", "hot", "hybrid"] = "hybrid"
    debounce_ms: Annotated[int, Meta(ge=0, le=60000)] = 300
    cooldown_ms: Annotated[int, Meta(ge=0, le=600000)] = 30000


class ControlUi(_Section):
    enabled: bool = True
    base_path: str = "/"
    allowed_origins: list[str] = field(default_factory=list)


class Endpoint(_Section):
    enabled: bool = False


class RpcEndpoint(_Section):
    enabled: bool = True


class Endpoints(_Section):
    chat_completions: Endpoint = field(default_factory=Endpoint)
    responses: Endpoint = field(default_factory=Endpoint)
    rpc: RpcEndpoint = field(default_factory=RpcEndpoint)


class Http(_Section):
    endpoints: Endpoints = field(default_factory=Endpoints)


class Remote(_Section):
    url: str | None = None
    token: str | None = None
    password: str | None = None


class Gateway(_Section):
    mode: Literal["local", "remote"] = "local"
    port: Port = 18789
    bind: str = "loopback"
    custom_bind_host: str | None = None
    auth: Auth = field(default_factory=Auth)
    reload: Reload = field(default_factory=Reload)
    drain_timeout_ms: Annotated[int, Meta(ge=0, le=600000)] = 25000
    restart_drain_timeout_ms: Annotated[int, Meta(ge=0, le=3600000)] = 300000
    channel_heartbeat_ms: Annotated[int, Meta(ge=1000, le=60000)] = 5000
    control_ui: ControlUi = field(default_factory=ControlUi)
    http: Http = field(default_factory=Http)
    remote: Remote = field(default_factory=Remote)


class Logging(_Section):
    level: LogLevel = "info"
    console_level: LogLevel = "info"
    file: str | None = None
    console_style: Literal["pretty", "compact", "json"] | None = None


class Config(_Section):
    gateway: Gateway = field(default_factory=Gateway)
    logging: Logging = field(default_factory=Logging)
    channels: dict = field(default_factory=dict)
    session: dict = field(default_factory=dict)
    agents: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    tools: dict = field(default_factory=dict)


BIND_MODES = ("loopback", "lan", "tailnet", "custom", "auto")

# Keys whose values are secrets wherever they appear (protocol §10.1, cli-config §5.6).
SENSITIVE_KEYS = frozenset({
    "token", "password", "secret", "apiKey", "privateKey", "clientSecret", "botToken",
    "appToken", "signingSecret",
})
SENSITIVE_SUFFIXES = ("Token", "Secret", "Password")
REDACTED = "__OPENCLAW_REDACTED__"


def is_sensitive_key(key: str) -> bool:
    return key in SENSITIVE_KEYS or key.endswith(SENSITIVE_SUFFIXES)
