"""Out of file descriptors (issue 11, the 10,000-connection benchmark): more connections than the
gateway's RLIMIT_NOFILE allows must wait in the listen backlog, not make the gateway spin.

Before the fix, Tornado's accept handler raised EMFILE out of the loop callback; the listening
socket stayed readable, so the loop ran it again at once: ~80 % of a core and a traceback per
call on stderr (700,000 lines in a few seconds), for as long as the limit was reached.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import OPENCLAW, TOKEN, log_records, wait_until

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import loadgen  # noqa: E402

LIMIT = 256  # the gateway's soft and hard RLIMIT_NOFILE
CONNECTIONS = 400


def start_limited(gateway_factory):
    """A gateway started under `ulimit -n LIMIT` (soft and hard, so it cannot raise its own)."""
    gw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}}, start=False)
    cmd = ["sh", "-c", f'ulimit -n {LIMIT} && exec "$0" "$@"', OPENCLAW, "gateway", "--port", str(gw.port)]
    gw.proc = subprocess.Popen(cmd, env=gw.env, stdin=subprocess.DEVNULL,
                               stdout=open(gw.stdout_path, "wb"), stderr=open(gw.stderr_path, "wb"),
                               start_new_session=True)
    gw.wait_ready()
    return gw


async def _saturate(gw) -> tuple[list, int, float]:
    """Open CONNECTIONS sockets (those past the limit time out), measure the gateway's CPU
    while the limit is reached, then close them; returns (opened, timed out, CPU share)."""
    sem = asyncio.Semaphore(200)
    opened: list = []
    failed = 0

    async def one() -> None:
        nonlocal failed
        async with sem:
            try:
                opened.append(await loadgen.open_conn(loadgen.WSConn, gw.url, TOKEN, "cli", 3))
            except (OSError, asyncio.TimeoutError, loadgen.HandshakeRefused):
                failed += 1

    await asyncio.gather(*(one() for _ in range(CONNECTIONS)))
    cpu0, t0 = loadgen.proc_cpu_seconds(gw.proc.pid), time.monotonic()
    await asyncio.sleep(1.5)
    share = (loadgen.proc_cpu_seconds(gw.proc.pid) - cpu0) / (time.monotonic() - t0)
    for conn in opened:
        conn.close()
    return opened, failed, share


async def _one_more(gw) -> None:
    conn = await loadgen.open_conn(loadgen.WSConn, gw.url, TOKEN, "cli", 10)
    conn.close()


def test_out_of_descriptors_waits_instead_of_spinning(gateway_factory) -> None:
    gw = start_limited(gateway_factory)
    opened, failed, cpu_share = asyncio.run(_saturate(gw))
    assert len(opened) > 100, f"only {len(opened)} connections opened under a limit of {LIMIT}"
    assert failed > 0, "the limit was never reached: the test measured nothing"
    assert cpu_share < 0.3, f"gateway used {cpu_share:.0%} of a core while out of descriptors"
    wait_until(lambda: len(os.listdir(f"/proc/{gw.proc.pid}/fd")) < LIMIT // 2,
               what="the gateway to close the sockets")
    asyncio.run(_one_more(gw))  # accepting resumed once descriptors were free again
    stderr = gw.stderr()
    assert "Traceback" not in stderr and len(stderr) < 20_000, stderr[-2000:]
    warnings = [r for r in log_records(gw.log_path) if r.get("level") == "warn"]
    accept = [r for r in warnings if "cannot accept connections" in r.get("message", "")]
    assert 1 <= len(accept) <= 3, accept
    assert any("open file limit" in r.get("message", "") for r in warnings if r not in accept), warnings
