"""Model providers (issue 4) against a local HTTP server speaking the OpenAI and Anthropic
streaming formats: streaming text, tool calls, usage, retries, timeouts, abort, errors, model
selection (cli-config §6.5) and offline/echo."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import msgspec
import pytest

from actors.agents.providers import (
    NO_PROVIDER_MESSAGE,
    CancelToken,
    ChatRequest,
    Message,
    NoProviderError,
    ProviderError,
    Stop,
    TextDelta,
    ToolCall,
    ToolCallComplete,
    ToolCallDelta,
    ToolSpec,
    Usage,
    model_refs,
    resolve_candidates,
    resolve_model,
)
from actors.agents.providers.anthropic import AnthropicProvider
from actors.agents.providers.http_stream import DRAIN_S, RetryPolicy
from actors.agents.providers.offline import OfflineProvider
from actors.agents.providers.openai import OpenAIProvider
from actors.config.schema import Config
from tests.fakes.model_server import (
    Hang,
    ModelServer,
    Status,
    Stream,
    anthropic_error,
    anthropic_text,
    anthropic_tool_use,
    openai_text,
    openai_tool_calls,
)

FAST = RetryPolicy(retries=2, base_delay=0.02, max_delay=0.1, max_retry_after=5)
WEATHER = ToolSpec(name="get_weather", description="Weather of a city",
                   parameters={"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]})


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


def oai(srv: ModelServer, **kw: Any) -> OpenAIProvider:
    kw.setdefault("timeout", 2)
    return OpenAIProvider("local", base_url=srv.url + "/v1", api_key="sk-test", retry=FAST, **kw)


def ant(srv: ModelServer, **kw: Any) -> AnthropicProvider:
    kw.setdefault("timeout", 2)
    return AnthropicProvider("claude", base_url=srv.url, api_key="ak-test", retry=FAST, **kw)


def req(text: str = "hi", **kw: Any) -> ChatRequest:
    return ChatRequest(model=kw.pop("model", "m1"), messages=[Message(role="user", content=text)], **kw)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.first = threading.Event()

    def __call__(self, event: Any) -> None:
        self.events.append(event)
        if isinstance(event, TextDelta):
            self.first.set()

    def texts(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, TextDelta)]


# --- streaming text ---------------------------------------------------------------------

def test_openai_streams_text_in_order_with_usage(server: ModelServer) -> None:
    server.script(Stream(openai_text(["One", " two", " three"], usage=(5, 3)), delay=0.005))
    rec = Recorder()
    result = oai(server).stream(req("count", system="be brief", max_tokens=50), rec)
    assert rec.texts() == ["One", " two", " three"]
    assert result.text == "One two three" and result.stop_reason == "stop"
    assert result.usage == Usage(input_tokens=5, output_tokens=3)
    assert isinstance(rec.events[-1], Stop) and Usage(input_tokens=5, output_tokens=3) in rec.events
    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == "Bearer sk-test"
    body = sent["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "m1" and body["max_tokens"] == 50
    assert body["messages"] == [{"role": "system", "content": "be brief"},
                                {"role": "user", "content": "count"}]


def test_anthropic_streams_text_in_order_with_usage(server: ModelServer) -> None:
    server.script(Stream(anthropic_text(["Hel", "lo", "!"], usage=(9, 4)), delay=0.005))
    rec = Recorder()
    result = ant(server).stream(req("greet", system="sys"), rec)
    assert rec.texts() == ["Hel", "lo", "!"]
    assert result.text == "Hello!" and result.stop_reason == "stop"
    assert result.usage == Usage(input_tokens=9, output_tokens=4)
    sent = server.requests[0]
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == "ak-test"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    body = sent["body"]
    assert body["stream"] is True and body["system"] == "sys" and body["max_tokens"] > 0
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "greet"}]}]


def test_extra_headers_are_sent(server: ModelServer) -> None:
    oai(server, headers={"X-Title": "openclaw"}).stream(req())
    assert server.requests[0]["headers"]["x-title"] == "openclaw"


# --- tool calls -------------------------------------------------------------------------

def test_openai_tool_calls_assembled_by_index(server: ModelServer) -> None:
    server.script(Stream(openai_tool_calls([
        ("call_a", "get_weather", ['{"ci', 'ty": "Pa', 'ris"}']),
        ("call_b", "get_weather", ['{"city"', ': "Oslo"}'])])))
    rec = Recorder()
    result = oai(server).stream(req("weather?", tools=[WEATHER]), rec)
    assert result.stop_reason == "tool_use"
    assert [(c.id, c.name, c.input()) for c in result.tool_calls] == [
        ("call_a", "get_weather", {"city": "Paris"}), ("call_b", "get_weather", {"city": "Oslo"})]
    assert any(isinstance(e, ToolCallDelta) for e in rec.events)
    assert [e.index for e in rec.events if isinstance(e, ToolCallComplete)] == [0, 1]
    assert result.usage.output_tokens == 9
    assert server.requests[0]["body"]["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city", "parameters": WEATHER.parameters}}]


def test_anthropic_tool_use_assembled_from_input_json_delta(server: ModelServer) -> None:
    server.script(Stream(anthropic_tool_use("Let me check.", "toolu_1", "get_weather",
                                            ['{"city":', ' "Ber', 'lin"}'])))
    rec = Recorder()
    result = ant(server).stream(req("weather?", tools=[WEATHER]), rec)
    assert result.text == "Let me check." and result.stop_reason == "tool_use"
    assert len(result.tool_calls) == 1
    call = result.tool_calls[0]
    assert (call.id, call.name, call.input()) == ("toolu_1", "get_weather", {"city": "Berlin"})
    assert result.usage == Usage(input_tokens=30, output_tokens=15)
    assert server.requests[0]["body"]["tools"] == [{
        "name": "get_weather", "description": "Weather of a city", "input_schema": WEATHER.parameters}]


def test_tool_results_are_encoded_in_each_format(server: ModelServer) -> None:
    history = [Message(role="user", content="weather in Paris?"),
               Message(role="assistant", content="", tool_calls=[
                   ToolCall(id="call_a", name="get_weather", arguments='{"city":"Paris"}')]),
               Message(role="tool", tool_call_id="call_a", name="get_weather", content="sunny")]
    oai(server).stream(ChatRequest(model="m1", messages=history, tools=[WEATHER]))
    ant(server).stream(ChatRequest(model="m1", messages=history, tools=[WEATHER]))
    o, a = server.requests[0]["body"]["messages"], server.requests[1]["body"]["messages"]
    assert o[1] == {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_a", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    assert o[2] == {"role": "tool", "tool_call_id": "call_a", "content": "sunny"}
    assert a[1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}}]}
    assert a[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_a", "content": "sunny"}]}


# --- retries, timeouts, errors ----------------------------------------------------------

def test_retry_after_500_then_success(server: ModelServer) -> None:
    server.script(Status(500, {"error": {"message": "boom"}}), Status(503),
                  Stream(openai_text(["ok"])))
    result = oai(server).stream(req())
    assert result.text == "ok" and len(server.requests) == 3


def test_anthropic_retry_after_529_then_success(server: ModelServer) -> None:
    server.script(Status(529, {"type": "error", "error": {"type": "overloaded_error",
                                                          "message": "Overloaded"}}),
                  Stream(anthropic_text(["fine"])))
    assert ant(server).stream(req()).text == "fine" and len(server.requests) == 2


def test_429_retry_after_is_honoured(server: ModelServer) -> None:
    server.script(Status(429, {"error": {"message": "slow down"}}, {"retry-after": "0.3"}),
                  Stream(openai_text(["after wait"])))
    result = oai(server).stream(req())
    assert result.text == "after wait"
    gap = server.requests[1]["at"] - server.requests[0]["at"]
    assert gap >= 0.28, gap  # base_delay alone would be 0.02


def test_retries_exhausted_names_provider_and_status(server: ModelServer) -> None:
    server.script(*[Status(502, {"error": {"message": "bad gateway"}})] * 3)
    with pytest.raises(ProviderError) as info:
        oai(server).stream(req())
    err = info.value
    assert (err.provider, err.status, err.retryable, err.kind) == ("local", 502, True, "http")
    assert "local" in str(err) and "HTTP 502" in str(err) and "bad gateway" in str(err)
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(server: ModelServer) -> None:
    server.script(Status(401, {"type": "error", "error": {"type": "authentication_error",
                                                          "message": "invalid x-api-key"}}))
    with pytest.raises(ProviderError) as info:
        ant(server).stream(req())
    err = info.value
    assert str(err) == "claude: HTTP 401: authentication_error: invalid x-api-key"
    assert err.kind == "auth" and not err.retryable and len(server.requests) == 1


def test_hang_times_out_naming_the_provider(server: ModelServer) -> None:
    server.script(Hang(10))
    start = time.monotonic()
    with pytest.raises(ProviderError) as info:
        oai(server, timeout=0.3).stream(req())
    assert time.monotonic() - start < 2
    assert info.value.kind == "timeout" and info.value.provider == "local"
    assert str(info.value).startswith("local: ")


def test_stall_mid_stream_times_out(server: ModelServer) -> None:
    server.script(Stream(anthropic_text(["a", "b"]), delay=0.6))
    with pytest.raises(ProviderError) as info:
        ant(server, timeout=0.3).stream(req())
    assert info.value.kind == "timeout" and "claude" in str(info.value)


def test_connection_refused_is_retried_then_fails() -> None:
    with ModelServer() as srv:
        url = srv.url
    provider = OpenAIProvider("gone", base_url=url, retry=FAST, timeout=1)
    with pytest.raises(ProviderError) as info:
        provider.stream(req())
    assert info.value.kind == "connection" and info.value.retryable
    assert "gone" in str(info.value)


def test_anthropic_mid_stream_error_event(server: ModelServer) -> None:
    server.script(Stream(anthropic_text(["partial"], finish=False) + [anthropic_error()]))
    rec = Recorder()
    with pytest.raises(ProviderError) as info:
        ant(server).stream(req(), rec)
    assert rec.texts() == ["partial"]
    err = info.value
    assert err.kind == "stream" and not err.retryable
    assert "claude" in str(err) and "overloaded_error" in str(err) and "HTTP 200" in str(err)
    assert len(server.requests) == 1  # never retried once output was delivered


def test_openai_drop_before_done_is_an_error(server: ModelServer) -> None:
    chunks = openai_text(["cut"], done=False)[:2]
    server.script(Stream(chunks))
    with pytest.raises(ProviderError) as info:
        oai(server).stream(req())
    assert info.value.kind == "connection" and "local" in str(info.value)


# --- abort ------------------------------------------------------------------------------

@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_abort_from_another_thread_closes_the_connection(server: ModelServer, api: str) -> None:
    parts = [f"w{i} " for i in range(200)]
    chunks = openai_text(parts) if api == "openai" else anthropic_text(parts)
    server.script(Stream(chunks, delay=0.05))
    provider = oai(server, timeout=10) if api == "openai" else ant(server, timeout=10)
    cancel, rec, box = CancelToken(), Recorder(), {}

    def run() -> None:
        box["result"] = provider.stream(req(), rec, cancel)
        box["done"] = time.monotonic()

    worker = threading.Thread(target=run)
    worker.start()
    assert rec.first.wait(5)
    start = time.monotonic()
    cancel.cancel()
    worker.join(2)
    assert not worker.is_alive()
    assert box["done"] - start < 0.1, box["done"] - start
    result = box["result"]
    assert result.aborted and result.stop_reason == "aborted"
    assert 0 < len(rec.texts()) < 50 and result.text == "".join(rec.texts())
    assert server.client_closed.wait(1)


def test_abort_during_retry_backoff_returns_at_once(server: ModelServer) -> None:
    server.script(Status(429, headers={"retry-after": "3"}))
    cancel, box = CancelToken(), {}
    worker = threading.Thread(target=lambda: box.setdefault("r", oai(server).stream(req(), None, cancel)))
    worker.start()
    while not server.requests:
        time.sleep(0.01)
    time.sleep(0.05)
    start = time.monotonic()
    cancel.cancel()
    worker.join(2)
    assert time.monotonic() - start < 0.2 and box["r"].aborted


def test_abort_during_a_hang(server: ModelServer) -> None:
    server.script(Hang(10))
    cancel, box = CancelToken(), {}
    worker = threading.Thread(target=lambda: box.setdefault("r", oai(server, timeout=10).stream(
        req(), None, cancel)))
    worker.start()
    while not server.requests:
        time.sleep(0.01)
    start = time.monotonic()
    cancel.cancel()
    worker.join(2)
    assert time.monotonic() - start < 0.2 and box["r"].aborted
    assert server.client_closed.wait(1)


def _stream_in_thread(provider: Any, cancel: CancelToken, rec: Any = None) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def run() -> None:
        box["result"] = provider.stream(req(), rec, cancel)
        box["done"] = time.monotonic()

    worker = threading.Thread(target=run)
    worker.start()
    return worker, box


def test_abort_wakes_a_read_blocked_mid_stream(server: ModelServer) -> None:
    server.script(Stream(openai_text(["first", "never"]), delay=5))
    cancel, rec = CancelToken(), Recorder()
    worker, box = _stream_in_thread(oai(server, timeout=10), cancel, rec)
    deadline = time.monotonic() + 8
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the reader now waits in recv for a chunk 5 s away
    start = time.monotonic()
    cancel.cancel()
    worker.join(2)
    assert not worker.is_alive() and box["done"] - start < 0.2, box
    assert box["result"].aborted
    assert server.client_closed.wait(1)


# --- connections ------------------------------------------------------------------------

def test_kept_connection_serves_later_turns_and_retries() -> None:
    with ModelServer(keep_alive=True) as srv:
        srv.script(Stream(openai_text(["one"])), Status(503), Stream(openai_text(["two"])))
        assert oai(srv).stream(req()).text == "one"
        assert oai(srv).stream(req()).text == "two"  # another provider object, same origin
        ports = [r["port"] for r in srv.requests]
        assert len(ports) == 3 and len(set(ports)) == 1, ports


def test_abort_while_a_kept_connection_waits_for_headers() -> None:
    with ModelServer(keep_alive=True) as srv:
        srv.script(Stream(anthropic_text(["warm"])), Hang(10))
        provider = ant(srv, timeout=10)
        assert provider.stream(req()).text == "warm"
        cancel = CancelToken()
        worker, box = _stream_in_thread(provider, cancel)
        while len(srv.requests) < 2:
            time.sleep(0.01)
        assert srv.requests[1]["port"] == srv.requests[0]["port"]
        start = time.monotonic()
        cancel.cancel()
        worker.join(2)
        assert not worker.is_alive() and box["done"] - start < 0.2
        assert box["result"].aborted
        assert srv.client_closed.wait(1)
        assert provider.stream(req()).text == "Hello from Claude"  # a fresh connection
        assert srv.requests[2]["port"] != srv.requests[0]["port"]


def test_body_held_open_after_the_end_marker_is_given_up_quickly() -> None:
    with ModelServer(keep_alive=True) as srv:
        srv.script(Stream(openai_text(["held"]), linger=5))
        start = time.monotonic()
        assert oai(srv).stream(req()).text == "held"
        assert time.monotonic() - start < DRAIN_S + 0.5
        assert srv.client_closed.wait(1)
        assert oai(srv).stream(req()).text == "Hello from GPT"
        assert srv.requests[1]["port"] != srv.requests[0]["port"]


# --- model selection (cli-config §6.5) --------------------------------------------------

def cfg(doc: dict) -> Config:
    return msgspec.convert(doc, Config)


def test_no_provider_message_names_the_keys() -> None:
    with pytest.raises(NoProviderError) as info:
        resolve_model(cfg({}))
    assert str(info.value) == NO_PROVIDER_MESSAGE == (
        "no model provider configured; set models.providers.<id> and agents.defaults.model")
    assert info.value.kind == "unavailable"


def test_missing_provider_of_the_selected_model() -> None:
    with pytest.raises(NoProviderError) as info:
        resolve_model(cfg({"agents": {"defaults": {"model": "openai/gpt-4o"}}}))
    msg = str(info.value)
    assert msg.startswith(NO_PROVIDER_MESSAGE) and "models.providers.openai" in msg


def test_only_provider_first_model_is_the_default() -> None:
    c = cfg({"models": {"providers": {"vllm": {
        "api": "openai-completions", "baseUrl": "http://127.0.0.1:8000/v1",
        "models": [{"id": "qwen"}, {"id": "llama"}]}}}})
    provider, model = resolve_model(c, env={})
    assert isinstance(provider, OpenAIProvider) and provider.id == "vllm" and model == "qwen"
    assert provider.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert model_refs(c) == ["vllm/qwen"]


def test_builtin_ids_defaults_and_env_keys() -> None:
    c = cfg({"models": {"providers": {
        "openai": {"models": [{"id": "gpt-4o"}]},
        "anthropic": {"models": [{"id": "claude-sonnet-4"}], "timeoutSeconds": 30},
        "ollama": {"models": [{"id": "llama3"}]}}},
        "agents": {"defaults": {"model": {"primary": "anthropic/claude-sonnet-4",
                                          "fallbacks": ["openai/gpt-4o", "nope/x", "ollama/llama3"]}}}})
    env = {"OPENAI_API_KEY": "sk-env", "ANTHROPIC_API_KEY": "ak-env"}
    provider, model = resolve_model(c, env=env)
    assert isinstance(provider, AnthropicProvider) and model == "claude-sonnet-4"
    assert provider.url == "https://api.anthropic.com/v1/messages"
    assert provider.api_key == "ak-env" and provider.timeout == 30
    chain = resolve_candidates(c, env=env)
    assert [(p.id, m) for p, m in chain] == [("anthropic", "claude-sonnet-4"), ("openai", "gpt-4o"),
                                              ("ollama", "llama3")]
    assert chain[1][0].api_key == "sk-env" and chain[1][0].url == "https://api.openai.com/v1/chat/completions"
    assert chain[2][0].api_key is None and chain[2][0].url == "http://127.0.0.1:11434/v1/chat/completions"


def test_config_api_key_beats_env_and_explicit_ref_wins() -> None:
    c = cfg({"models": {"providers": {"openai": {"apiKey": "sk-cfg", "models": [{"id": "gpt-4o"}]}}}})
    provider, model = resolve_model(c, "openai/gpt-4o-mini", env={"OPENAI_API_KEY": "sk-env"})
    assert provider.api_key == "sk-cfg" and model == "gpt-4o-mini"


def test_several_providers_without_default_are_unavailable() -> None:
    c = cfg({"models": {"providers": {"openai": {"models": [{"id": "a"}]},
                                      "anthropic": {"models": [{"id": "b"}]}}}})
    with pytest.raises(NoProviderError) as info:
        resolve_model(c)
    assert "agents.defaults.model" in str(info.value) and "models.providers.<id>" in str(info.value)


def test_offline_is_used_only_when_selected() -> None:
    with pytest.raises(NoProviderError):
        resolve_model(cfg({}))
    provider, model = resolve_model(cfg({}), "offline/echo")
    assert isinstance(provider, OfflineProvider) and model == "echo"
    provider, model = resolve_model(cfg({"agents": {"defaults": {"model": "offline/echo"}}}))
    assert isinstance(provider, OfflineProvider)
    with pytest.raises(NoProviderError):
        resolve_model(cfg({}), "offline/other")
    with pytest.raises(NoProviderError):
        resolve_model(cfg({}), "no-slash")


def test_offline_echo_streams_the_last_user_message() -> None:
    rec = Recorder()
    request = ChatRequest(model="echo", messages=[Message(role="user", content="first"),
                                                  Message(role="assistant", content="x"),
                                                  Message(role="user", content="hello there world")])
    result = OfflineProvider().stream(request, rec)
    assert rec.texts() == ["hello ", "there ", "world"]
    assert result.text == "hello there world" and result.stop_reason == "stop"
    assert result.provider == "offline" and result.usage.output_tokens > 0
    cancel = CancelToken()
    cancel.cancel()
    assert OfflineProvider().stream(request, None, cancel).aborted
