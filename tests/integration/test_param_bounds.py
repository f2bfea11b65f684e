"""Integer params out of range (issue 11, defect 8a): every integer field of every method's
params struct has bounds, so 2^63 and -2^63-1 answer INVALID_REQUEST naming the field (was:
`sessions.list` `limit` 2^63 answered UNAVAILABLE "Python int too large"), against the real
gateway process. The fields come from the method table itself, so a new field is covered."""

from __future__ import annotations

import msgspec.inspect as mi
import pytest

from tests.conftest import TOKEN
from transport.methods import table

SAFE_INT = 2**53 - 1  # every bound stays exact as a JSON number in any client


def int_fields(info: mi.Type, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], mi.IntType]]:
    """(JSON path, int type) of every integer field reachable through nested structs."""
    if isinstance(info, mi.IntType):
        return [(path, info)]
    if isinstance(info, mi.Metadata):
        return int_fields(info.type, path)
    if isinstance(info, mi.UnionType):
        return [found for each in info.types for found in int_fields(each, path)]
    if isinstance(info, mi.StructType):
        return [found for f in info.fields for found in int_fields(f.type, (*path, f.encode_name))]
    inner = getattr(info, "item_type", None) or getattr(info, "value_type", None)
    if inner is not None and int_fields(inner, path):
        raise AssertionError(f"int inside a list/dict at {path}: extend this walk")
    return []


CASES = sorted((name, path, info) for name, spec in table().items() if spec.params is not None
               for path, info in int_fields(mi.type_info(spec.params)))


def nested(path: tuple[str, ...], value: int) -> dict:
    out: dict = {path[-1]: value}
    for key in reversed(path[:-1]):
        out = {key: out}
    return out


def test_the_walk_finds_the_known_fields():
    found = {(name, ".".join(path)) for name, path, _ in CASES}
    assert {("sessions.list", "limit"), ("agent.wait", "timeoutMs"), ("health", "timeoutMs"),
            ("gateway.restart", "drainMs"), ("config.patch", "restartDelayMs")} <= found


@pytest.mark.parametrize("name, path, info", CASES, ids=[f"{n}:{'.'.join(p)}" for n, p, _ in CASES])
def test_every_int_field_is_bounded(name, path, info):
    assert info.ge is not None or info.gt is not None, f"{name} {path}: no lower bound"
    assert info.le is not None or info.lt is not None, f"{name} {path}: no upper bound"
    assert (info.le if info.le is not None else info.lt) <= SAFE_INT


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return module_gateway_factory({"gateway": {"auth": {"mode": "token", "token": TOKEN}}},
                                  name="bounds")


@pytest.mark.parametrize("name, path, info", CASES, ids=[f"{n}:{'.'.join(p)}" for n, p, _ in CASES])
def test_out_of_range_ints_are_invalid_request(gw, ws_clients, name, path, info):
    client = ws_clients(gw.url)
    field = ".".join(path)
    for value, problem in ((2**63, "expected int <="), (-(2**63) - 1, "expected int >=")):
        res = client.request(name, nested(path, value), timeout=10)
        assert res["ok"] is False, (name, field, value, res)
        err = res["error"]
        assert err["code"] == "INVALID_REQUEST", (name, field, value, err)
        assert err["message"].startswith(f"invalid {name} params: {field}: {problem}"), err
    assert client.request("health")["ok"] is True


def test_sessions_list_huge_limit(gw, ws_clients):
    """The case the fuzzer found."""
    res = ws_clients(gw.url).request("sessions.list", {"limit": 2**63})
    assert res["error"] == {"code": "INVALID_REQUEST",
                            "message": "invalid sessions.list params: limit: expected int <= 1000000000"}
