"""Channels benchmark (issue 5): inbound Telegram messages through one channel process to the
session store, the agent and back out, with the agent replying at once.

One gateway (temp state dir, token auth, free loopback port, file logging at `warn`,
`agents.defaults.model: "offline/echo"`, `maxConcurrent: 64`) runs the Telegram channel
(`dmPolicy: "open"`, `allowFrom: ["*"]`) against the test suite's local Bot API stand-in
(tests/fakes/telegram_api.py), which runs inside this process on 127.0.0.1. Every reply is
the echo of its message, recorded by the stand-in when the channel calls `sendMessage`.

  (a) throughput: --messages private messages from --users distinct users (one session
      each, so runs go in parallel across sessions) are queued at once; messages/s from the
      first queue to the last reply sent, and queue → reply latency p50/p99 (median of
      --rounds bursts). One user, serial: queue one, wait for its reply, next (--serial
      messages). Every reply must match its message's text and chat, none duplicated.
  (b) pipe round trip: `channels.status {"probe": true}` goes gateway → channel process →
      adapter.probe (getMe on the stand-in, new connection) → gateway. Measured alternately
      with a plain `channels.status`, and getMe is timed directly from here the same way the
      adapter does it (the adapter's own client, new connection each time). The pipe round
      trip estimate is probe − plain − getMe (medians).
  (c) restart: kill -9 of the channel process (pid from `channels.status`) → the status
      shows `running` with a new pid, and → the next message's reply is sent; median of
      --kills. Before each kill the channel is stopped and started (`channels.stop` /
      `channels.start`), which resets the restart history, so every kill is a first restart
      with the designed 1 s backoff (consecutive kills within 60 s would wait 1, 2, 4, 8 s...).
  (d) RSS (`VmRSS`) of the channel process idle, after the loads and after a restart (target
      < 40 MB), and of the gateway.

Exit status: 0 when the channel process stays under the RSS target and nothing failed (every
reply right, no duplicate, no timeout, every restart back), 1 otherwise, 130 when interrupted.
The gateway runs in its own process group and is stopped at the end, also on Ctrl-C/SIGTERM;
channel processes still alive after that are killed; the temp dir is removed unless --keep.

Usage:
  .venv/bin/python bench/channels.py            # ~1 min
  .venv/bin/python bench/channels.py --quick    # ~15 s
  .venv/bin/python bench/channels.py --json > result.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
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
from loadgen import SyncConn, parse_frames, percentile, request_frame  # noqa: E402
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

from actors.channels.telegram import _Client  # noqa: E402  (the adapter's Bot API client)
from tests.fakes.telegram_api import TelegramApi, _Handler  # noqa: E402

RSS_TARGET_MB = 40.0
FIRST_USER = 100001


class _NoDelayHandler(_Handler):
    """The stand-in's handler with TCP_NODELAY: it writes the headers and the body of an answer
    in two sends, which with Nagle's algorithm and the client's delayed ACK stalls every answer
    by ~40 ms on loopback (the real Bot API is not measured here, the gateway is)."""
    disable_nagle_algorithm = True


def stand_in(nagle: bool) -> TelegramApi:
    api = TelegramApi()
    if not nagle:
        api._httpd.RequestHandlerClass = _NoDelayHandler
    return api


# --------------------------------------------------------------------------- gateway client


class Rpc:
    """A blocking WebSocket client with read and admin scopes (channels.stop/start).

    With operator.read it is sent every chat/agent event of the load, like any dashboard;
    a drain thread reads and drops them between calls, as a real client reads its events
    (a socket left unread makes the gateway queue them, up to its 50 MB slow-consumer limit).
    """

    def __init__(self, url: str) -> None:
        original = loadgen.connect_params

        def params(token: str | None, mode: str) -> dict:
            return {**original(token, mode), "scopes": ["operator.read", "operator.admin"]}

        loadgen.connect_params = params
        try:
            self.conn = SyncConn(url, TOKEN)
        finally:
            loadgen.connect_params = original
        self.ids = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._drainer = threading.Thread(target=self._drain, name="rpc-drain", daemon=True)
        self._drainer.start()

    def call(self, method: str, params: Any = None) -> dict:
        with self._lock:
            self.ids += 1
            res = json.loads(self.conn.request(request_frame(b"q%d" % self.ids, method, params)))
        if not res.get("ok"):
            raise RuntimeError(f"{method}: {res.get('error')}")
        return res["payload"]

    def account(self, probe: bool = False) -> dict:
        params = {"probe": True} if probe else None
        return self.call("channels.status", params)["channelAccounts"]["telegram"][0]

    def _drain(self) -> None:
        """No call is waiting while the lock is held here, so every frame read is an event."""
        conn = self.conn
        while not self._stop.wait(0.02):
            with self._lock:
                try:
                    while data := conn.sock.recv(262144, socket.MSG_DONTWAIT):
                        conn.buf += data
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    return
                del conn.buf[:parse_frames(conn.buf, conn.frames)]
                conn.frames.clear()

    def close(self) -> None:
        self._stop.set()
        self._drainer.join(1.0)
        self.conn.close()


def wait_running(rpc: Rpc, timeout: float, not_pid: int | None = None, interval: float = 0.005) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        acc = rpc.account()
        if acc["state"] == "running" and acc.get("pid") and acc["pid"] != not_pid:
            return acc
        if time.monotonic() > deadline:
            raise TimeoutError(f"telegram channel not running after {timeout}s: {acc}")
        time.sleep(interval)


# --------------------------------------------------------------------------- messages


class Checker:
    """Queues messages on the stand-in and checks the replies: each text is unique, so a reply
    is matched to its message by text; the chat must be the sender's."""

    def __init__(self, api: TelegramApi) -> None:
        self.api = api
        self.seen = 0  # replies in api.sent already checked
        self.problems: list[str] = []
        self.wrong = self.duplicates = self.unexpected = self.timeouts = 0

    def sent_count(self) -> int:
        with self.api._cond:
            return len(self.api.sent)

    def queue(self, text: str, user: int) -> float:
        t = time.monotonic()
        self.api.queue_private(text, user_id=user, username=f"u{user}", first_name=f"U{user}")
        return t

    def wait(self, count: int, timeout: float) -> bool:
        try:
            self.api.wait_sent(count, timeout=timeout)
            return True
        except AssertionError:
            self.timeouts += 1
            self._problem(f"timeout: {self.sent_count() - self.seen} of {count - self.seen} replies in {timeout:.0f} s")
            return False

    def collect(self, expected: dict[str, tuple[int, float]]) -> list[float]:
        """Checks every reply sent since the last call against `expected` (text → (user,
        queued at)); returns the latencies (ms) of the expected ones, each counted once."""
        with self.api._cond:
            replies = list(self.api.sent[self.seen:])
        self.seen += len(replies)
        latencies: list[float] = []
        got: set[str] = set()
        for reply in replies:
            text = reply["text"]
            if text not in expected:
                self.unexpected += 1
                self._problem(f"unexpected reply {text[:80]!r} to {reply['chat_id']}")
                continue
            if text in got:
                self.duplicates += 1
                self._problem(f"duplicate reply {text!r}")
                continue
            got.add(text)
            user, queued = expected[text]
            if str(reply["chat_id"]) != str(user):
                self.wrong += 1
                self._problem(f"reply {text!r} went to {reply['chat_id']}, not {user}")
            latencies.append((reply["at"] - queued) * 1000.0)
        missing = len(expected) - len(got)
        if missing:
            self._problem(f"{missing} of {len(expected)} messages got no reply")
        return latencies

    def _problem(self, text: str) -> None:
        if len(self.problems) < 10:
            self.problems.append(text)

    def failed(self) -> int:
        return self.wrong + self.duplicates + self.unexpected + self.timeouts


