"""Model providers behind one small interface (issue 4; cli-config §6.5; architecture §4).

A `Provider` streams one model turn: `provider.stream(request, on_event, cancel) -> Result`.
It blocks, so it runs in a worker thread owned by the run, never in an actor's message
handler. `on_event` is called on that thread, in order, with `TextDelta`, `ToolCallDelta`,
`ToolCallComplete`, `Usage` and `Stop` events. Another thread aborts with `cancel.cancel()`:
the socket is shut down at once, `stream` returns a `Result` with `aborted=True` holding what
arrived so far. Failures raise `ProviderError`, whose message names the provider and, for HTTP
failures, the status.

`resolve_model(config, ref)` picks `(provider, model_id)` from the typed config; with nothing
usable it raises `NoProviderError` whose message names the keys to set.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Literal, Mapping

import msgspec

from actors.config.schema import BUILTIN_PROVIDERS, Config, ModelChoice
from actors.config.schema import Provider as ProviderConfig

# --- request ----------------------------------------------------------------------------


class ToolCall(msgspec.Struct, kw_only=True):
    id: str
    name: str
    arguments: str = "{}"  # JSON text, as the model wrote it

    def input(self) -> Any:
        """The arguments decoded ({} when empty or not JSON)."""
        try:
            value = msgspec.json.decode(self.arguments or "{}")
        except msgspec.DecodeError:
            return {}
        return value


class Message(msgspec.Struct, kw_only=True):
    """One transcript turn. role "tool" carries a tool result for `tool_call_id`."""
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None  # tool name of a tool result (informational)
    is_error: bool = False  # tool result was an error


class ToolSpec(msgspec.Struct, kw_only=True):
    name: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}})


class ChatRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[Message]
    system: str | None = None
    tools: list[ToolSpec] = msgspec.field(default_factory=list)
    max_tokens: int | None = None
    temperature: float | None = None


# --- events and result ------------------------------------------------------------------


class TextDelta(msgspec.Struct, kw_only=True, tag="text"):
    text: str


class ToolCallDelta(msgspec.Struct, kw_only=True, tag="tool_call_delta"):
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""  # the JSON fragment of this delta


class ToolCallComplete(msgspec.Struct, kw_only=True, tag="tool_call"):
    index: int
    call: ToolCall


class Usage(msgspec.Struct, kw_only=True, tag="usage"):
    input_tokens: int = 0
    output_tokens: int = 0


StopReason = Literal["stop", "tool_use", "length", "content_filter", "aborted", "other"]


class Stop(msgspec.Struct, kw_only=True, tag="stop"):
    reason: StopReason
    raw: str | None = None  # the provider's own spelling


Event = TextDelta | ToolCallDelta | ToolCallComplete | Usage | Stop


class Result(msgspec.Struct, kw_only=True):
    provider: str
    model: str
    text: str = ""
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    usage: Usage = msgspec.field(default_factory=Usage)
    stop_reason: StopReason = "stop"
    aborted: bool = False


class ResultBuilder:
    """Collects events into a Result while forwarding them to the caller's callback."""

    def __init__(self, provider: str, model: str, on_event: Callable[[Event], None] | None) -> None:
        self.result = Result(provider=provider, model=model)
        self._parts: list[str] = []
        self._on_event = on_event
        self.emitted = False

    def emit(self, event: Event) -> None:
        r = self.result
        if isinstance(event, TextDelta):
            if not event.text:
                return
            self._parts.append(event.text)
        elif isinstance(event, ToolCallComplete):
            r.tool_calls.append(event.call)
        elif isinstance(event, Usage):
            r.usage = event
        elif isinstance(event, Stop):
            r.stop_reason = event.reason
        self.emitted = True
        if self._on_event is not None:
            self._on_event(event)

    def finish(self, aborted: bool = False) -> Result:
        self.result.text = "".join(self._parts)
        if aborted:
            self.result.aborted = True
            self.result.stop_reason = "aborted"
        return self.result


# --- errors and cancel ------------------------------------------------------------------

