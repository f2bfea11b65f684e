"""`agent.wait` under abuse (issue 11, defect 2): a bounded `timeoutMs`, a connection's waits
dropped when it closes, a cap on one connection's requests in flight, and a stop that does not
wait on waits, against the real gateway process."""

from __future__ import annotations

import json
import signal
import time
import uuid

import pytest

from tests.conftest import TOKEN, log_records, wait_until

MAX_WAIT_MS = 600_000
MAX_PENDING = 1000


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return module_gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}},
                                  name="waits")


def agent_waits(client) -> int:
    """The agents actor's pending `agent.wait` count (admin `status.requests`)."""
    res = client.request("status", {"includeChannelSummary": False})
    assert res["ok"], res
    return res["payload"]["requests"]["agentWaits"]


def send_waits(client, count: int, prefix: str, timeout_ms: int = MAX_WAIT_MS) -> list[str]:
    ids = [f"{prefix}{i}" for i in range(count)]
    for req_id in ids:  # unknown run ids: each waits the full timeout
        client.send({"type": "req", "id": req_id, "method": "agent.wait",
                     "params": {"runId": f"nosuch-{uuid.uuid4()}", "timeoutMs": timeout_ms}})
    return ids


def test_status_counts_waits_for_admins_only(gw, ws_clients):
    observer = ws_clients(gw.url)
    reader = ws_clients(gw.url, scopes=["operator.read"])
    assert "requests" not in reader.request("status")["payload"]
    block = observer.request("status")["payload"]["requests"]
    assert set(block) == {"inFlight", "agentWaits"} and block["inFlight"] >= 1  # the status call itself


def test_waits_of_a_closed_connection_are_dropped(gw, ws_clients):
    observer = ws_clients(gw.url)
    base = agent_waits(observer)
    leaver = ws_clients(gw.url)
    send_waits(leaver, 300, "w")
    wait_until(lambda: agent_waits(observer) == base + 300, 15, what="300 waits registered")
    leaver.close()
    wait_until(lambda: agent_waits(observer) == base, 10, what="the closed socket's waits dropped")
    assert observer.request("status")["payload"]["requests"]["inFlight"] == 1


def test_waits_of_a_vanished_connection_are_dropped(gw, ws_clients):
    """No close handshake: the TCP connection just goes away."""
    observer = ws_clients(gw.url)
    base = agent_waits(observer)
    leaver = ws_clients(gw.url)
    send_waits(leaver, 50, "v")
    wait_until(lambda: agent_waits(observer) == base + 50, 15, what="50 waits registered")
    leaver.ws.socket.close()
    wait_until(lambda: agent_waits(observer) == base, 10, what="the vanished socket's waits dropped")


@pytest.mark.parametrize("timeout_ms", [MAX_WAIT_MS + 1, 2**63, 2**64 + 5])
def test_timeout_over_the_limit_is_refused(gw, ws_clients, timeout_ms):
    client = ws_clients(gw.url)
    res = client.request("agent.wait", {"runId": "nosuch", "timeoutMs": timeout_ms})
    assert res["ok"] is False and res["error"] == {
        "code": "INVALID_REQUEST",
        "message": f"invalid agent.wait params: timeoutMs: expected int <= {MAX_WAIT_MS}"}


def test_timeout_at_the_limit_and_zero_are_accepted(gw, ws_clients):
    client = ws_clients(gw.url)
    res = client.request("agent.wait", {"runId": "nosuch-zero", "timeoutMs": 0})
    assert res["payload"] == {"runId": "nosuch-zero", "status": "timeout"}
    send_waits(client, 1, "max", MAX_WAIT_MS)
    wait_until(lambda: agent_waits(client) >= 1, 10, what="the wait at the limit registered")


def test_requests_in_flight_per_connection_are_capped(gw, ws_clients):
    observer = ws_clients(gw.url)
    base = agent_waits(observer)
    client = ws_clients(gw.url)
    send_waits(client, MAX_PENDING, "c")
    client.send({"type": "req", "id": "over", "method": "health"})
    res = client.response("over", timeout=15)
    assert res["ok"] is False and res["error"] == {
        "code": "UNAVAILABLE", "retryable": True, "details": {"limit": MAX_PENDING},
        "message": f"too many requests in flight on this connection (limit {MAX_PENDING}); "
                   "wait for answers before sending more"}
    other = ws_clients(gw.url)  # the cap is per connection: others are served
    assert other.request("health")["ok"] is True
    wait_until(lambda: agent_waits(observer) == base + MAX_PENDING, 15, what="the waits registered")
    client.close()
    wait_until(lambda: agent_waits(observer) == base, 10, what="the waits dropped")


def test_stop_does_not_drain_on_waits(gateway_factory, ws_clients):
    gw = gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}})
    client = ws_clients(gw.url)
    ids = set(send_waits(client, MAX_PENDING, "s"))
    observer = ws_clients(gw.url)
    wait_until(lambda: agent_waits(observer) == MAX_PENDING, 20, what="1000 waits registered")
    started = time.monotonic()
    gw.signal(signal.SIGTERM)
    answers: dict[str, dict] = {}
    try:
        while True:
            frame = json.loads(client.ws.recv(timeout=30))
            if frame.get("type") == "res":
                answers[frame["id"]] = frame
    except Exception:  # noqa: BLE001 - the gateway closed the socket (1012) as it stopped
        pass
    assert gw.wait(30) == 0
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"stop took {elapsed:.1f}s with 1000 waits pending (drain budget 25 s)"
    assert set(answers) == ids  # every wait answered before the socket closed
    assert {a["payload"]["status"] for a in answers.values()} == {"timeout"}
    records = log_records(gw.log_path)
    slow = [r for r in records if "slow call" in r.get("message", "")]
    assert len(slow) < 5, slow[:5]
    assert not any("drain budget" in r.get("message", "") for r in records)