def serial(check: Checker, tag: str, count: int, user: int, timeout: float) -> dict:
    """One user (one session): queue a message, wait for its reply, next."""
    latencies: list[float] = []
    t0 = time.monotonic()
    for i in range(count):
        text = f"{tag} {i}"
        base = check.sent_count()
        queued = check.queue(text, user)
        if not check.wait(base + 1, timeout):
            break
        latencies += check.collect({text: (user, queued)})
    wall = time.monotonic() - t0
    lat = sorted(latencies)
    return {"messages": count, "replies": len(lat), "window_s": wall,
            "msgs_per_s": len(lat) / wall if wall else 0.0,
            "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99)}


def burst(check: Checker, tag: str, count: int, users: int, timeout: float, pids: dict) -> dict:
    """`count` messages from `users` users queued at once; until every reply was sent."""
    base = check.sent_count()
    expected: dict[str, tuple[int, float]] = {}
    cpu0 = {name: loadgen.proc_cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
    bench0 = loadgen.cpu_seconds()
    t0 = time.monotonic()
    for i in range(count):
        user = FIRST_USER + i % users
        text = f"{tag} {i} from {user}"
        expected[text] = (user, check.queue(text, user))
    t_queued = time.monotonic()
    check.wait(base + count, timeout)
    t_last = time.monotonic()
    cpu = {f"{name}_cpu_pct": 100.0 * ((loadgen.proc_cpu_seconds(pid) or 0.0) - cpu0[name]) / (t_last - t0)
           for name, pid in pids.items()}
    cpu["bench_cpu_pct"] = 100.0 * (loadgen.cpu_seconds() - bench0) / (t_last - t0)
    time.sleep(0.3)  # a late duplicate would show up now
    with check.api._cond:
        last_at = max((r["at"] for r in check.api.sent[base:]), default=t_last)
    latencies = sorted(check.collect(expected))
    window = max(1e-9, last_at - t0)
    rss = {f"{name}_rss_kb": loadgen.proc_rss_kb(pid) for name, pid in pids.items()}
    return {"messages": count, "users": users, "replies": len(latencies), "window_s": window, **rss,
            "queue_s": t_queued - t0, "msgs_per_s": len(latencies) / window,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "max_ms": latencies[-1] if latencies else float("nan"), **cpu}


# --------------------------------------------------------------------------- probe


def probe_round_trips(rpc: Rpc, api: TelegramApi, count: int, warmup: int) -> dict:
    """channels.status with and without probe, alternately, and getMe directly."""
    plain, probed, probe_elapsed, get_me = [], [], [], []
    failures = 0
    for i in range(warmup + count):
        t0 = time.perf_counter()
        rpc.account()
        t1 = time.perf_counter()
        acc = rpc.account(probe=True)
        t2 = time.perf_counter()
        client = _Client(api.url, api.token)
        try:
            client.call("getMe", None, 10.0)
        finally:
            client.close()
        t3 = time.perf_counter()
        ok = bool(acc.get("probe", {}).get("ok"))
        if not ok:
            failures += 1
        if i >= warmup:
            plain.append((t1 - t0) * 1000.0)
            probed.append((t2 - t1) * 1000.0)
            get_me.append((t3 - t2) * 1000.0)
            if ok:
                probe_elapsed.append(float(acc["probe"]["elapsedMs"]))
    out: dict[str, Any] = {"requests": count, "failures": failures}
    for name, values in (("status", plain), ("status_probe", probed), ("get_me", get_me),
                         ("probe_elapsed", probe_elapsed)):
        values.sort()
        out[name] = {"p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99),
                     "mean_ms": statistics.fmean(values) if values else float("nan")}
    out["pipe_estimate_p50_ms"] = (out["status_probe"]["p50_ms"] - out["status"]["p50_ms"]
                                   - out["get_me"]["p50_ms"])
    out["pipe_estimate_p99_ms"] = (out["status_probe"]["p99_ms"] - out["status"]["p99_ms"]
                                   - out["get_me"]["p99_ms"])
    return out


# --------------------------------------------------------------------------- restarts


def kill_restarts(rpc: Rpc, check: Checker, kills: int, timeout: float, pids_seen: set[int]) -> dict:
    samples = []
    for k in range(kills):
        rpc.call("channels.stop", {"channel": "telegram"})
        rpc.call("channels.start", {"channel": "telegram"})
        acc = wait_running(rpc, timeout)
        pids_seen.add(acc["pid"])
        time.sleep(0.5)  # the new process is polling
        old_pid = acc["pid"]
        t0 = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        seen_down = None
        while True:
            acc = rpc.account()
            now = time.monotonic()
            if seen_down is None and (acc["state"] != "running" or acc.get("pid") != old_pid):
                seen_down = now
            if acc["state"] == "running" and acc.get("pid") and acc["pid"] != old_pid:
                t_running = now
                break
            if now - t0 > timeout:
                raise TimeoutError(f"telegram channel not back after kill -9: {acc}")
            time.sleep(0.005)
        pids_seen.add(acc["pid"])
        text = f"after kill {k}"
        base = check.sent_count()
        queued = check.queue(text, FIRST_USER)
        ok = check.wait(base + 1, timeout)
        t_reply = time.monotonic()
        lat = check.collect({text: (FIRST_USER, queued)}) if ok else []
        sample = {"old_pid": old_pid, "new_pid": acc["pid"], "restart_count": acc.get("restartCount"),
                  "detected_ms": ((seen_down or t_running) - t0) * 1000.0,
                  "running_ms": (t_running - t0) * 1000.0,
                  "first_reply_ms": (t_reply - t0) * 1000.0 if ok else None,
                  "first_message_latency_ms": lat[0] if lat else None}
        samples.append(sample)
    med = lambda key: statistics.median(s[key] for s in samples if s[key] is not None)  # noqa: E731
    return {"kills": kills, "samples": samples, "detected_median_ms": med("detected_ms"),
            "running_median_ms": med("running_ms"), "first_reply_median_ms": med("first_reply_ms"),
            "first_message_latency_median_ms": med("first_message_latency_ms")}


# --------------------------------------------------------------------------- run


def kill_leftovers(pids: set[int]) -> None:
    """A channel process still alive after the gateway stopped (it should not be: it dies
    with its parent) is killed, when it still is a process of ours leading its own session."""
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == pid and b"multiprocessing" in cmdline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def mb(kb: int | None) -> float | None:
    return None if kb is None else kb / 1024.0


def run(args: argparse.Namespace) -> dict:
    quiet = args.json and not args.verbose
    tmp = Path(tempfile.mkdtemp(prefix="openclaw-bench-channels-"))
    api = stand_in(args.nagle)
    gw: Server | None = None
    rpc: Rpc | None = None
    pids_seen: set[int] = set()
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_start": os.getloadavg()},
        "settings": {k: getattr(args, k) for k in ("messages", "users", "rounds", "serial", "probes",
                                                    "kills", "timeout", "nagle")},
        "target_rss_mb": RSS_TARGET_MB,
        "source": source_info(),
    }
    failures: list[str] = []
    try:
        api.start()
        config = {"agents": {"defaults": {"model": "offline/echo", "maxConcurrent": 64}},
                  "channels": {"telegram": {"botToken": api.token, "apiRoot": api.url,
                                            "dmPolicy": "open", "allowFrom": ["*"]}}}
        gw = gateway_server(tmp / "gateway", config=config)
        for var in list(gw.env):
            if var.startswith(("OPENCLAW_", "CLAWDBOT_", "TELEGRAM_")) and var != "OPENCLAW_STATE_DIR":
                del gw.env[var]
        gw.start(free_port())
        gw.wait_ready(timeout=30.0, interval=0.02)
        rpc = Rpc(gw.url)
        acc = wait_running(rpc, 30.0)
        pids_seen.add(acc["pid"])
        log(f"temp dir {tmp}; stand-in {api.url}; gateway pid {gw.pid} port {gw.port}; "
            f"channel pid {acc['pid']}", quiet)
        time.sleep(args.settle)
        rss: dict[str, Any] = {"channel_idle_kb": loadgen.proc_rss_kb(acc["pid"]),
                               "gateway_idle_kb": loadgen.proc_rss_kb(gw.pid)}
        log(f"idle RSS: channel {mb(rss['channel_idle_kb']):.1f} MB, gateway {mb(rss['gateway_idle_kb']):.1f} MB",
            quiet)
        check = Checker(api)
        pids = {"gateway": gw.pid, "channel": acc["pid"]}

        # (a) warm-up, one user serial, bursts over many users
        serial(check, "warm", 20, FIRST_USER - 1, args.timeout)
        burst(check, "warm burst", min(200, args.messages), args.users, args.timeout, pids)
        one = serial(check, "serial", args.serial, FIRST_USER - 2, args.timeout)
        log(f"(a) one user, serial: {one['msgs_per_s']:,.0f} msg/s, p50 {one['p50_ms']:.1f} / "
            f"p99 {one['p99_ms']:.1f} ms", quiet)
        bursts = []
        for r in range(args.rounds):
            b = burst(check, f"burst r{r}", args.messages, args.users, args.timeout, pids)
            bursts.append(b)
            log(f"(a) burst {r + 1}: {b['messages']} messages / {b['users']} users: {b['msgs_per_s']:,.0f} msg/s, "
                f"p50 {b['p50_ms']:.0f} / p99 {b['p99_ms']:.0f} ms; gateway CPU {b['gateway_cpu_pct']:.0f}%, "
                f"channel CPU {b['channel_cpu_pct']:.0f}%; RSS gateway {mb(b['gateway_rss_kb']):.1f} MB, "
                f"channel {mb(b['channel_rss_kb']):.1f} MB", quiet)
        result["serial"] = one
        result["burst"] = {"rounds": bursts, **{k: statistics.median(b[k] for b in bursts) for k in
                                                ("msgs_per_s", "p50_ms", "p99_ms", "gateway_cpu_pct",
                                                 "channel_cpu_pct", "bench_cpu_pct")}}
        time.sleep(args.settle)
        rss["channel_after_load_kb"] = loadgen.proc_rss_kb(acc["pid"])
        rss["gateway_after_load_kb"] = loadgen.proc_rss_kb(gw.pid)
        log(f"RSS after load: channel {mb(rss['channel_after_load_kb']):.1f} MB, "
            f"gateway {mb(rss['gateway_after_load_kb']):.1f} MB", quiet)

        # (b) pipe round trip via probe
        pr = probe_round_trips(rpc, api, args.probes, min(20, args.probes))
        result["probe"] = pr
        log(f"(b) status {pr['status']['p50_ms']:.2f} ms, status+probe {pr['status_probe']['p50_ms']:.2f} ms, "
            f"getMe {pr['get_me']['p50_ms']:.2f} ms (p50) -> pipe round trip ~{pr['pipe_estimate_p50_ms']:.2f} ms",
            quiet)
        if pr["failures"]:
            failures.append(f"{pr['failures']} probes failed")

        # (c) kill -9 → running again
        kr = kill_restarts(rpc, check, args.kills, args.timeout, pids_seen)
        result["restart"] = kr
        log(f"(c) kill -9 -> running {kr['running_median_ms']:.0f} ms, -> next reply "
            f"{kr['first_reply_median_ms']:.0f} ms (median of {args.kills})", quiet)
        acc = wait_running(rpc, args.timeout)
        time.sleep(args.settle)
        rss["channel_after_restart_kb"] = loadgen.proc_rss_kb(acc["pid"])
        rss["gateway_end_kb"] = loadgen.proc_rss_kb(gw.pid)
        result["rss"] = rss
        result["checks"] = {"wrong_chat": check.wrong, "duplicates": check.duplicates,
                            "unexpected": check.unexpected, "timeouts": check.timeouts,
                            "problems": check.problems}
        if check.failed():
            failures.append(f"replies: {check.wrong} to the wrong chat, {check.duplicates} duplicated, "
                            f"{check.unexpected} unexpected, {check.timeouts} timeouts")
        result["stand_in"] = {"requests": len(api.requests), "get_updates": len(api.calls("getUpdates")),
                              "send_message": len(api.sent), "abandoned_polls": api.abandoned_polls}
    finally:
        if rpc is not None:
            try:
                rpc.close()
            except OSError:
                pass
        if gw is not None:
            gw.stop()
        kill_leftovers(pids_seen)
        api.stop()
        drop_tmp(tmp, args.keep, quiet)
    result["machine"]["loadavg_end"] = os.getloadavg()
    channel_peak = max(v for k, v in result["rss"].items() if k.startswith("channel") and v)
    result["rss_ok"] = channel_peak / 1024.0 < RSS_TARGET_MB
    if not result["rss_ok"]:
        failures.append(f"channel process RSS {channel_peak / 1024:.1f} MB >= {RSS_TARGET_MB:.0f} MB")
    result["failures"] = failures
    return result


# --------------------------------------------------------------------------- report


def report(result: dict) -> str:
    s, one, b, pr, kr, rss = (result["settings"], result["serial"], result["burst"], result["probe"],
                              result["restart"], result["rss"])
    src = result["source"]
    lines = [
        "OpenClaw channels benchmark (Telegram, loopback Bot API stand-in, offline/echo; %d CPUs, Python %s), "
        "gateway at %s%s" % (result["machine"]["cpus"], result["machine"]["python"], src["commit"] or "?",
                             " + %d uncommitted file(s)" % len(src["uncommitted_gateway_files"])
                             if src["uncommitted_gateway_files"] else ""),
        "",
        f"{'figure':<58}{'value':>22}",
        f"{'-' * 58}{'-' * 22}",
        f"{'(a) one user, serial: messages/s':<58}{one['msgs_per_s']:>22,.0f}",
        f"{'    queue -> reply sent p50 / p99 (ms)':<58}{'%.1f / %.1f' % (one['p50_ms'], one['p99_ms']):>22}",
        f"{'(a) %d messages from %d users at once: messages/s' % (s['messages'], s['users']):<58}{b['msgs_per_s']:>22,.0f}",
        f"{'    queue -> reply sent p50 / p99 (ms)':<58}{'%.0f / %.0f' % (b['p50_ms'], b['p99_ms']):>22}",
        f"{'    CPU: gateway / channel process / stand-in (% of a core)':<58}"
        f"{'%.0f%% / %.0f%% / %.0f%%' % (b['gateway_cpu_pct'], b['channel_cpu_pct'], b['bench_cpu_pct']):>22}",
        f"{'(b) channels.status p50 / p99 (ms)':<58}{'%.2f / %.2f' % (pr['status']['p50_ms'], pr['status']['p99_ms']):>22}",
        f"{'    channels.status + probe p50 / p99 (ms)':<58}"
        f"{'%.2f / %.2f' % (pr['status_probe']['p50_ms'], pr['status_probe']['p99_ms']):>22}",
        f"{'    getMe from here, new connection p50 / p99 (ms)':<58}"
        f"{'%.2f / %.2f' % (pr['get_me']['p50_ms'], pr['get_me']['p99_ms']):>22}",
        f"{'    probe round trip host -> process -> host p50 (ms)':<58}"
        f"{'%.2f' % (pr['status_probe']['p50_ms'] - pr['status']['p50_ms']):>22}",
        f"{'    pipe round trip estimate (probe - getMe) p50 / p99':<58}"
        f"{'%.2f / %.2f' % (pr['pipe_estimate_p50_ms'], pr['pipe_estimate_p99_ms']):>22}",
        f"{'(c) kill -9 -> host sees it (ms, median of %d)' % kr['kills']:<58}{kr['detected_median_ms']:>22.0f}",
        f"{'    kill -9 -> state running, new pid (ms)':<58}{kr['running_median_ms']:>22.0f}",
        f"{'    kill -9 -> next message replied (ms)':<58}{kr['first_reply_median_ms']:>22.0f}",
        f"{'    that message queue -> reply (ms)':<58}{kr['first_message_latency_median_ms']:>22.1f}",
        f"{'(d) channel process RSS idle / after load / restarted (MB)':<58}"
        f"{'%.1f / %.1f / %.1f' % (mb(rss['channel_idle_kb']), mb(rss['channel_after_load_kb']), mb(rss['channel_after_restart_kb'])):>22}"
        f"   < {RSS_TARGET_MB:.0f} MB  {'PASS' if result['rss_ok'] else 'FAIL'}",
        f"{'    gateway RSS idle / after load / end (MB)':<58}"
        f"{'%.1f / %.1f / %.1f' % (mb(rss['gateway_idle_kb']), mb(rss['gateway_after_load_kb']), mb(rss['gateway_end_kb'])):>22}",
        "",
        "replies checked: %d wrong chat, %d duplicated, %d unexpected, %d timeouts"
        % (result["checks"]["wrong_chat"], result["checks"]["duplicates"], result["checks"]["unexpected"],
           result["checks"]["timeouts"]),
        "load average %.2f at start, %.2f at end; %s" % (
            result["machine"]["loadavg_start"][0], result["machine"]["loadavg_end"][0],
            "no failures" if not result["failures"] else "FAILED: " + "; ".join(result["failures"])),
    ]
    for problem in result["checks"]["problems"]:
        lines.append("  " + problem)
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__, "short settings: about 15 s")
    parser.add_argument("--messages", type=int, help="messages per burst in (a) (2000; quick 500)")
    parser.add_argument("--users", type=int, default=50, help="distinct users (sessions) in the bursts (50)")
    parser.add_argument("--rounds", type=int, help="bursts, median reported (3; quick 1)")
    parser.add_argument("--serial", type=int, help="one-user serial messages in (a) (300; quick 100)")
    parser.add_argument("--probes", type=int, help="probe / plain status pairs in (b) (500; quick 100)")
    parser.add_argument("--kills", type=int, help="kill -9 restarts in (c), median (5; quick 3)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before replies count as lost")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds before RSS reads")
    parser.add_argument("--nagle", action="store_true",
                        help="leave the stand-in's sockets as they are (Nagle on: ~40 ms per Bot API answer)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state)")
    args = parser.parse_args(argv)
    defaults = {"messages": 500 if args.quick else 2000, "rounds": 1 if args.quick else 3,
                "serial": 100 if args.quick else 300, "probes": 100 if args.quick else 500,
                "kills": 3 if args.quick else 5}
    return fill_defaults(args, defaults)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(args, run, report, passed=lambda result: not result["failures"], catch_sigint=True)


if __name__ == "__main__":
    sys.exit(main())
