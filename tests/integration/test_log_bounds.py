"""Client strings in log records are bounded (issue 11, defect 6): a 100 KB method name once
made a 300 KB record; every string field of a record is now cut with a marker."""

from __future__ import annotations

import json

from tests.conftest import wait_until

BIG = 100_000


def _records_after(path, offset: int) -> list[dict]:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return [json.loads(line) for line in fh.read().splitlines() if line.strip()]


def test_huge_method_name_and_id_make_small_records(gateway, client_factory):
    client = client_factory()
    start = gateway.log_path.stat().st_size
    res = client.request("m" * BIG, {}, req_id="r1")
    assert res["error"]["message"].startswith("unknown method: mmm")  # the answer is not cut
    client.send({"type": "req", "id": "i" * BIG, "method": "n" * BIG, "params": {}})
    assert client.response("i" * BIG)["ok"] is False
    client.send({"type": "req", "id": "x", "method": "chat.send",
                 "params": {"sessionKey": "k" * BIG, "message": "hi", "idempotencyKey": "k"}})
    client.response("x")

    def logged() -> list[dict]:
        records = _records_after(gateway.log_path, start)
        return [r for r in records if "unknown method" in r["message"]]

    unknown = wait_until(logged, what="the unknown-method record")[0]
    assert len(json.dumps(unknown)) < 12_000, len(json.dumps(unknown))
    assert unknown["message"].endswith("chars)") and "…(+" in unknown["message"]
    assert unknown["method"].startswith("m" * 100) and unknown["method"].endswith(f"…(+{BIG - 2048} chars)")
    client.request("health")  # every record of the requests above is written by now
    grown = gateway.log_path.stat().st_size - start
    assert grown < 40_000, f"log grew {grown} bytes for three requests"
    for record in _records_after(gateway.log_path, start):
        assert len(json.dumps(record)) < 16_000, record["message"][:200]
