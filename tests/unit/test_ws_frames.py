"""The text frame header the gateway writes itself (transport/ws_protocol.py), checked
against RFC 6455's length encoding at each boundary."""

import struct

import pytest

from transport.ws_protocol import text_frame_header


def decode(header: bytes) -> tuple[int, int]:
    first, second = header[0], header[1]
    assert second & 0x80 == 0, "server frames are never masked"
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", header[2:4])
        assert len(header) == 4
    elif size == 127:
        (size,) = struct.unpack("!Q", header[2:10])
        assert len(header) == 10
    else:
        assert len(header) == 2
    return first, size


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 10_000_000])
def test_length_encoding(size):
    first, decoded = decode(text_frame_header(size))
    assert first == 0x81  # FIN + text
    assert decoded == size
    if size >= 126:  # the shortest form is required
        assert (size < 65536) == (len(text_frame_header(size)) == 4)