ErrorKind = Literal["http", "auth", "rate_limit", "timeout", "connection", "stream", "protocol",
                    "aborted", "config", "unavailable"]


class ProviderError(Exception):
    """A failed model call. `str(err)` is `<provider>: HTTP <status>: <message>` (or
    `<provider>: <message>` when there was no HTTP status)."""

    def __init__(self, provider: str, status: int | None, message: str, *,
                 retryable: bool = False, kind: ErrorKind = "http") -> None:
        self.provider = provider
        self.status = status
        self.message = message
        self.retryable = retryable
        self.kind = kind
        super().__init__(f"{provider}: HTTP {status}: {message}" if status is not None
                         else f"{provider}: {message}")


NO_PROVIDER_MESSAGE = ("no model provider configured; set models.providers.<id> "
                       "and agents.defaults.model")


class NoProviderError(ProviderError):
    """No usable provider for the requested model: the gateway answers `UNAVAILABLE` with
    `str(err)` (protocol §14.1)."""

    def __init__(self, message: str = NO_PROVIDER_MESSAGE) -> None:
        super().__init__("models", None, message, retryable=False, kind="unavailable")
        self.args = (message,)

    def __str__(self) -> str:
        return self.message


class CancelToken:
    """Set once from any thread; closers registered by the stream run at that moment."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._closers: dict[int, Callable[[], None]] = {}
        self._next = 0

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            closers = list(self._closers.values())
            self._closers.clear()
        for close in closers:
            try:
                close()
            except Exception:
                pass

    def on_cancel(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Registers `fn` to run on cancel (at once if already cancelled); returns an
        unregister function."""
        with self._lock:
            if not self._event.is_set():
                key = self._next
                self._next += 1
                self._closers[key] = fn

                def unregister() -> None:
                    self._closers.pop(key, None)
                return unregister
        fn()
        return lambda: None

    def wait(self, timeout: float) -> bool:
        """Sleeps up to `timeout`; True as soon as cancelled."""
        return self._event.wait(timeout)


# --- the interface ----------------------------------------------------------------------


class Provider:
    """One configured provider. Subclasses implement `stream`."""

    api: str = ""

    def __init__(self, id: str) -> None:
        self.id = id

    def stream(self, request: ChatRequest, on_event: Callable[[Event], None] | None = None,
               cancel: CancelToken | None = None) -> Result:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"


# --- selection (cli-config §6.5) --------------------------------------------------------

API_KEY_ENV = {"openai-completions": "OPENAI_API_KEY", "anthropic-messages": "ANTHROPIC_API_KEY"}
OFFLINE_ID = "offline"
OFFLINE_MODEL = "echo"


def provider_settings(pid: str, cfg: ProviderConfig, env: Mapping[str, str] | None = None
                      ) -> tuple[str, str, str | None] | None:
    """(api, baseUrl, apiKey) of a configured provider with defaults and env fallbacks
    applied, or None when it is unusable (no api or baseUrl)."""
    env = os.environ if env is None else env
    builtin = BUILTIN_PROVIDERS.get(pid)
    api = cfg.api or (builtin[0] if builtin else None)
    base_url = cfg.base_url or (builtin[1] if builtin else None)
    if api is None or base_url is None or not cfg.models:
        return None
    key = cfg.api_key
    if not key and api in API_KEY_ENV:
        key = env.get(API_KEY_ENV[api]) or None
    return api, base_url, key


def build_provider(pid: str, cfg: ProviderConfig, env: Mapping[str, str] | None = None) -> Provider:
    """The Provider object of `models.providers.<pid>`; raises NoProviderError if unusable."""
    settings = provider_settings(pid, cfg, env)
    if settings is None:
        raise NoProviderError(f"model provider {pid} is not usable; set models.providers.{pid}.api "
                              f"and models.providers.{pid}.baseUrl")
    api, base_url, key = settings
    if api == "anthropic-messages":
        from actors.agents.providers.anthropic import AnthropicProvider
        return AnthropicProvider(pid, base_url=base_url, api_key=key, timeout=cfg.timeout_seconds,
                                 headers=dict(cfg.headers), models=cfg.models)
    from actors.agents.providers.openai import OpenAIProvider
    return OpenAIProvider(pid, base_url=base_url, api_key=key, timeout=cfg.timeout_seconds,
                          headers=dict(cfg.headers), api=api, models=cfg.models)


