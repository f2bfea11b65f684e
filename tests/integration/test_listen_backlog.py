"""The listen backlog (issue 11, the 10,000-connection benchmark): the gateway's accept queue is
as deep as the kernel allows. With the former 1024, 10,000 clients connecting at once overflowed
it while the loop was busy with handshakes (31,871 ListenOverflows in one storm) and ~1 % of
them were reset; with the kernel's maximum (net.core.somaxconn, 4096 here) none were.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


@pytest.mark.skipif(not Path("/proc/sys/net/core/somaxconn").exists() or shutil.which("ss") is None,
                    reason="needs Linux's somaxconn and ss(8) to read a listener's backlog")
def test_listener_backlog_is_the_kernel_maximum(gateway) -> None:
    # For a listening socket, ss shows the backlog in the Send-Q column.
    out = subprocess.run(["ss", "-ltnH", f"sport = :{gateway.port}"], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    backlogs = [int(line.split()[2]) for line in out.splitlines() if line.startswith("LISTEN")]
    assert backlogs, out
    assert all(b == min(somaxconn(), 65535) for b in backlogs), (backlogs, somaxconn())
