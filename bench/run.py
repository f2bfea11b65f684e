"""One-command benchmark: the gateway against a bare Tornado + msgspec server.

In one run it
  1. measures the gateway's cold start (spawn → GET /readyz 200, median of --cold-starts);
  2. starts the gateway (temp state dir, token auth, free loopback port, file logging at
     `warn`) and bench/bare_server.py side by side, and reads the gateway's idle RSS;
  3. runs --rounds rounds of [throughput, sequential latency] against both, alternating which
     server goes first, and takes the median of each figure;
  4. runs the connection storm (--storm-connections at once, then one `health` each at the
     same instant) against the gateway, and against the bare server for comparison;
  5. stops every process it started (process groups, also on Ctrl-C or an error) and prints
     a table, or one JSON document with --json.

Usage:
  .venv/bin/python bench/run.py            # full run, a few minutes
  .venv/bin/python bench/run.py --quick    # under a minute
  .venv/bin/python bench/run.py --json > result.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
TARGETS = {"ratio_pct": 50.0, "cold_start_ms": 1000.0, "idle_rss_mb": 60.0}
# Other processes using more than this (% of one core, median over the rounds) during the
# throughput runs make req/s unreliable on a 2-core machine: the report says so.
NOISY_OTHER_PCT = 30.0


def venv_python() -> str:
    candidate = ROOT / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def openclaw_bin() -> list[str]:
    script = Path(venv_python()).parent / "openclaw"
    if script.exists():
        return [str(script)]
    return [venv_python(), "-m", "cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


class Server:
    """A server process in its own process group; `stop()` is idempotent."""

    def __init__(self, name: str, cmd: list[str], root: Path, env: dict[str, str] | None = None):
        self.name, self.cmd, self.root = name, cmd, root
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, port: int) -> float:
        """Spawn; returns the perf_counter value taken just before the spawn."""
        self.port = port
        self.root.mkdir(parents=True, exist_ok=True)
        out = open(self.root / "stdout.txt", "ab")
        err = open(self.root / "stderr.txt", "ab")
        t0 = time.perf_counter()
        try:
            self.proc = subprocess.Popen([*self.cmd, "--port", str(port)], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         start_new_session=True, cwd=str(ROOT))
        finally:
            out.close()
            err.close()
        return t0

    def wait_ready(self, timeout: float = 20.0, interval: float = 0.005) -> tuple[float, float | None]:
        """Poll GET /readyz until 200; returns (perf_counter at 200, perf_counter at first HTTP answer)."""
        deadline = time.perf_counter() + timeout
        first_answer = None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.stderr()[-2000:]}")
            status = http_status(self.port, "/readyz")
            now = time.perf_counter()
            if status is not None and first_answer is None:
                first_answer = now
            if status == 200:
                return now, first_answer
            if now > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout}s: {self.stderr()[-2000:]}")
            time.sleep(interval)

    def stderr(self) -> str:
        path = self.root / "stderr.txt"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group (normally nothing) goes now.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


def http_status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def gateway_server(root: Path, name: str = "gateway", config: dict | None = None) -> Server:
    """`openclaw gateway` on the state dir `root/state`, with token auth and file logging at
    `warn` written over `config` (other settings, e.g. models and agents)."""
    state = root / "state"
    state.mkdir(parents=True, exist_ok=True)
    config = {**(config or {}), "gateway": {"auth": {"mode": "token", "token": TOKEN}},
              "logging": {"file": str(root / "gateway.log"), "level": "warn", "consoleLevel": "warn"}}
    (state / "openclaw.json").write_text(json.dumps(config, indent=2))
    server = Server(name, [*openclaw_bin(), "gateway"], root, {"OPENCLAW_STATE_DIR": str(state)})
    # Settings from the caller's environment would beat the config above.
    for var in ("OPENCLAW_CONFIG_PATH", "OPENCLAW_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_PASSWORD",
                "CLAWDBOT_GATEWAY_TOKEN", "CLAWDBOT_GATEWAY_PASSWORD", "OPENCLAW_GATEWAY_PORT",
                "OPENCLAW_LOG_LEVEL", "OPENCLAW_TICK_INTERVAL_MS", "OPENCLAW_HANDSHAKE_TIMEOUT_MS",
                "OPENCLAW_TEST_STARTUP_DELAY_MS"):
        server.env.pop(var, None)
    return server


def bare_server(root: Path) -> Server:
    return Server("bare", [venv_python(), str(BENCH / "bare_server.py")], root)


# --------------------------------------------------------------------------- phases


def cold_starts(tmp: Path, count: int, quiet: bool) -> dict:
    spawn_to_ready, spawn_to_http = [], []
    for i in range(count):
        gw = gateway_server(tmp / f"cold{i}", f"gateway-cold{i}")
        try:
            t0 = gw.start(free_port())
            ready, first = gw.wait_ready()
            spawn_to_ready.append((ready - t0) * 1000)
            if first is not None:
                spawn_to_http.append((first - t0) * 1000)
        finally:
            gw.stop()
        log(f"  cold start {i + 1}/{count}: {spawn_to_ready[-1]:.0f} ms to /readyz 200", quiet)
    return {"starts": count, "samples_ms": spawn_to_ready,
            "median_ms": statistics.median(spawn_to_ready),
            "first_http_answer_median_ms": statistics.median(spawn_to_http) if spawn_to_http else None}


def source_info() -> dict:
    """Which gateway code was measured: HEAD and the files that differ from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "actors", "transport", "cli",
                                      "pyproject.toml").splitlines() if len(line) > 3]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted_gateway_files": dirty}


