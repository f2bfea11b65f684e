"""Tornado's WebSocket protocol with the close our spec wants for an oversized frame."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketProtocol13

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
    # Outbound text frames (queue_text): at most one stream write in flight.
    _queued: list[bytes] | None = None
    _queued_bytes = 0
    _writing_bytes = 0
    _writing = False
    _scheduled = False

    @property
    def unsent_bytes(self) -> int:
        """Payload bytes of queued frames not yet handed to the kernel."""
        return self._queued_bytes + self._writing_bytes

    def queue_text(self, message: bytes) -> None:
        """Send a text frame. While a write is in flight, frames wait here and then go out
        together in one write.

        Tornado's write_message costs a stream future, a callback with its Context and a
        Task per frame; for a client that stopped reading, every event queued behind its
        full socket kept those (tens of thousands, over 100 MB) until the unsent-bytes limit
        closed it. Waiting frames here cost their bytes, and fan-out makes fewer syscalls.
        """
        if self.stream.closed() or self.is_closing():
            raise WebSocketClosedError()
        if self._queued is None:
            self._queued = []
        self._queued += (text_frame_header(len(message)), message)
        self._queued_bytes += len(message)
        self._message_bytes_out += len(message)
        if not self._writing and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_queued)

    def _flush_queued(self) -> None:
        self._scheduled = False
        if self._writing or not self._queued:
            return
        data, size = self._take_queued()
        try:
            fut = self.stream.write(data)
        except StreamClosedError:
            return
        self._writing, self._writing_bytes = True, size
        fut.add_done_callback(self._flushed)

    def _flushed(self, fut: asyncio.Future) -> None:
        self._writing, self._writing_bytes = False, 0
        if fut.cancelled() or fut.exception() is not None:
            self._take_queued()  # the socket is gone: drop what waits
            return
        self._flush_queued()

    def _take_queued(self) -> tuple[bytes, int]:
        data, size = b"".join(self._queued or ()), self._queued_bytes
        self._queued, self._queued_bytes = None, 0
        return data, size

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if self._lingering is not None:
            return  # the drain closes the stream when it is done
        if self._queued and not self.stream.closed():
            try:  # frames queued before the close frame go out before it
                self.stream.write(self._take_queued()[0])
            except StreamClosedError:
                pass
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


def text_frame_header(size: int) -> bytes:
    """FIN + text opcode and the payload length; a server's frames are not masked (RFC 6455)."""
    if size < 126:
        return struct.pack("!BB", 0x81, size)
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size)
    return struct.pack("!BBQ", 0x81, 127, size)
