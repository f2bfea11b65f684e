"""Test hooks: the environment knobs that let the test suite make the gateway misbehave or wait
on purpose. For the test suite only; a user never sets them, and with none set every function
here answers "no hook" and the gateway runs as usual.

All knobs are read when asked (not at import), so a channel process or a gateway started with
one in its environment sees it, and nothing else does.

| variable                           | effect                                          | read by                     |
|------------------------------------|-------------------------------------------------|-----------------------------|
| `OPENCLAW_TEST_AGENT_CRASH=<text>` | the agent actor crashes when it is about to     | actors/agents/agent.py      |
|                                    | start a run whose message is exactly `<text>`   | (`AgentActor.grant`)        |
| `OPENCLAW_TEST_CHANNEL_FAULT=      | channel `<channel>` misbehaves: `exit-at-start`,| actors/channels/process.py  |
| <channel>:<fault>`                 | `hang` (no heartbeat, no reading) or            | (`main`, `fault_for`)       |
|                                    | `raise-on-message` (adapter actor crashes on    |                             |
|                                    | the first inbound message)                      |                             |
| `OPENCLAW_TEST_CHANNEL_BACKOFF_MS= | the first restart delay of a crashed channel    | actors/channels/host.py     |
| <ms>`                              | (normally 1 s), so restart tests run quickly    | (`first_backoff_s`)         |
| `OPENCLAW_TEST_STARTUP_DELAY_MS=   | the gateway holds its start barrier this long,  | lifecycle/gateway.py        |
| <ms>`                              | so tests see /readyz 503 and close code 1013    | (`_test_startup_delay`)     |
| `OPENCLAW_TEST_SLOW_CALLBACK_MS=   | every event loop callback that runs longer is   | lifecycle/loopguard.py      |
| <ms>`                              | logged (`slow loop callback: ...`); the gateway | (`install`)                 |
|                                    | fixtures set it and fail a test that logs one   |                             |

The tests set them through the `env=` of the gateway fixtures (tests/conftest.py), which also
drops every inherited `OPENCLAW_*` variable so no knob leaks from the caller's shell.
"""

from __future__ import annotations

import os

AGENT_CRASH = "OPENCLAW_TEST_AGENT_CRASH"
CHANNEL_FAULT = "OPENCLAW_TEST_CHANNEL_FAULT"
CHANNEL_BACKOFF_MS = "OPENCLAW_TEST_CHANNEL_BACKOFF_MS"
STARTUP_DELAY_MS = "OPENCLAW_TEST_STARTUP_DELAY_MS"
SLOW_CALLBACK_MS = "OPENCLAW_TEST_SLOW_CALLBACK_MS"
ALL = (AGENT_CRASH, CHANNEL_FAULT, CHANNEL_BACKOFF_MS, STARTUP_DELAY_MS, SLOW_CALLBACK_MS)


def agent_crash_marker() -> str | None:
    """The message text that makes the agent actor crash, or None (also when set empty)."""
    return os.environ.get(AGENT_CRASH) or None


def channel_fault(channel: str) -> str | None:
    """The fault asked for `channel`, or None."""
    name, _, fault = os.environ.get(CHANNEL_FAULT, "").partition(":")
    return fault if name == channel and fault else None


def channel_backoff_s() -> float | None:
    """The first channel restart delay in seconds, or None for the normal one."""
    value = os.environ.get(CHANNEL_BACKOFF_MS, "")
    return int(value) / 1000 if value.isdigit() else None


def startup_delay_s() -> float | None:
    """How long the gateway holds its start barrier, or None for not at all."""
    value = os.environ.get(STARTUP_DELAY_MS, "")
    return int(value) / 1000 if value.isdigit() else None


def slow_callback_s() -> float | None:
    """The slow loop callback threshold in seconds, or None for no guard."""
    value = os.environ.get(SLOW_CALLBACK_MS, "")
    return int(value) / 1000 if value.isdigit() and int(value) > 0 else None
