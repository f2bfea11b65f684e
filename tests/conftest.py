"""Shared fixtures: a real gateway process on an ephemeral loopback port, with its own state
dir, and real WebSocket/HTTP clients. Every process a test starts is stopped by the fixture,
also when the test fails."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from actors import testhooks
from lifecycle import loopguard

VENV_BIN = Path(sys.executable).parent
OPENCLAW = str(VENV_BIN / "openclaw")
TOKEN = "test-token-0123456789abcdef"
# Every gateway a fixture starts logs each event loop callback that runs longer than this
# (lifecycle/loopguard.py), and its test fails at teardown if one did: the loop must never
# block. 200 ms: the suite's slowest callback on a loaded shared machine was ~110 ms.
SLOW_CALLBACK_MS = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class GatewayProcess:
    """One `openclaw gateway` process; `stop()` is idempotent."""

    def __init__(self, root: Path, config: dict | None, args: list[str], env: dict[str, str],
                 port: int | None = None):
        self.root = root
        self.state_dir = root / "state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.state_dir / "openclaw.json"
        self.log_path = root / "gateway.log"
        if config is not None:
            config = json.loads(json.dumps(config))
            config.setdefault("logging", {}).setdefault("file", str(self.log_path))
            self.config_path.write_text(json.dumps(config, indent=2))
        self.port = port if port is not None else free_port()
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_"))}
        self.env = {**inherited, "OPENCLAW_STATE_DIR": str(self.state_dir),
                    testhooks.SLOW_CALLBACK_MS: str(SLOW_CALLBACK_MS), **env}
        self.args = args
        self.stdout_path, self.stderr_path = root / "stdout.txt", root / "stderr.txt"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True) -> "GatewayProcess":
        cmd = [OPENCLAW, "gateway", "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=open(self.stdout_path, "wb"), stderr=open(self.stderr_path, "wb"),
                                     start_new_session=True)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited {self.proc.returncode}: {self.stderr()}")
            try:
                return httpx.get(f"{self.http}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        wait_until(ready, timeout, what="gateway /readyz 200")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def slow_callbacks(self) -> list[str]:
        """The slow-callback guard's records, from the log file and the console."""
        found = [r.get("message", "") for r in log_records(self.log_path)
                 if str(r.get("message", "")).startswith(loopguard.MESSAGE)]
        found += [line for line in self.stderr().splitlines() if loopguard.MESSAGE in line]
        return found

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator:
    """`gateway_factory(config=None, args=[], env={}, start=True)` → a started GatewayProcess.

    With a config dict it is written to <state>/openclaw.json (its log file goes to tmp_path).
    """
    started: list[GatewayProcess] = []

    def make(config: dict | None = None, args: list[str] | None = None, env: dict | None = None,
             start: bool = True, wait_ready: bool = True, port: int | None = None,
             name: str | None = None) -> GatewayProcess:
        return _launch(started, tmp_path / (name or f"gw{len(started)}"), config, args, env,
                       start, wait_ready, port)

    yield make
    _stop_all(started)


def _stop_all(started: list[GatewayProcess]) -> None:
    """Stop every gateway, then fail if any of them blocked its event loop."""
    for gw in started:
        gw.stop(10)
    slow = [f"{gw.root.name}: {line}" for gw in started for line in gw.slow_callbacks()]
    if slow:
        pytest.fail("a gateway's event loop blocked:\n" + "\n".join(dict.fromkeys(slow)), pytrace=False)


def _launch(started: list, root: Path, config: dict | None, args: list[str] | None, env: dict | None,
            start: bool, wait_ready: bool, port: int | None = None) -> GatewayProcess:
    gw = GatewayProcess(root, config, list(args or []), dict(env or {}), port)
    started.append(gw)
    if start:
        gw.start(wait_ready)
    return gw


@pytest.fixture
def gateway(gateway_factory) -> GatewayProcess:
    """A running gateway with token auth (TOKEN) and default settings."""
    return gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}})


def connect_params(token: str | None = TOKEN, **overrides: Any) -> dict:
    params = {"minProtocol": 4, "maxProtocol": 4,
              "client": {"id": "test", "version": "1.0.0", "platform": "linux", "mode": "test"},
              "role": "operator", "auth": {"token": token} if token else {}}
    params.update(overrides)
    return params


