"""Tools benchmark: the `exec` and `process` tools (docs/tools.md) through `POST /tools/invoke`
and through an agent tool call, with the gateway's WebSocket `health` latency while many
commands run, and the gateway's RSS with background jobs.

One gateway (temp state dir, token auth, free loopback port, file logging at `warn`,
`tools.exec.security: "full"`, `ask: "off"`, so nothing asks for approval) with the model
`fake/m1`: an `openai-completions` provider pointing at the test suite's OpenAI-format
stand-in (tests/fakes/model_server.py), run inside this process on 127.0.0.1 (TCP_NODELAY on
its sockets, so its two-part answers are not held back by Nagle + delayed ACK).

  (1) `exec {"command": "true"}` through POST /tools/invoke on one keep-alive http.client
      connection, sequential: --count requests after 20 untimed ones; p50/p99/mean, req/s.
      Every answer must be 200 with result.exitCode 0. As references: `bash -c true` and the
      executor's own `ExecProcess("true")` started and waited for from this process.
  (2) agent round trip: `chat.send` (sessionKey "main", a fresh idempotencyKey) over
      WebSocket → the run's `chat` `final` event. With a tool: the stand-in is scripted per
      run with a tool call `exec {"command":"true"}` and then the text "ok" (two model turns);
      without: the text "ok" at once. The two kinds alternate (--agent-count each, after 3
      untimed of each), so the growing "main" transcript weighs on both alike; the tool's own
      cost is the difference of the medians.
  (3) --concurrent `exec {"command": "sleep 0.5; true"}` from as many threads at once (one
      connection each): wall time until every one answered (all must succeed), while another
      thread calls `health` over WebSocket every 10 ms: health p50/p99/max over that window,
      target p99 < 50 ms.
  (4) gateway RSS (VmRSS) idle, with --jobs background jobs (`exec` with `background: true`,
      `sleep 300`; `process list` must show them all running), and after `process kill` of
      each (`process list` must show none of them running).

Exit status: 0 when nothing failed and the health target held, 1 otherwise, 130 when
interrupted. The gateway runs in its own process group and is stopped at the end (also on
failure or Ctrl-C), which kills every tool process; the temp dir is removed unless --keep.

Usage:
  .venv/bin/python bench/tools.py            # ~30 s
  .venv/bin/python bench/tools.py --quick    # ~15 s
  .venv/bin/python bench/tools.py --json > result.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import loadgen  # noqa: E402
from loadgen import RES_PREFIX, SyncConn, percentile, request_frame  # noqa: E402
from run import (  # noqa: E402
    TOKEN,
    Server,
    bench_parser,
    drop_tmp,
    fill_defaults,
    free_port,
    gateway_server,
    log,
    run_main,
    source_info,
)

from tests.fakes.model_server import ModelServer, Stream, _Handler, openai_text, openai_tool_calls  # noqa: E402

HEALTH_TARGET_P99_MS = 50.0
HEALTH_INTERVAL_S = 0.010
WARMUP_HTTP = 20
WARMUP_AGENT = 3


# --------------------------------------------------------------------------- model stand-in


class _NoDelayHandler(_Handler):
    disable_nagle_algorithm = True


class BenchModelServer(ModelServer):
    """The stand-in with scripted steps (ModelServer pops one per request, in order) and no
    request log (it would hold every request body: the whole transcript each time); requests
    with no step left get the text "ok"."""

    def __init__(self) -> None:
        super().__init__()
        self._httpd.RequestHandlerClass = _NoDelayHandler
        self.count = 0
        self.defaulted = 0

    def _record(self, path: str, headers: dict[str, str], body: Any) -> None:
        with self._lock:
            self.count += 1

    def _next_step(self, path: str) -> Stream:
        with self._lock:
            if self._steps:
                return self._steps.pop(0)
            self.defaulted += 1
        return Stream(openai_text(["ok"]))

    def pending(self) -> int:
        with self._lock:
            return len(self._steps)


# --------------------------------------------------------------------------- clients


def ws_conn(url: str, scopes: list[str]) -> SyncConn:
    """A SyncConn connecting with `scopes` (SyncConn itself asks for operator.read only)."""
    original = loadgen.connect_params

    def params(token: str | None, mode: str) -> dict:
        return {**original(token, mode), "scopes": scopes}

    loadgen.connect_params = params
    try:
        return SyncConn(url, TOKEN)
    finally:
        loadgen.connect_params = original


class Http:
    """One keep-alive connection to POST /tools/invoke."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def invoke(self, tool: str, args: dict) -> tuple[int, dict]:
        body = json.dumps({"tool": tool, "args": args})
        self.conn.request("POST", "/tools/invoke", body=body, headers=self.headers)
        res = self.conn.getresponse()
        data = res.read()
        try:
            doc = json.loads(data)
        except ValueError:
            doc = {"raw": data[:200].decode(errors="replace")}
        return res.status, doc

    def close(self) -> None:
        self.conn.close()


