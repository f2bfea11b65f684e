"""Bind modes (cli-config §6.1) on loopback addresses only: an IP literal, `custom`, the
127.0.0.1 alias of a specific address, `tailnet` without a tailnet address, and refusals."""

from __future__ import annotations

import httpx
import pytest

from lifecycle import ports
from tests.conftest import TOKEN

AUTH = {"auth": {"mode": "token", "token": TOKEN}}


def live(host: str, port: int) -> bool:
    return httpx.get(f"http://{host}:{port}/health", timeout=2).json() == {"ok": True, "status": "live"}


def test_ip_literal(gateway_factory):
    gw = gateway_factory({"gateway": AUTH}, args=["--bind", "127.0.0.1"])
    assert live("127.0.0.1", gw.port)
    assert f"listening on ws://127.0.0.1:{gw.port} (bind=127.0.0.1, auth=token" in gw.stderr()


def test_specific_address_also_listens_on_127_0_0_1(gateway_factory):
    gw = gateway_factory({"gateway": {**AUTH, "bind": "custom", "customBindHost": "127.0.0.2"}})
    assert live("127.0.0.2", gw.port) and live("127.0.0.1", gw.port)
    assert f"listening on ws://127.0.0.2:{gw.port} (bind=custom," in gw.stderr()


def test_address_of_another_machine_is_refused(gateway_factory):
    gw = gateway_factory({"gateway": AUTH}, args=["--bind", "203.0.113.7"], start=False)
    gw.start(wait_ready=False)
    assert gw.wait() == 78
    assert "gateway.bind: 203.0.113.7 is not an address of this machine" in gw.stderr()


def test_custom_without_host_is_invalid(gateway_factory):
    gw = gateway_factory({"gateway": {**AUTH, "bind": "custom"}}, start=False)
    gw.start(wait_ready=False)
    assert gw.wait() == 78
    assert '  - gateway.customBindHost: required when gateway.bind is "custom"' in gw.stderr().splitlines()


@pytest.mark.skipif(ports.first_tailnet_ipv4() is not None,
                    reason="this machine has a tailnet address; the test never binds beyond loopback")
def test_tailnet_without_address_falls_back_to_loopback(gateway_factory):
    gw = gateway_factory({"gateway": {**AUTH, "bind": "tailnet"}})
    assert live("127.0.0.1", gw.port)
    assert "gateway.bind is tailnet but no 100.64.0.0/10 address exists; using loopback" in gw.stderr()