def median_of(rounds: list[dict], key: str) -> float | None:
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else None


def run(args: argparse.Namespace) -> dict:
    quiet = args.json and not args.verbose
    tmp = Path(tempfile.mkdtemp(prefix="openclaw-bench-"))
    servers: list[Server] = []
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_start": os.getloadavg()},
        "settings": {"rounds": args.rounds, "connections": args.connections, "inflight": args.inflight,
                     "warmup_s": args.warmup, "duration_s": args.duration, "client_procs": args.procs,
                     "latency_requests": args.latency_requests, "storm_connections": args.storm_connections,
                     "cold_starts": args.cold_starts, "client_mode": args.client_mode},
        "targets": TARGETS,
        "source": source_info(),
    }
    try:
        log(f"temp dir {tmp}", quiet)
        log("cold start", quiet)
        result["cold_start"] = cold_starts(tmp, args.cold_starts, quiet)

        gw = gateway_server(tmp / "gateway")
        bare = bare_server(tmp / "bare")
        servers += [gw, bare]
        for server in (gw, bare):
            server.start(free_port())
        for server in (gw, bare):
            server.wait_ready()
        time.sleep(args.settle)
        result["idle_rss_kb"] = {"gateway": loadgen.proc_rss_kb(gw.pid), "bare": loadgen.proc_rss_kb(bare.pid)}
        log(f"gateway pid {gw.pid} port {gw.port}; bare pid {bare.pid} port {bare.port}; "
            f"idle RSS {result['idle_rss_kb']['gateway'] / 1024:.1f} MB / {result['idle_rss_kb']['bare'] / 1024:.1f} MB",
            quiet)

        rounds: dict[str, list[dict]] = {"gateway": [], "bare": []}
        latency: dict[str, list[dict]] = {"gateway": [], "bare": []}
        for r in range(args.rounds):
            order = (gw, bare) if r % 2 == 0 else (bare, gw)
            for server in order:
                tp = loadgen.run_throughput(server.url, TOKEN, server_pid=server.pid,
                                            connections=args.connections, inflight=args.inflight,
                                            warmup=args.warmup, duration=args.duration,
                                            procs=args.procs, mode=args.client_mode)
                tp["round"] = r + 1
                rounds[server.name].append(tp)
                lat = loadgen.run_latency(server.url, TOKEN, requests=args.latency_requests,
                                          warmup=min(200, args.latency_requests), mode=args.client_mode)
                lat["round"] = r + 1
                latency[server.name].append(lat)
                log(f"  round {r + 1} {server.name:<7}: {tp['rps']:>9,.0f} req/s "
                    f"(server CPU {tp.get('server_cpu_pct', 0):.0f}%, client CPU {tp['client_cpu_pct']:.0f}%, "
                    f"other {tp.get('other_cpu_pct', 0):.0f}%)  p50 {lat['p50_ms']:.3f} ms", quiet)
        result["throughput"] = {}
        for name in ("gateway", "bare"):
            result["throughput"][name] = {
                "rounds": rounds[name],
                "median_rps": median_of(rounds[name], "rps"),
                "median_server_cpu_pct": median_of(rounds[name], "server_cpu_pct"),
                "median_server_cpu_us_per_req": median_of(rounds[name], "server_cpu_us_per_req"),
                "median_client_cpu_pct": median_of(rounds[name], "client_cpu_pct"),
                "median_client_cpu_us_per_req": median_of(rounds[name], "client_cpu_us_per_req"),
                "median_machine_busy_pct": median_of(rounds[name], "machine_busy_pct"),
                "median_other_cpu_pct": median_of(rounds[name], "other_cpu_pct"),
                "avg_response_bytes": median_of(rounds[name], "avg_response_bytes"),
                "errors": sum(x["errors"] for x in rounds[name]),
            }
        g, b = result["throughput"]["gateway"], result["throughput"]["bare"]
        noise = max(g["median_other_cpu_pct"] or 0, b["median_other_cpu_pct"] or 0)
        result["throughput"]["noisy"] = noise > NOISY_OTHER_PCT
        result["throughput"]["ratio_pct"] = 100.0 * g["median_rps"] / b["median_rps"] if b["median_rps"] else None
        if g["median_server_cpu_us_per_req"] and b["median_server_cpu_us_per_req"]:
            result["throughput"]["cpu_efficiency_ratio_pct"] = (
                100.0 * b["median_server_cpu_us_per_req"] / g["median_server_cpu_us_per_req"])
        result["latency"] = {name: {"rounds": latency[name],
                                    "median_p50_ms": median_of(latency[name], "p50_ms"),
                                    "median_p90_ms": median_of(latency[name], "p90_ms"),
                                    "median_p99_ms": median_of(latency[name], "p99_ms")}
                             for name in ("gateway", "bare")}

        log(f"storm: {args.storm_connections} connections", quiet)
        result["storm"] = {}
        for server in (gw, bare):
            storm = loadgen.run_storm(server.url, TOKEN, server_pid=server.pid,
                                      connections=args.storm_connections, procs=args.procs,
                                      concurrency=args.storm_concurrency, mode=args.client_mode)
            result["storm"][server.name] = storm
            log(f"  {server.name:<7}: connected {storm['connected']}, answered {storm['answered']}, "
                f"refused {storm['refused'] + storm['tcp_refused'] + storm['handshake_refused']}, "
                f"dropped {storm['dropped']}, all answered in {storm['all_answered_ms']:.0f} ms, "
                f"RSS/conn {storm.get('rss_per_conn_kb', 0):.1f} KiB", quiet)
            time.sleep(args.settle)
    finally:
        for server in servers:
            server.stop()
        drop_tmp(tmp, args.keep, quiet)
    result["machine"]["loadavg_end"] = os.getloadavg()
    result["verdict"] = verdict(result)
    return result