def exec_ok(status: int, doc: dict) -> bool:
    return status == 200 and doc.get("ok") is True and (doc.get("result") or {}).get("exitCode") == 0


def describe(status: int, doc: dict) -> str:
    return f"{status} {json.dumps(doc)[:300]}"


def stats(values: list[float]) -> dict:
    v = sorted(values)
    return {"n": len(v), "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99),
            "max_ms": v[-1] if v else float("nan"),
            "mean_ms": statistics.fmean(v) if v else float("nan")}


# --------------------------------------------------------------------------- (1) http exec


def http_exec(port: int, count: int, problems: list[str]) -> dict:
    client = Http(port)
    latencies: list[float] = []
    bad = 0
    try:
        for i in range(WARMUP_HTTP + count):
            t0 = time.perf_counter()
            status, doc = client.invoke("exec", {"command": "true"})
            t1 = time.perf_counter()
            if not exec_ok(status, doc):
                bad += 1
                if len(problems) < 10:
                    problems.append(f"(1) exec true: {describe(status, doc)}")
                continue
            if i >= WARMUP_HTTP:
                latencies.append((t1 - t0) * 1000.0)
    finally:
        client.close()
    out = stats(latencies)
    total_s = sum(latencies) / 1000.0
    out.update(requests=count, failures=bad, rps=len(latencies) / total_s if total_s else 0.0)
    out["spawn_here"] = spawn_baseline(50)
    out["exec_process_here"] = exec_process_baseline(50)
    return out


def spawn_baseline(count: int) -> dict:
    """`bash -c true` spawned and waited for from this process (subprocess, new session, like
    the executor's process groups): what a process start costs on this machine without the
    gateway."""
    import subprocess
    times = []
    for _ in range(count + 5):
        t0 = time.perf_counter()
        subprocess.run(["bash", "-c", "true"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, start_new_session=True, check=False)
        times.append((time.perf_counter() - t0) * 1000.0)
    return stats(times[5:])


def exec_process_baseline(count: int) -> dict:
    """The executor's own `ExecProcess("true")` started and waited for from this process
    (formerly `test_spawning_true_is_cheap` of the tests, which wanted a p50 under 50 ms):
    the process tool's start cost without the gateway around it."""
    from actors.tools.proc import ExecProcess
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    times = []
    for _ in range(count + 5):
        t0 = time.perf_counter()
        proc = ExecProcess("true", Path(tempfile.gettempdir()), dict(env), timeout_s=30,
                           output_cap=100_000)
        proc.start()
        if not proc.wait(5):
            proc.kill_now()
        times.append((time.perf_counter() - t0) * 1000.0)
    return stats(times[5:])


# --------------------------------------------------------------------------- (2) agent


class ChatClient:
    def __init__(self, url: str) -> None:
        self.conn = ws_conn(url, ["operator.read", "operator.write"])
        self.ids = 0

    def run(self, run_id: str, message: str, timeout: float) -> tuple[float, str, dict]:
        """chat.send and wait for its run's terminal chat event (which may beat the ack);
        returns (ms, state, last chat payload)."""
        self.ids += 1
        req_id = "s%d" % self.ids
        conn = self.conn
        conn.sock.settimeout(timeout)
        t0 = time.perf_counter()
        conn.sock.sendall(request_frame(req_id.encode(), "chat.send",
                                        {"sessionKey": "main", "message": message, "idempotencyKey": run_id}))
        acked = False
        terminal: tuple[float, str, dict] | None = None
        deadline = t0 + timeout
        while not (acked and terminal):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"run {run_id}: no final after {timeout:.0f} s")
            payload = conn.next_text()
            if payload.startswith(RES_PREFIX):
                res = json.loads(payload)
                if res.get("id") != req_id:
                    continue
                if not res.get("ok") or (res.get("payload") or {}).get("status") != "started":
                    raise RuntimeError(f"chat.send refused: {json.dumps(res)[:300]}")
                acked = True
                continue
            if b'"event":"chat"' not in payload[:80]:
                continue
            chat = json.loads(payload).get("payload") or {}
            if chat.get("runId") == run_id and chat.get("state") in ("final", "error", "aborted"):
                terminal = ((time.perf_counter() - t0) * 1000.0, chat["state"], chat)
        return terminal

    def close(self) -> None:
        self.conn.close()


