"""config.set / config.patch / config.apply against a real gateway process (protocol §10.4-§10.6,
§4.4, §19.2; cli-config §5.5, §5.6)."""

from __future__ import annotations

import json
import threading

from tests.conftest import TOKEN

STALE = "config changed since last load; re-run config.get and retry"


def base_config(**extra: dict) -> dict:
    return {"gateway": {"auth": {"mode": "token", "token": TOKEN}}, **extra}


def get(client) -> dict:
    res = client.request("config.get", {})
    assert res["ok"], res
    return res["payload"]


def patch(client, raw: str, base_hash: str | None, **params) -> dict:
    body = {"raw": raw, **params}
    if base_hash is not None:
        body["baseHash"] = base_hash
    return client.request("config.patch", body, timeout=15)


def on_disk(gw) -> dict:
    return json.loads(gw.config_path.read_text())


def test_patch_writes_file_and_reports_changed_paths(gateway, client_factory):
    client = client_factory()
    before = get(client)
    res = patch(client, '{logging: {level: "debug"}}', before["hash"])
    assert res["ok"], res
    payload = res["payload"]
    assert payload["changedPaths"] == ["logging.level"]
    assert payload["restart"] is None
    assert payload["path"] == str(gateway.config_path)
    assert payload["config"]["gateway"]["auth"]["token"] == "__OPENCLAW_REDACTED__"
    assert payload["config"]["logging"]["level"] == "debug"
    assert on_disk(gateway)["logging"]["level"] == "debug"
    text = gateway.config_path.read_text()
    assert text.endswith("}\n") and '\n  "gateway": {\n' in text  # standard JSON, 2-space indent
    after = get(client)
    assert after["hash"] == payload["hash"] != before["hash"]
    assert (gateway.config_path.parent / "openclaw.json.bak").exists()


def test_missing_base_hash_messages(gateway, client_factory):
    client = client_factory()
    res = patch(client, '{logging: {level: "debug"}}', None)
    assert not res["ok"]
    assert res["error"]["code"] == "INVALID_REQUEST"
    assert res["error"]["message"] == "config base hash required for logging.level; re-run config.get and retry"
    for method in ("config.set", "config.apply"):
        res = client.request(method, {"raw": json.dumps(base_config())})
        assert res["error"]["code"] == "INVALID_REQUEST", res
        assert res["error"]["message"] == "config base hash required; re-run config.get and retry"


def test_stale_base_hash_is_rejected(gateway, client_factory):
    client = client_factory()
    res = patch(client, '{logging: {level: "debug"}}', "sha256:v1:not-the-hash")
    assert res["error"] == {"code": "INVALID_REQUEST", "message": STALE}


