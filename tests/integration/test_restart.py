"""In-process restart (cli-config §4.3, §7.5, §7.6; protocol §11): RPC with coalescing,
cooldown and force; SIGUSR1; `openclaw gateway restart`; an invalid config aborts it."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from tests.conftest import OPENCLAW, TOKEN, log_records, open_client, read_until_closed, wait_until
from tests.integration.reload_support import launch


def restart(gw, params: dict | None = None) -> dict:
    client = open_client(gw.url)
    try:
        res = client.request("gateway.restart", params or {})
        assert res["ok"], res
        return res["payload"]
    finally:
        client.close()


def test_rpc_restart_keeps_pid_and_changes_boot(gateway_factory, ws_clients):
    gw = launch(gateway_factory)
    boot, pid = gw.boot_and_pid()
    watcher = ws_clients(gw.url)
    assert restart(gw, {"reason": "test"}) == {"ok": True, "scheduled": True, "delayMs": 0,
                                                "coalesced": False, "restartExpectedMs": 5000}
    frames, code, _ = read_until_closed(watcher, timeout=10)
    assert {"reason": "gateway restarting", "restartExpectedMs": 5000} in \
        [f["payload"] for f in frames if f.get("event") == "shutdown"]
    assert code == 1012
    new_boot = gw.wait_new_boot(boot)
    assert gw.boot_and_pid() == (new_boot, pid)


def test_cooldown_delays_coalesces_and_force_skips_it(gateway_factory):
    gw = launch(gateway_factory, cooldownMs=4000)
    boot, pid = gw.boot_and_pid()
    assert restart(gw)["delayMs"] == 0  # start-up does not count toward the cooldown
    boot = gw.wait_new_boot(boot)

    first = restart(gw, {"reason": "a"})  # inside the cooldown after that restart
    assert first["coalesced"] is False and 2000 < first["delayMs"] <= 4000
    second = restart(gw, {"reason": "b"})
    assert second["coalesced"] is True and second["delayMs"] <= first["delayMs"]
    time.sleep(0.5)  # not a wait: nothing may happen before the cooldown ends
    assert gw.boot_and_pid()[0] == boot  # still waiting for the end of the cooldown

    started = time.monotonic()
    forced = restart(gw, {"reason": "c", "force": True})
    assert forced["coalesced"] is True and forced["delayMs"] == 0
    boot = gw.wait_new_boot(boot)
    assert time.monotonic() - started < 2.0
    assert gw.boot_and_pid() == (boot, pid)


def test_alias_and_sigusr1_restart_in_process(gateway_factory):
    gw = launch(gateway_factory)
    boot, pid = gw.boot_and_pid()
    assert restart(gw)["scheduled"] is True  # via gateway.restart first
    boot = gw.wait_new_boot(boot)
    client = open_client(gw.url)
    try:
        assert client.request("gateway.restart.request", {"reason": "alias"})["payload"]["scheduled"]
    finally:
        client.close()
    boot = gw.wait_new_boot(boot)

    gw.signal(signal.SIGUSR1)
    new_boot = gw.wait_new_boot(boot)
    assert gw.boot_and_pid() == (new_boot, pid) and gw.proc.poll() is None
    audit = (gw.state_dir / "logs" / "gateway-restart.log").read_text()
    assert "reason=SIGUSR1" in audit and "reason=alias" in audit


def test_invalid_config_aborts_the_restart(gateway_factory):
    gw = launch(gateway_factory, mode="off")  # the watcher must not see the bad edit first
    boot, pid = gw.boot_and_pid()
    gw.config_path.write_text('{"gateway": {"port": "nope"}}')
    restart(gw, {"reason": "bad"})
    status = wait_until(lambda: (s := gw.reload_status())["status"] == "error" and s,
                        what="configReload status error")
    assert "gateway.port" in status["lastError"]
    assert gw.boot_and_pid() == (boot, pid)
    assert any(r.get("message", "").startswith("restart aborted (invalid config): gateway.port")
               for r in log_records(gw.log_path))


def _cli(gw, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([OPENCLAW, "gateway", "restart", "--port", str(gw.port), "--token", TOKEN,
                           *args], env=gw.env, capture_output=True, text=True, timeout=30)


def test_cli_gateway_restart_text_and_json(gateway_factory):
    gw = launch(gateway_factory)
    boot, pid = gw.boot_and_pid()
    done = _cli(gw)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Gateway restarted (in-process, pid {pid})"
    boot2, _ = gw.boot_and_pid()
    assert boot2 != boot

    done = _cli(gw, "--json", "--wait", "0", "--force")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is True and doc["method"] == "in-process" and doc["healthy"] is True
    assert doc["pidBefore"] == doc["pidAfter"] == pid and isinstance(doc["elapsedMs"], int)
    assert gw.boot_and_pid()[0] not in (boot, boot2)


def test_cli_gateway_restart_without_a_gateway(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "OPENCLAW_STATE_DIR": str(tmp_path)}
    done = subprocess.run([OPENCLAW, "gateway", "restart", "--port", "1", "--token", TOKEN],
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 69
    assert "no running gateway found (start it with: openclaw gateway, or openclaw service start)" \
        in done.stderr


def test_restart_calls_count_toward_the_control_plane_limit(gateway_factory):
    gw = launch(gateway_factory)
    client = open_client(gw.url)
    try:
        # Ten minutes away: every later call coalesces into this one, nothing restarts.
        first = client.request("gateway.restart", {"delayMs": 600000})["payload"]
        assert first["coalesced"] is False
        for _ in range(29):
            assert client.request("gateway.restart", {})["payload"]["coalesced"] is True
        limited = client.request("gateway.restart", {})
        assert limited["ok"] is False and limited["error"]["code"] == "UNAVAILABLE"
        assert limited["error"]["retryable"] is True and limited["error"]["retryAfterMs"] > 0
        assert limited["error"]["details"] == {"method": "gateway.restart", "limit": "30 per 60s"}
        # The official alias is another method with its own budget.
        assert client.request("gateway.restart.request", {})["payload"]["coalesced"] is True
    finally:
        client.close()