def split_ref(ref: str) -> tuple[str, str]:
    """`<provider>/<model id>` → (provider, model id); the model id may hold more slashes."""
    pid, sep, model = ref.strip().partition("/")
    if not sep or not pid or not model:
        raise NoProviderError(f'invalid model ref "{ref}": expected <provider>/<model>; '
                              "set agents.defaults.model")
    return pid, model


def _resolve_ref(config: Config, ref: str, env: Mapping[str, str] | None) -> tuple[Provider, str]:
    pid, model = split_ref(ref)
    if pid == OFFLINE_ID:
        if model != OFFLINE_MODEL:
            raise NoProviderError(f'unknown model "{ref}": the offline provider has only '
                                  f"{OFFLINE_ID}/{OFFLINE_MODEL}")
        from actors.agents.providers.offline import OfflineProvider
        return OfflineProvider(), model
    cfg = config.models.providers.get(pid)
    if cfg is None or provider_settings(pid, cfg, env) is None:
        raise NoProviderError(f"{NO_PROVIDER_MESSAGE} (model {ref}: provider {pid} is not "
                              f"configured under models.providers.{pid})")
    return build_provider(pid, cfg, env), model


def model_refs(config: Config) -> list[str]:
    """The refs to try in order: `agents.defaults.model` (primary, then fallbacks), else the
    first model of the only usable configured provider. Empty when nothing is selected."""
    choice = config.agents.defaults.model
    if isinstance(choice, ModelChoice):
        return [choice.primary, *choice.fallbacks]
    if isinstance(choice, str):
        return [choice]
    usable = [(pid, cfg) for pid, cfg in config.models.providers.items()
              if pid != OFFLINE_ID and provider_settings(pid, cfg, {}) is not None]
    if len(usable) == 1:
        pid, cfg = usable[0]
        return [f"{pid}/{cfg.models[0].id}"]
    return []


def resolve_model(config: Config, ref: str | None = None,
                  env: Mapping[str, str] | None = None) -> tuple[Provider, str]:
    """The provider and model id for `ref` (a session's model), else the default model
    (§6.5). Raises NoProviderError naming `models.providers.<id>` and
    `agents.defaults.model` when nothing usable is selected."""
    if ref:
        return _resolve_ref(config, ref, env)
    refs = model_refs(config)
    if not refs:
        if len(config.models.providers) > 1:
            raise NoProviderError(f"{NO_PROVIDER_MESSAGE} (several providers are configured: "
                                  "agents.defaults.model selects one)")
        raise NoProviderError()
    return _resolve_ref(config, refs[0], env)


def resolve_candidates(config: Config, ref: str | None = None,
                       env: Mapping[str, str] | None = None) -> list[tuple[Provider, str]]:
    """Primary then usable fallbacks, for a run that retries on the next model when one
    fails before any output. Raises NoProviderError when not even one is usable."""
    if ref:
        return [_resolve_ref(config, ref, env)]
    first = resolve_model(config, None, env)
    out = [first]
    for fallback in model_refs(config)[1:]:
        try:
            out.append(_resolve_ref(config, fallback, env))
        except NoProviderError:
            continue
    return out


__all__ = [
    "CancelToken", "ChatRequest", "Event", "Message", "NoProviderError", "NO_PROVIDER_MESSAGE",
    "Provider", "ProviderError", "Result", "ResultBuilder", "Stop", "TextDelta", "ToolCall",
    "ToolCallComplete", "ToolCallDelta", "ToolSpec", "Usage", "build_provider", "model_refs",
    "provider_settings", "resolve_candidates", "resolve_model", "split_ref",
]
