"""`gateway.trustedProxies` (issue 11, defect 3): the client address of a proxied request,
the key's validation and its reload class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tornado.httputil import HTTPHeaders

from actors.config.load import load_config
from actors.config.reload import reload_class
from transport.auth import client_ip


def headers(**values: str) -> HTTPHeaders:
    out = HTTPHeaders()
    for name, value in values.items():
        out.add(name.replace("_", "-"), value)
    return out


@pytest.mark.parametrize("peer, hdrs, trusted, expected", [
    # not behind a trusted proxy: the socket address, whatever the headers say
    ("127.0.0.1", {"X_Forwarded_For": "203.0.113.5"}, [], "127.0.0.1"),
    ("10.0.0.2", {"X_Forwarded_For": "203.0.113.5"}, ["10.0.0.1"], "10.0.0.2"),
    # behind one: the right-most address that is not a trusted proxy
    ("10.0.0.1", {"X_Forwarded_For": "203.0.113.5"}, ["10.0.0.1"], "203.0.113.5"),
    ("10.0.0.1", {"X_Forwarded_For": "198.51.100.1, 203.0.113.5, 10.0.0.7"}, ["10.0.0.0/24"], "203.0.113.5"),
    ("127.0.0.1", {"X_Forwarded_For": "[2001:db8::1]:443"}, ["127.0.0.1"], "2001:db8::1"),
    ("127.0.0.1", {"X_Forwarded_For": "203.0.113.5:8443"}, ["127.0.0.1"], "203.0.113.5"),
    ("::ffff:127.0.0.1", {"X_Forwarded_For": "203.0.113.5"}, ["127.0.0.1"], "203.0.113.5"),
    # every entry a proxy: the left-most; garbage stops the walk
    ("10.0.0.1", {"X_Forwarded_For": "10.0.0.3, 10.0.0.2"}, ["10.0.0.0/24"], "10.0.0.3"),
    ("10.0.0.1", {"X_Forwarded_For": "203.0.113.5, not-an-ip"}, ["10.0.0.1"], "10.0.0.1"),
    # X-Real-IP only as the opted-in fallback
    ("10.0.0.1", {"X_Real_IP": "203.0.113.5"}, ["10.0.0.1"], "10.0.0.1"),
])
def test_client_ip(peer, hdrs, trusted, expected):
    assert client_ip(peer, headers(**hdrs), trusted) == expected


def test_real_ip_fallback():
    assert client_ip("10.0.0.1", headers(X_Real_IP="203.0.113.5"), ["10.0.0.1"], True) == "203.0.113.5"
    # X-Forwarded-For wins when both are present
    both = headers(X_Real_IP="203.0.113.5", X_Forwarded_For="203.0.113.6")
    assert client_ip("10.0.0.1", both, ["10.0.0.1"], True) == "203.0.113.6"


def test_repeated_forwarded_for_headers_form_one_chain():
    hdrs = HTTPHeaders()
    hdrs.add("X-Forwarded-For", "203.0.113.5")
    hdrs.add("X-Forwarded-For", "10.0.0.9")
    assert client_ip("10.0.0.1", hdrs, ["10.0.0.0/24"]) == "203.0.113.5"


@pytest.mark.parametrize("entries, line", [
    (["10.0.0.1", "fd00::/8", "proxy.lan"],
     'gateway.trustedProxies[2]: invalid IP address or CIDR "proxy.lan" (expected e.g. "10.0.0.1" '
     'or "10.0.0.0/24")'),
    (["10.0.0.1/33"], 'gateway.trustedProxies[0]: invalid IP address or CIDR "10.0.0.1/33" '
     '(expected e.g. "10.0.0.1" or "10.0.0.0/24")'),
    (["10.0.0.1", 5], "gateway.trustedProxies[1]: expected string, got number 5"),
    ("10.0.0.1", 'gateway.trustedProxies: expected array, got string "10.0.0.1"'),
])
def test_validation_names_the_bad_entry(tmp_path: Path, entries, line):
    path = tmp_path / "openclaw.json"
    path.write_text(json.dumps({"gateway": {"trustedProxies": entries}}))
    snap = load_config(path, {})
    assert [i.line() for i in snap.issues] == [line]


def test_valid_entries_are_kept(tmp_path: Path):
    path = tmp_path / "openclaw.json"
    path.write_text(json.dumps({"gateway": {"trustedProxies": ["127.0.0.1", "10.0.0.0/8", "::1"],
                                            "allowRealIpFallback": True}}))
    snap = load_config(path, {})
    assert snap.valid, [i.line() for i in snap.issues]
    assert snap.config.gateway.trusted_proxies == ["127.0.0.1", "10.0.0.0/8", "::1"]
    assert snap.config.gateway.allow_real_ip_fallback is True


def test_reload_class_is_hot():
    assert reload_class("gateway.trustedProxies") == "hot"
    assert reload_class("gateway.allowRealIpFallback") == "hot"
