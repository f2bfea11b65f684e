"""`pairing.list` and `pairing.approve` (protocol §12.4, scope operator.pairing §8.3) against a
real gateway whose state dir was seeded with pending codes before it started."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from tests.conftest import TOKEN, error, ok

NOW = int(time.time() * 1000)
HOUR = 3_600_000


def seed_pending(state_dir: Path) -> None:
    creds = state_dir / "credentials"
    creds.mkdir(mode=0o700, exist_ok=True)
    (creds / "telegram-pairing.json").write_text(json.dumps({"version": 1, "requests": [
        {"code": "K7Q2M9", "sender": "123456789", "createdAt": NOW, "expiresAt": NOW + HOUR},
        {"code": "EXP1RD", "sender": "555", "createdAt": NOW - 2 * HOUR, "expiresAt": NOW - HOUR}]}))
    (creds / "irc-pairing.json").write_text(json.dumps({"version": 1, "requests": [
        {"code": "ABC234", "sender": "alice!a@host", "createdAt": NOW + 1, "expiresAt": NOW + HOUR}]}))
    (creds / "irc-allowFrom.json").write_text(json.dumps({"version": 1, "allowFrom": ["bob!b@h"]}))


@pytest.fixture
def gw(gateway_factory):
    gw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}}, start=False)
    seed_pending(gw.state_dir)
    return gw.start()


def test_list_and_approve(gw, ws_clients):
    client = ws_clients(gw.url)
    listed = ok(client.request("pairing.list"))
    assert listed == {
        "pending": [{"channel": "telegram", "code": "K7Q2M9", "sender": "123456789",
                     "createdAt": NOW, "expiresAt": NOW + HOUR},
                    {"channel": "irc", "code": "ABC234", "sender": "alice!a@host",
                     "createdAt": NOW + 1, "expiresAt": NOW + HOUR}],
        "approved": {"irc": ["bob!b@h"], "telegram": []}}
    only = ok(client.request("pairing.list", {"channel": "telegram", "future": 1}))  # read: extra ignored
    assert [p["code"] for p in only["pending"]] == ["K7Q2M9"] and only["approved"] == {"telegram": []}

    assert ok(client.request("pairing.approve", {"channel": "telegram", "code": "k7q2m9"})) == \
        {"ok": True, "channel": "telegram", "sender": "123456789"}
    after = ok(client.request("pairing.list", {"channel": "telegram"}))
    assert after == {"pending": [], "approved": {"telegram": ["123456789"]}}
    allow = gw.state_dir / "credentials" / "telegram-allowFrom.json"
    assert json.loads(allow.read_text())["allowFrom"] == ["123456789"]
    assert stat.S_IMODE(allow.stat().st_mode) == 0o600

    # used, expired and unknown codes
    for code in ("K7Q2M9", "EXP1RD", "NOSUCH"):
        err = error(client.request("pairing.approve", {"channel": "telegram", "code": code}))
        assert err["code"] == "INVALID_REQUEST" and err["message"] == "unknown or expired pairing code"


def test_params_errors(gw, ws_clients):
    client = ws_clients(gw.url)
    err = error(client.request("pairing.approve", {"channel": "telegram"}))
    assert err["code"] == "INVALID_REQUEST" and err["message"].startswith("invalid pairing.approve params")
    err = error(client.request("pairing.approve", {"channel": "telegram", "code": " "}))
    assert err["message"] == "invalid pairing.approve params: code: must be non-empty"
    err = error(client.request("pairing.approve", {"channel": "telegram", "code": "K7Q2M9", "x": 1}))
    assert err["code"] == "INVALID_REQUEST"  # mutating: unknown fields rejected
    err = error(client.request("pairing.approve", {"channel": "whatsapp", "code": "K7Q2M9"}))
    assert err["message"] == "unknown channel: whatsapp"
    err = error(client.request("pairing.list", {"channel": "../../etc"}))
    assert err["code"] == "INVALID_REQUEST"
    # nothing was approved by any of that
    assert ok(client.request("pairing.list", {"channel": "telegram"}))["approved"] == {"telegram": []}


def test_scope(gw, ws_clients):
    reader = ws_clients(gw.url, scopes=["operator.read", "operator.write"])
    for method, params in (("pairing.list", {}), ("pairing.approve", {"channel": "telegram", "code": "K7Q2M9"})):
        err = error(reader.request(method, params))
        assert err["code"] == "FORBIDDEN" and err["message"] == "missing scope: operator.pairing"
    pairer = ws_clients(gw.url, scopes=["operator.pairing"])
    assert ok(pairer.request("pairing.approve", {"channel": "telegram", "code": "K7Q2M9"}))["sender"] == "123456789"
    admin = ws_clients(gw.url, scopes=["operator.admin"])  # admin satisfies every operator scope
    assert ok(admin.request("pairing.list", {"channel": "telegram"}))["approved"] == {"telegram": ["123456789"]}