def agent_round_trips(url: str, model: BenchModelServer, count: int, timeout: float,
                      problems: list[str]) -> dict:
    chat = ChatClient(url)
    samples: dict[str, list[float]] = {"tool": [], "plain": []}
    bad = {"tool": 0, "plain": 0}
    try:
        for i in range(WARMUP_AGENT + count):
            for kind in ("plain", "tool"):
                if model.pending():
                    problems.append(f"(2) {model.pending()} scripted model steps left unused before run {i}")
                    with model._lock:
                        model._steps.clear()
                if kind == "tool":
                    call = f"call_{i}"
                    model.script(Stream(openai_tool_calls([(call, "exec", ['{"command":"true"}'])])),
                                 Stream(openai_text(["ok"])))
                else:
                    model.script(Stream(openai_text(["ok"])))
                before = model.count
                run_id = f"bench-{kind}-{i}-{time.monotonic_ns()}"
                try:
                    ms, state, last = chat.run(run_id, f"{kind} {i}", timeout)
                except (TimeoutError, RuntimeError, ConnectionError, OSError) as exc:
                    bad[kind] += 1
                    if len(problems) < 10:
                        problems.append(f"(2) {kind} run {i}: {exc}")
                    if isinstance(exc, (ConnectionError, OSError)) and not isinstance(exc, TimeoutError):
                        raise
                    continue
                turns = model.count - before
                want = 2 if kind == "tool" else 1
                if state != "final" or turns != want:
                    bad[kind] += 1
                    if len(problems) < 10:
                        problems.append(f"(2) {kind} run {i}: ended {state} after {turns} model turns "
                                        f"(want final after {want}): {json.dumps(last)[:200]}")
                    continue
                if i >= WARMUP_AGENT:
                    samples[kind].append(ms)
    finally:
        chat.close()
    out: dict[str, Any] = {"runs": count}
    for kind in ("tool", "plain"):
        out[kind] = {**stats(samples[kind]), "failures": bad[kind]}
    out["tool_cost_p50_ms"] = out["tool"]["p50_ms"] - out["plain"]["p50_ms"]
    return out


# --------------------------------------------------------------------------- (3) concurrent


def concurrent_execs(url: str, port: int, concurrency: int, timeout: float, problems: list[str]) -> dict:
    clients = [Http(port, timeout) for _ in range(concurrency)]
    for c in clients:  # connect now, not inside the measured window
        c.conn.connect()
    health = ws_conn(url, ["operator.read"])
    barrier = threading.Barrier(concurrency + 1)
    answers: list[tuple[float, int, dict] | None] = [None] * concurrency
    errors: list[str] = []
    stop = threading.Event()
    health_ms: list[float] = []
    health_bad = [0]

    def worker(index: int) -> None:
        try:
            barrier.wait(30)
            status, doc = clients[index].invoke("exec", {"command": "sleep 0.5; true"})
            answers[index] = (time.perf_counter(), status, doc)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"thread {index}: {exc!r}")

    def pinger() -> None:
        n = 0
        next_at = time.perf_counter()
        while not stop.is_set():
            n += 1
            t0 = time.perf_counter()
            try:
                res = health.request(request_frame(b"h%d" % n))
            except Exception as exc:  # noqa: BLE001
                errors.append(f"health: {exc!r}")
                return
            t1 = time.perf_counter()
            if b'"ok":true' not in res[:200]:
                health_bad[0] += 1
            health_ms.append((t1 - t0) * 1000.0)
            next_at += HEALTH_INTERVAL_S
            time.sleep(max(0.0, next_at - time.perf_counter()))

    # a baseline of health latency before the load, same loop
    baseline: list[float] = []
    for n in range(50):
        t0 = time.perf_counter()
        health.request(request_frame(b"b%d" % n))
        baseline.append((time.perf_counter() - t0) * 1000.0)
        time.sleep(HEALTH_INTERVAL_S)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    ping = threading.Thread(target=pinger, daemon=True)
    try:
        ping.start()
        time.sleep(0.05)
        barrier.wait(30)
        t0 = time.perf_counter()
        for t in threads:
            t.join(timeout + 5)
        t_end = time.perf_counter()
    finally:
        stop.set()
        ping.join(5)
        health.close()
        for c in clients:
            c.close()
    ok = 0
    for index, ans in enumerate(answers):
        if ans is None:
            continue
        if exec_ok(ans[1], ans[2]):
            ok += 1
        elif len(problems) < 10:
            problems.append(f"(3) exec {index}: {describe(ans[1], ans[2])}")
    for err in errors[:5]:
        problems.append(f"(3) {err}")
    done_at = [a[0] for a in answers if a is not None]
    finish = sorted((t - t0) * 1000.0 for t in done_at)
    return {"concurrency": concurrency, "succeeded": ok, "failures": concurrency - ok,
            "wall_s": ((max(done_at) if done_at else t_end) - t0),
            "first_answer_ms": finish[0] if finish else float("nan"),
            "median_answer_ms": statistics.median(finish) if finish else float("nan"),
            "health": {**stats(health_ms), "bad": health_bad[0]},
            "health_baseline": stats(baseline),
            "health_ok": bool(health_ms) and percentile(sorted(health_ms), 99) < HEALTH_TARGET_P99_MS,
            "errors": len(errors)}


