"""Every log record is bounded whatever the call site logs (issue 11, defect 6)."""

from __future__ import annotations

import json
import logging

import pytest

from actors import logs

SECRET = "sk-abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(autouse=True)
def _no_secrets():
    logs.set_secrets(())
    yield
    logs.set_secrets(())


def record(msg: str, args: tuple = (), exc_info=None, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("openclaw.ws", logging.INFO, __file__, 1, msg, args, exc_info)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_clip_marks_what_was_dropped():
    assert logs.clip("abc", 5) == "abc"
    assert logs.clip("abcdefgh", 5) == "abcde…(+3 chars)"


def test_huge_arguments_extras_and_data_are_cut():
    big = "m" * 100_000
    rec = record("%s %s failed: %s", (big, "r1", f"unknown method: {big}"), method=big, connId="c",
                 data={"reason": big, "items": list(range(1000)), big: 1})
    line = logs.encode_record(rec)
    assert len(line) < 16_000, len(line)
    out = json.loads(line)
    # the words between the huge arguments survive
    assert " r1 failed: unknown method: mmm" in out["message"]
    assert out["message"].startswith("m" * 2048 + "…(+97952 chars) r1")
    assert out["message"].endswith("…(+97968 chars)")
    assert out["method"] == "m" * 2048 + "…(+97952 chars)"
    assert out["data"]["reason"].endswith("…(+97952 chars)")
    assert out["data"]["items"][-1] == "…(+936 items)" and len(out["data"]["items"]) == 65


def test_message_without_arguments_is_cut():
    out = json.loads(logs.encode_record(record("x" * 50_000)))
    assert out["message"] == "x" * logs.MAX_MESSAGE_CHARS + f"…(+{50_000 - logs.MAX_MESSAGE_CHARS} chars)"


def test_exception_message_and_stack_are_cut():
    try:
        raise ValueError("bad input " + "z" * 100_000)
    except ValueError:
        import sys
        rec = record("failed", exc_info=sys.exc_info())
    out = json.loads(logs.encode_record(rec))
    assert len(out["err"]["message"]) < 2100 and out["err"]["message"].endswith("chars)")
    assert len(out["err"]["stack"]) < logs.MAX_STACK_CHARS + 100


def test_a_secret_across_the_cut_is_masked_not_halved():
    logs.set_secrets([SECRET])
    text = "a" * (logs.MAX_FIELD_CHARS - 5) + SECRET
    out = json.loads(logs.encode_record(record("%s", (text,), method=text)))
    for value in (out["message"], out["method"]):
        assert "sk-abcde" not in value.replace("sk-abc…wxyz", ""), value[-60:]
