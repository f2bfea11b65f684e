"""The dispatcher itself: a handler that raises answers an error and nothing else breaks."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from actors.config.load import defaults
from actors.config.settings import AuthSettings
from transport.dispatch import Caller, dispatch
from transport.methods import READ, method
from transport.protocol import GatewayError
from transport.state import GatewayState


class Params(msgspec.Struct, forbid_unknown_fields=True):
    n: int = 0


@method("test.raise", scope=READ, params=Params)
async def raising(params: Params, ctx) -> dict:
    raise RuntimeError(f"boom {params.n}")


@method("test.ok", scope=READ, params=Params)
async def ok(params: Params, ctx) -> dict:
    return {"n": params.n}


def state() -> GatewayState:
    return GatewayState(snapshot=defaults("/nonexistent/openclaw.json"), auth=AuthSettings("none"),
                        state_dir="/tmp", config_path="/nonexistent/openclaw.json", port=1,
                        bind_mode="loopback", bind_host="127.0.0.1")


READER = Caller("c1", "operator", frozenset({"operator.read"}))


def call(st: GatewayState, name: str, params: bytes = b"{}", caller: Caller = READER):
    return asyncio.run(dispatch(st, caller, name, params))


def test_raising_handler_becomes_unavailable_and_state_recovers():
    st = state()
    with pytest.raises(GatewayError) as info:
        call(st, "test.raise", b'{"n": 7}')
    assert info.value.code == "UNAVAILABLE"
    assert info.value.message == "test.raise failed: boom 7"
    assert st.in_flight == 0
    assert call(st, "test.ok", b'{"n": 3}') == {"n": 3}


def test_dev_mode_adds_the_traceback():
    st = state()
    st.dev = True
    with pytest.raises(GatewayError) as info:
        call(st, "test.raise")
    assert "RuntimeError: boom 0" in info.value.shape.details["traceback"]


def test_forbidden_unknown_field_names_it():
    with pytest.raises(GatewayError) as info:
        call(state(), "test.ok", b'{"n": 1, "x": 2}')
    assert info.value.code == "INVALID_REQUEST"
    assert info.value.message == "invalid test.ok params: object contains unknown field x"