def verdict(result: dict) -> dict:
    storm = result["storm"]["gateway"]
    checks = {
        "health_rps_ratio": (result["throughput"]["ratio_pct"] or 0) >= TARGETS["ratio_pct"],
        "cold_start": result["cold_start"]["median_ms"] < TARGETS["cold_start_ms"],
        "idle_rss": result["idle_rss_kb"]["gateway"] / 1024 < TARGETS["idle_rss_mb"],
        "storm_none_refused": (storm["tcp_refused"] + storm["handshake_refused"] + storm["connect_errors"]
                               + storm["refused"]) == 0 and storm["connected"] == storm["connections"],
        "storm_none_dropped": storm["dropped"] == 0 and storm["answered"] == storm["connections"],
    }
    return {"checks": checks, "all_pass": all(checks.values())}


# --------------------------------------------------------------------------- report


def report(result: dict) -> str:
    tp, lat, cold, storm = result["throughput"], result["latency"], result["cold_start"], result["storm"]
    g, b = tp["gateway"], tp["bare"]
    ok = result["verdict"]["checks"]
    s = result["settings"]
    mark = lambda passed: "PASS" if passed else "FAIL"  # noqa: E731
    src = result["source"]
    lines = [
        "OpenClaw gateway benchmark (loopback, %d CPUs, Python %s), gateway at %s%s"
        % (result["machine"]["cpus"], result["machine"]["python"], src["commit"] or "?",
           " + %d uncommitted file(s)" % len(src["uncommitted_gateway_files"]) if src["uncommitted_gateway_files"] else ""),
        "load: %d connections x %d in flight, %.0f s warm-up + %.0f s per measurement, %d rounds "
        "(alternating order, median), %d client process(es); latency: %d sequential requests"
        % (s["connections"], s["inflight"], s["warmup_s"], s["duration_s"], s["rounds"], s["client_procs"],
           s["latency_requests"]),
        "",
        f"{'figure':<42}{'gateway':>14}{'bare':>14}   target",
        f"{'-' * 42}{'-' * 14}{'-' * 14}   {'-' * 22}",
        f"{'health throughput (req/s, median)':<42}{g['median_rps']:>14,.0f}{b['median_rps']:>14,.0f}",
        f"{'  gateway / bare':<42}{tp['ratio_pct']:>13.1f}%{'':>14}   >= {TARGETS['ratio_pct']:.0f}%  {mark(ok['health_rps_ratio'])}",
        f"{'  bare / gateway server CPU per request':<42}{tp.get('cpu_efficiency_ratio_pct') or 0:>13.1f}%{'':>14}   (noise-robust twin)",
        f"{'  server CPU during load (% of one core)':<42}{g['median_server_cpu_pct'] or 0:>13.0f}%{b['median_server_cpu_pct'] or 0:>13.0f}%",
        f"{'  server CPU per request (us)':<42}{g['median_server_cpu_us_per_req'] or 0:>14.1f}{b['median_server_cpu_us_per_req'] or 0:>14.1f}",
        f"{'  client CPU (% of one core)':<42}{g['median_client_cpu_pct']:>13.0f}%{b['median_client_cpu_pct']:>13.0f}%",
        f"{'  client CPU per request (us)':<42}{g['median_client_cpu_us_per_req'] or 0:>14.1f}{b['median_client_cpu_us_per_req'] or 0:>14.1f}",
        f"{'  machine busy (% of one core, all procs)':<42}{g['median_machine_busy_pct'] or 0:>13.0f}%{b['median_machine_busy_pct'] or 0:>13.0f}%",
        f"{'  of which other processes (noise)':<42}{g['median_other_cpu_pct'] or 0:>13.0f}%{b['median_other_cpu_pct'] or 0:>13.0f}%",
        f"{'  health response size (bytes)':<42}{g['avg_response_bytes'] or 0:>14.0f}{b['avg_response_bytes'] or 0:>14.0f}",
        f"{'sequential latency p50 (ms, median)':<42}{lat['gateway']['median_p50_ms']:>14.3f}{lat['bare']['median_p50_ms']:>14.3f}",
        f"{'sequential latency p90 (ms, median)':<42}{lat['gateway']['median_p90_ms']:>14.3f}{lat['bare']['median_p90_ms']:>14.3f}",
        f"{'sequential latency p99 (ms, median)':<42}{lat['gateway']['median_p99_ms']:>14.3f}{lat['bare']['median_p99_ms']:>14.3f}",
        f"{'cold start, spawn -> /readyz 200 (ms)':<42}{cold['median_ms']:>14.0f}{'':>14}   < {TARGETS['cold_start_ms']:.0f} ms  {mark(ok['cold_start'])}",
        f"{'idle RSS after start (MB)':<42}{result['idle_rss_kb']['gateway'] / 1024:>14.1f}{result['idle_rss_kb']['bare'] / 1024:>14.1f}   < {TARGETS['idle_rss_mb']:.0f} MB  {mark(ok['idle_rss'])}",
    ]
    sg, sb = storm["gateway"], storm["bare"]
    lines += [
        f"{'storm: connections opened (handshake ok)':<42}{sg['connected']:>14}{sb['connected']:>14}   all {sg['connections']}",
        f"{'  refused (tcp / handshake / health)':<42}{'%d/%d/%d' % (sg['tcp_refused'], sg['handshake_refused'], sg['refused']):>14}"
        f"{'%d/%d/%d' % (sb['tcp_refused'], sb['handshake_refused'], sb['refused']):>14}   0  {mark(ok['storm_none_refused'])}",
        f"{'  dropped (connect errors + no answer)':<42}{sg['connect_errors'] + sg['dropped']:>14}{sb['connect_errors'] + sb['dropped']:>14}   0  {mark(ok['storm_none_dropped'])}",
        f"{'  time to open all (s)':<42}{sg['connect_s']:>14.2f}{sb['connect_s']:>14.2f}",
        f"{'  barrier -> all answered (ms)':<42}{sg['all_answered_ms']:>14.0f}{sb['all_answered_ms']:>14.0f}",
        f"{'  RSS before -> all connected (MB)':<42}{_mb(sg['rss_before_kb']) + ' -> ' + _mb(sg['rss_connected_kb']):>14}"
        f"{_mb(sb['rss_before_kb']) + ' -> ' + _mb(sb['rss_connected_kb']):>14}",
        f"{'  RSS per extra connection (KiB)':<42}{sg.get('rss_per_conn_kb', 0):>14.1f}{sb.get('rss_per_conn_kb', 0):>14.1f}",
        "",
    ]
    if tp.get("noisy"):
        lines += [
            "WARNING: other processes used up to %.0f%% of a core during the throughput runs; req/s and"
            % max(g["median_other_cpu_pct"] or 0, b["median_other_cpu_pct"] or 0),
            "the ratio are unreliable. Compare 'server CPU per request' or rerun on a quieter machine.",
        ]
    lines += [
        "load average %.2f at start, %.2f at end; %s" % (result["machine"]["loadavg_start"][0],
                                                        result["machine"]["loadavg_end"][0],
                                                        "all targets met" if result["verdict"]["all_pass"]
                                                        else "some targets missed"),
    ]
    return "\n".join(lines)


