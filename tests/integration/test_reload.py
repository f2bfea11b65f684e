"""Config file edits observed by a running gateway (cli-config §5.7): hot keys applied live,
restart keys restarting in-process, bad edits kept out, rename-saves seen, mode off."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest

from tests.conftest import log_records, open_client, read_until_closed, wait_until
from tests.integration.reload_support import config, free_port, launch, launch_started, write_text


def test_hot_key_applies_live_without_restart(gateway_factory):
    gw = launch(gateway_factory)
    boot, pid = gw.boot_and_pid()
    assert gw.reload_status()["lastReloadAt"] is None

    gw.edit(lambda d: d["logging"].update(level="debug"))
    status = gw.wait_reload_after(None)
    assert status["status"] == "ok" and status["lastError"] is None and status["pendingRestart"] == []
    # A second edit is logged at debug by the watcher: the new level is live.
    gw.edit(lambda d: d["gateway"]["auth"].setdefault("rateLimit", {}).update(maxAttempts=7))
    gw.wait_reload_after(status["lastReloadAt"])
    wait_until(lambda: any(r.get("level") == "debug" for r in log_records(gw.log_path)),
               what="a debug record in the log file")
    assert gw.boot_and_pid() == (boot, pid)
    audit = (gw.state_dir / "logs" / "gateway-restart.log").read_text()
    assert "event=reload" in audit and "logging.level" in audit


def test_port_change_restarts_in_process_on_the_new_port(gateway_factory, ws_clients):
    gw = launch(gateway_factory)
    boot, pid = gw.boot_and_pid()
    client = ws_clients(gw.url)
    old_port, new_port = gw.port, free_port()

    gw.edit(lambda d: d["gateway"].update(port=new_port))
    frames, code, reason = read_until_closed(client, timeout=10)
    shutdown = [f for f in frames if f.get("event") == "shutdown"]
    assert shutdown and shutdown[0]["payload"] == {"reason": "gateway restarting", "restartExpectedMs": 5000}
    assert (code, reason) == (1012, "service restart")

    gw.port = new_port
    new_boot = gw.wait_new_boot(boot)
    assert new_boot != boot and gw.boot_and_pid()[1] == pid == gw.proc.pid
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", old_port), timeout=1).close()
    assert gw.reload_status()["status"] == "ok"
    audit = (gw.state_dir / "logs" / "gateway-restart.log").read_text()
    assert "event=restart-requested" in audit and "event=restart " in audit


def test_invalid_edit_keeps_running_and_fixing_it_recovers(gateway_factory):
    gw = launch(gateway_factory)
    boot, _ = gw.boot_and_pid()
    good = gw.read_config()
    applied = gw.request_payload("config.get")["appliedConfigHash"]

    gw.edit(lambda d: d["gateway"].update(port="nope"))
    status = wait_until(lambda: (s := gw.reload_status())["status"] == "error" and s,
                        what="configReload status error")
    assert "gateway.port" in status["lastError"]
    assert gw.boot_and_pid()[0] == boot
    assert any(r.get("message", "").startswith("config reload skipped (invalid config): gateway.port")
               for r in log_records(gw.log_path))
    shown = gw.request_payload("config.get")  # the file as it is, the old config still applied
    assert shown["valid"] is False and shown["appliedConfigHash"] == applied
    assert [i["path"] for i in shown["issues"]] == ["gateway.port"]

    write_text(gw.config_path, json.dumps(good))
    status = wait_until(lambda: (s := gw.reload_status())["status"] == "ok" and s,
                        what="configReload status ok again")
    assert status["lastError"] is None and gw.boot_and_pid()[0] == boot
    assert gw.request_payload("config.get")["valid"] is True


def test_rename_save_is_seen(gateway_factory):
    gw = launch(gateway_factory)
    gw.edit(lambda d: d["logging"].update(level="warn"), rename=True)
    assert gw.wait_reload_after(None)["status"] == "ok"


def test_taken_port_keeps_the_old_listener_and_reports_it(gateway_factory):
    gw = launch(gateway_factory)
    boot, _ = gw.boot_and_pid()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        gw.edit(lambda d: d["gateway"].update(port=taken))
        status = wait_until(lambda: (s := gw.reload_status())["lastError"] and s,
                            what="configReload.lastError")
    assert str(taken) in status["lastError"] and status["status"] == "error"
    assert gw.boot_and_pid()[0] == boot  # still serving on the old port, same boot


def test_mode_off_ignores_edits_until_sighup(gateway_factory):
    gw = launch(gateway_factory, mode="off")
    boot, _ = gw.boot_and_pid()
    gw.edit(lambda d: d["logging"].update(level="debug"))
    time.sleep(0.5)  # ten debounce periods: a watcher would have reloaded by now
    assert gw.reload_status()["lastReloadAt"] is None

    gw.signal(signal.SIGHUP)
    status = gw.wait_reload_after(None)
    assert status["mode"] == "off" and status["status"] == "ok"
    assert gw.boot_and_pid()[0] == boot


def test_hot_mode_leaves_restart_keys_pending_until_a_restart(gateway_factory):
    gw = launch(gateway_factory, mode="hot")
    boot, pid = gw.boot_and_pid()
    gw.edit(lambda d: d["gateway"].update(drainTimeoutMs=12345))
    status = gw.wait_reload_after(None)
    assert status["status"] == "pending-restart"
    assert status["pendingRestart"] == ["gateway.drainTimeoutMs"]
    assert any(r.get("message") == "config change requires restart: gateway.drainTimeoutMs"
               for r in log_records(gw.log_path))
    assert gw.boot_and_pid()[0] == boot

    gw.signal(signal.SIGUSR1)
    gw.wait_new_boot(boot)
    status = gw.reload_status()
    assert status["status"] == "ok" and status["pendingRestart"] == [] and gw.boot_and_pid()[1] == pid


def test_watcher_ignores_the_gateways_own_write(gateway_factory):
    cfg = config(free_port())
    cfg["logging"] = {"level": "debug"}
    gw = launch(gateway_factory, cfg)
    client = open_client(gw.url)
    try:
        base = client.request("config.get")["payload"]["hash"]
        res = client.request("config.patch", {
            "raw": '{"gateway": {"auth": {"rateLimit": {"maxAttempts": 9}}}}', "baseHash": base})
        assert res["ok"] and res["payload"]["restart"] is None, res
    finally:
        client.close()
    wait_until(lambda: any(r.get("message", "").startswith("config watcher: ignoring the gateway's own write")
                           for r in log_records(gw.log_path)), what="the watcher to skip the RPC write")
    audit = (gw.state_dir / "logs" / "gateway-restart.log").read_text()
    assert audit.count("event=reload ") == 1 and "reason=config.patch" in audit


def test_an_included_file_is_watched(gateway_factory):
    port = free_port()
    gw = gateway_factory(config(port), start=False, port=port)
    include = gw.config_path.with_name("logging.json5")
    write_text(include, json.dumps({"level": "info", "file": str(gw.log_path)}))
    doc = json.loads(gw.config_path.read_text())
    doc["logging"] = {"$include": "./logging.json5"}
    write_text(gw.config_path, json.dumps(doc))
    gw = launch_started(gw)

    write_text(include, json.dumps({"level": "debug", "file": str(gw.log_path)}), rename=True)
    status = gw.wait_reload_after(None)
    assert status["status"] == "ok"
    assert gw.request_payload("config.get")["resolved"]["logging"]["level"] == "debug"