def test_two_clients_racing_with_the_same_base_hash(gateway, client_factory):
    a, b = client_factory(), client_factory()
    base = get(a)["hash"]
    results: dict[str, dict] = {}
    start = threading.Barrier(2)

    def run(name: str, client, level: str) -> None:
        start.wait()
        results[name] = patch(client, json.dumps({"logging": {"level": level}}), base)

    threads = [threading.Thread(target=run, args=("a", a, "debug")),
               threading.Thread(target=run, args=("b", b, "warn"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    winners = [n for n, r in results.items() if r["ok"]]
    losers = [n for n, r in results.items() if not r["ok"]]
    assert len(winners) == 1 and len(losers) == 1, results
    assert results[losers[0]]["error"] == {"code": "INVALID_REQUEST", "message": STALE}
    expected = {"a": "debug", "b": "warn"}[winners[0]]
    assert on_disk(gateway)["logging"]["level"] == expected
    assert get(a)["hash"] == results[winners[0]]["payload"]["hash"]


def test_redacted_sentinel_keeps_the_stored_secret(gateway, client_factory):
    client = client_factory()
    current = get(client)
    assert TOKEN not in current["raw"]
    # A client that round-trips what config.get gave it must not overwrite the secret.
    raw = json.dumps(dict(current["parsed"], logging={"level": "warn"}))
    assert "__OPENCLAW_REDACTED__" in raw
    res = client.request("config.set", {"raw": raw, "baseHash": current["hash"]})
    assert res["ok"], res
    assert on_disk(gateway)["gateway"]["auth"]["token"] == TOKEN
    assert on_disk(gateway)["logging"]["level"] == "warn"

    res = patch(client, '{gateway: {auth: {token: "__OPENCLAW_REDACTED__"}}, logging: {level: "error"}}',
                get(client)["hash"])
    assert res["ok"], res
    assert on_disk(gateway)["gateway"]["auth"]["token"] == TOKEN

    res = patch(client, '{gateway: {remote: {token: "__OPENCLAW_REDACTED__"}}}', get(client)["hash"])
    assert res["error"]["message"] == "cannot restore redacted value at gateway.remote.token"


def test_array_shrink_needs_replace_paths(gateway_factory, ws_clients):
    gw = gateway_factory(base_config(gateway={"auth": {"mode": "token", "token": TOKEN},
                                              "controlUi": {"allowedOrigins": ["https://a", "https://b"]}}))
    client = ws_clients(gw.url)
    raw = '{gateway: {controlUi: {allowedOrigins: ["https://a"]}}}'
    res = patch(client, raw, get(client)["hash"])
    assert res["error"]["message"] == ("config.patch would drop entries at gateway.controlUi.allowedOrigins; "
                                       "add it to replacePaths to confirm")
    assert on_disk(gw)["gateway"]["controlUi"]["allowedOrigins"] == ["https://a", "https://b"]
    res = patch(client, raw, get(client)["hash"], replacePaths=["gateway.controlUi.allowedOrigins"])
    assert res["ok"], res
    assert on_disk(gw)["gateway"]["controlUi"]["allowedOrigins"] == ["https://a"]
    # Growing an array needs no confirmation; null deletes the key.
    res = patch(client, '{gateway: {controlUi: {allowedOrigins: ["https://a", "https://c"]}}}', get(client)["hash"])
    assert res["ok"], res
    res = patch(client, '{gateway: {controlUi: null}}', get(client)["hash"],
                replacePaths=["gateway.controlUi.allowedOrigins"])
    assert res["ok"], res
    assert "controlUi" not in on_disk(gw)["gateway"]


def test_validation_failure_leaves_the_file_untouched(gateway, client_factory):
    client = client_factory()
    before = gateway.config_path.read_bytes()
    res = patch(client, '{gateway: {port: "abc"}, logging: {level: "loud"}}', get(client)["hash"])
    err = res["error"]
    assert err["code"] == "INVALID_REQUEST"
    assert err["message"].startswith("invalid config: ")
    assert err["details"]["issues"] and all({"path", "message"} <= set(i) for i in err["details"]["issues"])
    assert err["message"] == "invalid config: " + (
        f'{err["details"]["issues"][0]["path"]}: {err["details"]["issues"][0]["message"]}')
    assert gateway.config_path.read_bytes() == before
    assert not list(gateway.config_path.parent.glob("openclaw.json.tmp-*"))


def test_noop_patch_writes_nothing(gateway, client_factory):
    client = client_factory()
    before = gateway.config_path.read_bytes()
    current = get(client)
    res = patch(client, json.dumps({"gateway": {"auth": {"mode": "token"}}}), current["hash"])
    assert res["ok"], res
    assert res["payload"]["noop"] is True and res["payload"]["changedPaths"] == []
    assert res["payload"]["hash"] == current["hash"]
    assert gateway.config_path.read_bytes() == before
    assert not (gateway.config_path.parent / "openclaw.json.bak").exists()
    # The base-hash rule still applies to a no-op.
    res = patch(client, json.dumps({"gateway": {"auth": {"mode": "token"}}}), "sha256:v1:old")
    assert res["error"]["message"] == STALE


def test_params_are_strict(gateway, client_factory):
    client = client_factory()
    res = client.request("config.patch", {"raw": "{}", "baseHash": "x", "bogus": 1})
    assert res["error"]["code"] == "INVALID_REQUEST"
    assert res["error"]["message"].startswith("invalid config.patch params: ")
    res = client.request("config.patch", {"raw": "[1, 2]", "baseHash": get(client)["hash"]})
    assert res["error"]["message"].startswith("invalid config.patch params: raw: ")
    res = client.request("config.patch", {"raw": "{oops", "baseHash": get(client)["hash"]})
    assert res["error"]["message"].startswith("invalid config.patch params: raw: ")
    res = client.request("config.apply", {"raw": "{}", "replacePaths": []})
    assert res["error"]["message"].startswith("invalid config.apply params: ")


def test_writes_need_admin_scope(gateway, client_factory):
    client = client_factory(scopes=["operator.read", "operator.write"])
    res = client.request("config.patch", {"raw": "{}", "baseHash": get(client)["hash"]})
    assert res["error"]["code"] == "FORBIDDEN"
    assert res["error"]["message"] == "missing scope: operator.admin"


def test_apply_replaces_the_whole_file_and_reports_restart(gateway, client_factory):
    client = client_factory()
    current = get(client)
    doc = {"gateway": {"auth": {"mode": "token", "token": "__OPENCLAW_REDACTED__"},
                       "reload": {"mode": "hot"}, "drainTimeoutMs": 20000}}
    res = client.request("config.apply", {"raw": json.dumps(doc), "baseHash": current["hash"]}, timeout=15)
    assert res["ok"], res
    payload = res["payload"]
    assert "logging.file" in payload["changedPaths"]  # keys the document omits are gone
    assert "logging" not in on_disk(gateway)
    assert on_disk(gateway)["gateway"]["auth"]["token"] == TOKEN
    restart = payload["restart"]
    # Under reload mode "hot" a restart-class change waits in pendingRestart: never scheduled.
    assert restart["required"] is True and restart["scheduled"] is False
    assert restart["paths"] == ["gateway.drainTimeoutMs"] and restart["reason"] == "config.apply"


def test_missing_file_needs_no_base_hash_and_is_created_0600(gateway_factory, ws_clients):
    gw = gateway_factory(None, env={"OPENCLAW_GATEWAY_TOKEN": TOKEN})
    client = ws_clients(gw.url)
    assert get(client)["exists"] is False
    res = patch(client, '{logging: {level: "debug"}}', None)
    assert res["ok"], res
    assert gw.config_path.stat().st_mode & 0o777 == 0o600
    assert on_disk(gw) == {"logging": {"level": "debug"}}
    assert not (gw.config_path.parent / "openclaw.json.bak").exists()


def test_rate_limit_31st_call(gateway, client_factory):
    client = client_factory()
    for _ in range(30):
        res = patch(client, '{logging: {level: "debug"}}', get(client)["hash"])
        assert res["ok"], res
    res = patch(client, '{logging: {level: "debug"}}', get(client)["hash"])
    err = res["error"]
    assert err["code"] == "UNAVAILABLE" and err["retryable"] is True
    assert 0 < err["retryAfterMs"] <= 60000
    assert err["message"] == f"rate limit exceeded for config.patch; retry after {-(-err['retryAfterMs'] // 1000)}s"
    assert err["details"] == {"method": "config.patch", "limit": "30 per 60s"}
    # Per method: config.set still has its own budget.
    res = client.request("config.set", {"raw": gateway.config_path.read_text(), "baseHash": get(client)["hash"]})
    assert res["ok"], res