def _mb(kb: int | None) -> str:
    return "?" if kb is None else f"{kb / 1024:.1f}"


def drop_tmp(tmp: Path, keep: bool, quiet: bool) -> None:
    """The end of a benchmark's temp dir: removed, or kept (and named) with --keep."""
    if keep:
        log(f"kept {tmp}", quiet)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def fill_defaults(args: argparse.Namespace, defaults: dict[str, Any]) -> argparse.Namespace:
    """Options left unset get `defaults` (which depend on --quick, hence not argparse's)."""
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def bench_parser(doc: str, quick_help: str, save: bool = True) -> argparse.ArgumentParser:
    """The options every benchmark has: --quick, --json, --verbose and (with `save`) --save."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--verbose", action="store_true", help="progress on stderr even with --json")
    if save:
        parser.add_argument("--save", metavar="PATH", help="also write the JSON document to PATH")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__, "short settings: finishes in under a minute")
    parser.add_argument("--rounds", type=int, help="rounds per server (default 3)")
    parser.add_argument("--duration", type=float, help="measured seconds per throughput run (10; quick 3)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per throughput run (2; quick 1)")
    parser.add_argument("--connections", type=int, default=4, help="throughput connections (4)")
    parser.add_argument("--inflight", type=int, default=8, help="requests in flight per connection (8)")
    parser.add_argument("--procs", type=int, default=1, help="load generator processes (1)")
    parser.add_argument("--latency-requests", type=int, help="sequential requests per latency run (3000; quick 1000)")
    parser.add_argument("--storm-connections", type=int, default=1000, help="storm connections (1000)")
    parser.add_argument("--storm-concurrency", type=int, default=1000,
                        help="storm connection attempts in flight at once (1000: all at once)")
    parser.add_argument("--cold-starts", type=int, help="cold starts measured (5; quick 3)")
    parser.add_argument("--client-mode", default="cli", help="connect client.mode (cli: untracked by presence)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to let a server settle before RSS reads")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state)")
    args = parser.parse_args(argv)
    defaults = {"rounds": 3, "duration": 3.0 if args.quick else 10.0, "warmup": 1.0 if args.quick else 2.0,
                "latency_requests": 1000 if args.quick else 3000, "cold_starts": 3 if args.quick else 5}
    return fill_defaults(args, defaults)


def run_main(args: argparse.Namespace, run: Callable[[argparse.Namespace], dict],
             report: Callable[[dict], str],
             passed: Callable[[dict], bool] = lambda result: result["verdict"]["all_pass"],
             catch_sigint: bool = False) -> int:
    """The common `main()` of the benchmarks: run, then --save / --json / the report; exit 0
    when `passed(result)`, 1 otherwise, 130 when interrupted (Ctrl-C or SIGTERM; with
    `catch_sigint` also a SIGINT inherited as ignored)."""
    loadgen.raise_nofile_limit()

    def on_term(signum, frame):  # SIGTERM: unwind through the finally blocks like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    if catch_sigint:
        signal.signal(signal.SIGINT, on_term)
    try:
        result = run(args)
    except KeyboardInterrupt:
        print("interrupted; every started process was stopped", file=sys.stderr)
        return 130
    if getattr(args, "save", None):
        Path(args.save).write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(report(result))
    return 0 if passed(result) else 1


def main(argv: list[str] | None = None) -> int:
    return run_main(parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
