"""Throughput of a few methods on one gateway started from a checkout: N runs per method of
bench/loadgen.py's throughput test (4 connections x 8 in flight), medians of req/s and server
CPU per request. Written for issue 12's `config.get` (answered from a payload encoded once per
applied config) against `health`, before and after:

    .venv/bin/python bench/methods.py --tree /work/tmp/before
    .venv/bin/python bench/methods.py --tree .            # this checkout

The gateway is bench/run.py's (token auth, file logging at warn, a fresh temp state dir), run
with this venv's python from `--tree` (cwd first on sys.path, so that checkout's code runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import loadgen
import run


def measure(tree: Path, methods: list[str], runs: int, duration: float, warmup: float) -> dict:
    run.ROOT = tree.resolve()  # Server.start's cwd: which checkout's code runs
    out: dict = {"tree": str(tree.resolve())}
    with tempfile.TemporaryDirectory(prefix="openclaw-methods-") as tmp:
        gw = run.gateway_server(Path(tmp) / "gateway")
        gw.cmd = [run.venv_python(), "-m", "cli", "gateway"]
        gw.start(run.free_port())
        try:
            gw.wait_ready()
            for method in methods:
                results = [loadgen.run_throughput(gw.url, run.TOKEN, server_pid=gw.pid, warmup=warmup,
                                                  duration=duration, method=method) for _ in range(runs)]
                out[method] = {
                    "rps": [round(r["rps"]) for r in results],
                    "median_rps": round(statistics.median(r["rps"] for r in results)),
                    "median_server_cpu_us_per_req": round(statistics.median(
                        r.get("server_cpu_us_per_req", 0.0) for r in results), 1),
                    "errors": sum(r["errors"] for r in results),
                    "response_bytes": round(results[0]["avg_response_bytes"]),
                }
        finally:
            gw.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=run.ROOT, help="checkout to run (default: this one)")
    parser.add_argument("--methods", default="config.get,health", help="comma-separated (no params)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    result = measure(args.tree, args.methods.split(","), args.runs, args.duration, args.warmup)
    print(json.dumps(result, indent=2))
    return 1 if any(v.get("errors") for v in result.values() if isinstance(v, dict)) else 0


if __name__ == "__main__":
    sys.exit(main())
