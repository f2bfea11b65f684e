"""Sessions benchmark: `sessions.list` throughput and latency, and gateway memory, with 10,000
stored sessions.

In one run it
  1. fills a state dir with --sessions (10,000) sessions before any gateway starts: the schema
     comes from the project's own SessionStore (started once in this process, which runs its
     migrations), the rows go in through that schema in one transaction (sessions, their
     session ids, two messages each), so the fill takes about a second;
  2. starts a gateway on an empty state dir (temp dir, token auth, free loopback port, file
     logging at `warn`), reads its RSS after start-up, runs one `sessions.list` load against
     it, reads its RSS again, and stops it;
  3. starts a gateway on the filled state dir, checks one `sessions.list` answer (totalCount,
     rows, lastMessagePreview), reads its RSS after start-up, then runs --rounds rounds of
     [`sessions.list {}` (limit 100), `sessions.list {"limit": 20}`], each --connections x
     --inflight for --duration s after a --warmup, timing every request; every figure is the
     median over the rounds; then reads its RSS after the load;
  4. stops every process it started (process groups, also on Ctrl-C or an error) and prints
     a table, or one JSON document with --json.
Before the gateways it also times --appends (200) one-message appends to one session through
the project's SessionStore in this process (synchronous=FULL, one commit per message): the
append rate, formerly `test_append_rate` of the unit tests, which only printed it.

Exit status 0 when every target is met (`sessions.list {}` >= 8,000 req/s), 1 when one is
missed, 130 when interrupted.

Usage:
  .venv/bin/python bench/sessions.py            # 3 rounds x (2 s + 5 s) x 2 loads, ~1 min
  .venv/bin/python bench/sessions.py --quick    # 3 rounds x (1 s + 2 s) x 2 loads, ~30 s
  .venv/bin/python bench/sessions.py --json > result.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import loadgen  # noqa: E402
from run import (  # noqa: E402
    NOISY_OTHER_PCT,
    TOKEN,
    Server,
    _mb,
    bench_parser,
    drop_tmp,
    fill_defaults,
    free_port,
    gateway_server,
    log,
    median_of,
    run_main,
    source_info,
)

TARGETS = {"list_rps": 8000.0}
# (name, column title, params). `{}` is the target's load; identical requests in flight share
# one store answer (transport/methods/sessions.py), so `distinct` sends 1009 different offsets
# in turn: no two requests in flight are alike and every one is a store query.
LOADS = [("list", "{}", {}), ("list_limit20", "{limit: 20}", {"limit": 20}),
         ("list_distinct", "distinct offsets", [{"offset": k} for k in range(1009)])]

# Realistic variety for the stored rows: (channel, key shape, kind follows from the key).
CHANNELS = [
    ("telegram", "telegram:direct:{n}"),
    ("whatsapp", "whatsapp:direct:+4915{n:07d}"),
    ("discord", "discord:channel:{n}"),
    ("slack", "slack:group:c{n:06d}"),
    ("signal", "signal:direct:{n}"),
    ("webchat", "webchat:direct:w{n}"),
]
MODELS = [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-4.1-mini")]
FIRST = ["Ann", "Bob", "Chen", "Dana", "Eli", "Fatima", "Greg", "Hana", "Ivan", "Jo"]
USER_TEXTS = ["Can you summarise the meeting notes from this morning?",
              "What's the weather going to be like tomorrow in Berlin?",
              "Remind me to call the dentist at 3pm.",
              "Draft a short reply saying I'll be ten minutes late."]
ASSISTANT_TEXTS = ["Sure: the team agreed to ship the release on Friday, pending QA sign-off.",
                   "Tomorrow in Berlin: 14°C, light rain in the afternoon.",
                   "Done, I'll remind you at 15:00.",
                   "Here's a draft: \"Running about ten minutes late, see you shortly!\""]


# --------------------------------------------------------------------------- populate


def populate(state_dir: Path, count: int, now: int | None = None) -> dict:
    """Create the main agent's sessions database with the store's own migrations, then write
    `count` sessions (with their session ids and two messages each) in one transaction."""
    from actors.sessions.keys import kind_of, normalize_key
    from actors.sessions.store import SessionStore, db_path

    t0 = time.perf_counter()
    ref = SessionStore.start(str(state_dir), notify_health=False)  # on_start runs the migrations
    ref.stop(timeout=10)
    path = db_path(str(state_dir))
    base = now or int(time.time() * 1000)
    sessions, session_ids, messages = [], [], []
    for i in range(count):
        channel, shape = CHANNELS[i % len(CHANNELS)]
        key = normalize_key("main" if i == 0 else shape.format(n=100_000 + i))
        session_id = str(uuid.uuid4())
        updated = base - (i * 7919) % (30 * 86_400_000)  # spread over 30 days, shuffled
        started = updated - 3_600_000
        provider, model = MODELS[i % len(MODELS)] if i % 4 else (None, None)
        tokens_in, tokens_out = 120 + i % 900, 80 + i % 700
        flags = '{"fastMode":true}' if i % 50 == 0 else "{}"
        sessions.append((
            key, "main", session_id, kind_of(key), channel, str(100_000 + i),
            f"{FIRST[i % len(FIRST)]} {i}", f"project {i}" if i % 10 == 0 else None,
            model, provider, 200_000 if model else None, tokens_in, tokens_out,
            tokens_in + tokens_out, "low" if i % 7 == 0 else None, flags,
            started - 86_400_000, updated, started, updated - 5_000))
        session_ids.append((session_id, key, started))
        j = i % len(USER_TEXTS)
        for seq, role, text, ts in ((1, "user", USER_TEXTS[j], updated - 5_000),
                                    (2, "assistant", ASSISTANT_TEXTS[j], updated)):
            messages.append((session_id, seq, uuid.uuid4().hex, role,
                             json.dumps([{"type": "text", "text": text}], separators=(",", ":")),
                             ts))
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO sessions (key, agent_id, session_id, kind, channel, peer, display_name, "
            "label, model, model_provider, context_tokens, input_tokens, output_tokens, "
            "total_tokens, thinking_level, flags, created_at, updated_at, started_at, "
            "last_user_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            sessions)
        db.executemany("INSERT INTO session_ids (session_id, key, started_at) VALUES (?, ?, ?)",
                       session_ids)
        db.executemany("INSERT INTO messages (session_id, seq, id, role, content, ts) "
                       "VALUES (?, ?, ?, ?, ?, ?)", messages)
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return {"sessions": count, "messages": len(messages), "path": path,
            "db_bytes": os.path.getsize(path), "seconds": time.perf_counter() - t0}


def append_rate(state_dir: Path, count: int) -> dict:
    """Time `count` appends of one short message to one session, each waited for, through
    the store actor: what one chat turn's transcript write costs on this disk."""
    from actors.sessions.store import SessionStore

    ref = SessionStore.start(str(state_dir), notify_health=False)
    try:
        store = ref.proxy()
        store.get_or_create("main").get(timeout=10)
        started = time.perf_counter()
        for i in range(count):
            store.append("main", {"role": "user", "content": f"m{i}"}).get(timeout=10)
        elapsed = time.perf_counter() - started
    finally:
        ref.stop(timeout=10)
    return {"appends": count, "per_s": count / elapsed, "ms_each": elapsed / count * 1000}


