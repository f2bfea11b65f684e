"""Tornado's WebSocket protocol with the close our spec wants for an oversized frame."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketProtocol13

from transport.protocol import CLOSE_TOO_BIG

log = logging.getLogger("openclaw.ws")


class LingeringProtocol(WebSocketProtocol13):
    """Tornado's protocol, with the close reason our spec gives for an oversized frame and a
    lingering close after it.

    Tornado answers a frame over the size cap with a 1009 close frame and closes the socket at
    once, with the rest of the frame still unread; the kernel then resets the connection and
    the client, typically still sending, often loses the close frame and sees 1006. Instead the
    socket is half-closed after the close frame is flushed and its input drained (and dropped)
    for up to LINGER_S before it is closed.
    """

    LINGER_S = 2.0
    _linger_wanted = False
    _lingering: asyncio.Future | None = None

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if self._lingering is not None:
            return  # the drain closes the stream when it is done
        if code == CLOSE_TOO_BIG and not self.server_terminated:
            reason = "payload too large"
            self._linger_wanted = True
            log.warning("payload.large: inbound frame over %d bytes; closing",
                        self.params.max_message_size, extra={"data": {
                            "surface": "ws-inbound", "limit": self.params.max_message_size,
                            "reason": "frame too large"}})
        super().close(code, reason)

    def _abort(self) -> None:
        if self._lingering is not None:
            self.client_terminated = self.server_terminated = True
            return
        stream = self.stream
        if self._linger_wanted and stream is not None and not stream.closed():
            self.client_terminated = self.server_terminated = True
            self._lingering = asyncio.ensure_future(self._drain_then_close(stream))
            return
        super()._abort()

    async def _drain_then_close(self, stream: Any) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.LINGER_S
        try:
            await asyncio.wait_for(stream.write(b""), self.LINGER_S)  # the close frame is out
            stream.socket.shutdown(socket.SHUT_WR)
            while (left := deadline - loop.time()) > 0:
                await asyncio.wait_for(stream.read_bytes(1 << 16, partial=True), left)
        except (StreamClosedError, asyncio.TimeoutError, OSError, AttributeError):
            pass
        finally:
            stream.close()
