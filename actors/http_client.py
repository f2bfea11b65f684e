"""Outbound HTTP of the model providers and the channel adapters (architecture §4), on httpx.

httpx is imported on first use, so a process that never calls out (the gateway before its first
model turn) does not carry it. Clients trust the environment: `HTTPS_PROXY`, `HTTP_PROXY`,
`ALL_PROXY` and `NO_PROXY` apply as curl reads them, and TLS verifies against the system store
(`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured), as the stdlib client before it did.

A `Line` is an httpx client holding at most one connection, whose socket it learns when the
connection is made. Its `abort()` may run on any thread: it shuts that socket down, which wakes
a read blocked in the thread using the line at once. Closing an httpx response from another
thread does not: on Linux a `recv` on a descriptor closed elsewhere keeps waiting.
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

from actors.sockets import shutdown_socket

if TYPE_CHECKING:
    import httpx

KEEPALIVE_S = 30.0  # an idle connection older than this is not reused

_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def load_httpx() -> ModuleType:
    """The httpx module, imported now if it was not yet."""
    if "httpx" not in sys.modules:
        # httpx's own command line pulls in click and pygments when they are installed; nothing
        # here runs it, and httpx falls back to a stub when that import fails (~2 MB, ~15 ms).
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    import httpx

    # Its INFO line per request carries the URL, and a Telegram URL carries the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return httpx


def ssl_context() -> ssl.SSLContext:
    """One verifying context per process: building one reads the whole CA store."""
    global _ssl_context
    with _lock:
        if _ssl_context is None:
            _ssl_context = ssl.create_default_context()
        return _ssl_context


class Line:
    """An httpx client with at most one connection; `abort()` ends its request in flight.

    `lease` counts the users of a pooled line: `abort(lease)` from a user's cancel hook that
    fires late, after the line went back to a pool, leaves the next user alone."""

    def __init__(self, connect_timeout: float = 15.0, read_timeout: float = 60.0) -> None:
        hx = load_httpx()
        self.client: httpx.Client = hx.Client(
            trust_env=True, verify=ssl_context(), follow_redirects=False,
            timeout=hx.Timeout(read_timeout, connect=connect_timeout),
            limits=hx.Limits(max_connections=1, max_keepalive_connections=1,
                             keepalive_expiry=KEEPALIVE_S),
            # The stdlib client asked for no compression; a gzipped event stream can sit in a
            # buffer of some intermediary instead of streaming.
            headers={"Accept-Encoding": "identity"})
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._aborted = False
        self.lease = 0
        self.connected = False  # the latest request opened a new connection

    def extensions(self) -> dict[str, Any]:
        """The request extensions that let the line learn its socket; call once per request."""
        self.connected = False
        return {"trace": self._trace}

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if not event.endswith("connect_tcp.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        with self._lock:
            self._sock = sock
            aborted = self._aborted
        self.connected = True
        if aborted:  # abort() came while connecting
            shutdown_socket(sock, close=False)

    @property
    def aborted(self) -> bool:
        return self._aborted

    def abort(self, lease: int | None = None) -> None:
        """Shut the connection down (the thread using it gets an error at once) and refuse
        every later one; with `lease`, only if the line still serves that lease."""
        with self._lock:
            if lease is not None and lease != self.lease:
                return
            self._aborted = True
            sock = self._sock
        # The owner's thread closes the descriptor: closing it here could let a new socket
        # take its number while that thread still reads from it.
        shutdown_socket(sock, close=False)

    def next_lease(self) -> int:
        with self._lock:
            self.lease += 1
            return self.lease

    def close(self) -> None:
        self.client.close()


__all__ = ["Line", "load_httpx", "ssl_context"]
