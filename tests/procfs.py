"""Linux /proc probes that let a test wait for the condition it needs instead of sleeping:
how much a process has not yet read from a pipe, which signals it ignores or catches."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import termios
from pathlib import Path


def unread_bytes(fd: int) -> int:
    """Bytes written into the pipe (or socket) `fd` and not yet read by its reader."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def stdin_unread(pid: int) -> int:
    """Bytes waiting in the pipe that is process `pid`'s stdin: opening /proc/<pid>/fd/0
    gives another read end of the same pipe (this one never reads), for FIONREAD."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    try:
        return unread_bytes(fd)
    finally:
        os.close(fd)


def _mask(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    return 0


def ignores(pid: int, sig: signal.Signals) -> bool:
    return bool(_mask(pid, "SigIgn") >> (sig - 1) & 1)


def catches(pid: int, sig: signal.Signals) -> bool:
    return bool(_mask(pid, "SigCgt") >> (sig - 1) & 1)