# --------------------------------------------------------------------------- (4) rss / jobs


def background_jobs(gw: Server, jobs: int, settle: float, problems: list[str]) -> dict:
    client = Http(gw.port)
    out: dict[str, Any] = {"jobs": jobs}
    try:
        time.sleep(settle)
        out["before_jobs_kb"] = loadgen.proc_rss_kb(gw.pid)  # after (1)-(3)
        ids: list[str] = []
        for i in range(jobs):
            status, doc = client.invoke("exec", {"command": "sleep 300", "background": True})
            result = doc.get("result") or {}
            if status != 200 or result.get("status") != "running" or not result.get("sessionId"):
                problems.append(f"(4) background exec {i}: {describe(status, doc)}")
                continue
            ids.append(result["sessionId"])
        out["started"] = len(ids)
        status, doc = client.invoke("process", {"action": "list"})
        rows = {r.get("sessionId"): r for r in (doc.get("result") or {}).get("sessions", [])}
        out["listed_running"] = sum(1 for s in ids if rows.get(s, {}).get("status") == "running")
        if out["listed_running"] != jobs:
            problems.append(f"(4) process list shows {out['listed_running']} of {jobs} jobs running")
        time.sleep(settle)
        out["with_jobs_kb"] = loadgen.proc_rss_kb(gw.pid)
        killed = 0
        t0 = time.perf_counter()
        for sid in ids:
            status, doc = client.invoke("process", {"action": "kill", "sessionId": sid})
            if status == 200 and (doc.get("result") or {}).get("status") == "killed":
                killed += 1
            elif len(problems) < 10:
                problems.append(f"(4) process kill {sid}: {describe(status, doc)}")
        out["kill_calls_ms"] = (time.perf_counter() - t0) * 1000.0
        out["killed"] = killed
        # wait until none of them is listed running (kill is SIGTERM, then SIGKILL after a grace)
        deadline = time.monotonic() + 15.0
        still = len(ids)
        while time.monotonic() < deadline:
            status, doc = client.invoke("process", {"action": "list"})
            rows = {r.get("sessionId"): r for r in (doc.get("result") or {}).get("sessions", [])}
            still = sum(1 for s in ids if rows.get(s, {}).get("status") == "running")
            if not still:
                break
            time.sleep(0.05)
        out["all_exited_ms"] = (time.perf_counter() - t0) * 1000.0
        out["still_running"] = still
        if still:
            problems.append(f"(4) {still} jobs still running 15 s after process kill")
        time.sleep(settle)
        out["after_kill_kb"] = loadgen.proc_rss_kb(gw.pid)
    finally:
        client.close()
    return out