class Client:
    """A real WebSocket client speaking the protocol, for tests."""

    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self.challenge: dict | None = None
        self.hello: dict | None = None
        self.events: list[dict] = []

    def send(self, frame: Any) -> None:
        self.ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    def recv(self, timeout: float = 5.0) -> dict:
        return json.loads(self.ws.recv(timeout=timeout))

    def request(self, method: str, params: Any = None, req_id: str | None = None,
                timeout: float = 5.0) -> dict:
        """Send a request and return its response frame; events seen meanwhile are kept."""
        req_id = req_id or str(uuid.uuid4())
        frame = {"type": "req", "id": req_id, "method": method}
        if params is not None:
            frame["params"] = params
        self.send(frame)
        return self.response(req_id, timeout)

    def response(self, req_id: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv(max(0.01, deadline - time.monotonic()))
            if frame.get("type") == "res" and frame.get("id") == req_id:
                return frame
            if frame.get("type") == "event":
                self.events.append(frame)

    def event(self, name: str, timeout: float = 5.0) -> dict:
        for i, frame in enumerate(self.events):
            if frame["event"] == name:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv(max(0.01, deadline - time.monotonic()))
            if frame.get("type") == "event":
                if frame["event"] == name:
                    return frame
                self.events.append(frame)

    def close(self) -> None:
        self.ws.close()


def ok(res: dict) -> dict:
    """The payload of a successful response frame (fails the test otherwise)."""
    assert res["ok"] is True, res
    return res["payload"]


def error(res: dict) -> dict:
    """The error object of a failed response frame (fails the test otherwise)."""
    assert res["ok"] is False, res
    return res["error"]


def open_client(url: str, handshake: bool = True, headers: dict | None = None, **params: Any) -> Client:
    ws = connect(url, additional_headers=headers, open_timeout=5, max_size=None, legacy=True)
    client = Client(ws)
    client.challenge = client.recv()
    if handshake:
        res = client.request("connect", connect_params(**params))
        assert res["ok"], res
        client.hello = res["payload"]
    return client


@pytest.fixture
def client_factory(gateway, ws_clients):
    """`client_factory(handshake=True, url=None, **connect_params)` → a Client of `gateway`."""

    def make(handshake: bool = True, url: str | None = None, **params: Any) -> Client:
        return ws_clients(url or gateway.url, handshake, **params)

    return make


# --- Added helpers (module-scoped gateways, client tracking, close inspection) -------------


@pytest.fixture(scope="module")
def module_gateway_factory(tmp_path_factory) -> Iterator:
    """Like `gateway_factory`, but the gateways live for the whole test module (one start
    serves many tests). Every gateway is stopped when the module ends, also on failure."""
    started: list[GatewayProcess] = []

    def make(config: dict | None = None, args: list[str] | None = None, env: dict | None = None,
             start: bool = True, wait_ready: bool = True, name: str = "mgw") -> GatewayProcess:
        return _launch(started, tmp_path_factory.mktemp(name), config, args, env, start, wait_ready)

    yield make
    _stop_all(started)


@pytest.fixture
def ws_clients() -> Iterator:
    """`ws_clients(url, handshake=True, headers=None, **connect_params)` → an open Client that
    is closed at the end of the test, for tests on a gateway that is not `gateway`."""
    clients: list[Client] = []

    def make(url: str, handshake: bool = True, headers: dict | None = None, **params: Any) -> Client:
        client = open_client(url, handshake, headers, **params)
        clients.append(client)
        return client

    yield make
    for client in clients:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - already closed by the server
            pass


def read_until_closed(client: Client, timeout: float = 5.0) -> tuple[list[dict], int | None, str]:
    """Read frames until the server closes the socket: (frames seen, close code, reason).
    The code is None when the connection ended without a close frame."""
    from websockets.exceptions import ConnectionClosed

    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"socket still open after {timeout}s; frames: {frames}")
        try:
            raw = client.ws.recv(timeout=left)
        except TimeoutError:
            continue
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            return frames, (rcvd.code if rcvd else None), (rcvd.reason if rcvd else "")
        frames.append(json.loads(raw) if isinstance(raw, str) else {"binary": raw})


def log_records(path: Path) -> list[dict]:
    """The JSON Lines records of a gateway log file (unparseable lines skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records


# --- chat runs (tests/integration/test_chat.py, test_http_openai.py, test_cli_chat.py) --------

CHAT_TERMINAL = ("final", "error", "aborted")


@pytest.fixture
def model_server():
    """The local stand-in for the OpenAI and Anthropic streaming APIs (tests/fakes)."""
    from tests.fakes.model_server import ModelServer
    with ModelServer() as server:
        yield server


def chat_events(client: Client, run_id: str, timeout: float = 10.0) -> list[dict]:
    """Every `chat` payload of one run, up to and including its terminal state; other events
    stay in `client.events`."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        for frame in list(client.events):
            if frame["event"] == "chat" and frame["payload"]["runId"] == run_id:
                client.events.remove(frame)
                out.append(frame["payload"])
                if frame["payload"]["state"] in CHAT_TERMINAL:
                    return out
        frame = client.recv(max(0.01, deadline - time.monotonic()))
        if frame.get("type") == "event":
            client.events.append(frame)

