"""`openclaw sessions list|show|reset|delete` as a subprocess (cli-config §4.13): through a
running gateway, and with none (the database read-only; writes under the state lock)."""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from actors.sessions.store import SessionStore, db_path
from lifecycle.lock import InstanceLock, lock_path
from tests.conftest import OPENCLAW, TOKEN, free_port
from tests.integration.test_cli import cli

CONFIG = {"gateway": {"auth": {"mode": "token", "token": TOKEN}},
          "agents": {"defaults": {"model": "offline/echo"}}}
HOUR_AGO = int(time.time() * 1000) - 3_600_000


def seed(state_dir: Path) -> None:
    """Three sessions written by the real store: work (2 messages), a telegram DM, and an
    hour-old one."""
    ref = SessionStore.start(str(state_dir), notify_health=False)
    try:
        store = ref.proxy()
        store.get_or_create("telegram:direct:42", channel="telegram").get(timeout=10)
        store.get_or_create("old", now=HOUR_AGO).get(timeout=10)
        store.append("work", {"role": "user", "content": "deploy it"}).get(timeout=10)
        store.append("work", {"role": "assistant", "content": "Done."}).get(timeout=10)
        store.patch("work", {"label": "Work", "model": "openai/gpt-5"}).get(timeout=10)
    finally:
        ref.stop(timeout=10)


def env_for(state_dir: Path, port: int | None = None) -> dict:
    """`port` None: nobody listens, so the CLI works on the files."""
    return {"OPENCLAW_STATE_DIR": str(state_dir), "OPENCLAW_GATEWAY_PORT": str(port or free_port())}


@pytest.fixture
def seeded_gateway(gateway_factory):
    gw = gateway_factory(CONFIG, start=False)
    seed(gw.state_dir)
    return gw.start()


@pytest.fixture
def offline_state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "openclaw.json").write_text(json.dumps(CONFIG))
    seed(state)
    return state


def run_json(*args: str, env: dict, home: Path, code: int = 0) -> dict:
    res = cli(*args, "--json", env=env, home=home)
    assert res.returncode == code, (res.stdout, res.stderr)
    return json.loads(res.stdout)


def keys_of(result: dict) -> list[str]:
    return [row["key"] for row in result["sessions"]]


def stored_messages(state_dir: Path, session_id: str) -> int:
    db = sqlite3.connect(f"file:{db_path(str(state_dir))}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM messages WHERE session_id = ?", (session_id,)).fetchone()[0]
    finally:
        db.close()


# --- reads -------------------------------------------------------------------------------------

def check_reads(env: dict, home: Path) -> None:
    """The same answers with and without a gateway."""
    listed = run_json("sessions", "list", env=env, home=home)
    assert keys_of(listed) == ["agent:main:work", "agent:main:telegram:direct:42", "agent:main:old"]
    assert listed["count"] == listed["totalCount"] == 3 and listed["limitApplied"] == 100
    assert listed["defaults"] == {"modelProvider": "offline", "model": "echo"}
    work = listed["sessions"][0]
    assert work["label"] == "Work" and work["model"] == "gpt-5" and work["modelProvider"] == "openai"

    res = cli("sessions", env=env, home=home)  # bare `sessions` lists
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["KEY", "KIND", "CHANNEL", "MODEL", "UPDATED"]
    assert lines[1].split()[:4] == ["agent:main:work", "direct", "-", "openai/gpt-5"]
    assert lines[2].split()[:4] == ["agent:main:telegram:direct:42", "direct", "telegram", "offline/echo"]
    assert lines[3].split()[-2:] == ["1h", "ago"]

    page = run_json("sessions", "list", "--limit", "1", env=env, home=home)
    assert keys_of(page) == ["agent:main:work"] and page["hasMore"] is True and page["totalCount"] == 3
    res = cli("sessions", "list", "--limit", "1", env=env, home=home)
    assert "Showing 1 of 3 sessions" in res.stderr
    everything = run_json("sessions", "list", "--limit", "all", env=env, home=home)
    assert everything["count"] == 3 and everything["hasMore"] is False
    assert keys_of(run_json("sessions", "list", "--active", "30", env=env, home=home)) == [
        "agent:main:work", "agent:main:telegram:direct:42"]
    assert run_json("sessions", "list", "--agent", "ops", env=env, home=home)["count"] == 0

    shown = run_json("sessions", "show", "work", env=env, home=home)
    assert shown["session"] == work
    assert [(m["role"], m["content"][0]["text"]) for m in shown["messages"]] == [
        ("user", "deploy it"), ("assistant", "Done.")]
    last = run_json("sessions", "show", "agent:main:work", "--messages", "1", env=env, home=home)
    assert [m["content"][0]["text"] for m in last["messages"]] == ["Done."]
    res = cli("sessions", "show", "work", env=env, home=home)
    assert res.returncode == 0 and "Session agent:main:work" in res.stdout
    assert "user: deploy it" in res.stdout and "assistant: Done." in res.stdout

    res = cli("sessions", "show", "nope", env=env, home=home)
    assert res.returncode == 1 and "session not found: agent:main:nope" in res.stderr
    missing = run_json("sessions", "show", "nope", env=env, home=home, code=1)
    assert missing["error"]["type"] == "not_found"