# --------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> dict:
    quiet = args.json and not args.verbose
    tmp = Path(tempfile.mkdtemp(prefix="openclaw-bench-tools-"))
    model = BenchModelServer()
    gw: Server | None = None
    problems: list[str] = []
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_start": os.getloadavg()},
        "settings": {k: getattr(args, k) for k in ("count", "agent_count", "concurrent", "jobs", "timeout")},
        "target_health_p99_ms": HEALTH_TARGET_P99_MS,
        "source": source_info(),
    }
    try:
        model.start()
        providers = {"fake": {"api": "openai-completions", "baseUrl": model.url + "/v1", "apiKey": "x",
                              "models": [{"id": "m1"}]}}
        config = {"models": {"providers": providers},
                  "agents": {"defaults": {"model": "fake/m1", "maxConcurrent": 64}},
                  "tools": {"exec": {"security": "full", "ask": "off"}}}
        gw = gateway_server(tmp / "gateway", config=config)
        for var in list(gw.env):
            if var.startswith(("OPENCLAW_", "CLAWDBOT_")) and var != "OPENCLAW_STATE_DIR":
                del gw.env[var]
        gw.start(free_port())
        gw.wait_ready(timeout=30.0, interval=0.02)
        log(f"temp dir {tmp}; model stand-in {model.url}; gateway pid {gw.pid} port {gw.port}", quiet)

        # (4a) idle first, before any tool ran
        time.sleep(args.settle)
        idle_kb = loadgen.proc_rss_kb(gw.pid)

        h = http_exec(gw.port, args.count, problems)
        result["http_exec"] = h
        log(f"(1) POST /tools/invoke exec true x{h['requests']}: p50 {h['p50_ms']:.2f} / p99 {h['p99_ms']:.2f} ms, "
            f"mean {h['mean_ms']:.2f} ms, {h['rps']:.0f} req/s, {h['failures']} failed", quiet)

        a = agent_round_trips(gw.url, model, args.agent_count, args.timeout, problems)
        result["agent"] = a
        log(f"(2) chat.send -> final: with exec tool p50 {a['tool']['p50_ms']:.1f} / p99 {a['tool']['p99_ms']:.1f} ms, "
            f"without p50 {a['plain']['p50_ms']:.1f} / p99 {a['plain']['p99_ms']:.1f} ms -> tool "
            f"~{a['tool_cost_p50_ms']:.1f} ms", quiet)

        c = concurrent_execs(gw.url, gw.port, args.concurrent, args.timeout, problems)
        result["concurrent"] = c
        log(f"(3) {c['concurrency']} x 'sleep 0.5; true' at once: all answered in {c['wall_s']:.3f} s "
            f"({c['succeeded']} ok); health p50 {c['health']['p50_ms']:.2f} / p99 {c['health']['p99_ms']:.2f} / "
            f"max {c['health']['max_ms']:.2f} ms over {c['health']['n']} calls", quiet)

        j = background_jobs(gw, args.jobs, args.settle, problems)
        j["idle_kb"] = idle_kb
        result["rss"] = j
        log(f"(4) RSS idle {idle_kb / 1024:.1f} MB, {args.jobs} jobs {j['with_jobs_kb'] / 1024:.1f} MB, "
            f"after kill {j['after_kill_kb'] / 1024:.1f} MB", quiet)
        result["model_requests"] = model.count
        result["model_unscripted"] = model.defaulted
    finally:
        if gw is not None:
            gw.stop()
        model.stop()
        drop_tmp(tmp, args.keep, quiet)
    result["machine"]["loadavg_end"] = os.getloadavg()
    failures = []
    if result["http_exec"]["failures"]:
        failures.append(f"(1) {result['http_exec']['failures']} exec calls failed")
    for kind in ("tool", "plain"):
        if result["agent"][kind]["failures"]:
            failures.append(f"(2) {result['agent'][kind]['failures']} {kind} runs failed")
    if result["concurrent"]["failures"] or result["concurrent"]["errors"] or result["concurrent"]["health"]["bad"]:
        failures.append(f"(3) {result['concurrent']['failures']} execs failed, "
                        f"{result['concurrent']['errors']} client errors, {result['concurrent']['health']['bad']} bad health answers")
    rss = result["rss"]
    if rss["started"] != args.jobs or rss["listed_running"] != args.jobs or rss["killed"] != rss["started"] \
            or rss["still_running"]:
        failures.append("(4) background jobs: not all started, listed, killed or gone")
    result["failures"] = failures
    result["problems"] = problems
    return result


# --------------------------------------------------------------------------- report