# --------------------------------------------------------------------------- checks


def check_list(url: str) -> dict:
    """One `sessions.list` with includeLastMessage on a blocking connection: what the load
    is about to hammer really holds the stored sessions."""
    conn = loadgen.SyncConn(url, TOKEN)
    try:
        answer = json.loads(conn.request(loadgen.request_frame(
            b"check", "sessions.list", {"limit": 5, "includeLastMessage": True})))
        plain = conn.request(loadgen.request_frame(b"size", "sessions.list", {}))
    finally:
        conn.close()
    if not answer.get("ok"):
        raise RuntimeError(f"sessions.list failed: {answer.get('error')}")
    payload = answer["payload"]
    return {"totalCount": payload["totalCount"], "count": payload["count"],
            "with_preview": sum(1 for s in payload["sessions"] if s.get("lastMessagePreview")),
            "first": payload["sessions"][0] if payload["sessions"] else None,
            "default_page_bytes": len(plain)}


def rss_after_settle(server: Server, settle: float) -> int | None:
    time.sleep(settle)
    return loadgen.proc_rss_kb(server.pid)


def one_load(server: Server, params: dict, args: argparse.Namespace) -> dict:
    return loadgen.run_throughput(server.url, TOKEN, server_pid=server.pid,
                                  connections=args.connections, inflight=args.inflight,
                                  warmup=args.warmup, duration=args.duration, procs=args.procs,
                                  method="sessions.list", params=params, latency=True)


