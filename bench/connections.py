"""Connections benchmark: 10,000 authenticated WebSocket connections held open at once, all
answering at once, and the server's memory per idle connection, against the bare Tornado +
msgspec server (bench/bare_server.py) measured the same way in the same run.

Each round starts a fresh gateway (temp state dir, token auth, free loopback port, file logging
at `warn`) and a fresh bare server, so "idle" RSS is never inflated by an earlier round, and
then, for each server in turn (the order alternates between rounds):
  1. reads the server's RSS (`VmRSS`) idle, --settle s after it is ready;
  2. opens --connections connections from --procs client processes (bench/loadgen.py's raw
     asyncio client), at most --concurrency attempts in flight; each does the full handshake
     (`connect.challenge` → `connect` with the token → `hello-ok`) and stays open;
  3. reads the RSS with all of them held (after --settle s): RSS per idle connection =
     (RSS held − RSS idle) / connections;
  4. all connections send one `health` at the same instant (a cross-process barrier) and every
     answer is counted: answered / total, and barrier → last answer;
  5. closes them.
Every figure is the median over --rounds rounds. Every process started (servers in their own
process group, client workers) is stopped at the end, also on Ctrl-C, SIGTERM or an error.

Targets: every connection answered (10,000 / 10,000), and the gateway's RSS per idle connection
within 20 % of the bare server's.

Usage:
  .venv/bin/python bench/connections.py              # 3 rounds x 10,000 connections, ~2 min
  .venv/bin/python bench/connections.py --quick      # 1 round x 2,000 connections, ~15 s
  .venv/bin/python bench/connections.py --json > connections.json
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
from run import (  # noqa: E402
    TOKEN,
    Server,
    bare_server,
    bench_parser,
    drop_tmp,
    fill_defaults,
    free_port,
    gateway_server,
    log,
    run_main,
    source_info,
)

TARGETS = {"answered_pct": 100.0, "rss_ratio_max": 1.2}
SERVERS = ("gateway", "bare")


def storm_once(server: Server, args: argparse.Namespace) -> dict:
    """One storm against a freshly started server; the RSS idle figure is read first."""
    time.sleep(args.settle)
    idle = loadgen.proc_rss_kb(server.pid)
    storm = loadgen.run_storm(server.url, TOKEN, server_pid=server.pid, connections=args.connections,
                              procs=args.procs, concurrency=args.concurrency,
                              connect_timeout=args.connect_timeout, answer_timeout=args.answer_timeout,
                              settle=args.settle, mode=args.client_mode)
    storm["rss_idle_kb"] = idle
    if idle is not None and storm.get("rss_connected_kb") is not None:
        storm["rss_per_idle_conn_kb"] = (storm["rss_connected_kb"] - idle) / args.connections
    storm["threads"] = _threads(server.pid)
    return storm


def _threads(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


def one_round(tmp: Path, r: int, args: argparse.Namespace, quiet: bool) -> dict[str, dict]:
    servers = {"gateway": gateway_server(tmp / f"gateway{r}"), "bare": bare_server(tmp / f"bare{r}")}
    out: dict[str, dict] = {}
    try:
        for server in servers.values():
            server.start(free_port())
        for server in servers.values():
            server.wait_ready()
        order = SERVERS if r % 2 == 0 else SERVERS[::-1]
        for name in order:
            out[name] = storm_once(servers[name], args)
            s = out[name]
            log(f"  round {r + 1} {name:<7}: answered {s['answered']}/{args.connections}, "
                f"open all {s['connect_s']:.2f} s, all answered {s['all_answered_ms']:.0f} ms, "
                f"RSS {s['rss_idle_kb'] / 1024:.1f} -> {s['rss_connected_kb'] / 1024:.1f} MB = "
                f"{s.get('rss_per_idle_conn_kb', 0):.2f} KiB/conn", quiet)
            time.sleep(args.settle)  # the closes finish before the other server's turn
    finally:
        for server in servers.values():
            server.stop()
    return out


def _median(rounds: list[dict], key: str) -> float | None:
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(rounds: list[dict[str, dict]], connections: int) -> dict:
    out: dict[str, Any] = {}
    for name in SERVERS:
        rs = [r[name] for r in rounds]
        out[name] = {
            "answered_min": min(s["answered"] for s in rs),
            "answered_median": _median(rs, "answered"),
            "connected_min": min(s["connected"] for s in rs),
            "failures": sum(s["tcp_refused"] + s["handshake_refused"] + s["connect_errors"]
                            + s["refused"] + s["dropped"] for s in rs),
            "connect_s": _median(rs, "connect_s"),
            "all_answered_ms": _median(rs, "all_answered_ms"),
            "rss_idle_kb": _median(rs, "rss_idle_kb"),
            "rss_connected_kb": _median(rs, "rss_connected_kb"),
            "rss_after_burst_kb": _median(rs, "rss_after_burst_kb"),
            "rss_per_idle_conn_kb": _median(rs, "rss_per_idle_conn_kb"),
            "rss_per_idle_conn_kb_rounds": [s.get("rss_per_idle_conn_kb") for s in rs],
            "burst_server_cpu_ms": _median(rs, "burst_server_cpu_ms"),
            "errors": {k: v for s in rs for k, v in s["errors"].items()},
        }
    g, b = out["gateway"]["rss_per_idle_conn_kb"], out["bare"]["rss_per_idle_conn_kb"]
    out["rss_ratio"] = g / b if g and b else None
    checks = {
        "all_answered": out["gateway"]["answered_min"] == connections and out["gateway"]["failures"] == 0,
        "rss_within_20pct": out["rss_ratio"] is not None and out["rss_ratio"] <= TARGETS["rss_ratio_max"],
    }
    out["verdict"] = {"checks": checks, "all_pass": all(checks.values())}
    return out


def run(args: argparse.Namespace) -> dict:
    quiet = args.json and not args.verbose
    tmp = Path(tempfile.mkdtemp(prefix="openclaw-bench-"))
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_start": os.getloadavg(),
                    "nofile_soft_limit": loadgen.raise_nofile_limit(),
                    "somaxconn": _read_int("/proc/sys/net/core/somaxconn")},
        "settings": {k: getattr(args, k) for k in ("rounds", "connections", "procs", "concurrency",
                                                   "client_mode", "settle")},
        "targets": TARGETS,
        "source": source_info(),
    }
    _check_fd_limit(args.connections)
    try:
        log(f"temp dir {tmp}; {args.rounds} round(s) x {args.connections} connections", quiet)
        rounds = [one_round(tmp, r, args, quiet) for r in range(args.rounds)]
    finally:
        drop_tmp(tmp, args.keep, quiet)
    result["rounds"] = rounds
    result["summary"] = summarise(rounds, args.connections)
    result["verdict"] = result["summary"].pop("verdict")
    result["machine"]["loadavg_end"] = os.getloadavg()
    return result


def _check_fd_limit(connections: int) -> None:
    """Each connection is a descriptor in the server (which raises its soft limit to the hard
    one, as this process does); below that the storm measures the limit, not the server."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < connections + 256:
        log(f"WARNING: the open file hard limit is {hard}, fewer than {connections} connections "
            f"+ 256: connections past it will wait or fail; raise it (ulimit -Hn, LimitNOFILE=)",
            False)


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def report(result: dict) -> str:
    s, st = result["summary"], result["settings"]
    g, b = s["gateway"], s["bare"]
    ok = result["verdict"]["checks"]
    mark = lambda passed: "PASS" if passed else "FAIL"  # noqa: E731
    src = result["source"]
    n = st["connections"]
    kib = lambda v: "?" if v is None else f"{v:.2f}"  # noqa: E731
    mb = lambda v: "?" if v is None else f"{v / 1024:.1f}"  # noqa: E731
    lines = [
        "OpenClaw connections benchmark (loopback, %d CPUs, Python %s), gateway at %s%s"
        % (result["machine"]["cpus"], result["machine"]["python"], src["commit"] or "?",
           " + %d uncommitted file(s)" % len(src["uncommitted_gateway_files"])
           if src["uncommitted_gateway_files"] else ""),
        "%d connections, %d client process(es), %d connects in flight, %d round(s) (median); "
        "RLIMIT_NOFILE %s, somaxconn %s"
        % (n, st["procs"], st["concurrency"], st["rounds"], result["machine"]["nofile_soft_limit"],
           result["machine"]["somaxconn"]),
        "",
        f"{'figure':<44}{'gateway':>14}{'bare':>14}   target",
        f"{'-' * 44}{'-' * 14}{'-' * 14}   {'-' * 20}",
        f"{'answered / total (worst round)':<44}{'%d/%d' % (g['answered_min'], n):>14}"
        f"{'%d/%d' % (b['answered_min'], n):>14}   all  {mark(ok['all_answered'])}",
        f"{'failures (refused, errors, dropped; all)':<44}{g['failures']:>14}{b['failures']:>14}",
        f"{'time to open all (s)':<44}{g['connect_s']:>14.2f}{b['connect_s']:>14.2f}",
        f"{'all-at-once health: barrier -> last (ms)':<44}{g['all_answered_ms']:>14.0f}{b['all_answered_ms']:>14.0f}",
        f"{'  server CPU for the burst (ms)':<44}{g['burst_server_cpu_ms'] or 0:>14.0f}{b['burst_server_cpu_ms'] or 0:>14.0f}",
        f"{'RSS idle -> all held (MB)':<44}{mb(g['rss_idle_kb']) + ' -> ' + mb(g['rss_connected_kb']):>14}"
        f"{mb(b['rss_idle_kb']) + ' -> ' + mb(b['rss_connected_kb']):>14}",
        f"{'RSS after the burst (MB)':<44}{mb(g['rss_after_burst_kb']):>14}{mb(b['rss_after_burst_kb']):>14}",
        f"{'RSS per idle connection (KiB)':<44}{kib(g['rss_per_idle_conn_kb']):>14}{kib(b['rss_per_idle_conn_kb']):>14}",
        f"{'  per round':<44}{' '.join(kib(v) for v in g['rss_per_idle_conn_kb_rounds']):>14}"
        f"{' '.join(kib(v) for v in b['rss_per_idle_conn_kb_rounds']):>14}",
        f"{'  gateway / bare':<44}{(s['rss_ratio'] or 0) * 100:>13.0f}%{'':>14}   <= "
        f"{TARGETS['rss_ratio_max'] * 100:.0f}%  {mark(ok['rss_within_20pct'])}",
        "",
    ]
    for name in SERVERS:
        for key, count in s[name]["errors"].items():
            lines.append(f"{name} error x{count}: {key}")
    lines.append("load average %.2f at start, %.2f at end; %s"
                 % (result["machine"]["loadavg_start"][0], result["machine"]["loadavg_end"][0],
                    "all targets met" if result["verdict"]["all_pass"] else "some targets missed"))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__, "1 round of 2,000 connections: ~15 s")
    parser.add_argument("--rounds", type=int, help="rounds, fresh servers each (3; quick 1)")
    parser.add_argument("--connections", "-c", type=int, help="connections held at once (10000; quick 2000)")
    parser.add_argument("--procs", type=int, default=4, help="client worker processes (4)")
    parser.add_argument("--concurrency", type=int, default=1000,
                        help="connection attempts in flight at once, over all client processes (1000)")
    parser.add_argument("--connect-timeout", type=float, default=60.0, help="per connection (60 s)")
    parser.add_argument("--answer-timeout", type=float, default=60.0,
                        help="how long the all-at-once round waits for answers (60 s)")
    parser.add_argument("--client-mode", default="cli", help="connect client.mode (cli: untracked by presence)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before each RSS read (2)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state)")
    args = parser.parse_args(argv)
    return fill_defaults(args, {"rounds": 1 if args.quick else 3,
                                "connections": 2000 if args.quick else 10000})


def main(argv: list[str] | None = None) -> int:
    return run_main(parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
