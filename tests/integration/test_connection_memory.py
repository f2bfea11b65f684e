"""Memory per idle connection (issue 11): an authenticated, idle socket must cost the gateway
about what it costs a bare Tornado WebSocket server (bench/bare_server.py), measured the same
way side by side. bench/connections.py measures it over 10,000 connections; this is the short
version that guards against a regression.

Before the fix the gateway kept ~1.5x the bare server's memory per connection: more than 30
instance attributes on the handler and on the protocol (whose class was swapped after
creation) gave each socket two full instance dicts, plus four frozensets and a wrapper
coroutine per socket.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import TOKEN, free_port, wait_until

BENCH = Path(__file__).resolve().parents[2] / "bench"
BARE_SERVER = BENCH / "bare_server.py"
sys.path.insert(0, str(BENCH))
import loadgen  # noqa: E402

CONNECTIONS = 1500
# bench/connections.py's target is 1.2 over 10,000 connections; 1,500 are noisier (allocator
# arenas), so the margin is wider, and still well below the ~1.5 this guards against.
MAX_RATIO = 1.35


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def _open(url: str, count: int) -> list:
    """`count` sockets that each completed the connect handshake with the token (hello-ok).

    The client is bench/loadgen.py's raw RFC 6455 asyncio client: it opens hundreds of sockets
    a second on one core, where the `websockets` client stalls on Nagle's algorithm."""
    sem = asyncio.Semaphore(500)

    async def one():
        async with sem:
            return await loadgen.open_conn(loadgen.WSConn, url, TOKEN, "cli", 30)

    return await asyncio.gather(*(one() for _ in range(count)))


async def _per_connection(url: str, pid: int) -> float:
    """KiB of server RSS per idle connection: (RSS with `CONNECTIONS` held - RSS idle) / N."""
    warm = await _open(url, 1)  # first-use imports and caches are not per connection
    await asyncio.sleep(1.0)  # part of the measurement: RSS settles (no event to wait for)
    idle = rss_kb(pid)
    socks = await _open(url, CONNECTIONS)
    try:
        await asyncio.sleep(1.5)  # part of the measurement, as above
        return (rss_kb(pid) - idle) / CONNECTIONS
    finally:
        for conn in socks + warm:
            conn.close()
        await asyncio.sleep(0.2)  # courtesy to the server before the next measurement


def test_idle_connection_costs_about_what_bare_tornado_costs(gateway) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < CONNECTIONS + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * CONNECTIONS), hard))
    port = free_port()
    bare = subprocess.Popen([sys.executable, str(BARE_SERVER), "--port", str(port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            cwd=str(BARE_SERVER.parent))
    try:
        import httpx
        wait_until(lambda: _ready(httpx, port), 15, what="bare server /readyz")
        gw_kb = asyncio.run(_per_connection(gateway.url, gateway.proc.pid))
        bare_kb = asyncio.run(_per_connection(f"ws://127.0.0.1:{port}", bare.pid))
    finally:
        try:
            os.killpg(bare.pid, signal.SIGTERM)
            bare.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(bare.pid, signal.SIGKILL)
            bare.wait(5)
    print(f"RSS per idle connection: gateway {gw_kb:.1f} KiB, bare {bare_kb:.1f} KiB")
    assert bare_kb > 4, f"bare server RSS per connection {bare_kb:.1f} KiB: measurement broken"
    assert gw_kb <= MAX_RATIO * bare_kb, (
        f"gateway {gw_kb:.1f} KiB per idle connection, bare Tornado {bare_kb:.1f} KiB "
        f"(ratio {gw_kb / bare_kb:.2f}, limit {MAX_RATIO})")


def _ready(httpx, port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.05)
        return False
