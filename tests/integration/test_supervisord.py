"""The gateway under supervisord, with the repository's `etc/supervisord.conf` used unchanged
(cli-config §7.7): a graceful stop is an expected exit and is not restarted, supervisord's own
shutdown stops the gateway cleanly, and a bad config ends in exit 78 without a restart loop.
supervisord and everything it started are killed at the end, also on failure."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.conftest import TOKEN, free_port, open_client, wait_until

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "etc" / "supervisord.conf"
BIN = Path(sys.executable).parent
PROGRAM = "openclaw-gateway"


class Supervisord:
    def __init__(self, tmp_path: Path, config: dict | str):
        self.state = tmp_path / "state"
        for sub in ("logs", "service"):
            (self.state / sub).mkdir(parents=True, mode=0o700)
        self.port = free_port()
        self.log_path = tmp_path / "gateway.log"
        text = config if isinstance(config, str) else json.dumps(
            {**config, "logging": {"file": str(self.log_path)}})
        (self.state / "openclaw.json").write_text(text)
        self.env = {**os.environ, "OPENCLAW_STATE_DIR": str(self.state),
                    "OPENCLAW_BIN": str(BIN / "openclaw"), "OPENCLAW_GATEWAY_PORT": str(self.port)}
        for suffix in ("CONFIG_PATH", "GATEWAY_TOKEN", "GATEWAY_PASSWORD", "SERVICE", "LOG_LEVEL"):
            self.env.pop(f"OPENCLAW_{suffix}", None)
            self.env.pop(f"CLAWDBOT_{suffix}", None)
        self.env.pop("CLAWDBOT_STATE_DIR", None)
        self.env.pop("CLAWDBOT_GATEWAY_PORT", None)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Supervisord":
        self.proc = subprocess.Popen([str(BIN / "supervisord"), "-n", "-c", str(CONF)], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        return self

    def ctl(self, *args: str) -> str:
        res = subprocess.run([str(BIN / "supervisorctl"), "-c", str(CONF), *args], env=self.env,
                             capture_output=True, text=True, timeout=60)
        return res.stdout

    def status(self) -> tuple[str, int | None]:
        """(state, pid) of the gateway program."""
        out = self.ctl("status", PROGRAM)
        match = re.match(rf"{PROGRAM}\s+(\w+)(?:\s+pid (\d+))?", out)
        if not match:
            return "", None
        return match.group(1), int(match.group(2)) if match.group(2) else None

    def log(self) -> str:
        path = self.state / "logs" / "supervisord.log"
        return path.read_text() if path.exists() else ""

    def out_log(self) -> str:
        path = self.state / "logs" / "gateway.out.log"
        return path.read_text() if path.exists() else ""

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """Kill supervisord and everything it started (its session and the gateway's group)."""
        if self.proc is None:
            return
        for pid in _gateway_pids(self.state):
            _killpg(pid)
        if self.proc.poll() is None:
            _killpg(self.proc.pid)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.stderr:
            self.proc.stderr.close()


def _killpg(pid: int) -> None:
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _gateway_pids(state: Path) -> list[int]:
    """Live processes whose environment names this state dir (the supervised gateways)."""
    needle = f"OPENCLAW_STATE_DIR={state}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            if needle in Path(f"/proc/{name}/environ").read_bytes().split(b"\0") and \
                    b"gateway" in Path(f"/proc/{name}/cmdline").read_bytes():
                found.append(int(name))
        except OSError:
            continue
    return found


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return True


@pytest.fixture
def supervisord() -> Iterator:
    # Not tmp_path: supervisord binds `<state>/service/supervisor.sock.<pid>` first, and under
    # pytest-xdist (`popen-gwN/` in tmp_path) that passes the 107-byte limit of a Unix socket
    # path, so supervisord would never serve. A short dir of its own keeps it well under.
    root = Path(tempfile.mkdtemp(prefix="oc-sup-"))
    started: list[Supervisord] = []

    def make(config: dict | str) -> Supervisord:
        sup = Supervisord(root, config)
        started.append(sup)
        return sup.start()

    yield make
    for sup in started:
        sup.kill()
    shutil.rmtree(root, ignore_errors=True)


def test_conf_is_usable_unchanged():
    text = CONF.read_text()
    for line in ("exitcodes=0,78", "autorestart=unexpected", "stopasgroup=true", "killasgroup=true",
                 "stopwaitsecs=35", "stopsignal=TERM", "command=%(ENV_OPENCLAW_BIN)s gateway"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    assert re.search(r'^environment=.*OPENCLAW_SERVICE="supervisord"', text, re.M)
    assert re.search(r"^startsecs=\d+$", text, re.M)
    # Every ENV variable it needs is documented in the header comments.
    header = "".join(line for line in text.splitlines(True) if line.startswith(";"))
    for name in set(re.findall(r"%\(ENV_(\w+)\)s", text)):
        assert f"export {name}=" in header or f" {name}=" in header, name


def test_runs_gateway_and_stops_cleanly(supervisord):
    sup = supervisord({"gateway": {"auth": {"mode": "token", "token": TOKEN}}})
    wait_until(sup.healthy, timeout=15, what="/health 200 under supervisord")
    state, pid = wait_until(lambda: (s := sup.status())[0] == "RUNNING" and s, timeout=15,
                            what="supervisorctl status RUNNING")
    client = open_client(f"ws://127.0.0.1:{sup.port}")
    assert client.hello["type"] == "hello-ok"
    client.close()
    assert json.loads((sup.state / "locks" / "gateway.lock").read_text())["pid"] == pid
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"OPENCLAW_SERVICE=supervisord" in env

    # The gateway stopping by itself with 0 is an expected exit: not restarted.
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: f"exited: {PROGRAM} (exit status 0; expected)" in sup.log(), timeout=15,
               what="expected exit in supervisord.log")
    assert sup.status()[0] == "EXITED"
    time.sleep(1.5)  # supervisord's restart decisions run once per second
    assert sup.status()[0] == "EXITED" and not sup.healthy()
    assert sup.log().count(f"spawned: '{PROGRAM}'") == 1

    # Started again, then stopped through supervisord's own shutdown.
    assert "started" in sup.ctl("start", PROGRAM)
    state, pid = sup.status()
    assert state == "RUNNING" and sup.healthy()
    assert "Shut down" in sup.ctl("shutdown")
    assert sup.proc.wait(45) == 0
    assert _gone(pid)
    log = sup.log()
    assert f"stopped: {PROGRAM} (exit status 0)" in log, log
    assert "SIGKILL" not in log
    assert not (sup.state / "locks" / "gateway.lock").exists()
    out = sup.out_log()
    assert "received SIGTERM; shutting down" in out and "gateway stopped" in out
    assert TOKEN not in out
    audit = (sup.state / "logs" / "gateway-restart.log").read_text()
    assert audit.count("event=start ") == 2 and audit.count("event=stop ") == 2


def test_bad_config_exits_78_without_restart_loop(supervisord):
    sup = supervisord('{"gateway": {"port": "abc"}}')
    state = wait_until(lambda: (s := sup.status()[0]) in ("FATAL", "EXITED") and s, timeout=30,
                       what="FATAL or EXITED")
    starts = sup.log().count(f"spawned: '{PROGRAM}'")
    assert 1 <= starts <= 4, sup.log()  # startretries=3
    time.sleep(1.5)  # not a wait: supervisord would have retried within its 1 s tick
    assert sup.status()[0] == state
    assert sup.log().count(f"spawned: '{PROGRAM}'") == starts
    assert "exit status 78" in sup.log()
    out = sup.out_log()
    assert f"Invalid config at {sup.state / 'openclaw.json'}:" in out
    assert "  - gateway.port: " in out
    assert not sup.healthy()
    assert "Shut down" in sup.ctl("shutdown")
    assert sup.proc.wait(20) == 0
