"""Connection authentication: loopback detection (protocol §5.7), the shared-secret check
(§5.6), browser origins, and the failed-auth limiter (§19.1).

The limiter is loop-side state: only the event loop thread touches it, so it needs no actor.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from actors.config.settings import AuthSettings
from transport.protocol import GatewayError, invalid

PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")
LIMITER_MAX_KEYS = 10000


def is_loopback_ip(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def is_loopback_request(remote_ip: str | None, headers: Any) -> bool:
    return is_loopback_ip(remote_ip) and not any(h in headers for h in PROXY_HEADERS)


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    out = []
    for entry in trusted:
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:  # validation refuses these; a stale entry trusts nothing
            continue
    return tuple(out)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:8080" or "[::1]"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:5678"
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: Any, networks: tuple) -> bool:
    return any(addr.version == net.version and addr in net for net in networks)


def client_ip(peer: str | None, headers: Any, trusted: list[str], real_ip_fallback: bool = False) -> str | None:
    """The address a request comes from: the TCP peer, unless the peer is one of the trusted
    proxies (`gateway.trustedProxies`); then the right-most X-Forwarded-For entry that is not a
    trusted proxy (entries left of it were written by the client and prove nothing), or
    X-Real-IP when there is no X-Forwarded-For and `real_ip_fallback` is on. Forwarded headers
    from any other peer are ignored: a client cannot pick its own lockout key."""
    networks = _networks(tuple(trusted)) if trusted else ()
    peer_addr = _parse_ip(peer) if peer else None
    if peer_addr is None or not networks or not _trusted(peer_addr, networks):
        return peer
    chain = [part for value in headers.get_list("X-Forwarded-For") for part in value.split(",")]
    if not chain and real_ip_fallback:
        chain = headers.get_list("X-Real-IP")[-1:]
    leftmost = None
    for entry in reversed(chain):
        addr = _parse_ip(entry)
        if addr is None:
            break  # garbage where an address should be: not a proxy's writing, stop trusting
        if not _trusted(addr, networks):
            return str(addr)
        leftmost = addr
    # every entry is a trusted proxy (or none is readable): the left-most trusted one, else the peer
    return str(leftmost) if leftmost is not None else peer


def request_client_ip(request: Any, gateway: Any) -> str | None:
    """`client_ip` of a Tornado request under the `gateway` config section."""
    return client_ip(request.remote_ip, request.headers, gateway.trusted_proxies,
                     gateway.allow_real_ip_fallback)


def secret_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _auth_error(code: str, message: str, next_step: str) -> GatewayError:
    details: dict = {"code": code, "recommendedNextStep": next_step}
    if next_step == "update_auth_credentials":
        details["canRetryWithDeviceToken"] = False
    return invalid(message, details=details)


def check_secret(auth: AuthSettings, given: str | None) -> tuple[bool, GatewayError | None]:
    """(wrong_secret, error): `error` is None when the secret is accepted; `wrong_secret`
    tells the limiter whether this failure counts (only a wrong secret does)."""
    if auth.mode == "none":
        return False, None
    kind = auth.mode  # token | password
    upper = kind.upper()
    expected = auth.secret
    if not expected:
        return False, _auth_error(f"AUTH_{upper}_NOT_CONFIGURED",
                                  f"unauthorized: gateway {kind} not configured",
                                  "update_auth_configuration")
    if not given:
        return False, _auth_error(f"AUTH_{upper}_MISSING", f"unauthorized: gateway {kind} missing",
                                  "update_auth_credentials")
    if not secret_equal(given, expected):
        return True, _auth_error(f"AUTH_{upper}_MISMATCH", f"unauthorized: gateway {kind} mismatch",
                                 "update_auth_credentials")
    return False, None


def origin_allowed(origin: str, host: str | None, allowed: list[str]) -> bool:
    """A browser origin must be the Host header's own origin or explicitly allowed (§5.6)."""
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    if not host:
        return False
    return parts.netloc.lower() == host.lower() and parts.scheme in ("http", "https")


def lockout_error(retry_after_ms: int) -> GatewayError:
    return invalid("unauthorized: too many failed authentication attempts (retry later)",
                   retryable=True, retry_after_ms=retry_after_ms,
                   details={"code": "AUTH_RATE_LIMITED", "authReason": "rate_limited",
                            "recommendedNextStep": "wait_then_retry"})


class FailedAuthLimiter:
    """N wrong secrets within a window lock a key out (§19.1); bounded, oldest keys dropped.

    `clock` (seconds, monotonic) is injectable so that tests can step through the window and
    the lockout without sleeping through them."""

    def __init__(self, max_attempts: int = 10, window_ms: int = 60000, lockout_ms: int = 300000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.configure(max_attempts, window_ms, lockout_ms)
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._locked: dict[str, float] = {}

    def configure(self, max_attempts: int, window_ms: int, lockout_ms: int) -> None:
        self.max_attempts, self.window, self.lockout = max_attempts, window_ms / 1000, lockout_ms / 1000

    def retry_after_ms(self, key: str) -> int | None:
        """Milliseconds left of a lockout on `key`, or None when it may try."""
        until = self._locked.get(key)
        if until is None:
            return None
        left = until - self._clock()
        if left <= 0:
            del self._locked[key]
            return None
        return int(left * 1000)

    def failure(self, key: str) -> None:
        now = self._clock()
        hits = [t for t in self._failures.pop(key, []) if now - t < self.window] + [now]
        self._failures[key] = hits
        if len(hits) >= self.max_attempts:
            self._locked[key] = now + self.lockout
            del self._failures[key]
        while len(self._failures) > LIMITER_MAX_KEYS:
            self._failures.popitem(last=False)
        if len(self._locked) > LIMITER_MAX_KEYS:
            self._locked.pop(next(iter(self._locked)))

    def success(self, key: str) -> None:
        self._failures.pop(key, None)