# --------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> dict:
    quiet = args.json and not args.verbose
    tmp = Path(tempfile.mkdtemp(prefix="openclaw-bench-sessions-"))
    servers: list[Server] = []
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_start": os.getloadavg()},
        "settings": {"sessions": args.sessions, "rounds": args.rounds,
                     "connections": args.connections, "inflight": args.inflight,
                     "warmup_s": args.warmup, "duration_s": args.duration,
                     "client_procs": args.procs, "settle_s": args.settle},
        "targets": TARGETS,
        "source": source_info(),
    }
    try:
        log(f"temp dir {tmp}", quiet)
        # Both gateways get the same config; the filled one also gets the database.
        empty = gateway_server(tmp / "empty", "gateway-empty")
        loaded = gateway_server(tmp / "loaded", "gateway-10k")
        result["populate"] = populate(loaded.root / "state", args.sessions)
        result["append"] = append_rate(tmp / "append", args.appends)
        log(f"append (synchronous=FULL, commit per message): {result['append']['per_s']:.0f}/s, "
            f"{result['append']['ms_each']:.2f} ms each", quiet)
        log(f"populated {args.sessions} sessions + {result['populate']['messages']} messages in "
            f"{result['populate']['seconds']:.2f} s ({result['populate']['db_bytes'] / 1e6:.1f} MB)",
            quiet)

        # Empty state dir: RSS after start-up, after the same list load, stopped before the
        # filled one starts so the two never share the machine.
        servers.append(empty)
        empty.start(free_port())
        empty.wait_ready()
        rss_empty_start = rss_after_settle(empty, args.settle)
        empty_load = one_load(empty, {}, args)
        rss_empty_load = rss_after_settle(empty, args.settle)
        empty.stop()
        log(f"empty state: RSS {rss_empty_start / 1024:.1f} MB after start, "
            f"{rss_empty_load / 1024:.1f} MB after load ({empty_load['rps']:,.0f} list req/s)", quiet)

        servers.append(loaded)
        loaded.start(free_port())
        loaded.wait_ready()
        rss_loaded_start = rss_after_settle(loaded, args.settle)
        result["check"] = check_list(loaded.url)
        if result["check"]["totalCount"] != args.sessions:
            raise RuntimeError(f"gateway lists {result['check']['totalCount']} sessions, "
                               f"expected {args.sessions}")
        log(f"gateway pid {loaded.pid} port {loaded.port}: totalCount {result['check']['totalCount']}, "
            f"default page {result['check']['default_page_bytes']:,} bytes; "
            f"RSS after start {rss_loaded_start / 1024:.1f} MB", quiet)

        rounds: dict[str, list[dict]] = {name: [] for name, _, _ in LOADS}
        for r in range(args.rounds):
            order = LOADS if r % 2 == 0 else LOADS[::-1]
            for name, title, params in order:
                tp = one_load(loaded, params, args)
                tp["round"] = r + 1
                rounds[name].append(tp)
                log(f"  round {r + 1} sessions.list {title:<16}: {tp['rps']:>8,.0f} req/s  "
                    f"p50 {tp.get('p50_ms', 0):.2f} ms  p99 {tp.get('p99_ms', 0):.2f} ms  "
                    f"(server CPU {tp.get('server_cpu_pct', 0):.0f}%, client CPU "
                    f"{tp['client_cpu_pct']:.0f}%, other {tp.get('other_cpu_pct', 0):.0f}%, "
                    f"errors {tp['errors']})", quiet)
        rss_loaded_load = rss_after_settle(loaded, args.settle)
        loaded.stop()

        result["list"] = {}
        for name, _, params in LOADS:
            rs = rounds[name]
            result["list"][name] = {
                "params": params if isinstance(params, dict) else f"{len(params)} offsets in turn",
                "rounds": rs,
                "median_rps": median_of(rs, "rps"),
                "median_p50_ms": median_of(rs, "p50_ms"),
                "median_p90_ms": median_of(rs, "p90_ms"),
                "median_p99_ms": median_of(rs, "p99_ms"),
                "median_server_cpu_pct": median_of(rs, "server_cpu_pct"),
                "median_server_cpu_us_per_req": median_of(rs, "server_cpu_us_per_req"),
                "median_client_cpu_pct": median_of(rs, "client_cpu_pct"),
                "median_other_cpu_pct": median_of(rs, "other_cpu_pct"),
                "avg_response_bytes": median_of(rs, "avg_response_bytes"),
                "errors": sum(x["errors"] for x in rs),
            }
        result["rss_kb"] = {
            "empty": {"after_start": rss_empty_start, "after_load": rss_empty_load,
                      "load_rps": empty_load["rps"]},
            "sessions": {"after_start": rss_loaded_start, "after_load": rss_loaded_load},
            "delta": {"after_start": rss_loaded_start - rss_empty_start,
                      "after_load": rss_loaded_load - rss_empty_load},
        }
    finally:
        for server in servers:
            server.stop()
        drop_tmp(tmp, args.keep, quiet)
    result["machine"]["loadavg_end"] = os.getloadavg()
    checks = {"list_rps": (result["list"]["list"]["median_rps"] or 0) >= TARGETS["list_rps"]}
    errors = sum(v["errors"] for v in result["list"].values())
    checks["no_errors"] = errors == 0
    result["verdict"] = {"checks": checks, "all_pass": all(checks.values())}
    return result


# --------------------------------------------------------------------------- report


