"""Protocol fuzz (issue 11): hypothesis-generated WebSocket frames against one real gateway
(token auth, the offline `echo` model so chat runs, exec denied so no fuzzed command can run),
started once for the module. The strategies, the client and the checks are in
fuzz_support.py, shared with bench/fuzz.py (the long run).

Properties, for every generated frame:
- before auth (a fresh socket per frame): a faithful `connect` gets `hello-ok`; anything else
  gets an error `res` for a readable id and a close with a code protocol.md §2.4/§5.4 give;
- after auth (one socket, reopened only after a close the frame may cause: 1003 binary,
  1007 invalid UTF-8): every `res` is well formed (same id, `ok` boolean, `payload`, or
  `error` with a known code and a message), every object with a string `id` is answered
  (§3.2; agent.wait may hold its answer for its `timeoutMs`, §15.3), and a `health` sent
  after it is answered, so the socket still works;
- the gateway never logs a traceback (log file and stderr), `/health` answers 200 all along
  (polled every 0.5 s on a thread), and RSS grows less than FUZZ_RSS_MB over the main phase.

Destructive methods. Every method of the table is fuzzed with its params Struct, each with its
own budget so none is left out. Those that only change data (`sessions.delete/reset/compact/
patch`, `channels.stop/logout` (no channel is configured), `chat.*`, `agent`, `tools.invoke`
(exec denied), `exec.approval.resolve`) run in the main phase with everything else. So do
`config.set/patch/apply`: their fuzzed `baseHash` never equals the file's hash (§10.1 requires
it once the file exists), so they are refused before any write, after their params and `raw`
were decoded. What can legitimately stop or reconfigure the gateway runs in its own phase,
last: `gateway.restart`, `gateway.restart.request`, and `config.set/patch/apply` given the
file's real hash half the time. There, any accepted call or restart close is followed by a
hard reset (stop, the original config file written back, start on the same port): the only
way to be sure the next example meets the same gateway. A reset costs a gateway start, so
that phase has a small budget, plus one plain accepted call of each kind so the reset path
runs every time.

Knobs: OPENCLAW_FUZZ_SCALE multiplies every example budget (default 1: ~20 s here);
OPENCLAW_FUZZ_SEED draws new examples from that seed instead of the derandomized default
that makes CI runs reproducible. bench/fuzz.py runs the same for minutes.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import TOKEN
from tests.integration import fuzz_support as fz
from transport.protocol import ConnectParams

SCALE = float(os.environ.get("OPENCLAW_FUZZ_SCALE", "1"))
SEED = os.environ.get("OPENCLAW_FUZZ_SEED")
FIRST, PER_METHOD, JUNK, RESTARTS = 150, 25, 200, 8  # examples (times OPENCLAW_FUZZ_SCALE)
FUZZ_RSS_MB = 150  # generous: the point is a leak per request, not the heap's size


def fuzz(strategy, examples: int, check) -> None:
    fz.run_property(strategy, check, max(1, int(examples * SCALE)), int(SEED) if SEED else None)


@pytest.fixture(scope="module")
def harness(module_gateway_factory):
    gw = module_gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}},
                                 **fz.FUZZ_CONFIG_EXTRA}, name="fuzz")

    def restart() -> None:
        gw.stop(10)
        gw.config_path.write_text(h.original)
        gw.start()  # same port; truncates stdout/stderr, hence rewind

    h = fz.Harness(gw.url, gw.http, TOKEN, gw.config_path, [gw.log_path, gw.stderr_path, gw.stdout_path],
                   pid=lambda: gw.proc.pid, restart=restart, rewind=True)
    with h:
        yield h


def final_checks(harness: fz.Harness) -> None:
    problems = harness.final_problems()
    assert not problems, "\n".join(problems[:10])


def test_first_frames(harness):
    """Before auth: arbitrary and malformed first frames and fuzzed `connect` params."""
    fuzz(fz.first_frames(TOKEN, ConnectParams), FIRST, harness.first_frame)
    final_checks(harness)


def test_requests_after_auth(harness):
    """After auth, on one socket: every method of the table but the restart ones with fuzzed
    params, then near-requests and malformed frames; RSS stays bounded."""
    structs = fz.method_structs()
    harness.client.authenticate(TOKEN)
    pid = harness.pid()
    before = fz.rss_kb(pid)
    for name in sorted(structs):
        if name not in fz.RESTARTING:
            fuzz(fz.method_requests({name: structs[name]}), PER_METHOD, harness.request)
    fuzz(fz.junk_frames(), JUNK, harness.request)
    harness.client.close()
    time.sleep(1.0)  # part of the measurement: RSS settles after the socket closes (no event to wait for)
    after = fz.rss_kb(pid)
    final_checks(harness)
    print(f"\nfuzz: {harness.examples}; RSS {before / 1024:.1f} → {after / 1024:.1f} MB")
    assert after - before < FUZZ_RSS_MB * 1024, f"RSS grew {before} → {after} kB"


def test_restarting_methods(harness):
    """gateway.restart(.request) and config writes that may pass the base-hash check; every
    accepted call or restart close is followed by a hard reset (see the module docstring)."""
    structs = fz.method_structs()
    for name in (*fz.RESTARTING, *fz.CONFIG_WRITES):
        fuzz(fz.restart_phase_frames(name, structs[name]), RESTARTS, harness.restarting)
    # One accepted call of each kind, so the reset path runs every time.
    harness.restarting(fz.make_request("gateway.restart", "plain-restart", {"reason": "fuzz"}, {}))
    harness.restarting(fz.with_real_hash("config.patch", "plain-patch", {"raw": "{}"}, True))
    final_checks(harness)
    assert harness.resets >= 2, harness.outcomes
    print(f"\nrestart phase: {harness.resets} hard resets; outcomes {harness.outcomes}")
