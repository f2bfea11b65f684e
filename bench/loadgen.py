"""Load generator for the gateway's WebSocket protocol (protocol.md §3, §5): throughput,
sequential latency and a connection storm, against the gateway or bench/bare_server.py.

The client is built so that it is not the bottleneck on a 2-core machine shared with the
server under test:

- a raw asyncio `Protocol` speaking RFC 6455 by hand: one `transport.write` per batch of
  requests, frames parsed in place, response frames checked by prefix only (no JSON decode on
  the hot path; the handshake frames are decoded fully);
- client frames are masked with the all-zero key (valid framing: the server unmasks exactly
  as it would with any key, so its cost is unchanged; the client saves the XOR);
- work runs in `--procs` worker processes (multiprocessing, spawn), each reporting the CPU
  time it used inside the measured window, so the report shows the client's share.

Modes (CLI subcommands; bench/run.py and bench/sessions.py call the same functions):
  throughput  N connections x K requests in flight, `health` (or any --method with --params)
              for D s after a W s warm-up; --latency also records each request's round trip
              (p50/p90/p99 under load)
  latency     one connection, one request at a time, M requests: p50/p90/p99
  storm       C connections that handshake and stay open, then all send one `health` at the
              same instant (a cross-process barrier on CLOCK_MONOTONIC); RSS of --server-pid
              before and with all connected, per extra connection

Example:
  .venv/bin/python bench/loadgen.py --url ws://127.0.0.1:18789 --token T --server-pid 1234 \\
      throughput --connections 4 --inflight 8 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import queue
import resource
import socket
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlparse

ZERO_MASK = b"\x00\x00\x00\x00"
OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RES_PREFIX = b'{"type":"res"'
EVENT_PREFIX = b'{"type":"event"'
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- small helpers


def raise_nofile_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of another process, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def proc_rss_kb(pid: int) -> int | None:
    """VmRSS of a process in KiB."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


