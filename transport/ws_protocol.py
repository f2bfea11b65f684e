"""Tornado's WebSocket protocol with the close our spec wants for an oversized frame, batched
text frames, and a closing handshake that survives unsent frames."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import typing
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol13

from transport.protocol import CLOSE_INVALID_DATA, CLOSE_TOO_BIG

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
    CLOSE_FLUSH_S = 5.0  # what Tornado gives a client to answer our close frame
    _linger_wanted = False
    _lingering: asyncio.Future | None = None
    _flushing_close = False
    # Outbound text frames (queue_text): at most one stream write in flight. In slots, set in
    # __init__: Tornado's protocol keeps 29 attributes in the instance dict, and past 30 names
    # CPython gives every instance a full dict of its own (~1.3 KB per socket).
    __slots__ = ("_queued", "_queued_bytes", "_writing_bytes", "_writing", "_scheduled")
    _invalid_text = False  # closed 1007: the frames behind the bad one are not run

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queued: list[bytes] | None = None
        self._queued_bytes = 0
        self._writing_bytes = 0
        self._writing = False
        self._scheduled = False

    def _handle_message(self, opcode: int, data: bytes) -> Any:
        """Text frames as Tornado decodes them, except that invalid UTF-8 closes 1007 (RFC 6455
        §8.1) instead of aborting the connection without a close frame."""
        if opcode != 0x1 or self._frame_compressed:  # compression is never negotiated
            return super()._handle_message(opcode, data)
        if self.client_terminated or self._invalid_text:
            return None
        self._message_bytes_in += len(data)
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError:
            self._invalid_text = True
            log.info("invalid UTF-8 in a text frame from %s; closing 1007",
                     getattr(self.handler, "conn_id", "?"))
            # Tornado types the handler as its delegate protocol; ours is a WebSocketHandler.
            typing.cast(WebSocketHandler, self.handler).close(CLOSE_INVALID_DATA, "invalid UTF-8")
            return None
        return self._run_callback(self.handler.on_message, decoded)

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
        if self.client_terminated and not self.stream.closed():
            self._close_after_flush(code, reason)
            return
        super().close(code, reason)

    def _close_after_flush(self, code: int | None, reason: str | None) -> None:
        """Answer the client's close frame, then close the socket once our buffered frames
        and the close frame are written (at most CLOSE_FLUSH_S).

        Tornado writes the answering close frame and closes the stream at once, which drops
        whatever is still in the stream's buffer, close frame included, when the client is
        behind in reading: the client then sees the connection end without a close frame
        (1006), and a client library waiting for that frame waits out its close timeout."""
        stream = self.stream
        try:
            if not self.server_terminated:
                self._write_frame(True, 0x8, close_payload(code, reason))
                self.server_terminated = True
            flushed = stream.write(b"")  # done when everything written before it is
        except StreamClosedError:
            self._abort()
            return
        if self._waiting is not None:
            stream.io_loop.remove_timeout(self._waiting)
            self._waiting = None
        if self._ping_coroutine:
            self._ping_coroutine.cancel()
            self._ping_coroutine = None
        self._flushing_close = True
        give_up = asyncio.get_running_loop().call_later(self.CLOSE_FLUSH_S, stream.close)

        def written(fut: asyncio.Future) -> None:
            give_up.cancel()
            if not fut.cancelled():
                fut.exception()  # a closed stream: nothing left to do, and nothing to log
            stream.close()

        flushed.add_done_callback(written)

    def _abort(self) -> None:
        if self._lingering is not None or (self._flushing_close and not self.stream.closed()):
            # Tornado aborts as soon as the client's close frame ends its read loop; the
            # drain (or the flush) closes the stream when it is done
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


def close_payload(code: int | None, reason: str | None) -> bytes:
    """A close frame's payload, as Tornado builds it: a reason without a code means 1000."""
    if code is None and reason is not None:
        code = 1000
    data = b"" if code is None else struct.pack(">H", code)
    return data + reason.encode("utf-8") if reason is not None else data


def text_frame_header(size: int) -> bytes:
    """FIN + text opcode and the payload length; a server's frames are not masked (RFC 6455)."""
    if size < 126:
        return struct.pack("!BB", 0x81, size)
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size)
    return struct.pack("!BBQ", 0x81, 127, size)
