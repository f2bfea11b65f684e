"""Chat soak (issue 11): --clients connections (50) each chatting on the `offline/echo` model
in a closed loop (chat.send, wait for the run's `final` chat event, next) for --minutes (10),
while GET /health is polled every --health-interval seconds; one gateway (bench/run.py's, token
auth, file log at warn, `maxConcurrent: 64`) on a temp state dir.

Each client has its own session and moves to a new one every --session-turns turns (50), so
sessions keep being created the way a real gateway's do, without any one transcript growing
for the whole run. At the end every session's chat.history is read back: each acknowledged
message must be there (a "lost ack" otherwise, as is an ack whose run never reached `final`).

Reported: turns/s overall and per minute, send → final latency p50/p90/p99/max (overall and per
minute), /health latency and failures, gateway RSS per minute (sampled every 10 s) and its
slope over the second half of the run (least squares), tracebacks in the gateway's log, machine
load. Verdict: RSS is flat when that slope is under --max-slope-kb-min (1024 KB/min).
Exit status 0 when flat with no errors, no lost acks, no /health failure and no traceback;
1 otherwise; 130 when interrupted.

Usage:
  .venv/bin/python bench/soak.py                         # 50 clients, 10 minutes
  .venv/bin/python bench/soak.py --minutes 3 --clients 50
  .venv/bin/python bench/soak.py --quick                 # 10 clients, 1 minute
  .venv/bin/python bench/soak.py --json --save soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import loadgen  # noqa: E402
from chat import ChatConn, chat_gateway, close_all, connect  # noqa: E402
from loadgen import percentile  # noqa: E402
from run import bench_parser, drop_tmp, fill_defaults, free_port, log, run_main  # noqa: E402

RSS_SAMPLE_S = 10.0


class Soak:
    """Counters of the whole run; per-minute buckets are keyed by minute index."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.latencies: list[float] = []
        self.per_minute: dict[int, list[float]] = {}
        self.errors: dict[str, int] = {}
        self.acked: dict[str, list[str]] = {}  # session key → acknowledged messages
        self.lost_runs = 0
        self.health: list[float] = []
        self.health_failures: list[str] = []
        self.rss: list[tuple[float, int]] = []  # (minutes since start, kB)

    def minute(self) -> int:
        return int((time.monotonic() - self.start) // 60)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def turn(conn: ChatConn, key: str, run_id: str, message: str, soak: Soak, timeout: float) -> None:
    """One chat.send and its terminal `chat` event; the message is remembered once acked."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    conn.waiters[run_id] = (done, None)  # before the send: the final may beat the ack
    t0 = time.monotonic()
    try:
        res = await asyncio.wait_for(conn.request("chat.send", {"sessionKey": key, "message": message,
                                                                "idempotencyKey": run_id}), timeout)
    except (asyncio.TimeoutError, ConnectionError) as exc:
        conn.waiters.pop(run_id, None)
        soak.error(f"send: {type(exc).__name__}")
        return
    if not res.get("ok") or res["payload"].get("status") != "started":
        conn.waiters.pop(run_id, None)
        soak.error(f"send refused: {str(res.get('error') or res.get('payload'))[:120]}")
        return
    soak.acked.setdefault(key, []).append(message)
    try:
        t1, state, _chat = await asyncio.wait_for(done, timeout)
    except (asyncio.TimeoutError, ConnectionError) as exc:
        conn.waiters.pop(run_id, None)
        soak.lost_runs += 1
        soak.error(f"acked run without final: {type(exc).__name__}")
        return
    if state != "final":
        soak.error(f"run ended {state}")
        return
    ms = (t1 - t0) * 1000.0
    soak.latencies.append(ms)
    soak.per_minute.setdefault(soak.minute(), []).append(ms)


async def client(index: int, conn: ChatConn, soak: Soak, end: float, args: argparse.Namespace) -> list[str]:
    """A closed loop of turns until `end`; returns the session keys it used."""
    keys: list[str] = []
    n = 0
    while time.monotonic() < end and not conn.closed.done():
        if n % args.session_turns == 0:
            keys.append(f"agent:main:soak-c{index}-s{len(keys)}")
        n += 1
        await turn(conn, keys[-1], f"soak-{index}-{n}", f"soak c{index} turn {n}", soak, args.timeout)
        if args.think_ms:
            await asyncio.sleep(args.think_ms / 1000)
    if conn.closed.done():
        soak.error("connection closed by the gateway")
    return keys


async def http_get(port: int, path: str, timeout: float) -> int:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        status = await asyncio.wait_for(reader.readline(), timeout)
        await asyncio.wait_for(reader.read(), timeout)
        return int(status.split()[1])
    finally:
        writer.close()


async def health_poller(port: int, soak: Soak, end: float, interval: float) -> None:
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            status = await http_get(port, "/health", 10.0)
        except (OSError, asyncio.TimeoutError, ValueError, IndexError) as exc:
            status = f"{type(exc).__name__}: {exc}"
        if status == 200:
            soak.health.append((time.monotonic() - t0) * 1000.0)
        else:
            soak.health_failures.append(f"{time.strftime('%H:%M:%S')} {status}")
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - t0)))


async def rss_sampler(pid: int, soak: Soak, end: float, quiet: bool) -> None:
    last_minute = -1
    while True:
        kb = loadgen.proc_rss_kb(pid)
        now = time.monotonic()
        if kb is not None:
            soak.rss.append(((now - soak.start) / 60.0, kb))
        if soak.minute() != last_minute:
            last_minute = soak.minute()
            log(f"minute {last_minute}: {len(soak.latencies)} turns, RSS {(kb or 0) / 1024:.1f} MB, "
                f"errors {sum(soak.errors.values())}", quiet)
        if now >= end:
            return
        await asyncio.sleep(min(RSS_SAMPLE_S, max(0.0, end - now)))


async def verify_history(conn: ChatConn, soak: Soak, timeout: float) -> int:
    """Acknowledged messages missing from their session's chat.history."""
    missing = 0
    for key, messages in soak.acked.items():
        res = await asyncio.wait_for(conn.request("chat.history", {"sessionKey": key, "limit": 1000}), timeout)
        if not res.get("ok"):
            soak.error(f"chat.history refused: {str(res.get('error'))[:120]}")
            missing += len(messages)
            continue
        seen = {part.get("text") for m in res["payload"]["messages"] if m.get("role") == "user"
                for part in m.get("content", []) if isinstance(part, dict)}
        missing += sum(1 for m in messages if m not in seen)
    return missing


def slope_kb_per_min(points: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of (minutes, kB)."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    if var == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in points) / var


def traceback_count(root: Path) -> int:
    count = 0
    for name in ("gateway.log", "stderr.txt"):
        path = root / name
        if path.exists():
            with open(path, "rb") as fh:
                count += sum(1 for line in fh if b"Traceback" in line)
    return count


async def soak_run(gw: Any, port: int, args: argparse.Namespace) -> dict:
    conns = await connect(gw.url, args.clients + 1, ("operator.read", "operator.write"))
    reader, chatters = conns[0], conns[1:]
    soak = Soak()
    end = soak.start + args.minutes * 60
    loop_cpu0, gw_cpu0 = loadgen.cpu_seconds(), loadgen.proc_cpu_seconds(gw.pid) or 0.0
    busy0 = loadgen.machine_jiffies()
    try:
        side = [asyncio.ensure_future(health_poller(port, soak, end, args.health_interval)),
                asyncio.ensure_future(rss_sampler(gw.pid, soak, end, args.quiet))]
        keys = await asyncio.gather(*(client(i, c, soak, end, args) for i, c in enumerate(chatters)))
        await asyncio.gather(*side)
        elapsed = time.monotonic() - soak.start
        busy1 = loadgen.machine_jiffies()
        cpu = {"gateway_cpu_pct": 100.0 * ((loadgen.proc_cpu_seconds(gw.pid) or 0.0) - gw_cpu0) / elapsed,
               "bench_cpu_pct": 100.0 * (loadgen.cpu_seconds() - loop_cpu0) / elapsed,
               "machine_busy_pct": machine_busy_pct(busy0, busy1)}
        missing = await verify_history(reader, soak, 60.0)
    finally:
        close_all(conns)
    return summarize(soak, elapsed, cpu, missing, sum(len(k) for k in keys), args)


def machine_busy_pct(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    busy, total = after[0] - before[0], after[1] - before[1]
    return None if total <= 0 else 100.0 * busy / total * (os.cpu_count() or 1)


def summarize(soak: Soak, elapsed: float, cpu: dict, missing: int, sessions: int,
              args: argparse.Namespace) -> dict:
    lat = sorted(soak.latencies)
    health = sorted(soak.health)
    minutes = []
    for m in range(int(elapsed // 60) + (1 if elapsed % 60 > 1 else 0)):
        bucket = sorted(soak.per_minute.get(m, []))
        rss = [kb for t, kb in soak.rss if m <= t < m + 1]
        span = min(60.0, elapsed - 60 * m)
        minutes.append({"minute": m + 1, "turns": len(bucket), "turns_per_s": round(len(bucket) / span, 1),
                        "p50_ms": percentile(bucket, 50), "p99_ms": percentile(bucket, 99),
                        "rss_mb": round(rss[-1] / 1024, 1) if rss else None})
    half = [p for p in soak.rss if p[0] >= args.minutes / 2]
    slope = slope_kb_per_min(half)
    lost = soak.lost_runs + missing
    return {
        "clients": args.clients, "minutes": args.minutes, "elapsed_s": round(elapsed, 1),
        "turns": len(lat), "turns_per_s": round(len(lat) / elapsed, 1), "sessions": sessions,
        "latency_ms": {"p50": percentile(lat, 50), "p90": percentile(lat, 90), "p99": percentile(lat, 99),
                       "max": lat[-1] if lat else None},
        "health": {"polls": len(health) + len(soak.health_failures), "failures": soak.health_failures[:20],
                   "p50_ms": percentile(health, 50), "p99_ms": percentile(health, 99),
                   "max_ms": health[-1] if health else None},
        "errors": soak.errors, "lost_acks": lost, "lost_runs": soak.lost_runs, "missing_in_history": missing,
        "per_minute": minutes,
        "rss_mb": {"first": round(soak.rss[0][1] / 1024, 1) if soak.rss else None,
                   "last": round(soak.rss[-1][1] / 1024, 1) if soak.rss else None,
                   "max": round(max(kb for _, kb in soak.rss) / 1024, 1) if soak.rss else None},
        "rss_slope_kb_per_min_second_half": None if slope is None else round(slope, 1),
        "cpu": cpu,
    }


def run(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="openclaw-soak-"))
    root = tmp / "gateway"
    gw = chat_gateway(root, {"agents": {"defaults": {"model": "offline/echo", "maxConcurrent": 64}}})
    port = free_port()
    load_before = os.getloadavg()
    try:
        gw.start(port)
        gw.wait_ready()
        log(f"gateway pid {gw.pid}; {args.clients} clients for {args.minutes} min", args.quiet)
        result = asyncio.run(soak_run(gw, port, args))
    finally:
        gw.stop()
    result["tracebacks"] = traceback_count(root)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    slope = result["rss_slope_kb_per_min_second_half"]
    result["verdict"] = {
        "rss_flat": slope is not None and slope < args.max_slope_kb_min,
        "no_errors": not result["errors"] and not result["health"]["failures"] and not result["tracebacks"],
        "no_lost_acks": result["lost_acks"] == 0,
    }
    result["verdict"]["all_pass"] = all(result["verdict"].values())
    drop_tmp(tmp, args.keep, args.quiet)
    return result


def report(result: dict) -> str:
    lat, h, m = result["latency_ms"], result["health"], result["machine"]
    lines = [
        f"Chat soak: {result['clients']} clients x {result['elapsed_s']} s on offline/echo "
        f"({m['cpus']} CPUs, load {m['loadavg_before'][0]:.2f} → {m['loadavg_after'][0]:.2f}; "
        f"gateway CPU {result['cpu']['gateway_cpu_pct']:.0f} %, bench {result['cpu']['bench_cpu_pct']:.0f} %, "
        f"machine {result['cpu']['machine_busy_pct'] or 0:.0f} % of one core)",
        f"  turns: {result['turns']} ({result['turns_per_s']}/s) in {result['sessions']} sessions; "
        f"send → final p50 {lat['p50']:.1f} / p90 {lat['p90']:.1f} / p99 {lat['p99']:.1f} / max {lat['max']:.1f} ms",
        f"  /health: {h['polls']} polls, {len(h['failures'])} failed; p50 {h['p50_ms']:.1f} / "
        f"p99 {h['p99_ms']:.1f} / max {h['max_ms']:.1f} ms",
        f"  errors: {sum(result['errors'].values())} {result['errors'] or ''}; lost acks: {result['lost_acks']} "
        f"(runs without final {result['lost_runs']}, missing in history {result['missing_in_history']}); "
        f"tracebacks: {result['tracebacks']}",
        f"  RSS: {result['rss_mb']['first']} → {result['rss_mb']['last']} MB (max {result['rss_mb']['max']}); "
        f"slope over the second half: {result['rss_slope_kb_per_min_second_half']} KB/min",
        "  minute  turns/s   p50 ms   p99 ms   RSS MB",
    ]
    for row in result["per_minute"]:
        lines.append(f"  {row['minute']:>6}  {row['turns_per_s']:>7}  {row['p50_ms']:>7.1f}  "
                     f"{row['p99_ms']:>7.1f}  {row['rss_mb']}")
    lines.append("PASS" if result["verdict"]["all_pass"] else f"FAIL {result['verdict']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__, "10 clients for 1 minute")
    parser.add_argument("--clients", type=int, help="chatting connections (50; quick 10)")
    parser.add_argument("--minutes", type=float, help="how long (10; quick 1)")
    parser.add_argument("--session-turns", type=int, default=50, help="turns per session before a new one (50)")
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause between a client's turns (0)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for an ack or a final (60)")
    parser.add_argument("--health-interval", type=float, default=1.0, help="seconds between /health polls (1)")
    parser.add_argument("--max-slope-kb-min", type=float, default=1024.0,
                        help="RSS slope over the second half that still counts as flat (1024 KB/min)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state)")
    args = parser.parse_args(argv)
    args.quiet = args.json and not args.verbose
    return fill_defaults(args, {"clients": 10 if args.quick else 50, "minutes": 1.0 if args.quick else 10.0})


def main(argv: list[str] | None = None) -> int:
    return run_main(parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