def report(result: dict) -> str:
    s, src, lst, rss = result["settings"], result["source"], result["list"], result["rss_kb"]
    mark = lambda passed: "PASS" if passed else "FAIL"  # noqa: E731
    ok = result["verdict"]["checks"]
    loads = [lst[name] for name, _, _ in LOADS]
    noise = max(x["median_other_cpu_pct"] or 0 for x in loads)

    def row(label: str, key: str, fmt: str, suffix: str = "") -> str:
        return f"{label:<44}" + "".join(format(x[key] or 0, fmt) for x in loads) + suffix

    lines = [
        "OpenClaw sessions benchmark (loopback, %d CPUs, Python %s), gateway at %s%s"
        % (result["machine"]["cpus"], result["machine"]["python"], src["commit"] or "?",
           " + %d uncommitted file(s)" % len(src["uncommitted_gateway_files"])
           if src["uncommitted_gateway_files"] else ""),
        "%d stored sessions (%d messages, %.1f MB database, filled in %.2f s); load: %d connections "
        "x %d in flight, %.0f s warm-up + %.0f s, %d rounds (median), %d client process(es)"
        % (s["sessions"], result["populate"]["messages"], result["populate"]["db_bytes"] / 1e6,
           result["populate"]["seconds"], s["connections"], s["inflight"], s["warmup_s"],
           s["duration_s"], s["rounds"], s["client_procs"]),
        "",
        f"{'figure':<44}" + "".join(f"{title:>18}" for _, title, _ in LOADS) + "   target",
        f"{'-' * 44}{'-' * 18 * len(LOADS)}   {'-' * 22}",
        row("sessions.list throughput (req/s, median)", "median_rps", ">18,.0f",
            f"   >= {TARGETS['list_rps']:,.0f}/s ({{}})  {mark(ok['list_rps'])}"),
        row("  latency under load p50 (ms)", "median_p50_ms", ">18.2f"),
        row("  latency under load p90 (ms)", "median_p90_ms", ">18.2f"),
        row("  latency under load p99 (ms)", "median_p99_ms", ">18.2f"),
        row("  server CPU (% of one core)", "median_server_cpu_pct", ">17.0f"),
        row("  server CPU per request (us)", "median_server_cpu_us_per_req", ">18.1f"),
        row("  client CPU (% of one core)", "median_client_cpu_pct", ">17.0f"),
        row("  other processes (% of one core)", "median_other_cpu_pct", ">17.0f"),
        row("  response size (bytes)", "avg_response_bytes", ">18,.0f"),
        row("  errors (ok:false answers)", "errors", ">18", f"   0  {mark(ok['no_errors'])}"),
        "",
        "session store append (synchronous=FULL, commit per message, %d appends): %.0f/s, %.2f ms each"
        % (result["append"]["appends"], result["append"]["per_s"], result["append"]["ms_each"]),
        "",
        f"{'gateway RSS (MB)':<44}{'empty state':>14}{'%d sessions' % s['sessions']:>16}{'delta':>10}",
        f"{'  after start-up':<44}{_mb(rss['empty']['after_start']):>14}{_mb(rss['sessions']['after_start']):>16}"
        f"{_mb(rss['delta']['after_start']):>10}",
        f"{'  after the list load':<44}{_mb(rss['empty']['after_load']):>14}{_mb(rss['sessions']['after_load']):>16}"
        f"{_mb(rss['delta']['after_load']):>10}",
        "",
        *(["WARNING: other processes used up to %.0f%% of a core during the loads; req/s is "
            "unreliable. Compare 'server CPU per request' or rerun on a quieter machine." % noise]
          if noise > NOISY_OTHER_PCT else []),
        "load average %.2f at start, %.2f at end; %s" % (
            result["machine"]["loadavg_start"][0], result["machine"]["loadavg_end"][0],
            "all targets met" if result["verdict"]["all_pass"] else "some targets missed"),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__, "short settings: about 30 s")
    parser.add_argument("--sessions", type=int, default=10_000, help="stored sessions (10000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per load (3)")
    parser.add_argument("--appends", type=int, default=200, help="timed session store appends (200)")
    parser.add_argument("--duration", type=float, help="measured seconds per load (5; quick 2)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per load (2; quick 1)")
    parser.add_argument("--connections", type=int, default=4, help="connections (4)")
    parser.add_argument("--inflight", type=int, default=8, help="requests in flight per connection (8)")
    parser.add_argument("--procs", type=int, default=1, help="load generator processes (1)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to let a gateway settle before RSS reads")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, state)")
    args = parser.parse_args(argv)
    if args.sessions < 1:
        parser.error("--sessions must be at least 1")
    if args.appends < 1:
        parser.error("--appends must be at least 1")
    return fill_defaults(args, {"duration": 2.0 if args.quick else 5.0, "warmup": 1.0 if args.quick else 2.0})


def main(argv: list[str] | None = None) -> int:
    return run_main(parse_args(argv), run, report)


if __name__ == "__main__":
    sys.exit(main())
