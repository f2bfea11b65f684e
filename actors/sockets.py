"""Closing a socket from another thread (architecture §4): abort or stop shuts the socket down
so a `recv` blocked in the thread that owns it returns at once."""

from __future__ import annotations

import socket


def shutdown_socket(sock: socket.socket | None, close: bool = True) -> None:
    """Shut `sock` down for both directions (waking a blocked reader), then close it."""
    if sock is None:
        return
    try:
        # The plain socket's shutdown, also for an SSLSocket: no TLS close-notify exchange.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass
    if close:
        try:
            sock.close()
        except OSError:
            pass
