"""Protocol fuzz, long run (issue 11): the suite's fuzz (tests/integration/fuzz_support.py,
short run in tests/integration/test_fuzz.py) for N examples or M minutes against one gateway
(token auth, `offline/echo` model, exec denied, file log at --log-level), with random seeds.

Rounds until the budget is spent, each: 4 x --chunk first frames on fresh sockets, --chunk
requests for every method of the table but the restart ones (params drawn from its Struct),
4 x --chunk junk frames (near-requests, malformed JSON, invalid UTF-8, binary). Then once, the restart phase:
gateway.restart(.request) and config writes that may carry the file's real baseHash,
--restart-examples each, with a hard reset after every accepted call. A broken property is
shrunk (unless --no-shrink), recorded with its phase, method and seed, and the run goes on.

Reported: examples per phase, failures, RSS before/after the main phase and per round, the log
file's size, /health polls (every 0.5 s) and failures, tracebacks, machine load.
Exit status: 0 when nothing failed and RSS grew less than --rss-limit-mb over the main phase,
1 otherwise, 130 when interrupted. The RSS growth is mostly the high-water mark of the biggest
frames (1.5 MB strings, 100,000-deep nesting): to hunt a leak, run with small ones, e.g.
OPENCLAW_FUZZ_HUGE_SIZES=1000 OPENCLAW_FUZZ_DEEP_LEVELS=50, where RSS should stay flat.

Usage:
  .venv/bin/python bench/fuzz.py --examples 5000
  .venv/bin/python bench/fuzz.py --minutes 10 --chunk 50
  .venv/bin/python bench/fuzz.py --quick                      # 600 examples, ~15 s
  .venv/bin/python bench/fuzz.py --seed 7 --methods chat.send --examples 300   # replay one chunk
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from run import TOKEN, bench_parser, drop_tmp, fill_defaults, free_port, gateway_server, log, run_main  # noqa: E402

from tests.integration import fuzz_support as fz  # noqa: E402
from transport.protocol import ConnectParams  # noqa: E402


def start_gateway(root: Path, log_level: str):
    """run.py's gateway with the fuzz config; its file log at `log_level` (console at warn:
    a traceback is an error, so it still reaches stderr)."""
    gw = gateway_server(root, config=fz.FUZZ_CONFIG_EXTRA)
    config_path = root / "state" / "openclaw.json"
    config = json.loads(config_path.read_text())
    config["logging"]["level"] = log_level
    config_path.write_text(json.dumps(config, indent=2))
    port = free_port()
    gw.start(port)
    gw.wait_ready()
    return gw, config_path, port


class Run:
    """The budget, the failures and the RSS samples of one fuzz run."""

    def __init__(self, args: argparse.Namespace, harness: fz.Harness):
        self.args, self.h = args, harness
        self.deadline = time.monotonic() + args.minutes * 60 if args.minutes else None
        self.rng = random.Random(args.seed)
        self.failures: list[dict] = []
        self.rss: list[dict] = []

    def spent(self) -> bool:
        if self.deadline is not None:
            return time.monotonic() >= self.deadline
        return sum(self.h.examples.values()) >= self.args.examples

    def chunk(self, phase: str, name: str, strategy: Any, check: Any, examples: int) -> None:
        chunk_seed = self.rng.randrange(2**32)
        try:
            fz.run_property(strategy, check, examples, chunk_seed, shrink=not self.args.no_shrink)
        except Exception as exc:  # noqa: BLE001 - recorded; the run goes on
            notes = "\n".join(getattr(exc, "__notes__", []))  # hypothesis: the falsifying example
            self.failures.append({"phase": phase, "method": name, "seed": chunk_seed,
                                  "error": f"{type(exc).__name__}: {exc}"[:3000], "example": notes[:5000]})
            log(f"FAILED {phase} {name} seed={chunk_seed}: {str(exc).splitlines()[0][:200]}", self.args.quiet)
            self.h.client.close()


def run(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="openclaw-fuzz-"))
    root = tmp / "gateway"
    gw, config_path, port = start_gateway(root, args.log_level)
    log(f"gateway pid {gw.pid} on port {port}; seed {args.seed}", args.quiet)

    def restart() -> None:
        gw.stop(10)
        config_path.write_text(harness.original)
        gw.start(port)
        gw.wait_ready()

    harness = fz.Harness(gw.url, f"http://127.0.0.1:{port}", TOKEN, config_path,
                         [root / "gateway.log", root / "stderr.txt", root / "stdout.txt"],
                         pid=lambda: gw.pid, restart=restart)
    structs = fz.method_structs()
    wanted = set(args.methods.split(",")) if args.methods else set(structs)
    main_methods = sorted(n for n in structs if n in wanted and n not in fz.RESTARTING)
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        with harness:
            result = fuzz_rounds(args, harness, structs, main_methods, gw.pid)
            if "restart" not in args.skip:
                restart_phase(result["_run"], harness, structs, wanted)
            problems = harness.final_problems()
    finally:
        gw.stop()
    fuzz_run: Run = result.pop("_run")
    log_file = root / "gateway.log"
    result.update({
        "seed": args.seed, "seconds": round(time.monotonic() - started, 1),
        "examples": dict(harness.examples), "examples_total": sum(harness.examples.values()),
        "failures": fuzz_run.failures, "problems": problems, "hard_resets": harness.resets,
        "health_polls": harness.poller.polls, "health_failures": len(harness.poller.failures),
        "log_bytes": log_file.stat().st_size if log_file.exists() else 0,
        "outcomes": harness.outcomes, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "cpus": os.cpu_count(),
    })
    result["verdict"] = {"no_failures": not fuzz_run.failures and not problems,
                         "rss_bounded": result["rss_growth_mb"] < args.rss_limit_mb}
    result["verdict"]["all_pass"] = all(result["verdict"].values())
    drop_tmp(tmp, args.keep, args.quiet)
    return result


def fuzz_rounds(args: argparse.Namespace, harness: fz.Harness, structs: dict, methods: list[str],
                pid: int) -> dict:
    fuzz_run = Run(args, harness)
    if not methods and {"first", "junk"} <= set(args.skip.split(",")):
        raise SystemExit("nothing to fuzz: no method and both frame phases skipped")
    harness.client.authenticate(TOKEN)
    before = fz.rss_kb(pid)
    rounds = 0
    while not fuzz_run.spent():
        rounds += 1
        if "first" not in args.skip:
            fuzz_run.chunk("first frames", "-", fz.first_frames(TOKEN, ConnectParams), harness.first_frame,
                           args.chunk * 4)
        for name in methods:
            if fuzz_run.spent():
                break
            fuzz_run.chunk("after auth", name, fz.method_requests({name: structs[name]}), harness.request, args.chunk)
        if not fuzz_run.spent() and "junk" not in args.skip:
            fuzz_run.chunk("after auth", "junk", fz.junk_frames(), harness.request, args.chunk * 4)
        fuzz_run.rss.append({"round": rounds, "examples": sum(harness.examples.values()), "rss_kb": fz.rss_kb(pid)})
        log(f"round {rounds}: {sum(harness.examples.values())} examples, RSS "
            f"{fuzz_run.rss[-1]['rss_kb'] / 1024:.1f} MB, {len(fuzz_run.failures)} failures", args.quiet)
    harness.client.close()
    time.sleep(1.0)
    after = fz.rss_kb(pid)
    return {"_run": fuzz_run, "rounds": rounds, "rss_before_kb": before, "rss_after_kb": after,
            "rss_growth_mb": round((after - before) / 1024, 1), "rss_per_round": fuzz_run.rss,
            "rss_slope_kb_per_1000_second_half": second_half_slope(fuzz_run.rss)}


def second_half_slope(samples: list[dict]) -> float | None:
    """Least-squares RSS slope (kB per 1000 examples) over the second half of the rounds: a
    high-water mark left by the biggest frames levels off, a leak keeps climbing."""
    points = [(s["examples"], s["rss_kb"]) for s in samples[len(samples) // 2:] if s["rss_kb"] is not None]
    if len(points) < 3:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return None if var == 0 else round(1000 * sum((x - mx) * (y - my) for x, y in points) / var, 1)


def restart_phase(fuzz_run: Run, harness: fz.Harness, structs: dict, wanted: set[str]) -> None:
    for name in (*fz.RESTARTING, *fz.CONFIG_WRITES):
        if name in wanted:
            fuzz_run.chunk("restart phase", name, fz.restart_phase_frames(name, structs[name]),
                           harness.restarting, fuzz_run.args.restart_examples)


def report(result: dict) -> str:
    ex = result["examples"]
    lines = [
        f"Protocol fuzz: {result['examples_total']} examples in {result['seconds']} s "
        f"({result['rounds']} rounds, seed {result['seed']}; {result['cpus']} CPUs, "
        f"load {result['loadavg_before'][0]:.2f} → {result['loadavg_after'][0]:.2f})",
        "  " + ", ".join(f"{k}: {v}" for k, v in ex.items()),
        f"  RSS (main phase): {result['rss_before_kb'] / 1024:.1f} → {result['rss_after_kb'] / 1024:.1f} MB "
        f"(growth {result['rss_growth_mb']} MB; second-half slope "
        f"{result['rss_slope_kb_per_1000_second_half']} kB per 1000 examples); per round: "
        + " ".join(f"{r['rss_kb'] / 1024:.0f}" for r in result["rss_per_round"]),
        f"  log file: {result['log_bytes'] / 1e6:.1f} MB; /health polls: {result['health_polls']}, "
        f"failed: {result['health_failures']}; hard resets: {result['hard_resets']}",
        f"  failures: {len(result['failures'])}; other problems: {len(result['problems'])}",
    ]
    for f in result["failures"][:20]:
        lines.append(f"   - {f['phase']} {f['method']} seed={f['seed']}: {f['error'].splitlines()[0][:300]}")
    for p in result["problems"][:10]:
        lines.append(f"   - {p[:300]}")
    lines.append("PASS" if result["verdict"]["all_pass"] else f"FAIL {result['verdict']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__, "600 examples, chunks of 10: ~15 s")
    parser.add_argument("--examples", type=int, help="stop after this many examples (3000; quick 600)")
    parser.add_argument("--minutes", type=float, help="stop after this long instead of --examples")
    parser.add_argument("--chunk", type=int, help="examples per phase and method in a round (20; quick 10)")
    parser.add_argument("--restart-examples", type=int, default=10,
                        help="examples per method in the restart phase (10)")
    parser.add_argument("--seed", type=int, help="base seed (default: random, printed)")
    parser.add_argument("--methods", help="comma-separated methods to fuzz (default: all; 'none' for none)")
    parser.add_argument("--no-shrink", action="store_true", help="report failures unshrunk (faster)")
    parser.add_argument("--skip", default="", help="phases to leave out, comma-separated: first,junk,restart")
    parser.add_argument("--log-level", default="info", help="the gateway's file log level (info)")
    parser.add_argument("--rss-limit-mb", type=float, default=200.0,
                        help="largest RSS growth over the main phase that passes (200: the biggest "
                             "frames leave a high-water mark of ~100-150 MB)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state)")
    args = parser.parse_args(argv)
    args.quiet = args.json and not args.verbose
    if args.seed is None:
        args.seed = random.randrange(2**32)
    return fill_defaults(args, {"examples": 600 if args.quick else 3000, "chunk": 10 if args.quick else 20})


def main(argv: list[str] | None = None) -> int:
    return run_main(parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
