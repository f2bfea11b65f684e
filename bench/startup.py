"""Start-up benchmark: spawn → `GET /readyz` 200, and the idle RSS after it (issue 12).

Each sample spawns `python -m cli gateway --port P` on a fresh state dir (the same config as
bench/run.py: token auth, file logging at `warn`), polls `/readyz` every 5 ms, reads `VmRSS`
--settle s after the 200, and stops the process. With --compare DIR the same is done for the
checkout in DIR (e.g. the code before a change), the two alternating sample by sample so that
background load hits both alike; the figures are medians.

Usage:
  .venv/bin/python bench/startup.py                        # this checkout, 7 samples
  .venv/bin/python bench/startup.py --compare /work/tmp/before --samples 9
  .venv/bin/python bench/startup.py --json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
from run import ROOT, bench_parser, drop_tmp, free_port, gateway_server, log, run_main, venv_python  # noqa: E402

TARGETS = {"ready_ms": 500.0, "idle_rss_mb": 50.0}


def sample(source: Path, root: Path, settle: float) -> tuple[float, float]:
    """One cold start of the checkout in `source`: (ms to /readyz 200, idle RSS in MB)."""
    server = gateway_server(root, f"gateway-{source.name}")
    # `-P`: not the working directory (bench/run.py's ROOT) but PYTHONPATH, the checkout's
    # own code, comes first on sys.path.
    server.cmd = [venv_python(), "-P", "-m", "cli", "gateway"]
    server.env["PYTHONPATH"] = str(source)
    try:
        t0 = server.start(free_port())
        ready, _ = server.wait_ready()
        time.sleep(settle)
        rss = loadgen.proc_rss_kb(server.pid)
    finally:
        server.stop()
    return (ready - t0) * 1000, (rss or 0) / 1024


def run(args: argparse.Namespace) -> dict:
    sources = {"this": ROOT}
    if args.compare:
        sources["compare"] = Path(args.compare).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="openclaw-startup-"))
    samples: dict[str, dict[str, list[float]]] = {n: {"ready_ms": [], "rss_mb": []} for n in sources}
    try:
        for i in range(args.samples):
            order = list(sources.items()) if i % 2 == 0 else list(reversed(sources.items()))
            for name, source in order:
                ready, rss = sample(source, tmp / f"{name}{i}", args.settle)
                samples[name]["ready_ms"].append(ready)
                samples[name]["rss_mb"].append(rss)
                log(f"  {name} {i + 1}/{args.samples}: {ready:.0f} ms to /readyz, {rss:.1f} MB", args.quiet)
    finally:
        drop_tmp(tmp, args.keep, args.quiet)
    out: dict = {"samples": args.samples, "settle_s": args.settle, "sources": {}}
    for name, source in sources.items():
        got = samples[name]
        out["sources"][name] = {"path": str(source), **got,
                                "ready_median_ms": statistics.median(got["ready_ms"]),
                                "rss_median_mb": statistics.median(got["rss_mb"])}
    this = out["sources"]["this"]
    out["verdict"] = {"ready": this["ready_median_ms"] < TARGETS["ready_ms"],
                      "rss": this["rss_median_mb"] < TARGETS["idle_rss_mb"]}
    out["verdict"]["all_pass"] = all(out["verdict"].values())
    return out


def report(result: dict) -> str:
    lines = [f"{'source':<10}{'spawn -> /readyz (ms)':>24}{'idle RSS (MB)':>16}   path"]
    for name, got in result["sources"].items():
        lines.append(f"{name:<10}{got['ready_median_ms']:>24.0f}{got['rss_median_mb']:>16.1f}   {got['path']}")
    lines.append(f"medians of {result['samples']} samples; targets < {TARGETS['ready_ms']:.0f} ms, "
                 f"< {TARGETS['idle_rss_mb']:.0f} MB")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__, "3 samples", save=True)
    parser.add_argument("--samples", type=int, help="cold starts per checkout (7; quick 3)")
    parser.add_argument("--compare", metavar="DIR", help="another checkout measured alternately")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds after /readyz before the RSS read")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state)")
    args = parser.parse_args(argv)
    if args.samples is None:
        args.samples = 3 if args.quick else 7
    args.quiet = args.json and not args.verbose
    return args


def main(argv: list[str] | None = None) -> int:
    return run_main(parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
