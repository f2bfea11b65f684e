"""Broken or credential-dropping config edits under a running gateway (cli-config §5.1, §5.7):
an empty, whitespace-only or half-written file is an invalid config like any other, and no
reload or in-process restart swaps the configured token for the generated one."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.conftest import TOKEN, chat_events, log_records, ok, open_client, wait_until

DEBOUNCE_MS = 50
CONFIG = {"gateway": {"auth": {"mode": "token", "token": TOKEN},
                      "reload": {"debounceMs": DEBOUNCE_MS, "cooldownMs": 0}},
          "agents": {"defaults": {"model": "offline/echo"}}}
# Past the debounce, a restart's drain and its boot, with margin for a slow shared machine.
# Not a wait for an event: these tests assert that no restart happens, so they let the time
# in which one would have happened pass.
SETTLE_S = 3.0


def boot_id(gw) -> str:
    client = open_client(gw.url)
    try:
        return client.hello["server"]["bootId"]
    finally:
        client.close()


def reload_status(gw) -> dict:
    client = open_client(gw.url)
    try:
        return ok(client.request("health", {"probe": True}))["configReload"]
    finally:
        client.close()


def wait_reload_error(gw, needle: str) -> dict:
    def failed() -> dict | None:
        status = reload_status(gw)
        return status if status["status"] == "error" and needle in (status["lastError"] or "") else None
    return wait_until(failed, 10, what=f"configReload error mentioning {needle!r}")


def assert_serving(gw, boot: str) -> None:
    """A client holding the configured token connects, chats on the echo model, and sees the
    boot it started with."""
    client = open_client(gw.url)  # raises on AUTH_TOKEN_MISMATCH
    try:
        assert client.hello["server"]["bootId"] == boot
        run_id = str(uuid.uuid4())
        ok(client.request("chat.send", {"sessionKey": "main", "message": "still here",
                                        "idempotencyKey": run_id}))
        final = chat_events(client, run_id)[-1]
        assert final["state"] == "final", final
        assert final["message"]["content"] == [{"type": "text", "text": "still here"}]
        assert ok(client.request("health", {}))["ok"] is True
    finally:
        client.close()


def restart_rpc(gw) -> dict:
    client = open_client(gw.url)
    try:
        return ok(client.request("gateway.restart", {"reason": "test"}))
    finally:
        client.close()


def wait_aborted(gw) -> None:
    wait_until(lambda: any(r.get("message", "").startswith("restart aborted")
                           for r in log_records(gw.log_path)), 10, what="the restart to abort")


def half(text: str) -> str:
    return text[: len(text) // 2]


@pytest.mark.parametrize("content, needle", [
    pytest.param(lambda text: "", "the file is empty", id="zero-bytes"),
    pytest.param(lambda text: " \n\t\n  ", "the file is empty", id="whitespace-only"),
    pytest.param(half, "openclaw.json:", id="half-written"),
])
def test_truncated_file_keeps_the_last_good_config_and_token(gateway_factory, content, needle):
    gw = gateway_factory(CONFIG)
    boot = boot_id(gw)
    assert_serving(gw, boot)

    gw.config_path.write_text(content(gw.config_path.read_text()))
    status = wait_reload_error(gw, needle)
    assert status["lastError"].startswith("invalid config: ")
    time.sleep(SETTLE_S)  # any restart the edit would schedule has happened by now
    assert_serving(gw, boot)
    assert not (gw.state_dir / "gateway.token").exists()
    assert any(r.get("message", "").startswith("config reload skipped (invalid config)")
               for r in log_records(gw.log_path))

    # An explicit in-process restart re-reads the file: it aborts and keeps serving too.
    assert restart_rpc(gw)["scheduled"] is True
    wait_aborted(gw)
    time.sleep(SETTLE_S)
    assert_serving(gw, boot)
    assert not (gw.state_dir / "gateway.token").exists()


def test_removing_the_configured_token_keeps_it(gateway_factory):
    gw = gateway_factory(CONFIG)
    boot = boot_id(gw)
    doc = json.loads(gw.config_path.read_text())
    doc["gateway"]["auth"].pop("token")
    doc["logging"]["level"] = "debug"  # a hot key in the same edit still applies
    gw.config_path.write_text(json.dumps(doc))

    status = wait_reload_error(gw, "gateway.auth.token")
    assert status["pendingRestart"] == ["gateway.auth.token"]
    time.sleep(SETTLE_S)
    assert_serving(gw, boot)
    assert not (gw.state_dir / "gateway.token").exists()
    assert any("gateway.auth.token" in r.get("message", "") and r.get("level") == "error"
               for r in log_records(gw.log_path))
    wait_until(lambda: any(r.get("level") == "debug" for r in log_records(gw.log_path)),
               what="the hot logging.level change to apply")

    # An explicit in-process restart would switch to the generated token too: refused.
    assert restart_rpc(gw)["scheduled"] is True
    wait_aborted(gw)
    time.sleep(SETTLE_S)
    assert_serving(gw, boot)
    assert not (gw.state_dir / "gateway.token").exists()

    # Setting it back recovers: nothing is pending any more.
    doc["gateway"]["auth"]["token"] = TOKEN
    gw.config_path.write_text(json.dumps(doc))
    status = wait_until(lambda: (s := reload_status(gw))["status"] == "ok" and s,
                        what="configReload ok again")
    assert status["pendingRestart"] == [] and status["lastError"] is None
    assert_serving(gw, boot)
