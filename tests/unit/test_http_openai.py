"""Pure parts of the OpenAI-compatible endpoints (protocol §21.4): session keys, model names,
message splitting and the chunk writer."""

from __future__ import annotations

import json

import pytest

from transport.http_openai import ChunkWriter
from transport.openai_request import ChatMessage, HttpError, Part, agent_of_model, session_key, split_messages


class _State:  # agent_ids() needs no state yet
    pass


def test_session_keys():
    assert session_key("My-Chat", None, "main") == "agent:main:my-chat"
    assert session_key("", "Alice", "main") == "agent:main:openai-user:alice"
    assert session_key("  ", None, "main").startswith("agent:main:openai:")
    for reserved in ("subagent:a", "CRON:x", "acp:1", "agent:main:cron:job"):
        with pytest.raises(HttpError) as info:
            session_key(reserved, None, "main")
        assert info.value.status == 400 and "reserved" in info.value.message
    with pytest.raises(HttpError):
        session_key("a::b", None, "main")


def test_model_names():
    state = _State()
    for model in ("openclaw", "openclaw/default", "openclaw/main", "openclaw:main", "agent:main"):
        assert agent_of_model(state, model) == "main"
    for model in ("gpt-4o", "openclaw/other", "agent:"):
        with pytest.raises(HttpError) as info:
            agent_of_model(state, model)
        assert info.value.status == 404 and info.value.kind == "not_found_error"


def test_split_messages():
    messages = [ChatMessage("system", "s1"), ChatMessage("user", "q1"),
                ChatMessage("assistant", [Part("text", "a1")]), ChatMessage("developer", "s2"),
                ChatMessage("user", [Part("text", "q2"), Part("text", "more")]),
                ChatMessage("assistant", "trailing")]
    turn, context, system = split_messages(messages)
    assert turn is messages[4]
    assert [(m["role"], m["content"][0]["text"]) for m in context] == [("user", "q1"), ("assistant", "a1")]
    assert system == "s1\n\ns2"
    with pytest.raises(HttpError):
        split_messages([ChatMessage("system", "only")])


def _chunks(raw: bytes) -> list[dict]:
    return [json.loads(line[6:]) for line in raw.decode().split("\n\n") if line.startswith("data: {")]


def test_chunk_writer_appends_only_and_ends_with_stop():
    writer = ChunkWriter("r1", 5, "openclaw")
    out = writer.event({"state": "delta", "deltaText": "Hel"})
    out += writer.event({"state": "delta", "deltaText": "Hello wor", "replace": True})
    out += writer.event({"state": "delta", "deltaText": "Bye", "replace": True})  # a rewrite: dropped
    out += writer.event({"state": "final", "message": {"content": [{"type": "text", "text": "Hello world"}]}})
    deltas = [c["choices"][0] for c in _chunks(out)]
    assert deltas == [
        {"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None},
        {"index": 0, "delta": {"content": "lo wor"}, "finish_reason": None},
        {"index": 0, "delta": {"content": "ld"}, "finish_reason": None},
        {"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert {c["id"] for c in _chunks(out)} == {"chatcmpl-r1"}


def test_chunk_writer_empty_reply_still_carries_the_role():
    deltas = [c["choices"][0] for c in _chunks(ChunkWriter("r2", 5, "m").event({"state": "aborted"}))]
    assert deltas[0]["delta"] == {"role": "assistant", "content": ""}
    assert deltas[-1]["finish_reason"] == "stop"