def report(result: dict) -> str:
    h, a, c, rss = result["http_exec"], result["agent"], result["concurrent"], result["rss"]
    src = result["source"]
    mb = lambda kb: float("nan") if kb is None else kb / 1024.0  # noqa: E731
    w = 60
    lines = [
        "OpenClaw tools benchmark (exec/process, loopback, openai stand-in; %d CPUs, Python %s), gateway at %s%s"
        % (result["machine"]["cpus"], result["machine"]["python"], src["commit"] or "?",
           " + %d uncommitted file(s)" % len(src["uncommitted_gateway_files"])
           if src["uncommitted_gateway_files"] else ""),
        "",
        f"{'figure':<{w}}{'value':>24}",
        f"{'-' * w}{'-' * 24}",
        f"{'(1) POST /tools/invoke exec true, sequential: req/s':<{w}}{h['rps']:>24,.0f}",
        f"{'    p50 / p99 / mean (ms)':<{w}}{'%.2f / %.2f / %.2f' % (h['p50_ms'], h['p99_ms'], h['mean_ms']):>24}",
        f"{'    reference: bash -c true spawned from here p50 / p99 (ms)':<{w}}"
        f"{'%.2f / %.2f' % (h['spawn_here']['p50_ms'], h['spawn_here']['p99_ms']):>24}",
        f"{'    reference: ExecProcess true from here p50 / p99 (ms)':<{w}}"
        f"{'%.2f / %.2f' % (h['exec_process_here']['p50_ms'], h['exec_process_here']['p99_ms']):>24}",
        f"{'(2) chat.send -> final, exec tool call + text (ms p50/p99)':<{w}}"
        f"{'%.1f / %.1f' % (a['tool']['p50_ms'], a['tool']['p99_ms']):>24}",
        f"{'    chat.send -> final, text only (ms p50/p99)':<{w}}"
        f"{'%.1f / %.1f' % (a['plain']['p50_ms'], a['plain']['p99_ms']):>24}",
        f"{'    tool round (p50 difference, ms)':<{w}}{a['tool_cost_p50_ms']:>24.1f}",
        f"{'(3) %d x exec sleep 0.5 at once: all answered (s)' % c['concurrency']:<{w}}"
        f"{c['wall_s']:>24.3f}",
        f"{'    first / median answer (ms)':<{w}}"
        f"{'%.0f / %.0f' % (c['first_answer_ms'], c['median_answer_ms']):>24}",
        f"{'    health during it p50 / p99 / max (ms, %d calls)' % c['health']['n']:<{w}}"
        f"{'%.2f / %.2f / %.2f' % (c['health']['p50_ms'], c['health']['p99_ms'], c['health']['max_ms']):>24}"
        f"   p99 < {HEALTH_TARGET_P99_MS:.0f} ms  {'PASS' if c['health_ok'] else 'FAIL'}",
        f"{'    health before it p50 / p99 (ms)':<{w}}"
        f"{'%.2f / %.2f' % (c['health_baseline']['p50_ms'], c['health_baseline']['p99_ms']):>24}",
        f"{'(4) gateway RSS idle / %d jobs / after kill (MB)' % rss['jobs']:<{w}}"
        f"{'%.1f / %.1f / %.1f' % (mb(rss['idle_kb']), mb(rss['with_jobs_kb']), mb(rss['after_kill_kb'])):>24}",
        f"{'    jobs started / listed running / killed / still running':<{w}}"
        f"{'%d / %d / %d / %d' % (rss['started'], rss['listed_running'], rss['killed'], rss['still_running']):>24}",
        f"{'    %d kill calls / until none listed running (ms)' % rss['killed']:<{w}}"
        f"{'%.0f / %.0f' % (rss['kill_calls_ms'], rss['all_exited_ms']):>24}",
        "",
        "model stand-in: %d requests (%d unscripted)" % (result["model_requests"], result["model_unscripted"]),
        "load average %.2f at start, %.2f at end; %s" % (
            result["machine"]["loadavg_start"][0], result["machine"]["loadavg_end"][0],
            "no failures" if not result["failures"] else "FAILED: " + "; ".join(result["failures"])),
    ]
    for problem in result["problems"]:
        lines.append("  " + problem)
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__, "short settings: about 15 s", save=False)
    parser.add_argument("--count", type=int, help="sequential exec calls in (1) (300; quick 100)")
    parser.add_argument("--agent-count", type=int, help="agent runs of each kind in (2) (50; quick 10)")
    parser.add_argument("--concurrent", type=int, default=50, help="execs at once in (3) (50)")
    parser.add_argument("--jobs", type=int, default=20, help="background jobs in (4) (20)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a call or run counts as lost")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds before RSS reads")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state)")
    args = parser.parse_args(argv)
    defaults = {"count": 100 if args.quick else 300, "agent_count": 10 if args.quick else 50}
    return fill_defaults(args, defaults)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(args, run, report, catch_sigint=True,
                    passed=lambda result: not result["failures"] and result["concurrent"]["health_ok"])


if __name__ == "__main__":
    sys.exit(main())
