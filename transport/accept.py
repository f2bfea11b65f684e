"""Accepting connections when the process is out of file descriptors.

Tornado's accept handler lets an `accept()` error escape. At the RLIMIT_NOFILE limit (EMFILE)
the listening socket stays readable, so the loop calls the handler again at once, forever: a
core at ~80 % and a logged traceback per call (700,000 lines in a few seconds with 400
connections against a limit of 256). Here such an error pauses accepting on that socket for
PAUSE_S, with at most one warning a minute; the waiting connections stay in the listen backlog
and are accepted as soon as descriptors are free again.
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
import time
from typing import Callable

from tornado.ioloop import IOLoop
from tornado.tcpserver import TCPServer

log = logging.getLogger("openclaw.gateway")

# Out of descriptors (process or system-wide) or kernel memory: retrying at once cannot help.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
PAUSE_S = 0.1
ACCEPT_BATCH = 128  # accepts per readiness event, as Tornado does, so other work is not starved
REPEAT_WARNING_S = 60.0  # while it lasts, the warning is repeated at most this often


def add_sockets(server: TCPServer, sockets: list[socket.socket]) -> None:
    """`server.add_sockets(sockets)`, with the accept handler below. Uses the two registries
    Tornado's own add_sockets fills, so `server.stop()` removes these handlers as usual."""
    for sock in sockets:
        server._sockets[sock.fileno()] = sock
        server._handlers[sock.fileno()] = add_accept_handler(sock, server._handle_connection)


def add_accept_handler(sock: socket.socket, callback: Callable[[socket.socket, object], None]
                       ) -> Callable[[], None]:
    """Tornado's `netutil.add_accept_handler`, except that running out of descriptors pauses
    accepting instead of raising. Returns the function that removes the handler."""
    loop = IOLoop.current()
    guard = _Guard(loop, sock)

    def accept_handler(fd: socket.socket, events: int) -> None:
        for _ in range(ACCEPT_BATCH):
            if guard.removed or guard.paused:
                return
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue  # the client gave up while waiting in the backlog
            except OSError as exc:
                if exc.errno not in RESOURCE_ERRNOS:
                    raise
                guard.pause(exc)
                return
            callback(connection, address)

    guard.handler = accept_handler
    loop.add_handler(sock, accept_handler, IOLoop.READ)
    return guard.remove


class _Guard:
    """The pause/resume state of one listening socket."""

    def __init__(self, loop: IOLoop, sock: socket.socket) -> None:
        self.loop, self.sock = loop, sock
        self.handler: Callable[[socket.socket, int], None] | None = None
        self.removed = self.paused = False
        self.timer: object | None = None
        self.pauses = 0  # since the last warning
        self.warned_at: float | None = None

    def pause(self, exc: OSError) -> None:
        self.paused = True
        self.loop.remove_handler(self.sock)
        self.timer = self.loop.call_later(PAUSE_S, self.resume)
        self.pauses += 1
        # At the limit every closed connection lets one more in before the next pause, so the
        # warning goes by time, not by episode.
        now = time.monotonic()
        if self.warned_at is None or now - self.warned_at >= REPEAT_WARNING_S:
            soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            log.warning("cannot accept connections: %s (open file limit %d; %d pause(s) of %d ms "
                        "since the last warning); new connections wait in the listen backlog; "
                        "raise the limit (ulimit -n, systemd LimitNOFILE=) to hold more connections",
                        exc.strerror or exc, soft, self.pauses, PAUSE_S * 1000)
            self.warned_at, self.pauses = now, 0

    def resume(self) -> None:
        self.timer = None
        if self.removed:
            return
        self.paused = False
        assert self.handler is not None  # set right after the guard is made
        self.loop.add_handler(self.sock, self.handler, IOLoop.READ)

    def remove(self) -> None:
        if self.removed:
            return
        self.removed = True
        if self.timer is not None:
            self.loop.remove_timeout(self.timer)
            self.timer = None
        if not self.paused:
            self.loop.remove_handler(self.sock)