class Sampler:
    """CPU usage of the server, this machine, between two snapshots."""

    def __init__(self, server_pid: int | None):
        self.server_pid = server_pid

    def snap(self) -> dict:
        busy, total = machine_jiffies()
        return {"t": time.monotonic(), "server_cpu": proc_cpu_seconds(self.server_pid) if self.server_pid else None,
                "busy": busy, "total": total}

    @staticmethod
    def delta(a: dict, b: dict) -> dict:
        wall = b["t"] - a["t"]
        out: dict[str, Any] = {"wall_s": wall}
        if a["server_cpu"] is not None and b["server_cpu"] is not None and wall > 0:
            out["server_cpu_pct"] = 100.0 * (b["server_cpu"] - a["server_cpu"]) / wall
        jiffies = b["total"] - a["total"]
        if jiffies > 0:
            out["machine_busy_pct"] = 100.0 * (b["busy"] - a["busy"]) / jiffies * (os.cpu_count() or 1)
        return out


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def text_frame(payload: bytes) -> bytes:
    """A masked (all-zero key) client text frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + ZERO_MASK + payload


def close_frame(code: int = 1000) -> bytes:
    body = code.to_bytes(2, "big")
    return bytes((0x88, 0x80 | len(body))) + ZERO_MASK + body


def health_frame(req_id: bytes) -> bytes:
    return text_frame(b'{"type":"req","id":"%s","method":"health"}' % req_id)


def request_frame(req_id: bytes, method: str = "health", params: Any = None) -> bytes:
    """A request frame for any method; `params` is JSON-encoded (None: no params field)."""
    if method == "health" and params is None:
        return health_frame(req_id)
    body = b'{"type":"req","id":"%s","method":%s' % (req_id, json.dumps(method).encode())
    if params is not None:
        body += b',"params":' + json.dumps(params, separators=(",", ":")).encode()
    return text_frame(body + b"}")


def connect_params(token: str | None, mode: str) -> dict:
    params: dict[str, Any] = {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "bench", "version": "1.0.0", "platform": sys.platform, "mode": mode},
        "role": "operator", "scopes": ["operator.read"],
    }
    if token:
        params["auth"] = {"token": token}
    return params


def upgrade_request(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "\r\n").encode()


def parse_frames(data: bytes | bytearray, out: list) -> int:
    """Append (opcode, fin, payload) for each complete server frame in `data` to `out`;
    returns the number of bytes consumed. Server frames are never masked."""
    pos, n = 0, len(data)
    while n - pos >= 2:
        length = data[pos + 1] & 0x7F
        head = 2
        if length == 126:
            if n - pos < 4:
                break
            length = (data[pos + 2] << 8) | data[pos + 3]
            head = 4
        elif length == 127:
            if n - pos < 10:
                break
            length = int.from_bytes(data[pos + 2:pos + 10], "big")
            head = 10
        end = pos + head + length
        if end > n:
            break
        b0 = data[pos]
        out.append((b0 & 0x0F, b0 & 0x80, bytes(data[pos + head:end])))
        pos = end
    return pos


class HandshakeRefused(Exception):
    """The server answered `connect` with ok:false, or closed the socket during the handshake."""


# --------------------------------------------------------------------------- asyncio client


class WSConn(asyncio.Protocol):
    """One protocol connection: upgrade, challenge, connect → hello-ok, then `on_res` for each
    response frame (subclass hook). `ready` resolves after hello-ok or fails with the reason."""

    def __init__(self, host: str, port: int, path: str, token: str | None, mode: str):
        self.host, self.port, self.path = host, port, path
        self.connect_req = text_frame(json.dumps(
            {"type": "req", "id": "c", "method": "connect", "params": connect_params(token, mode)},
            separators=(",", ":")).encode())
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future = loop.create_future()
        self.closed: asyncio.Future = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.state = "challenge"
        self.close_code: int | None = None
        self.events = 0
        self._frag: list[bytes] = []
        self._frag_op = 0
        self._frames: list = []
        self._out: list[bytes] = []

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.write(upgrade_request(self.host, self.port, self.path))

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buf[:self.buf.find(b"\r\n")])
            rest = bytes(self.buf[end + 4:])
            self.buf = bytearray()
            if b" 101 " not in status + b" ":
                self._fail(HandshakeRefused(f"upgrade refused: {status.decode(errors='replace')}"))
                self.transport.close()
                return
            self.upgraded = True
            if not rest:
                return
            data = rest
        if self.buf:
            self.buf += data
            data = self.buf
        frames = self._frames
        used = parse_frames(data, frames)
        self.buf = bytearray(data[used:]) if used < len(data) else bytearray()
        for opcode, fin, payload in frames:
            if opcode == OP_TEXT or opcode == OP_BIN or opcode == OP_CONT:
                if not fin or opcode == OP_CONT:
                    if opcode != OP_CONT:
                        self._frag_op = opcode
                    self._frag.append(payload)
                    if not fin:
                        continue
                    payload, self._frag = b"".join(self._frag), []
                self._on_text(payload)
            elif opcode == OP_CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._fail(HandshakeRefused(f"closed {self.close_code} {payload[2:].decode(errors='replace')}"))
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.write(close_frame(self.close_code if self.close_code != 1005 else 1000))
                    self.transport.close()
            elif opcode == OP_PING:
                self._out.append(bytes((0x8A, 0x80 | len(payload))) + ZERO_MASK + payload)
        frames.clear()
        if self._out:
            self.transport.write(b"".join(self._out))
            self._out.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(HandshakeRefused(f"connection lost: {exc or 'closed'}"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)
        self.on_lost()

    # -- protocol

    def _fail(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
            self.ready.exception()  # retrieved: callers may have stopped waiting

    def _on_text(self, payload: bytes) -> None:
        state = self.state
        if state == "open":
            if payload.startswith(RES_PREFIX):
                self.on_res(payload)
            else:
                self.events += 1
            return
        frame = json.loads(payload)
        if state == "challenge":
            if frame.get("type") == "event" and frame.get("event") == "connect.challenge":
                self.state = "hello"
                self.transport.write(self.connect_req)
        elif state == "hello" and frame.get("type") == "res" and frame.get("id") == "c":
            if frame.get("ok"):
                self.state = "open"
                self.hello_size = len(payload)
                if not self.ready.done():
                    self.ready.set_result(frame["payload"])
            else:
                self._fail(HandshakeRefused(f"connect refused: {frame.get('error')}"))

    def send(self, data: bytes) -> None:
        """Queue a frame; flushed once at the end of the current data_received (or now)."""
        self._out.append(data)

    def flush(self) -> None:
        if self._out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(close_frame())
            self.transport.close()

    # -- hooks

    def on_res(self, payload: bytes) -> None:
        pass

    def on_lost(self) -> None:
        pass


async def open_conn(cls, url: str, token: str | None, mode: str, timeout: float, **kw: Any) -> WSConn:
    parsed = urlparse(url)
    host, port, path = parsed.hostname or "127.0.0.1", parsed.port or 80, parsed.path or "/"
    loop = asyncio.get_running_loop()
    transport, conn = await asyncio.wait_for(
        loop.create_connection(lambda: cls(host, port, path, token, mode, **kw), host, port), timeout)
    try:
        await asyncio.wait_for(asyncio.shield(conn.ready), timeout)
    except BaseException:
        transport.close()
        raise
    return conn


# --------------------------------------------------------------------------- throughput


# Request frames are prebuilt: ids cycle through ID_CYCLE values, far more than the requests
# a connection has in flight, so no two outstanding requests share an id.
ID_CYCLE = 4096


class LoadConn(WSConn):
    """Keeps `inflight` requests (`health` unless `method`/`params` say otherwise) outstanding
    while `running`.

    After the handshake `data_received` takes a fast path that walks the frames in place:
    no payload copies, no JSON, one `transport.write` for all the requests a read triggers.
    With `latency` set, the send time of each request is kept by its id slot and the answer's
    id (the `"id":"<conn>-<slot>"` right after the frame's `{"type":"res"` prefix) is read to
    append the round trip to `stats["samples"]` while `stats["measuring"]` is true.
    """

    def __init__(self, *args: Any, stats: dict, inflight: int, conn_no: int = 0,
                 method: str = "health", params: Any = None, latency: bool = False) -> None:
        super().__init__(*args)
        self.stats = stats
        self.inflight = inflight
        self.outstanding = 0
        self.seq = 0
        self.running = False
        # A list of params objects is sent in turn (e.g. distinct offsets, so no two requests
        # in flight are identical and none can share another's answer).
        choices = params if isinstance(params, list) and params else [params]
        self.frames_cycle = [request_frame(b"%d-%d" % (conn_no, i), method,
                                           choices[(conn_no + i) % len(choices)])
                             for i in range(ID_CYCLE)]
        self.latency = latency
        self.sent_at = [0.0] * ID_CYCLE if latency else None
        # Where the id's slot number starts inside a response payload: after `{"type":"res",
        # "id":"<conn_no>-`.
        self.id_at = len(RES_PREFIX) + len(b',"id":"') + len(b"%d-" % conn_no)

    def start(self) -> None:
        self.running = True
        for _ in range(self.inflight):
            self._send_one()
        self.flush()

    def _send_one(self) -> None:
        self.seq += 1
        self.outstanding += 1
        slot = self.seq % ID_CYCLE
        if self.sent_at is not None:
            self.sent_at[slot] = time.perf_counter()
        self.send(self.frames_cycle[slot])

    def _latency_of(self, data: bytes, start: int, now: float) -> None:
        at = start + self.id_at
        end = data.find(b'"', at, at + 12)
        if end > at and self.stats["measuring"]:
            self.stats["samples"].append(now - self.sent_at[int(data[at:end])])

    def on_res(self, payload: bytes) -> None:
        self.outstanding -= 1
        stats = self.stats
        if b'"ok":true' in payload[:96]:
            stats["ok"] += 1
            stats["bytes"] += len(payload)
        else:
            stats["errors"] += 1
        if self.sent_at is not None:
            self._latency_of(payload, 0, time.perf_counter())
        if self.running:
            self._send_one()

    def data_received(self, data: bytes) -> None:
        if self.state != "open":
            super().data_received(data)
            return
        if self.buf:
            self.buf += data
            data = bytes(self.buf)
        pos, n = 0, len(data)
        ok = errors = nbytes = other = 0
        now = time.perf_counter() if self.sent_at is not None else 0.0
        while n - pos >= 2:
            b0 = data[pos]
            length = data[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > n:
                break
            if b0 != 0x81:  # not a single-frame text message: leave it to the general path
                other = 1
                break
            start = pos + head
            if data.startswith(RES_PREFIX, start):
                if data.find(b'"ok":true', start, min(end, start + 96)) >= 0:
                    ok += 1
                    nbytes += length
                else:
                    errors += 1
                if now:
                    self._latency_of(data, start, now)
            else:
                self.events += 1
            pos = end
        answered = ok + errors
        if answered:
            stats = self.stats
            stats["ok"] += ok
            stats["errors"] += errors
            stats["bytes"] += nbytes
            self.outstanding -= answered
            if self.running:
                cycle, seq = self.frames_cycle, self.seq
                if now:
                    sent_at, stamp = self.sent_at, time.perf_counter()
                    for i in range(1, answered + 1):
                        sent_at[(seq + i) % ID_CYCLE] = stamp
                self.transport.write(b"".join([cycle[(seq + i) % ID_CYCLE] for i in range(1, answered + 1)]))
                self.seq = seq + answered
                self.outstanding += answered
        rest = data[pos:]
        self.buf = bytearray()
        if other:
            super().data_received(rest)  # close, ping or a fragmented message
        elif rest:
            self.buf = bytearray(rest)

    def on_lost(self) -> None:
        if self.running:
            self.stats["lost"] += 1
        self.running = False


async def _throughput_worker(url: str, token: str | None, mode: str, connections: int,
                             inflight: int, warmup: float, duration: float,
                             ready_q, go, start_at, method: str = "health", params: Any = None,
                             latency: bool = False) -> dict:
    stats: dict[str, Any] = {"ok": 0, "errors": 0, "bytes": 0, "lost": 0, "measuring": False,
                             "samples": []}
    conns: list[LoadConn] = []
    for i in range(connections):
        conns.append(await open_conn(LoadConn, url, token, mode, 15.0, stats=stats, inflight=inflight,
                                     conn_no=i, method=method, params=params, latency=latency))
    ready_q.put(("ready", os.getpid(), {"connections": len(conns)}))
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, go.wait, 120):
        raise RuntimeError("no start signal from the parent")
    t0 = start_at.value
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    for conn in conns:
        conn.start()
    await asyncio.sleep(max(0.0, t0 + warmup - time.monotonic()))
    ok0, err0, bytes0, cpu0, w0 = stats["ok"], stats["errors"], stats["bytes"], cpu_seconds(), time.monotonic()
    stats["measuring"] = True
    await asyncio.sleep(max(0.0, t0 + warmup + duration - time.monotonic()))
    ok1, err1, bytes1, cpu1, w1 = stats["ok"], stats["errors"], stats["bytes"], cpu_seconds(), time.monotonic()
    stats["measuring"] = False
    for conn in conns:
        conn.running = False
    deadline = time.monotonic() + 5.0
    while any(c.outstanding > 0 and not c.closed.done() for c in conns) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    for conn in conns:
        conn.close()
    await asyncio.sleep(0.05)
    ok = ok1 - ok0
    return {"ok": ok, "errors": err1 - err0, "lost": stats["lost"], "wall_s": w1 - w0,
            "client_cpu_s": cpu1 - cpu0, "avg_response_bytes": (bytes1 - bytes0) / ok if ok else 0,
            "events": sum(c.events for c in conns), "samples": stats["samples"]}


def _throughput_entry(url, token, mode, connections, inflight, warmup, duration, method, params,
                      latency, ready_q, go, start_at, result_q) -> None:
    raise_nofile_limit()
    try:
        result = asyncio.run(_throughput_worker(url, token, mode, connections, inflight, warmup,
                                                duration, ready_q, go, start_at, method, params,
                                                latency))
        result_q.put(("result", os.getpid(), result))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        result_q.put(("error", os.getpid(), f"{type(exc).__name__}: {exc}"))


def _split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _start_workers(target, per_worker_args: list[tuple]) -> tuple[list, Any, Any, Any, Any]:
    ctx = mp.get_context("spawn")
    ready_q, result_q = ctx.Queue(), ctx.Queue()
    go, start_at = ctx.Event(), ctx.Value("d", 0.0)
    procs = []
    for args in per_worker_args:
        proc = ctx.Process(target=target, args=(*args, ready_q, go, start_at, result_q), daemon=True)
        proc.start()
        procs.append(proc)
    return procs, ready_q, result_q, go, start_at


def _wait_ready(procs: list, ready_q, result_q, timeout: float) -> list[dict]:
    ready: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(ready) < len(procs):
        try:
            kind, _, info = ready_q.get(timeout=0.2)
            ready.append(info)
            continue
        except queue.Empty:
            pass
        try:
            kind, pid, info = result_q.get_nowait()
            raise RuntimeError(f"load worker {pid} failed before start: {info}")
        except queue.Empty:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("load workers did not get ready in time")
        if any(not p.is_alive() for p in procs) and ready_q.empty() and result_q.empty():
            raise RuntimeError("a load worker died before start")
    return ready


def _collect(procs: list, result_q, timeout: float) -> list[dict]:
    results: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(results) < len(procs):
        try:
            kind, pid, info = result_q.get(timeout=max(0.05, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError("load workers did not report in time") from None
        if kind == "error":
            raise RuntimeError(f"load worker {pid} failed: {info}")
        results.append(info)
    return results


def _stop_workers(procs: list) -> None:
    for proc in procs:
        proc.join(timeout=5)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=2)


def run_throughput(url: str, token: str | None, *, server_pid: int | None = None,
                   connections: int = 4, inflight: int = 8, warmup: float = 2.0,
                   duration: float = 10.0, procs: int = 1, mode: str = "cli",
                   method: str = "health", params: Any = None, latency: bool = False) -> dict:
    """N connections x K in flight of `method` (default `health`; `params` any JSON value or
    None for no params), split over `procs` worker processes. With `latency`, also the
    p50/p90/p99/max round trip of the requests answered in the measured window."""
    split = _split(connections, procs)
    workers, ready_q, result_q, go, start_at = _start_workers(
        _throughput_entry, [(url, token, mode, n, inflight, warmup, duration, method, params, latency)
                            for n in split])
    try:
        _wait_ready(workers, ready_q, result_q, 60)
        sampler = Sampler(server_pid)
        t0 = time.monotonic() + 0.2
        start_at.value = t0
        go.set()
        time.sleep(max(0.0, t0 + warmup - time.monotonic()))
        s0 = sampler.snap()
        time.sleep(max(0.0, t0 + warmup + duration - time.monotonic()))
        s1 = sampler.snap()
        results = _collect(workers, result_q, 30)
    finally:
        _stop_workers(workers)
    window = max(r["wall_s"] for r in results)
    ok = sum(r["ok"] for r in results)
    client_cpu = sum(r["client_cpu_s"] for r in results)
    out = {"mode": "throughput", "connections": connections, "inflight": inflight,
           "warmup_s": warmup, "duration_s": duration, "client_procs": len(split),
           "requests": ok, "errors": sum(r["errors"] for r in results),
           "lost_connections": sum(r["lost"] for r in results),
           "rps": ok / window if window > 0 else 0.0,
           "client_cpu_pct": 100.0 * client_cpu / window if window > 0 else 0.0,
           "avg_response_bytes": (sum(r["avg_response_bytes"] * r["ok"] for r in results) / ok) if ok else 0}
    out.update(Sampler.delta(s0, s1))
    if "machine_busy_pct" in out and "server_cpu_pct" in out:
        # Everything else on the machine (other users, the kernel's softirq work, this parent).
        out["other_cpu_pct"] = max(0.0, out["machine_busy_pct"] - out["server_cpu_pct"] - out["client_cpu_pct"])
    if "server_cpu_pct" in out and ok:
        out["server_cpu_us_per_req"] = out["server_cpu_pct"] / 100.0 * out["wall_s"] / ok * 1e6
    if ok:
        out["client_cpu_us_per_req"] = client_cpu / ok * 1e6
    if method != "health" or params is not None:
        out["method"], out["params"] = method, params
    if latency:
        samples = sorted(x * 1000.0 for r in results for x in r["samples"])
        out["latency_samples"] = len(samples)
        if samples:
            out.update(p50_ms=percentile(samples, 50), p90_ms=percentile(samples, 90),
                       p99_ms=percentile(samples, 99), max_ms=samples[-1])
    return out


# --------------------------------------------------------------------------- sequential latency


class SyncConn:
    """A blocking-socket client for the latency test: the fewest client steps per request."""

    def __init__(self, url: str, token: str | None, mode: str = "cli", timeout: float = 10.0):
        parsed = urlparse(url)
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.frames: list = []
        self.sock.sendall(upgrade_request(host, port, parsed.path or "/"))
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        end = self.buf.find(b"\r\n\r\n")
        if b" 101 " not in bytes(self.buf[:self.buf.find(b"\r\n")]) + b" ":
            raise HandshakeRefused(bytes(self.buf[:end]).decode(errors="replace"))
        del self.buf[:end + 4]
        challenge = json.loads(self.next_text())
        assert challenge.get("event") == "connect.challenge", challenge
        self.sock.sendall(text_frame(json.dumps(
            {"type": "req", "id": "c", "method": "connect", "params": connect_params(token, mode)}).encode()))
        hello = json.loads(self.next_text())
        if not hello.get("ok"):
            raise HandshakeRefused(str(hello.get("error")))

    def _recv(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def next_text(self) -> bytes:
        while True:
            if not self.frames:
                used = parse_frames(self.buf, self.frames)
                del self.buf[:used]
                if not self.frames:
                    self._recv()
                    continue
            opcode, _fin, payload = self.frames.pop(0)
            if opcode == OP_TEXT:
                return payload
            if opcode == OP_CLOSE:
                raise ConnectionError(f"server closed: {payload[:2].hex()} {payload[2:]!r}")

    def request(self, frame: bytes) -> bytes:
        self.sock.sendall(frame)
        while True:
            payload = self.next_text()
            if payload.startswith(RES_PREFIX):
                return payload

    def close(self) -> None:
        try:
            self.sock.sendall(close_frame())
        except OSError:
            pass
        self.sock.close()


def run_latency(url: str, token: str | None, *, requests: int = 2000, warmup: int = 200,
                mode: str = "cli") -> dict:
    conn = SyncConn(url, token, mode)
    samples: list[float] = []
    errors = 0
    try:
        frames = [health_frame(b"%d" % i) for i in range(warmup + requests)]
        for i in range(warmup):
            conn.request(frames[i])
        cpu0, t_start = cpu_seconds(), time.perf_counter()
        for i in range(warmup, warmup + requests):
            t0 = time.perf_counter()
            payload = conn.request(frames[i])
            samples.append((time.perf_counter() - t0) * 1000.0)
            if b'"ok":true' not in payload[:96]:
                errors += 1
        wall, cpu = time.perf_counter() - t_start, cpu_seconds() - cpu0
    finally:
        conn.close()
    samples.sort()
    return {"mode": "latency", "requests": requests, "errors": errors,
            "p50_ms": percentile(samples, 50), "p90_ms": percentile(samples, 90),
            "p99_ms": percentile(samples, 99), "max_ms": samples[-1],
            "mean_ms": statistics.fmean(samples), "client_cpu_pct": 100.0 * cpu / wall if wall else 0.0}


# --------------------------------------------------------------------------- connection storm


class StormConn(WSConn):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.answer: asyncio.Future = asyncio.get_running_loop().create_future()

    def on_res(self, payload: bytes) -> None:
        if not self.answer.done():
            self.answer.set_result((time.monotonic(), b'"ok":true' in payload[:96]))

    def on_lost(self) -> None:
        if not self.answer.done():
            self.answer.set_result((time.monotonic(), None))


async def _storm_worker(url: str, token: str | None, mode: str, count: int, concurrency: int,
                        connect_timeout: float, answer_timeout: float, ready_q, go, start_at,
                        release) -> dict:
    sem = asyncio.Semaphore(concurrency)
    outcome = {"connected": 0, "tcp_refused": 0, "handshake_refused": 0, "connect_errors": 0}
    errors: dict[str, int] = {}
    conns: list[StormConn] = []

    async def one() -> None:
        async with sem:
            try:
                conns.append(await open_conn(StormConn, url, token, mode, connect_timeout))
                outcome["connected"] += 1
            except ConnectionRefusedError:
                outcome["tcp_refused"] += 1
            except HandshakeRefused as exc:
                outcome["handshake_refused"] += 1
                errors[str(exc)[:120]] = errors.get(str(exc)[:120], 0) + 1
            except (OSError, asyncio.TimeoutError) as exc:
                outcome["connect_errors"] += 1
                key = f"{type(exc).__name__}: {exc}"[:120]
                errors[key] = errors.get(key, 0) + 1

    t_connect = time.monotonic()
    await asyncio.gather(*(one() for _ in range(count)))
    connect_s = time.monotonic() - t_connect
    ready_q.put(("ready", os.getpid(), {**outcome, "connect_s": connect_s}))
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, go.wait, 120):
        raise RuntimeError("no start signal from the parent")
    t0 = start_at.value
    # Busy-wait the last stretch so every worker fires within a few microseconds of t0.
    await asyncio.sleep(max(0.0, t0 - time.monotonic() - 0.005))
    while time.monotonic() < t0:
        pass
    fired = time.monotonic()
    sent = 0
    req = health_frame(b"storm")
    for conn in conns:
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(req)
            sent += 1
    send_s = time.monotonic() - fired
    done, pending = await asyncio.wait([c.answer for c in conns], timeout=answer_timeout) if conns else (set(), set())
    answered = refused = dropped = 0
    last = t0
    for conn in conns:
        if conn.answer.done():
            when, ok = conn.answer.result()
            if ok is None:
                dropped += 1
            else:
                last = max(last, when)
                if ok:
                    answered += 1
                else:
                    refused += 1
        else:
            dropped += 1  # no answer within answer_timeout
    result = {**outcome, "connect_s": connect_s, "sent": sent, "send_s": send_s,
              "answered": answered, "refused": refused, "dropped": dropped, "last_answer": last,
              "still_open": sum(1 for c in conns if not c.closed.done()),
              "errors": errors}
    ready_q.put(("answered", os.getpid(), result))
    await loop.run_in_executor(None, release.wait, 120)
    for conn in conns:
        conn.close()
    await asyncio.sleep(0.2)
    return result


def _storm_entry(url, token, mode, count, concurrency, connect_timeout, answer_timeout, release,
                 ready_q, go, start_at, result_q) -> None:
    raise_nofile_limit()
    try:
        result = asyncio.run(_storm_worker(url, token, mode, count, concurrency, connect_timeout,
                                           answer_timeout, ready_q, go, start_at, release))
        result_q.put(("result", os.getpid(), result))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        result_q.put(("error", os.getpid(), f"{type(exc).__name__}: {exc}"))


def run_storm(url: str, token: str | None, *, server_pid: int | None = None, connections: int = 1000,
              procs: int = 1, concurrency: int = 1000, connect_timeout: float = 30.0,
              answer_timeout: float = 30.0, settle: float = 1.0, mode: str = "cli") -> dict:
    """C connections handshake and stay open; then all send one `health` at the same instant."""
    split = _split(connections, procs)
    ctx = mp.get_context("spawn")
    release = ctx.Event()
    per_conc = max(1, concurrency // len(split))
    rss_before = proc_rss_kb(server_pid) if server_pid else None
    workers, ready_q, result_q, go, start_at = _start_workers(
        _storm_entry, [(url, token, mode, n, per_conc, connect_timeout, answer_timeout, release) for n in split])
    try:
        ready = _wait_ready(workers, ready_q, result_q, connect_timeout + 60)
        time.sleep(settle)  # let the server finish registering before reading its memory
        rss_connected = proc_rss_kb(server_pid) if server_pid else None
        sampler = Sampler(server_pid)
        s0 = sampler.snap()
        t0 = time.monotonic() + 0.3
        start_at.value = t0
        go.set()
        answered = _wait_ready(workers, ready_q, result_q, answer_timeout + 30)
        s1 = sampler.snap()
        rss_after = proc_rss_kb(server_pid) if server_pid else None
        release.set()
        _collect(workers, result_q, 30)
    finally:
        release.set()
        _stop_workers(workers)
    connected = sum(r["connected"] for r in ready)
    errors: dict[str, int] = {}
    for r in answered:
        for key, n in r["errors"].items():
            errors[key] = errors.get(key, 0) + n
    out = {"mode": "storm", "connections": connections, "client_procs": len(split),
           "connect_concurrency": per_conc * len(split), "client_mode": mode,
           "connected": connected,
           "tcp_refused": sum(r["tcp_refused"] for r in ready),
           "handshake_refused": sum(r["handshake_refused"] for r in ready),
           "connect_errors": sum(r["connect_errors"] for r in ready),
           "connect_s": max(r["connect_s"] for r in ready),
           "sent": sum(r["sent"] for r in answered),
           "answered": sum(r["answered"] for r in answered),
           "refused": sum(r["refused"] for r in answered),
           "dropped": sum(r["dropped"] for r in answered),
           "all_answered_ms": (max(r["last_answer"] for r in answered) - t0) * 1000.0,
           "send_ms": max(r["send_s"] for r in answered) * 1000.0,
           "still_open": sum(r["still_open"] for r in answered),
           "rss_before_kb": rss_before, "rss_connected_kb": rss_connected, "rss_after_burst_kb": rss_after,
           "errors": errors}
    if rss_before is not None and rss_connected is not None and connected:
        out["rss_per_conn_kb"] = (rss_connected - rss_before) / connected
    if s0["server_cpu"] is not None and s1["server_cpu"] is not None:
        out["burst_server_cpu_ms"] = (s1["server_cpu"] - s0["server_cpu"]) * 1000.0
    return out


# --------------------------------------------------------------------------- CLI


def _print(result: dict) -> None:
    for key, value in result.items():
        if isinstance(value, float):
            value = f"{value:,.3f}"
        print(f"  {key:<24} {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT")
    parser.add_argument("--token", default=None, help="gateway token (the bare server ignores it)")
    parser.add_argument("--server-pid", type=int, default=None, help="read CPU and RSS of this process")
    parser.add_argument("--procs", type=int, default=1, help="client worker processes (default 1)")
    parser.add_argument("--client-mode", default="cli",
                        help="connect client.mode (default cli, untracked by presence)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    sub = parser.add_subparsers(dest="cmd", required=True)
    tp = sub.add_parser("throughput")
    tp.add_argument("--connections", "-n", type=int, default=4)
    tp.add_argument("--inflight", "-k", type=int, default=8)
    tp.add_argument("--warmup", type=float, default=2.0)
    tp.add_argument("--duration", "-d", type=float, default=10.0)
    tp.add_argument("--method", default="health", help="request method (default health)")
    tp.add_argument("--params", default=None, type=json.loads,
                    help="request params as JSON (default: none), e.g. '{\"limit\": 20}'; a JSON "
                         "array of objects is sent in turn")
    tp.add_argument("--latency", action="store_true",
                    help="also time every answered request: p50/p90/p99 under load")
    lat = sub.add_parser("latency")
    lat.add_argument("--requests", "-m", type=int, default=2000)
    lat.add_argument("--warmup", type=int, default=200)
    st = sub.add_parser("storm")
    st.add_argument("--connections", "-c", type=int, default=1000)
    st.add_argument("--concurrency", type=int, default=1000, help="connection attempts in flight at once")
    st.add_argument("--answer-timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    nofile = raise_nofile_limit()
    if args.cmd == "throughput":
        result = run_throughput(args.url, args.token, server_pid=args.server_pid,
                                connections=args.connections, inflight=args.inflight,
                                warmup=args.warmup, duration=args.duration, procs=args.procs,
                                mode=args.client_mode, method=args.method, params=args.params,
                                latency=args.latency)
    elif args.cmd == "latency":
        result = run_latency(args.url, args.token, requests=args.requests, warmup=args.warmup,
                             mode=args.client_mode)
    else:
        result = run_storm(args.url, args.token, server_pid=args.server_pid, connections=args.connections,
                           procs=args.procs, concurrency=args.concurrency,
                           answer_timeout=args.answer_timeout, mode=args.client_mode)
    result["nofile_soft_limit"] = nofile
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.cmd} against {args.url}")
        _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
