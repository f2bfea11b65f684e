"""Chat benchmark: `chat.send` → `final` round trips and `chat` event fan-out (protocol §7.3,
§14.1), with model providers that answer at once.

Two gateways are measured one after the other, each on its own temp state dir, token auth and
a free loopback port, with file logging at `warn`:
  echo    `agents.defaults.model: "offline/echo"` (the built-in provider: echoes the user's
          text as word deltas, no network);
  openai  `agents.defaults.model: "fake/m1"`, an `openai-completions` provider pointing at a
          local OpenAI-format stand-in (tests/fakes/model_server.py) run inside this process
          on 127.0.0.1; it streams "Hello from GPT" with no delay.
Both use `maxConcurrent: 64`.

Against each gateway, --rounds rounds (median reported) of
  (a) one session: sequential (send, wait for that run's `final` chat event, next), and
      --inflight runs outstanding on the same session (they queue serially);
  (b) --sessions sessions over --connections connections, one run in flight per session;
every scenario reports runs/s and the send → final latency p50/p99. A fresh session key is
used per round, so the session transcript (read in full by each run) stays comparable.
Then once per gateway
  (c) fan-out: --watchers connected operator.read clients watch while one sender runs
      sessions in parallel. openai: every model reply is streamed in --parts parts 160 ms apart
      (more than the 150 ms coalescing interval, so each part is one delta), --fanout-sessions
      sessions at once; echo: short runs (one or two deltas each) on --sessions sessions at
      once. Every watcher must see every run's chat events with seq 0..n in order, the deltas
      adding up to the reply and the same deltas as the sender, ending in `final`.
Gateway RSS is read before the first connection and after all scenarios.

Exit status: 0 when nothing failed (no error answers, no error/aborted runs, no timeouts, no
lost or out-of-order deltas), 1 otherwise, 130 when interrupted. No targets: figures only.

Usage:
  .venv/bin/python bench/chat.py            # 3 rounds x 5 s per scenario, ~2.5 min
  .venv/bin/python bench/chat.py --quick    # 3 rounds x 1.5 s, < 1 min
  .venv/bin/python bench/chat.py --json > result.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
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
from loadgen import EVENT_PREFIX, RES_PREFIX, WSConn, open_conn, percentile, text_frame  # noqa: E402
from run import TOKEN, Server, bench_parser, drop_tmp, fill_defaults, free_port, gateway_server, log, run_main  # noqa: E402

from tests.fakes.model_server import ModelServer, Stream, openai_text  # noqa: E402

CHAT_PREFIX = EVENT_PREFIX + b',"event":"chat"'
TERMINAL = ("final", "error", "aborted")
MESSAGE = "hello from the chat benchmark"
FAST_REPLY = ["Hello", " from", " GPT"]
FANOUT_DELAY_S = 0.16


# --------------------------------------------------------------------------- processes


def chat_gateway(root: Path, config: dict) -> Server:
    """run.py's gateway with `config` (models, agents) under its auth and logging settings;
    every OPENCLAW_* / CLAWDBOT_* setting from the caller's environment but the state dir is
    dropped (it would win over the config)."""
    gw = gateway_server(root, config=config)
    for var in list(gw.env):
        if var.startswith(("OPENCLAW_", "CLAWDBOT_")) and var != "OPENCLAW_STATE_DIR":
            del gw.env[var]
    return gw


class BenchModelServer(ModelServer):
    """The test stand-in, answering every request with `self.step` and keeping no request log
    (the log would hold every request body: the whole transcript each time)."""

    def __init__(self) -> None:
        super().__init__()
        self.step = Stream(openai_text(FAST_REPLY))
        self.count = 0

    def _record(self, path: str, headers: dict[str, str], body: Any) -> None:
        self.count += 1

    def _next_step(self, path: str) -> Stream:
        return self.step


# --------------------------------------------------------------------------- client


class ChatConn(WSConn):
    """A protocol connection with requests answered by future and chat events recorded.

    Response frames and `chat` event frames are JSON-decoded (a few thousand a second at most
    here); other events (`agent`, `sessions.changed`) are only counted."""

    def __init__(self, host: str, port: int, path: str, token: str | None, mode: str,
                 scopes: tuple[str, ...] = ("operator.read",), keep: bool = False) -> None:
        super().__init__(host, port, path, token, mode)
        params = loadgen.connect_params(token, mode)
        params["scopes"] = list(scopes)
        self.connect_req = text_frame(json.dumps(
            {"type": "req", "id": "c", "method": "connect", "params": params},
            separators=(",", ":")).encode())
        self.pending: dict[str, asyncio.Future] = {}
        self.waiters: dict[str, tuple[asyncio.Future, list | None]] = {}
        self.keep = keep  # record every chat payload per run
        self.runs: dict[str, list[tuple]] = {}
        self.chat_events = 0
        self.deltas = 0
        self.terminals = 0
        self.last_chat = 0.0
        self._ids = 0

    def _on_text(self, payload: bytes) -> None:
        if self.state != "open":
            super()._on_text(payload)
            return
        if payload.startswith(RES_PREFIX):
            frame = json.loads(payload)
            fut = self.pending.pop(frame.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(frame)
            return
        self.events += 1
        if not payload.startswith(CHAT_PREFIX):
            return
        chat = json.loads(payload)["payload"]
        self.chat_events += 1
        self.last_chat = time.monotonic()
        state = chat["state"]
        run_id = chat["runId"]
        if state == "delta":
            self.deltas += 1
        if self.keep:
            self.runs.setdefault(run_id, []).append((chat["seq"], state, chat.get("deltaText")))
        if state in TERMINAL:
            self.terminals += 1
            entry = self.waiters.pop(run_id, None)
            if entry is not None and not entry[0].done():
                entry[0].set_result((time.monotonic(), state, chat))

    def request(self, method: str, params: Any) -> asyncio.Future:
        self._ids += 1
        req_id = f"r{self._ids}"
        fut = asyncio.get_running_loop().create_future()
        self.pending[req_id] = fut
        self.transport.write(text_frame(json.dumps(
            {"type": "req", "id": req_id, "method": method, "params": params},
            separators=(",", ":")).encode()))
        return fut

    def on_lost(self) -> None:
        for fut in list(self.pending.values()) + [w[0] for w in self.waiters.values()]:
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))
                fut.exception()


async def connect(url: str, count: int, scopes: tuple[str, ...], keep: bool = False) -> list[ChatConn]:
    conns = await asyncio.gather(*(open_conn(ChatConn, url, TOKEN, "cli", 10.0, scopes=scopes, keep=keep)
                                   for _ in range(count)))
    return list(conns)


def close_all(conns: list[ChatConn]) -> None:
    for conn in conns:
        conn.close()


class Tally:
    """Outcome counters and latencies of one scenario."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.completed = 0
        self.errors: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def chat_run(conn: ChatConn, key: str, run_id: str, tally: Tally, timeout: float,
                   measuring: bool, message: str = MESSAGE) -> bool:
    """One chat.send and its terminal chat event; True on `final`."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    conn.waiters[run_id] = (done, None)  # before the send: the final may beat the ack
    t0 = time.monotonic()
    ack = conn.request("chat.send", {"sessionKey": key, "message": message, "idempotencyKey": run_id})
    try:
        res = await asyncio.wait_for(ack, timeout)
        if not res.get("ok") or res["payload"].get("status") != "started":
            conn.waiters.pop(run_id, None)
            tally.error("send refused: " + json.dumps(res.get("error") or res.get("payload"))[:200])
            return False
        t1, state, _chat = await asyncio.wait_for(done, timeout)
    except asyncio.TimeoutError:
        conn.waiters.pop(run_id, None)
        tally.error("timeout")
        return False
    except ConnectionError:
        tally.error("connection lost")
        return False
    if state != "final":
        tally.error(f"run ended {state}")
        return False
    if measuring:
        tally.completed += 1
        tally.latencies.append((t1 - t0) * 1000.0)
    return True


def summary(tally: Tally, window_s: float, cpu: dict) -> dict:
    lat = sorted(tally.latencies)
    out = {"runs": tally.completed, "window_s": window_s,
           "rps": tally.completed / window_s if window_s > 0 else 0.0,
           "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
           "errors": sum(tally.errors.values()), "error_kinds": tally.errors}
    out.update(cpu)
    return out


class CpuWindow:
    """Gateway and bench-process CPU (% of one core) over a window."""

    def __init__(self, gateway_pid: int) -> None:
        self.pid = gateway_pid

    def __enter__(self) -> "CpuWindow":
        self.t0 = time.monotonic()
        self.g0 = loadgen.proc_cpu_seconds(self.pid) or 0.0
        self.c0 = loadgen.cpu_seconds()
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = max(1e-9, time.monotonic() - self.t0)
        self.result = {"gateway_cpu_pct": 100.0 * ((loadgen.proc_cpu_seconds(self.pid) or 0.0) - self.g0) / wall,
                       "bench_cpu_pct": 100.0 * (loadgen.cpu_seconds() - self.c0) / wall}


# --------------------------------------------------------------------------- scenarios


async def closed_loop(gw: Server, plan: list[tuple[ChatConn, str]], warmup: float, duration: float,
                      tag: str, timeout: float) -> dict:
    """Each (connection, session key) of `plan` is one worker keeping one run in flight:
    send, wait for the final, next. Several workers may share a session (runs then queue)."""
    tally = Tally()
    loop = asyncio.get_running_loop()
    start = loop.time()
    t_measure, t_end = start + warmup, start + warmup + duration

    async def worker(index: int, conn: ChatConn, key: str) -> None:
        n = 0
        while True:
            now = loop.time()
            if now >= t_end:
                return
            n += 1
            await chat_run(conn, key, f"{tag}-w{index}-{n}", tally, timeout,
                                measuring=now >= t_measure)
            if conn.closed.done():
                return

    tasks = [asyncio.ensure_future(worker(i, c, k)) for i, (c, k) in enumerate(plan)]
    try:
        await asyncio.sleep(max(0.0, t_measure - loop.time()))
        with CpuWindow(gw.pid) as cpu:
            await asyncio.sleep(max(0.0, t_end - loop.time()))
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    # a run started just before t_end and finishing after it counts: the window is measured
    # from t_measure to the last completion
    window = max(duration, loop.time() - t_measure)
    return summary(tally, window, cpu.result)


async def fanout(gw: Server, watchers: list[ChatConn], sender: ChatConn, sessions: int,
                 duration: float, tag: str, timeout: float, expected_text: str) -> dict:
    """`sessions` workers on one sender connection run sequential runs on their own session
    for `duration`; the watchers record every chat event. Then every run is checked on every
    watcher."""
    for conn in [sender, *watchers]:
        conn.runs.clear()
        conn.deltas = conn.chat_events = conn.events = conn.terminals = 0
    tally = Tally()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    t_end = t0 + duration
    started: list[str] = []

    async def worker(index: int) -> None:
        n = 0
        while loop.time() < t_end and not sender.closed.done():
            n += 1
            run_id = f"{tag}-s{index}-{n}"
            started.append(run_id)
            await chat_run(sender, f"{tag}-{index}", run_id, tally, timeout, measuring=True)

    with CpuWindow(gw.pid) as cpu:
        await asyncio.gather(*(worker(i) for i in range(sessions)))
        # every watcher has the terminal event of every run (or the wait times out)
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if all(w.terminals >= len(started) for w in watchers):
                break
            await asyncio.sleep(0.02)
        t_last = max([w.last_chat for w in watchers] + [sender.last_chat])
    wall = max(1e-9, t_last - t0)  # loop.time() is time.monotonic()
    sent_deltas = sum(1 for r in started for e in sender.runs.get(r, []) if e[1] == "delta")
    missing = out_of_order = wrong_text = lost_deltas = 0
    problems: list[str] = []
    for index, w in enumerate(watchers):
        for run_id in started:
            seen = w.runs.get(run_id)
            ref = sender.runs.get(run_id, [])
            if not seen or seen[-1][1] not in TERMINAL:
                missing += 1
                if len(problems) < 5:
                    problems.append(f"watcher {index}: run {run_id} incomplete ({len(seen or [])} events)")
                continue
            if [s[0] for s in seen] != list(range(len(seen))) or sum(1 for s in seen if s[1] in TERMINAL) != 1:
                out_of_order += 1
                if len(problems) < 5:
                    problems.append(f"watcher {index}: run {run_id} seq {[s[0] for s in seen]}")
            deltas = [s[2] for s in seen if s[1] == "delta"]
            ref_deltas = [s[2] for s in ref if s[1] == "delta"]
            if deltas != ref_deltas:
                lost_deltas += max(0, len(ref_deltas) - len(deltas)) or 1
                if len(problems) < 5:
                    problems.append(f"watcher {index}: run {run_id} {len(deltas)} deltas, sender saw {len(ref_deltas)}")
            if "".join(deltas) != expected_text:
                wrong_text += 1
                if len(problems) < 5:
                    problems.append(f"watcher {index}: run {run_id} text {''.join(deltas)!r}")
    delivered = sum(w.deltas for w in watchers)
    out = {"watchers": len(watchers), "parallel_sessions": sessions, "runs": len(started),
           "runs_final": tally.completed, "deltas_per_run": sent_deltas / len(started) if started else 0.0,
           "deltas_produced": sent_deltas, "deltas_delivered": delivered,
           "deltas_expected": sent_deltas * len(watchers), "window_s": wall,
           "delivered_deltas_per_s": delivered / wall,
           "chat_events_delivered_per_s": sum(w.chat_events for w in watchers) / wall,
           "all_events_delivered_per_s": sum(w.events for w in watchers) / wall,
           "missing_runs": missing, "out_of_order_runs": out_of_order,
           "runs_with_lost_deltas": lost_deltas, "runs_with_wrong_text": wrong_text,
           "problems": problems, "errors": sum(tally.errors.values()), "error_kinds": tally.errors,
           "p50_ms": percentile(sorted(tally.latencies), 50), "p99_ms": percentile(sorted(tally.latencies), 99)}
    out.update(cpu.result)
    out["ok"] = not (missing or out_of_order or lost_deltas or wrong_text or out["errors"]
                     or delivered != sent_deltas * len(watchers))
    for w in [sender, *watchers]:
        w.runs.clear()
    return out


def median_rounds(rounds: list[dict]) -> dict:
    keys = ("rps", "p50_ms", "p99_ms", "gateway_cpu_pct", "bench_cpu_pct")
    out: dict[str, Any] = {k: statistics.median(r[k] for r in rounds) for k in keys}
    out["errors"] = sum(r["errors"] for r in rounds)
    out["rounds"] = rounds
    return out


async def measure_gateway(gw: Server, name: str, args: argparse.Namespace, model: BenchModelServer | None,
                          quiet: bool) -> dict:
    result: dict[str, Any] = {}
    timeout = args.run_timeout
    senders = await connect(gw.url, args.connections, ("operator.read", "operator.write"))
    single = senders[0]
    try:
        if model is not None:
            model.step = Stream(openai_text(FAST_REPLY))
        # warm-up: imports, first session, first provider connection
        for i in range(5):
            await chat_run(single, f"warm-{name}", f"warm-{name}-{i}", Tally(), timeout, False)
        scen: dict[str, list[dict]] = {"sequential": [], "inflight": [], "sessions": []}
        for r in range(args.rounds):
            seq = await closed_loop(gw, [(single, f"a-{name}-r{r}")], args.warmup, args.duration,
                                    f"{name}-a-r{r}", timeout)
            scen["sequential"].append(seq)
            infl = await closed_loop(gw, [(single, f"a2-{name}-r{r}")] * args.inflight, args.warmup,
                                     args.duration, f"{name}-a2-r{r}", timeout)
            scen["inflight"].append(infl)
            plan = [(senders[i % len(senders)], f"b-{name}-r{r}-{i}") for i in range(args.sessions)]
            many = await closed_loop(gw, plan, args.warmup, args.duration, f"{name}-b-r{r}", timeout)
            scen["sessions"].append(many)
            log(f"  {name} round {r + 1}: one session {seq['rps']:,.0f} runs/s (p50 {seq['p50_ms']:.1f} ms), "
                f"{args.inflight} in flight {infl['rps']:,.0f} runs/s (p50 {infl['p50_ms']:.1f} ms), "
                f"{args.sessions} sessions {many['rps']:,.0f} runs/s (p50 {many['p50_ms']:.1f} / "
                f"p99 {many['p99_ms']:.1f} ms); gateway CPU {many['gateway_cpu_pct']:.0f}%", quiet)
        for key, rounds in scen.items():
            result[key] = median_rounds(rounds)

        watchers = await connect(gw.url, args.watchers, ("operator.read",), keep=True)
        single.keep = True
        try:
            if model is not None:
                parts = [f"w{i} " for i in range(args.parts)]
                model.step = Stream(openai_text(parts), delay=FANOUT_DELAY_S)
                fan = await fanout(gw, watchers, single, args.fanout_sessions, args.fanout_duration,
                                   f"{name}-c", timeout, "".join(parts))
            else:
                fan = await fanout(gw, watchers, single, args.sessions, args.fanout_duration,
                                   f"{name}-c", timeout, MESSAGE)
        finally:
            single.keep = False
            close_all(watchers)
        result["fanout"] = fan
        log(f"  {name} fan-out: {fan['runs']} runs x {fan['deltas_per_run']:.1f} deltas to {fan['watchers']} "
            f"watchers: {fan['delivered_deltas_per_s']:,.0f} deltas/s delivered "
            f"({fan['deltas_delivered']}/{fan['deltas_expected']}), "
            f"{'all in order' if fan['ok'] else 'PROBLEMS: ' + '; '.join(fan['problems'])}; "
            f"gateway CPU {fan['gateway_cpu_pct']:.0f}%", quiet)
    finally:
        close_all(senders)
        await asyncio.sleep(0.2)
    return result


def run(args: argparse.Namespace) -> dict:
    quiet = args.json and not args.verbose
    tmp = Path(tempfile.mkdtemp(prefix="openclaw-bench-chat-"))
    gateways: list[Server] = []
    model = BenchModelServer()
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_start": os.getloadavg()},
        "settings": {k: getattr(args, k) for k in ("rounds", "warmup", "duration", "inflight", "sessions",
                                                    "connections", "watchers", "parts", "fanout_sessions",
                                                    "fanout_duration")},
        "gateways": {},
    }
    try:
        model.start()
        log(f"temp dir {tmp}; model stand-in {model.url}", quiet)
        providers = {"fake": {"api": "openai-completions", "baseUrl": model.url + "/v1", "apiKey": "x",
                              "models": [{"id": "m1"}]}}
        for name, ref in (("echo", "offline/echo"), ("openai", "fake/m1")):
            if args.only and name != args.only:
                continue
            gw = chat_gateway(tmp / name, {"models": {"providers": providers},
                                           "agents": {"defaults": {"model": ref, "maxConcurrent": 64}}})
            gateways.append(gw)
            gw.start(free_port())
            gw.wait_ready(timeout=30.0, interval=0.02)
            time.sleep(1.0)
            rss_idle = loadgen.proc_rss_kb(gw.pid)
            log(f"{name}: gateway pid {gw.pid} port {gw.port}, idle RSS {rss_idle / 1024:.1f} MB", quiet)
            try:
                figures = asyncio.run(measure_gateway(gw, name, args, model if name == "openai" else None, quiet))
            finally:
                time.sleep(1.0)
                figures_rss = loadgen.proc_rss_kb(gw.pid)
                gw.stop()
            figures["rss_idle_kb"] = rss_idle
            figures["rss_after_kb"] = figures_rss
            result["gateways"][name] = figures
            log(f"  {name}: RSS {rss_idle / 1024:.1f} MB -> {(figures_rss or 0) / 1024:.1f} MB", quiet)
        result["model_requests"] = model.count
    finally:
        for gw in gateways:
            gw.stop()
        model.stop()
        drop_tmp(tmp, args.keep, quiet)
    result["machine"]["loadavg_end"] = os.getloadavg()
    failures = []
    for name, g in result["gateways"].items():
        for key in ("sequential", "inflight", "sessions"):
            if g[key]["errors"]:
                failures.append(f"{name} {key}: {g[key]['errors']} errors")
        if not g["fanout"]["ok"]:
            failures.append(f"{name} fan-out: lost, out-of-order or failed runs")
    result["failures"] = failures
    return result


# --------------------------------------------------------------------------- report


def report(result: dict, args: argparse.Namespace) -> str:
    lines = [
        "OpenClaw chat benchmark (loopback, %d CPUs, Python %s): %d rounds x (%.1f s warm-up + %.1f s), median"
        % (result["machine"]["cpus"], result["machine"]["python"], args.rounds, args.warmup, args.duration),
        "",
        f"{'figure':<52}{'offline/echo':>16}{'openai stand-in':>18}",
        f"{'-' * 52}{'-' * 16}{'-' * 18}",
    ]
    g = result["gateways"]

    def row(label: str, fn) -> None:
        cells = []
        for name in ("echo", "openai"):
            try:
                cells.append(fn(g[name]))
            except (KeyError, TypeError):
                cells.append("-")
        lines.append(f"{label:<52}{cells[0]:>16}{cells[1]:>18}")

    for key, label in (("sequential", "(a) one session, sequential"),
                       ("inflight", f"(a) one session, {args.inflight} in flight (queued)"),
                       ("sessions", f"(b) {args.sessions} sessions / {args.connections} connections")):
        row(f"{label}: runs/s", lambda x, k=key: f"{x[k]['rps']:,.0f}")
        row("    send -> final p50 / p99 (ms)", lambda x, k=key: f"{x[k]['p50_ms']:.1f} / {x[k]['p99_ms']:.1f}")
        row("    gateway CPU (% of one core)", lambda x, k=key: f"{x[k]['gateway_cpu_pct']:.0f}%")
    row(f"(c) fan-out to {args.watchers} watchers: runs in parallel",
        lambda x: f"{x['fanout']['parallel_sessions']}")
    row("    runs x deltas per run", lambda x: f"{x['fanout']['runs']} x {x['fanout']['deltas_per_run']:.1f}")
    row("    deltas delivered / s (all watchers)", lambda x: f"{x['fanout']['delivered_deltas_per_s']:,.0f}")
    row("    all events delivered / s (chat+agent+...)", lambda x: f"{x['fanout']['all_events_delivered_per_s']:,.0f}")
    row("    delivered / expected deltas",
        lambda x: f"{x['fanout']['deltas_delivered']}/{x['fanout']['deltas_expected']}")
    row("    every watcher saw every delta in order", lambda x: "yes" if x["fanout"]["ok"] else "NO")
    row("    send -> final p50 / p99 (ms)", lambda x: f"{x['fanout']['p50_ms']:.0f} / {x['fanout']['p99_ms']:.0f}")
    row("    gateway CPU (% of one core)", lambda x: f"{x['fanout']['gateway_cpu_pct']:.0f}%")
    row("gateway RSS idle -> after all (MB)",
        lambda x: f"{x['rss_idle_kb'] / 1024:.1f} -> {x['rss_after_kb'] / 1024:.1f}")
    lines.append("")
    lines.append("load average %.2f at start, %.2f at end; %s" % (
        result["machine"]["loadavg_start"][0], result["machine"]["loadavg_end"][0],
        "no failures" if not result["failures"] else "FAILED: " + "; ".join(result["failures"])))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__, "short settings: under a minute", save=False)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (a) and (b), median (3)")
    parser.add_argument("--warmup", type=float, help="untimed seconds before each measurement (1; quick 0.5)")
    parser.add_argument("--duration", type=float, help="measured seconds per scenario (5; quick 1.5)")
    parser.add_argument("--inflight", type=int, default=8, help="runs in flight on one session in (a) (8)")
    parser.add_argument("--sessions", type=int, default=50, help="sessions in (b), echo fan-out sessions (50)")
    parser.add_argument("--connections", type=int, default=8, help="sender connections in (b) (8)")
    parser.add_argument("--watchers", type=int, default=100, help="watching connections in (c) (100)")
    parser.add_argument("--parts", type=int, default=12, help="streamed parts per reply in (c), openai (12)")
    parser.add_argument("--fanout-sessions", type=int, default=16,
                        help="sessions streaming at once in (c), openai (16)")
    parser.add_argument("--fanout-duration", type=float, help="seconds of new runs in (c) (8; quick 4)")
    parser.add_argument("--run-timeout", type=float, default=60.0, help="seconds before a run counts as lost")
    parser.add_argument("--only", choices=("echo", "openai"), help="measure one provider only")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state)")
    args = parser.parse_args(argv)
    defaults = {"warmup": 0.5 if args.quick else 1.0, "duration": 1.5 if args.quick else 5.0,
                "fanout_duration": 4.0 if args.quick else 8.0}
    return fill_defaults(args, defaults)


def main(argv: list[str] | None = None) -> int:
    # SIGINT is caught too, even if inherited as ignored; no --save; exit 1 on any failure
    args = parse_args(argv)
    return run_main(args, run, lambda result: report(result, args),
                    passed=lambda result: not result["failures"], catch_sigint=True)


if __name__ == "__main__":
    sys.exit(main())
