"""The config schema as msgspec Structs: types, ranges, defaults and descriptions of every key
(cli-config §6). It is declared once and drives validation (`config_validate`), defaults, the
JSON Schema (`config_jsonschema`) and redaction (`x-sensitive`). Reload classes live in
`config_reload` only, so the table of classes cannot drift from the one reload uses.

Attributes are snake_case; the file spells them camelCase (`rename="camel"`). A default of
None means "derived at use" (the table's default depends on other keys or the environment).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, field


def doc(text: str, **constraints: Any) -> Meta:
    """Meta with a description (and optional constraints) for the JSON Schema."""
    return Meta(description=text, **constraints)


def secret(text: str) -> Meta:
    """Meta of a secret: redacted everywhere (cli-config §5.6)."""
    return Meta(description=text, extra_json_schema={"x-sensitive": True})


Port = Annotated[int, Meta(ge=1, le=65535)]
LogLevel = Literal["silent", "fatal", "error", "warn", "info", "debug", "trace"]


class _Section(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=False):
    pass


# --- gateway (§6.1) -------------------------------------------------------------------

class RateLimit(_Section):
    max_attempts: Annotated[int, doc("Failed authentication attempts allowed per window", ge=1)] = 10
    window_ms: Annotated[int, doc("Window of the failed-attempt count, in ms", ge=1000)] = 60000
    lockout_ms: Annotated[int, doc("Lockout after too many failures, in ms", ge=1000)] = 300000
    exempt_loopback: Annotated[bool, doc("Loopback clients are never locked out")] = True


class Auth(_Section):
    mode: Annotated[Literal["none", "token", "password"] | None,
                    doc("Auth mode; derived from the secrets that resolve when unset")] = None
    token: Annotated[str | None, secret("Shared gateway token")] = None
    password: Annotated[str | None, secret("Shared gateway password")] = None
    rate_limit: Annotated[RateLimit, doc("Failed-authentication rate limit")] = \
        field(default_factory=RateLimit)


class Reload(_Section):
    mode: Annotated[Literal["off", "restart", "hot", "hybrid"],
                    doc("How config changes are applied")] = "hybrid"
    debounce_ms: Annotated[int, doc("Quiet time before a file change is loaded, in ms",
                                    ge=0, le=60000)] = 300
    cooldown_ms: Annotated[int, doc("Least spacing of restart cycles, in ms",
                                    ge=0, le=600000)] = 30000


class CanvasHost(_Section):
    enabled: Annotated[bool, doc("Serve the canvas host (later)")] = True
    port: Annotated[Port | None, doc("Canvas host port; gateway.port + 4 when unset")] = None
    root: Annotated[str | None, doc("Directory served; <state>/canvas when unset")] = None
    live_reload: Annotated[bool, doc("Reload canvas pages when files change")] = True


class ControlUi(_Section):
    enabled: Annotated[bool, doc("Serve the Control UI (later)")] = True
    base_path: Annotated[str, doc("URL path of the Control UI, starting with /")] = "/"
    allowed_origins: Annotated[list[str], doc("Extra browser origins allowed to connect")] = \
        field(default_factory=list)


class Endpoint(_Section):
    enabled: Annotated[bool, doc("Serve this endpoint")] = False


class RpcEndpoint(_Section):
    enabled: Annotated[bool, doc("Serve POST /api/v1/admin/rpc")] = True


class Endpoints(_Section):
    chat_completions: Annotated[Endpoint, doc("OpenAI-compatible /v1/chat/completions")] = \
        field(default_factory=Endpoint)
    responses: Annotated[Endpoint, doc("OpenAI-compatible /v1/responses (later)")] = \
        field(default_factory=Endpoint)
    rpc: Annotated[RpcEndpoint, doc("HTTP RPC endpoint")] = field(default_factory=RpcEndpoint)


class Http(_Section):
    endpoints: Annotated[Endpoints, doc("HTTP endpoints on the gateway port")] = \
        field(default_factory=Endpoints)


class Remote(_Section):
    url: Annotated[str | None, doc("ws:// or wss:// URL of a remote gateway")] = None
    token: Annotated[str | None, secret("Token for the remote gateway")] = None
    password: Annotated[str | None, secret("Password for the remote gateway")] = None


class Gateway(_Section):
    mode: Annotated[Literal["local", "remote"], doc("Run a local gateway or use a remote one")] = "local"
    port: Annotated[Port, doc("WebSocket and HTTP port")] = 18789
    bind: Annotated[str, doc("loopback | lan | tailnet | custom | auto | an IP literal")] = "loopback"
    custom_bind_host: Annotated[str | None, doc("IP literal to bind when bind is custom")] = None
    auth: Annotated[Auth, doc("Client authentication")] = field(default_factory=Auth)
    reload: Annotated[Reload, doc("Config reload behaviour")] = field(default_factory=Reload)
    drain_timeout_ms: Annotated[int, doc("Drain budget of a stop, in ms", ge=0, le=600000)] = 25000
    restart_drain_timeout_ms: Annotated[int, doc("Drain budget of an in-process restart, in ms",
                                                 ge=0, le=3600000)] = 300000
    trusted_proxies: Annotated[list[str], doc(
        "Reverse proxy IPs or CIDRs whose X-Forwarded-For names the real client (rate limits, "
        "presence); forwarded headers from any other peer are ignored")] = field(default_factory=list)
    allow_real_ip_fallback: Annotated[bool, doc(
        "Use X-Real-IP from a trusted proxy when it sends no X-Forwarded-For")] = False
    channel_heartbeat_ms: Annotated[int, doc("Channel process heartbeat; 3 missed = hung",
                                             ge=1000, le=60000)] = 5000
    canvas_host: Annotated[CanvasHost, doc("Canvas host listener (later)")] = \
        field(default_factory=CanvasHost)
    control_ui: Annotated[ControlUi, doc("Control UI and browser origins")] = \
        field(default_factory=ControlUi)
    http: Annotated[Http, doc("HTTP endpoints")] = field(default_factory=Http)
    remote: Annotated[Remote, doc("Remote gateway used by clients")] = field(default_factory=Remote)


# --- logging (§6.2) -------------------------------------------------------------------

class Logging(_Section):
    level: Annotated[LogLevel, doc("File log level")] = "info"
    console_level: Annotated[LogLevel, doc("Console log level")] = "info"
    file: Annotated[str | None, doc("Log file path; a daily file in /tmp/openclaw when unset")] = None
    console_style: Annotated[Literal["pretty", "compact", "json"] | None,
                             doc("Console style; pretty on a TTY, else compact")] = None
    max_file_bytes: Annotated[int, doc("Rotate above this size (later)", ge=1048576)] = 104857600
    max_files: Annotated[int, doc("Rotated archives kept (later)", ge=0, le=20)] = 5
    retention_days: Annotated[int, doc("Days of logs kept (later)", ge=0, le=365)] = 1
    redact_sensitive: Annotated[Literal["tools", "off"], doc("Redact secrets in tool output (later)")] = "tools"
    redact_patterns: Annotated[list[str], doc("Extra regexes to redact (later)")] = \
        field(default_factory=list)


# --- channels (§6.3) ------------------------------------------------------------------

class HealthMonitor(_Section):
    enabled: Annotated[bool, doc("Watch the channel process heartbeat")] = True


class ChannelCommon(_Section):
    enabled: Annotated[bool, doc("Run this channel")] = True
    dm_policy: Annotated[Literal["pairing", "allowlist", "open", "disabled"],
                         doc("Who may talk to the agent in direct messages")] = "pairing"
    allow_from: Annotated[list[str], doc("Senders allowed in direct messages")] = \
        field(default_factory=list)
    group_policy: Annotated[Literal["allowlist", "open", "disabled"],
                            doc("Which groups the agent answers in")] = "allowlist"
    group_allow_from: Annotated[list[str], doc("Senders allowed in groups ([] = any)")] = \
        field(default_factory=list)
    require_mention: Annotated[bool, doc("Answer in groups only when mentioned")] = True
    health_monitor: Annotated[HealthMonitor, doc("Heartbeat watch")] = \
        field(default_factory=HealthMonitor)


class NickServ(_Section):
    enabled: Annotated[bool | None, doc("Identify to NickServ; on when a password resolves")] = None
    password: Annotated[str | None, secret("NickServ password")] = None
    password_file: Annotated[str | None, doc("File holding the NickServ password")] = None
    service: Annotated[str, doc("Nick of the services bot")] = "NickServ"


class IrcChannel(ChannelCommon):
    text_chunk_limit: Annotated[int, doc("Longest outbound message part", ge=1)] = 350
    host: Annotated[str | None, doc("IRC server hostname (required)")] = None
    port: Annotated[Port | None, doc("Server port; 6697 with TLS, else 6667")] = None
    tls: Annotated[bool, doc("Connect with TLS")] = True
    nick: Annotated[str, doc("Nick")] = "openclaw"
    username: Annotated[str | None, doc("Username; the nick when unset")] = None
    realname: Annotated[str, doc("Real name")] = "OpenClaw"
    password: Annotated[str | None, secret("Server password (PASS)")] = None
    password_file: Annotated[str | None, doc("File holding the server password")] = None
    channels: Annotated[list[str], doc("Channels to join (#name or &name)")] = \
        field(default_factory=list)
    nickserv: Annotated[NickServ, doc("NickServ identification")] = field(default_factory=NickServ)


class TelegramChannel(ChannelCommon):
    text_chunk_limit: Annotated[int, doc("Longest outbound message part", ge=1)] = 4096
    bot_token: Annotated[str | None, secret("Bot token from @BotFather")] = None
    token_file: Annotated[str | None, doc("File holding the bot token")] = None
    api_root: Annotated[str, doc("Bot API root URL")] = "https://api.telegram.org"


class Channels(_Section):
    irc: Annotated[IrcChannel | None, doc("IRC channel; runs when present and enabled")] = None
    telegram: Annotated[TelegramChannel | None,
                        doc("Telegram channel; runs when present and enabled")] = None


# --- session (§6.4) -------------------------------------------------------------------

class SessionReset(_Section):
    mode: Annotated[Literal["none", "daily", "idle"], doc("When a session starts over")] = "none"
    at_hour: Annotated[int, doc("Local hour of the daily reset", ge=0, le=23)] = 4
    idle_minutes: Annotated[int, doc("Idle time before an idle reset", ge=1)] = 60


class Session(_Section):
    scope: Annotated[Literal["per-sender", "global"], doc("One session per sender or one for all")] = \
        "per-sender"
    reset: Annotated[SessionReset, doc("Session reset policy")] = field(default_factory=SessionReset)
    idle_minutes: Annotated[Annotated[int, Meta(ge=1)] | None,
                            doc("Shorthand for reset {mode: idle, idleMinutes}")] = None
    reset_triggers: Annotated[list[str], doc("Messages that start a new session")] = \
        field(default_factory=lambda: ["/new", "/reset"])


# --- agents and models (§6.5) ---------------------------------------------------------

class ModelChoice(_Section, kw_only=True):
    primary: Annotated[str, doc("<provider>/<model> used first")]
    fallbacks: Annotated[list[str], doc("Refs tried in order when the primary fails")] = \
        field(default_factory=list)


class AgentDefaults(_Section):
    model: Annotated[str | ModelChoice | None,
                     doc("<provider>/<model> or {primary, fallbacks}")] = None
    workspace: Annotated[str | None, doc("Agent workspace; <state>/workspace when unset")] = None
    system_prompt: Annotated[str | None, doc("System prompt; built-in when unset")] = None
    max_concurrent: Annotated[int, doc("Agent runs at once", ge=1, le=64)] = 4
    timeout_seconds: Annotated[int, doc("Run timeout in seconds", ge=1, le=172800)] = 600
    media_max_mb: Annotated[int, doc("Attachment cap in MB", ge=1, le=100)] = 20


class Agents(_Section):
    defaults: Annotated[AgentDefaults, doc("Defaults of every agent")] = \
        field(default_factory=AgentDefaults)


class ModelEntry(_Section, kw_only=True):
    id: Annotated[str, doc("Model id sent to the provider", min_length=1)]
    name: Annotated[str | None, doc("Display name")] = None
    context_window: Annotated[Annotated[int, Meta(ge=1)] | None, doc("Context window in tokens")] = None
    max_tokens: Annotated[Annotated[int, Meta(ge=1)] | None, doc("Output token cap")] = None


ProviderApi = Literal["openai-completions", "anthropic-messages", "ollama"]


class Provider(_Section, kw_only=True):
    api: Annotated[ProviderApi | None, doc("Wire API; from the id for openai, anthropic, ollama")] = None
    base_url: Annotated[str | None, doc("http(s) base URL; from the id for built-in ids")] = None
    api_key: Annotated[str | None, secret("API key; OPENAI_API_KEY / ANTHROPIC_API_KEY by api")] = None
    models: Annotated[list[ModelEntry], doc("Models of this provider (at least one)", min_length=1)]
    timeout_seconds: Annotated[int, doc("HTTP timeout in seconds", ge=1, le=3600)] = 120
    headers: Annotated[dict[str, Annotated[str, secret("Header value")]],
                       secret("Extra HTTP headers")] = field(default_factory=dict)


class Models(_Section):
    providers: Annotated[dict[str, Provider], doc("Model providers by id")] = field(default_factory=dict)


# --- tools (§6.6) ---------------------------------------------------------------------

ExecDecision = Literal["deny", "allowlist", "full"]


class AllowEntry(_Section, kw_only=True):
    pattern: Annotated[str, doc("Glob over the resolved executable path", min_length=1)]
    arg_pattern: Annotated[str | None, doc("Regex over the space-joined arguments")] = None


class Exec(_Section):
    security: Annotated[ExecDecision, doc("Exec policy")] = "allowlist"
    ask: Annotated[Literal["off", "on-miss", "always"], doc("When to ask for approval")] = "on-miss"
    ask_fallback: Annotated[ExecDecision, doc("Decision when nobody can approve")] = "deny"
    allowlist: Annotated[list[str | AllowEntry], doc("Allowed commands")] = field(default_factory=list)
    timeout_seconds: Annotated[int, doc("Command timeout in seconds (0 = none)", ge=0, le=86400)] = 1800
    output_cap: Annotated[int, doc("Output characters kept", ge=1000, le=1000000)] = 200000
    background_ms: Annotated[int, doc("Run in the background after this many ms",
                                      ge=10, le=120000)] = 10000


class Tools(_Section):
    exec: Annotated[Exec, doc("Shell command execution")] = field(default_factory=Exec)


# --- root -----------------------------------------------------------------------------

class Config(_Section):
    gateway: Annotated[Gateway, doc("Gateway server")] = field(default_factory=Gateway)
    logging: Annotated[Logging, doc("Logging")] = field(default_factory=Logging)
    channels: Annotated[Channels, doc("Chat channels")] = field(default_factory=Channels)
    session: Annotated[Session, doc("Sessions")] = field(default_factory=Session)
    agents: Annotated[Agents, doc("Agents")] = field(default_factory=Agents)
    models: Annotated[Models, doc("Model providers")] = field(default_factory=Models)
    tools: Annotated[Tools, doc("Agent tools")] = field(default_factory=Tools)


BIND_MODES = ("loopback", "lan", "tailnet", "custom", "auto")
BUILTIN_PROVIDERS = {  # id -> (api, baseUrl) that need not be written (§6.5)
    "openai": ("openai-completions", "https://api.openai.com/v1"),
    "anthropic": ("anthropic-messages", "https://api.anthropic.com"),
    "ollama": ("ollama", "http://127.0.0.1:11434"),
}
RESERVED_PROVIDERS = frozenset({"offline"})

# Keys whose values are secrets wherever they appear (protocol §10.1, cli-config §5.6).
SENSITIVE_KEYS = frozenset({
    "token", "password", "secret", "apiKey", "privateKey", "clientSecret", "botToken",
    "appToken", "signingSecret",
})
SENSITIVE_SUFFIXES = ("Token", "Secret", "Password")
REDACTED = "__OPENCLAW_REDACTED__"


def is_sensitive_key(key: str) -> bool:
    return key in SENSITIVE_KEYS or key.endswith(SENSITIVE_SUFFIXES)
