"""`models.list` (protocol §16.2) against the real gateway."""

from __future__ import annotations

from tests.conftest import TOKEN, open_client

PROVIDERS = {
    "openai": {"apiKey": "sk-test-0123456789", "models": [
        {"id": "gpt-5", "name": "GPT-5", "contextWindow": 400000},
        {"id": "gpt-4.1-mini", "maxTokens": 8192}]},
    "local": {"api": "openai-completions", "baseUrl": "http://127.0.0.1:9/v1",
              "models": [{"id": "qwen"}]},
}


def test_lists_configured_models_and_offline_echo_sorted(gateway_factory):
    gw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}},
                          "models": {"providers": PROVIDERS},
                          "agents": {"defaults": {"model": "openai/gpt-5"}}})
    client = open_client(gw.url, scopes=["operator.read"])
    try:
        res = client.request("models.list", {"view": "all", "refresh": True})
    finally:
        client.close()
    assert res["ok"], res
    assert res["payload"] == {"models": [
        {"id": "qwen", "name": "qwen", "provider": "local"},
        {"id": "echo", "name": "echo", "provider": "offline"},
        {"id": "gpt-4.1-mini", "name": "gpt-4.1-mini", "provider": "openai", "maxTokens": 8192},
        {"id": "gpt-5", "name": "GPT-5", "provider": "openai", "contextWindow": 400000},
    ]}


def test_without_providers_only_offline_echo(gateway):
    client = open_client(gateway.url)
    try:
        assert client.request("models.list")["payload"] == {
            "models": [{"id": "echo", "name": "echo", "provider": "offline"}]}
    finally:
        client.close()
