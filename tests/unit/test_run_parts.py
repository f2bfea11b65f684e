"""Pure parts of the agent runtime: transcript → model messages, and the dedupe cache (§18)."""

from __future__ import annotations

from actors.agents.dedupe import DedupeCache
from actors.agents.run import in_turn_order, provider_messages
from tests.fakes.clock import FakeClock


def msg(role: str, text: str, run_id: str | None = None, **extra) -> dict:
    out = {"role": role, "content": [{"type": "text", "text": text}], **extra}
    if run_id:
        out["runId"] = run_id
    return out


def test_each_reply_follows_its_own_turn():
    stored = [msg("user", "q1", "a"), msg("user", "q2", "b"), msg("assistant", "r1", "a"),
              msg("assistant", "r2", "b"), msg("user", "q3", "c")]
    assert [m["content"][0]["text"] for m in in_turn_order(stored)] == ["q1", "r1", "q2", "r2", "q3"]


def test_a_run_does_not_see_turns_queued_after_its_own():
    stored = [msg("user", "q1", "a"), msg("assistant", "r1", "a"), msg("user", "q2", "b"),
              msg("user", "q3", "c")]
    messages, _ = provider_messages(stored, "b")
    assert [m.content for m in messages] == ["q1", "r1", "q2"]


def test_provider_messages_summary_tool_parts_and_window_start():
    stored = [msg("assistant", "cut off answer", "x"), msg("toolResult", "out", toolCallId="t1"),
              msg("system", "Summary: earlier talk"), msg("user", "hi", "y"),
              {"role": "assistant", "runId": "y", "content": [
                  {"type": "text", "text": "calling"},
                  {"type": "toolCall", "id": "t2", "name": "exec", "arguments": {"cmd": "ls"}}]},
              msg("toolResult", "file.txt", toolCallId="t2")]
    messages, notes = provider_messages(stored)
    assert notes == ["Summary: earlier talk"]
    assert [m.role for m in messages] == ["user", "assistant", "tool"]
    assert messages[1].tool_calls[0].name == "exec" and messages[1].tool_calls[0].input() == {"cmd": "ls"}
    assert messages[2].tool_call_id == "t2" and messages[2].content == "file.txt"


def test_dedupe_in_flight_then_finished_then_expired():
    clock = FakeClock()
    cache = DedupeCache(ttl_s=0.05, clock=clock)
    assert cache.claim("chat.send:k", "k") is None
    assert cache.claim("chat.send:k", "k").in_flight is True
    assert cache.claim("agent:k", "k") is None  # keys are per method
    cache.finish("chat.send:k", payload="done")
    entry = cache.get("chat.send:k")
    assert entry.in_flight is False and entry.payload == "done"
    clock.advance(0.08)
    assert cache.get("chat.send:k") is None
    cache.release("agent:k")
    assert cache.get("agent:k") is None


def test_dedupe_evicts_oldest_finished_never_in_flight():
    cache = DedupeCache(max_entries=3)
    for key in ("a", "b", "c"):
        cache.claim(key, key)
    cache.finish("a")
    cache.finish("b")
    cache.claim("d", "d")  # 4 entries: the oldest finished goes
    cache.finish("d")
    assert cache.get("a") is None and cache.get("b") is not None
    assert cache.get("c").in_flight is True
    for key in ("e", "f", "g"):
        cache.claim(key, key)  # only in-flight entries left to keep: none of them is dropped
    assert all(cache.get(k).in_flight for k in ("c", "e", "f", "g"))


def test_clock_fires_in_order_and_forgets_cancelled_timers():
    import threading

    from actors.clock import Clock
    clock, fired, done = Clock(), [], threading.Event()
    clock.call_later(0.05, lambda: fired.append("b"))
    clock.call_later(0.01, lambda: fired.append("a"))
    clock.call_later(0.08, done.set)
    dropped = [clock.call_later(600, lambda: fired.append("never")) for _ in range(1000)]
    for timer in dropped:
        timer.cancel()
    assert clock.pending() < 300  # swept: a cancelled run deadline holds nothing for minutes
    assert all(t.fn is None for t in dropped)
    assert done.wait(2) and fired == ["a", "b"]
