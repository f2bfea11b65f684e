"""Config reload latency (issue 3's benchmark): from the write of the config file until the
running gateway has applied it, p50 of --iterations edits, for

  hot      logging.level toggled (a hot key): until `health`'s configReload.lastReloadAt moves;
           default debounce (gateway.reload.debounceMs 300). Target < 500 ms.
  restart  gateway.drainTimeoutMs toggled (a restart key), gateway.reload.cooldownMs 0: until
           the in-process restart is over and GET /readyz answers 200 again. Target < 1.5 s.

The gateway runs on a free loopback port with its own temp state dir and token auth; the
watcher sees real file writes. Every process is stopped at the end (also on Ctrl-C).

Usage:
  .venv/bin/python bench/reload.py               # 20 edits per kind, a table
  .venv/bin/python bench/reload.py --json        # one JSON document
  .venv/bin/python bench/reload.py --iterations 5 --keep
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789abcdef"
TARGETS_MS = {"hot": 500.0, "restart": 1500.0}
POLL_S = 0.005  # poll step: the figures carry up to this much extra


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gateway:
    """One `openclaw gateway` in its own process group, configured by its file only."""

    def __init__(self, root: Path, port: int) -> None:
        self.port, self.state = port, root / "state"
        self.state.mkdir(parents=True)
        self.config_path = self.state / "openclaw.json"
        self.doc = {"gateway": {"port": port, "auth": {"mode": "token", "token": TOKEN},
                                "reload": {"cooldownMs": 0}},
                    "logging": {"level": "info", "file": str(root / "gateway.log")}}
        self.write()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
        env["OPENCLAW_STATE_DIR"] = str(self.state)
        exe = Path(sys.executable).parent / "openclaw"
        self.proc = subprocess.Popen([str(exe), "gateway"], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(root / "stderr.txt", "wb"),
                                     start_new_session=True)

    def write(self) -> None:
        self.config_path.write_text(json.dumps(self.doc, indent=2))

    def ready(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gateway did not become ready (exit {self.proc.poll()})")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


class Client:
    """A minimal protocol client: the connect handshake and request/response."""

    def __init__(self, port: int) -> None:
        self.ws: ClientConnection = connect(f"ws://127.0.0.1:{port}", open_timeout=5, max_size=None,
                                            legacy=True)
        self.ws.recv(timeout=5)  # connect.challenge
        self.hello = self.request("connect", {
            "minProtocol": 4, "maxProtocol": 4, "role": "operator", "auth": {"token": TOKEN},
            "scopes": ["operator.read", "operator.admin"],
            "client": {"id": "bench", "version": "1.0.0", "platform": sys.platform, "mode": "bench"}})

    def request(self, method: str, params: dict | None = None) -> dict:
        req_id = str(uuid.uuid4())
        self.ws.send(json.dumps({"type": "req", "id": req_id, "method": method, "params": params or {}}))
        while True:
            frame = json.loads(self.ws.recv(timeout=5))
            if frame.get("type") == "res" and frame.get("id") == req_id:
                if not frame.get("ok"):
                    raise RuntimeError(f"{method}: {frame.get('error')}")
                return frame["payload"]

    def last_reload(self) -> int | None:
        return self.request("health")["configReload"]["lastReloadAt"]

    def wait_closed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        except (ConnectionClosed, TimeoutError):
            return


def measure_hot(gw: Gateway, iterations: int) -> list[float]:
    client, samples = Client(gw.port), []
    for i in range(iterations):
        before = client.last_reload()
        gw.doc["logging"]["level"] = "debug" if i % 2 == 0 else "info"
        started = time.perf_counter()
        gw.write()
        while client.last_reload() == before:
            time.sleep(POLL_S)
        samples.append((time.perf_counter() - started) * 1000)
    client.ws.close()
    return samples


def measure_restart(gw: Gateway, iterations: int) -> list[float]:
    samples = []
    for i in range(iterations):
        client = Client(gw.port)
        gw.doc["gateway"]["drainTimeoutMs"] = 20000 + i  # restart class: a new value each time
        started = time.perf_counter()
        gw.write()
        client.wait_closed()  # shutdown event + close 1012: the restart is under way
        while not gw.ready():
            time.sleep(POLL_S)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"n": len(samples), "p50_ms": round(statistics.median(samples), 1),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
            "min_ms": round(ordered[0], 1), "max_ms": round(ordered[-1], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (state, logs)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="openclaw-reload-bench-"))
    gw = Gateway(root, free_port())
    try:
        gw.wait_ready()
        result = {"hot": summary(measure_hot(gw, args.iterations)),
                  "restart": summary(measure_restart(gw, args.iterations))}
    except KeyboardInterrupt:
        return 130
    finally:
        gw.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    met = all(result[k]["p50_ms"] < TARGETS_MS[k] for k in TARGETS_MS)
    if args.json:
        print(json.dumps({**result, "targets_ms": TARGETS_MS, "met": met}, indent=2))
    else:
        print(f"{'kind':8} {'p50 ms':>8} {'p90 ms':>8} {'min':>7} {'max':>7} {'target':>8}")
        for kind, figures in result.items():
            print(f"{kind:8} {figures['p50_ms']:8.1f} {figures['p90_ms']:8.1f} {figures['min_ms']:7.1f} "
                  f"{figures['max_ms']:7.1f} {'<' + str(int(TARGETS_MS[kind])):>8}")
        if args.keep:
            print(f"state and logs kept in {root}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