def test_reads_through_the_gateway(seeded_gateway, tmp_path):
    env = env_for(seeded_gateway.state_dir, seeded_gateway.port)
    check_reads(env, tmp_path)
    assert "unreachable" not in cli("sessions", env=env, home=tmp_path).stderr


def test_reads_without_a_gateway_leave_the_files_alone(offline_state, tmp_path):
    db = Path(db_path(str(offline_state)))
    before = db.read_bytes()
    env = env_for(offline_state)
    check_reads(env, tmp_path)
    assert "gateway unreachable; reading the sessions database" in cli("sessions", env=env, home=tmp_path).stderr
    assert db.read_bytes() == before


def test_read_of_an_empty_state_dir_creates_nothing(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    listed = run_json("sessions", "list", env=env_for(state), home=tmp_path)
    assert listed["count"] == 0 and listed["sessions"] == []
    assert cli("sessions", env=env_for(state), home=tmp_path).stdout == "No sessions.\n"
    assert list(state.iterdir()) == []


def test_offline_read_after_kill_9_sees_committed_rows(gateway_factory, ws_clients, tmp_path):
    gw = gateway_factory(CONFIG)
    client = ws_clients(gw.url)
    assert client.request("sessions.patch", {"key": "fresh", "label": "Fresh"})["ok"]
    gw.kill()  # the row may still be in the WAL only
    listed = run_json("sessions", "list", env=env_for(gw.state_dir), home=tmp_path)
    assert keys_of(listed) == ["agent:main:fresh"]


def test_url_never_falls_back_and_auth_errors_stay(seeded_gateway, tmp_path):
    res = cli("sessions", "list", "--url", f"ws://127.0.0.1:{free_port()}", "--token", "x", home=tmp_path)
    assert res.returncode == 69
    env = {**env_for(seeded_gateway.state_dir, seeded_gateway.port), "OPENCLAW_GATEWAY_TOKEN": "wrong"}
    res = cli("sessions", "list", env=env, home=tmp_path)
    assert res.returncode == 77 and "token rejected" in res.stderr
    res = cli("sessions", "reset", "work", "--yes", env=env, home=tmp_path)
    assert res.returncode == 77


# --- writes ------------------------------------------------------------------------------------

def check_writes(env: dict, home: Path, state_dir: Path) -> None:
    old_id = run_json("sessions", "show", "work", env=env, home=home)["session"]["sessionId"]
    reset = run_json("sessions", "reset", "work", "nope", "--yes", env=env, home=home, code=1)
    assert reset == {"ok": False, "operation": "reset", "results": [
        {"key": "agent:main:work", "ok": True, "status": "reset", "error": None},
        {"key": "agent:main:nope", "ok": False, "status": "not_found",
         "error": "session not found: agent:main:nope"}]}
    shown = run_json("sessions", "show", "work", env=env, home=home)
    assert shown["session"]["sessionId"] != old_id and shown["messages"] == []
    assert stored_messages(state_dir, old_id) == 2  # earlier messages stay under the old id

    res = cli("sessions", "reset", "telegram:direct:42", "--yes", env=env, home=home)
    assert res.returncode == 0 and res.stdout == "Reset agent:main:telegram:direct:42\n"

    deleted = run_json("sessions", "delete", "work", "main", "ghost", "--yes", env=env, home=home, code=1)
    assert deleted["operation"] == "delete" and deleted["ok"] is False
    assert deleted["results"][0] == {"key": "agent:main:work", "ok": True, "status": "deleted", "error": None}
    assert deleted["results"][1] == {"key": "agent:main:main", "ok": False, "status": "error",
                                     "error": "cannot delete the main session (agent:main:main)"}
    assert deleted["results"][2]["status"] == "not_found"
    assert stored_messages(state_dir, old_id) == 0  # delete takes every transcript of the key
    ok = run_json("sessions", "delete", "old", "--yes", env=env, home=home)
    assert ok == {"ok": True, "operation": "delete", "results": [
        {"key": "agent:main:old", "ok": True, "status": "deleted", "error": None}]}
    assert keys_of(run_json("sessions", "list", env=env, home=home)) == ["agent:main:telegram:direct:42"]


def test_writes_through_the_gateway(seeded_gateway, tmp_path):
    check_writes(env_for(seeded_gateway.state_dir, seeded_gateway.port), tmp_path, seeded_gateway.state_dir)


def test_writes_without_a_gateway_take_the_lock(offline_state, gateway_factory, tmp_path):
    env = env_for(offline_state)
    check_writes(env, tmp_path, offline_state)
    res = cli("sessions", "reset", "telegram:direct:42", "--yes", env=env, home=tmp_path)
    assert "writing the sessions database" in res.stderr
    assert not lock_path(offline_state).exists()  # released (and deleted) after the write

    lock = InstanceLock(offline_state)  # a holder that answers no RPC: a stuck gateway
    lock.acquire(0)
    try:
        res = cli("sessions", "delete", "telegram:direct:42", "--yes", "--json", env=env, home=tmp_path)
        assert res.returncode == 1
        error = json.loads(res.stdout)["error"]
        assert error["type"] == "conflict" and f"pid {os.getpid()}" in error["message"]
    finally:
        lock.release()
    assert run_json("sessions", "list", env=env, home=tmp_path)["count"] == 1


def test_destructive_commands_need_yes_off_a_terminal(offline_state, tmp_path):
    env = env_for(offline_state)
    for op in ("reset", "delete"):
        res = cli("sessions", op, "work", env=env, home=tmp_path)
        assert res.returncode == 2 and "without --yes" in res.stderr
        res = cli("sessions", op, "work", "--json", env=env, home=tmp_path)
        assert res.returncode == 2 and json.loads(res.stdout)["error"]["type"] == "usage"
    assert run_json("sessions", "list", env=env, home=tmp_path)["count"] == 3


def prompt(args: list[str], env: dict, home: Path, answer: str) -> subprocess.CompletedProcess:
    """Run the CLI with a terminal on stdin and type `answer`."""
    controller, terminal = pty.openpty()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_"))}
    proc = subprocess.Popen([OPENCLAW, *args], env={**base, **env, "HOME": str(home)}, stdin=terminal,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(terminal)
    os.write(controller, answer.encode() + b"\n")
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(controller)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_terminal_prompt(offline_state, tmp_path):
    env = env_for(offline_state)
    res = prompt(["sessions", "reset", "work", "old"], env, tmp_path, "n")
    assert "Reset 2 session(s)? [y/N]" in res.stderr
    assert res.returncode == 1 and res.stdout == ""
    res = prompt(["sessions", "delete", "old"], env, tmp_path, "y")
    assert "Delete 1 session(s)? [y/N]" in res.stderr
    assert res.returncode == 0 and res.stdout == "Deleted agent:main:old\n"
