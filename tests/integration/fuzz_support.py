"""The protocol fuzz (issue 11), shared by tests/integration/test_fuzz.py (a short run in the
suite) and bench/fuzz.py (long runs).

- Strategies (hypothesis) for WebSocket frames: first frames before auth (arbitrary and
  malformed JSON, wrong types, `connect` params drawn from `ConnectParams`), and requests after
  auth for every method of the method table with params drawn from its params Struct, as
  msgspec.inspect describes it: valid values mixed with wrong types, boundary integers, huge
  strings, deep nesting, unknown fields and null.
- `FuzzClient`: sends one frame plus a `health` ping and checks the answers: every `res` is
  well formed, the frame's own `id` is answered when the protocol says so, and the socket only
  closes with a code protocol.md §2.4 prescribes for that frame.
- `Watch`: the gateway-side checks: `/health` polled all along, new `Traceback`s in the log
  file and stderr, the process's RSS.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec.inspect as mi
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

ERROR_CODES = frozenset({"INVALID_REQUEST", "FORBIDDEN", "UNAVAILABLE", "NOT_LINKED", "NOT_PAIRED",
                         "AGENT_TIMEOUT", "APPROVAL_NOT_FOUND"})
MAX_HANDSHAKE_FRAME = 65536  # protocol §2.3: a bigger first frame closes 1009
# Close codes a first frame may end in (§2.4, §5.4): protocol mismatch, policy (bad frame,
# params, auth), too big, gateway starting/draining.
PREAUTH_CLOSES = frozenset({1002, 1008, 1009, 1013})
RESTART_CLOSE = 1012
BOUNDARY_INTS = (0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, 2**31, -2**31 - 1, 2**32, 2**53 + 1,
                 2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64, 10**30)
# Sizes of huge strings and levels of deep nesting; the environment can change them (e.g. to
# tell the gateway's own growth from the allocator's high-water mark after big frames).
HUGE_SIZES = tuple(int(v) for v in os.environ.get("OPENCLAW_FUZZ_HUGE_SIZES", "70000,300000,1500000").split(","))
DEEP_LEVELS = tuple(int(v) for v in os.environ.get("OPENCLAW_FUZZ_DEEP_LEVELS", "200,1000,5000,100000").split(","))
ANSWER_TIMEOUT_S = 15.0
# Strings the gateway knows, so valid-looking params reach past lookups now and then.
WORDS = ("main", "agent:main:main", "agent:main:fuzz", "global", "telegram", "irc", "default", "echo",
         "offline/echo", "exec", "read", "write", "process", "allow-once", "deny", "new", "reset",
         "operator.admin", " ", "", "{}", "[]", "{gateway: {port: 0}}", "{logging: {level: 'debug'}}",
         "{agents: {defaults: {model: 'offline/echo'}}}", "{channels: {telegram: {}}}", "{gateway: null}",
         "agent:main:main:extra", "agent::", "../x", "/etc/passwd")


class Raw(str):
    """JSON text placed into a frame as it is: deep nesting that `json.dumps` cannot build,
    escaped lone surrogates, numbers JSON has no Python value for."""


class Unparseable(Raw):
    """Raw text msgspec (so the gateway) cannot read as JSON: a frame holding it is "not
    JSON" to the server, whose id it therefore cannot answer."""


class Missing:
    """A field or frame member left out."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing()


def to_json(value: Any) -> str:
    """JSON text of `value` with `Raw` parts inlined (NaN/Infinity come out as the non-JSON
    literals `json.dumps` writes: one more kind of malformed input)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{to_json(str(k))}:{to_json(v)}"
                              for k, v in value.items() if v is not MISSING) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape it, the frame must stay UTF-8
        text = json.dumps(value)
    return text


def unparseable(value: Any) -> bool:
    if isinstance(value, dict):
        return any(unparseable(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(unparseable(v) for v in value)
    return isinstance(value, Unparseable)


def nesting_depth(value: Any) -> int:
    """How deep `value` nests, counting the brackets of `Raw` text."""
    if isinstance(value, Raw):
        depth = best = 0
        for ch in value:
            if ch in "[{":
                depth += 1
                best = max(best, depth)
            elif ch in "]}":
                depth -= 1
        return best
    if isinstance(value, dict):
        return 1 + max((nesting_depth(v) for v in value.values()), default=0)
    if isinstance(value, (list, tuple)):
        return 1 + max((nesting_depth(v) for v in value), default=0)
    return 0


# --------------------------------------------------------------------------- values

def deep(levels: int, kind: str) -> Raw:
    if kind == "list":
        return Raw("[" * levels + "]" * levels)
    return Raw('{"a":' * levels + "1" + "}" * levels)


def huge_text(size: int, ch: str) -> str:
    return ch * size


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(BOUNDARY_INTS),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)
deep_values = st.builds(deep, st.sampled_from(DEEP_LEVELS), st.sampled_from(("list", "object")))
huge_strings = st.builds(huge_text, st.sampled_from(HUGE_SIZES), st.sampled_from(("x", "é", "😀", '"', "\\")))
odd_literals = st.sampled_from([Unparseable('"\\ud800"'), Unparseable('"\\udfff tail"'), Unparseable("1e400"),
                                Unparseable("NaN"), Unparseable("Infinity"), Raw("-0"), Raw('"\\u0000"'),
                                Raw("123456789012345678901234567890"), Raw("1.5e-400")])
# Strings that handlers parse further (config `raw` is JSON5, tool args, session keys).
deep_strings = st.builds(lambda levels, kind: str(deep(levels, kind)), st.sampled_from(DEEP_LEVELS),
                         st.sampled_from(("list", "object")))
hostile_values = st.one_of(json_values, st.sampled_from(BOUNDARY_INTS), huge_strings, deep_values,
                           deep_strings, odd_literals, st.none())


def valid_for(t: mi.Type) -> st.SearchStrategy:
    """Values of msgspec type `t` (its bounds kept, sizes small)."""
    if isinstance(t, mi.IntType):
        lo = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else None)
        hi = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else None)
        edges = [v for v in BOUNDARY_INTS if (lo is None or v >= lo) and (hi is None or v <= hi)]
        return st.one_of(st.integers(lo, hi), st.sampled_from(edges)) if edges else st.integers(lo, hi)
    if isinstance(t, mi.FloatType):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(t, mi.StrType):
        low, high = t.min_length or 0, t.max_length
        text = st.text(min_size=low, max_size=max(low, min(high or 40, 40)))
        words = [w for w in WORDS if len(w) >= low and (high is None or len(w) <= high)]
        return st.one_of(text, st.sampled_from(words)) if words else text
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.UnionType):
        return st.one_of([valid_for(x) for x in t.types])
    if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        low = t.min_length or 0
        return st.lists(valid_for(t.item_type), min_size=low, max_size=max(low, min(t.max_length or 4, 4)))
    if isinstance(t, mi.DictType):
        return st.dictionaries(valid_for(t.key_type), valid_for(t.value_type), max_size=3)
    if isinstance(t, mi.StructType):
        return struct_values(t)
    return json_values  # Any, object, and whatever else: any JSON


def fuzzed_for(t: mi.Type) -> st.SearchStrategy:
    """Mostly valid values of `t`, else something hostile: a wrong type, a boundary integer,
    a huge string, deep nesting, null."""
    valid = valid_for(t)
    return st.one_of(valid, valid, hostile_values)


@st.composite
def struct_values(draw: st.DrawFn, t: mi.StructType, mode: str = "valid") -> dict:
    """An object for Struct `t`: required fields usually present, optional ones half the time.
    `valid`: every value of its field's type; `mixed`: any value may be hostile, and an
    unknown field may be added."""
    out: dict[str, Any] = {}
    for f in t.fields:
        if draw(st.integers(0, 9)) < (9 if f.required else 5):
            out[f.encode_name] = draw(valid_for(f.type) if mode == "valid" else fuzzed_for(f.type))
    if mode != "valid" and draw(st.integers(0, 4)) == 0:
        out[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    return out


@st.composite
def one_bad(draw: st.DrawFn, t: mi.StructType) -> dict:
    """A valid object with one field (or an unknown one) made hostile: what gets past
    everything but one check."""
    out = draw(struct_values(t, "valid"))
    names = [f.encode_name for f in t.fields]
    name = draw(st.one_of(st.sampled_from(names), st.text(min_size=1, max_size=12))) if names else "x"
    out[name] = draw(hostile_values)
    return out


def plain_value(name: str, t: mi.Type) -> Any:
    """An ordinary value for a field: what a client would send (a session key for `*key`
    fields), so the request gets into its handler."""
    if isinstance(t, mi.StrType):
        text = "main" if name.lower().endswith("key") else "fuzz"
        return text[: t.max_length] if t.max_length else text
    if isinstance(t, mi.IntType):
        return max(1, t.ge or 0, (t.gt or 0) + 1) if t.le is None else min(t.le, max(1, t.ge or 0))
    if isinstance(t, mi.BoolType):
        return False
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    if isinstance(t, mi.UnionType):
        kinds = [x for x in t.types if not isinstance(x, mi.NoneType)]
        return plain_value(name, kinds[0]) if kinds else None
    if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        return [plain_value(name, t.item_type)] if t.min_length else []
    if isinstance(t, mi.StructType):
        return {f.encode_name: plain_value(f.encode_name, f.type) for f in t.fields if f.required}
    if isinstance(t, mi.DictType):
        return {}
    return None


@st.composite
def plain_values(draw: st.DrawFn, t: mi.StructType) -> dict:
    """Required fields with ordinary values, optional ones drawn valid half the time."""
    out = {f.encode_name: plain_value(f.encode_name, f.type) for f in t.fields if f.required}
    for f in t.fields:
        if not f.required and draw(st.booleans()):
            out[f.encode_name] = draw(valid_for(f.type))
    return out


def params_for(struct: type | None) -> st.SearchStrategy:
    """`params` of a request: an object drawn from `struct` (valid, one field bad, or many),
    omitted, or not an object at all."""
    if struct is None:
        return st.one_of(st.just(MISSING), json_values)
    info = mi.type_info(struct)
    plain = plain_values(info)
    return st.one_of(plain, plain, struct_values(info, "valid"), one_bad(info), struct_values(info, "mixed"),
                     st.just(MISSING), hostile_values)


# --------------------------------------------------------------------------- frames

@dataclass
class Frame:
    """One WebSocket message to send, with what the protocol promises about it."""
    data: str | bytes
    binary: bool = False                  # a binary frame (closes 1003)
    expect_id: str | None = None          # the id the server must answer
    answer_optional: bool = False         # an answer to `expect_id` may come, or not
    may_close: frozenset = frozenset()    # close codes allowed after auth
    wait_s: float = 0.0                   # how long the answer may legitimately take
    method: str | None = None
    summary: str = ""

    def __repr__(self) -> str:
        data = self.data if len(self.data) <= 300 else self.data[:300] + f"...({len(self.data)} long)"
        return f"Frame({self.summary or self.method!s}: {data!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # hypothesis would print every field, the data in full


ids = st.one_of(st.text(min_size=1, max_size=24), st.uuids().map(str), st.just(""),
                st.text(min_size=257, max_size=300), st.builds(huge_text, st.just(70_000), st.just("i")),
                st.just(MISSING), json_values.filter(lambda v: not isinstance(v, str)))


def expectation(obj: Any) -> tuple[str | None, bool]:
    """(id the server must answer, whether the answer is optional) for a text frame after auth
    (protocol §3.2): every object with a string `id` is answered; client `res`/`event` frames
    are ignored, so their answer is optional, and so is one for a frame the server cannot read
    as JSON (lone surrogate escapes, 1e400, NaN) or whose nesting is too deep to read."""
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return None, False
    optional = obj.get("type") in ("res", "event") or nesting_depth(obj) > 64 or unparseable(obj)
    return obj["id"], optional


def agent_wait_s(method: str, params: Any) -> float:
    """agent.wait holds its answer up to `timeoutMs` (30 s when omitted) for an unknown run
    (§15.3): that long is not a lost answer."""
    if method != "agent.wait" or not isinstance(params, dict):
        return 0.0
    timeout = params.get("timeoutMs", MISSING)
    if timeout is MISSING:
        return 30.0
    if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout >= 0:
        return timeout / 1000
    return 0.0


def make_request(method: str, req_id: Any, params: Any, extra: dict) -> Frame:
    obj: dict[str, Any] = {"type": "req", "id": req_id, "method": method, "params": params, **extra}
    text = to_json(obj)
    obj = {k: v for k, v in obj.items() if v is not MISSING}
    expect, optional = expectation(obj)
    return Frame(text, expect_id=expect, answer_optional=optional, method=method,
                 wait_s=agent_wait_s(method, params))


def method_requests(methods: dict[str, type | None]) -> st.SearchStrategy[Frame]:
    """A `req` for one method of the table (`name → params Struct`), its params fuzzed."""
    none: st.SearchStrategy[dict] = st.just({})
    extras = st.one_of(none, none, none, none,
                       st.fixed_dictionaries({"traceparent": st.one_of(st.text(max_size=140), hostile_values)}),
                       st.dictionaries(st.text(max_size=10).filter(
                           lambda k: k not in ("type", "id", "method", "params")), json_values, max_size=2))
    uuid_ids = st.uuids().map(str)
    names = sorted(methods)
    return st.sampled_from(names).flatmap(lambda name: st.builds(
        make_request, st.just(name), st.one_of(uuid_ids, uuid_ids, uuid_ids, ids),
        params_for(methods[name]), extras))


def envelope_frames() -> st.SearchStrategy[Frame]:
    """Objects that are almost requests: fuzzed `type`, `id`, `method`, `params`."""
    kinds = st.one_of(st.sampled_from(["req", "res", "event", "REQ", ""]), st.just(MISSING), json_values)
    methods = st.one_of(st.sampled_from(["health", "connect", "nosuch.method", "", " "]), st.text(max_size=20),
                        huge_strings, st.just(MISSING), json_values)

    def build(kind: Any, req_id: Any, method: Any, params: Any) -> Frame:
        obj = {"type": kind, "id": req_id, "method": method, "params": params}
        text = to_json(obj)
        expect, optional = expectation({k: v for k, v in obj.items() if v is not MISSING})
        return Frame(text, expect_id=expect, answer_optional=optional, summary="envelope")

    return st.builds(build, kinds, ids, methods, st.one_of(st.just(MISSING), hostile_values))


def malformed_frames() -> st.SearchStrategy[Frame]:
    """Text that is not a JSON object, JSON cut short, invalid UTF-8, binary frames."""
    good = '{"type":"req","id":"x1","method":"health","params":{}}'
    cut = st.integers(0, len(good) - 1).map(lambda n: Frame(good[:n], summary="truncated"))
    any_json = st.one_of(json_values, odd_literals, deep_values).map(lambda v: Frame(to_json(v), summary="json"))
    text = st.text(max_size=60).map(lambda s: Frame(s, summary="text"))
    bad_utf8 = st.sampled_from([b"\xff", b"\xc3\x28", b'{"type":"req","id":"u","method":"health\xed\xa0\x80"}',
                                b"\xf4\x90\x80\x80", b"ok\x80"]).map(
        lambda b: Frame(b, may_close=frozenset({1007}), summary="invalid utf-8 text"))
    binary = st.binary(max_size=40).map(lambda b: Frame(b, binary=True, may_close=frozenset({1003}),
                                                         summary="binary"))
    return st.one_of(cut, any_json, text, bad_utf8, binary)


def junk_frames() -> st.SearchStrategy[Frame]:
    """Frames after auth that are not a table method's request."""
    return st.one_of(envelope_frames(), malformed_frames())


def first_frames(token: str, connect_struct: type) -> st.SearchStrategy[tuple[Frame, bool]]:
    """First frames before auth, each with whether it is a faithful `connect` that must be
    accepted. `connect` params are drawn from `connect_struct`, with the right token, a wrong
    one or none."""
    tokens = st.one_of(st.just(token), st.just(token), st.text(max_size=20), st.just(MISSING), hostile_values)

    @st.composite
    def connects(draw: st.DrawFn) -> tuple[Frame, bool]:
        params = draw(struct_values(mi.type_info(connect_struct)))
        auth = params.get("auth")
        if isinstance(auth, dict) or draw(st.booleans()):
            auth = auth if isinstance(auth, dict) else {}
            auth["token"] = draw(tokens)
            params["auth"] = auth
        frame = make_request("connect", draw(st.one_of(st.uuids().map(str), ids)), params, {})
        return frame, False

    def valid_connect(req_id: str, client_id: str, mode: str, scopes: Any) -> tuple[Frame, bool]:
        params = {"minProtocol": 4, "maxProtocol": 4, "role": "operator", "auth": {"token": token},
                  "client": {"id": client_id, "version": "1.0.0", "platform": "linux", "mode": mode}}
        if scopes is not MISSING:
            params["scopes"] = scopes
        return make_request("connect", req_id, params, {}), True

    nonblank = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")
    valid = st.builds(valid_connect, st.uuids().map(str), nonblank, nonblank,
                      st.one_of(st.just(MISSING), st.lists(st.text(max_size=20), max_size=4)))
    others = st.one_of(envelope_frames(), malformed_frames()).map(lambda f: (f, False))
    return st.one_of(connects(), connects(), valid, others)


def run_property(strategy: st.SearchStrategy, check: Any, examples: int, seed_value: int | None = None,
                 shrink: bool = True) -> None:
    """Run `check` on `examples` values of `strategy`: derandomized (the same values every
    run) without `seed_value`. No example database, no deadline (a gateway answers slowly on
    a loaded machine), health checks off (the values are big on purpose)."""
    def body(value: Any) -> None:
        check(value)

    phases = tuple(Phase) if shrink else tuple(p for p in Phase if p != Phase.shrink)
    test = given(strategy)(body)
    test = settings(max_examples=max(1, examples), deadline=None, database=None, phases=phases,
                    derandomize=seed_value is None, report_multiple_bugs=False, print_blob=True,
                    suppress_health_check=list(HealthCheck))(test)
    if seed_value is not None:
        test = seed(seed_value)(test)
    test()


# --------------------------------------------------------------------------- the client

def res_problem(frame: Any) -> str | None:
    """What is wrong with a `res` frame (§3.1, §4.1), or None."""
    if not isinstance(frame, dict):
        return f"frame is not an object: {frame!r:.200}"
    if frame.get("type") != "res":
        return None
    if not isinstance(frame.get("id"), str):
        return f"res id is not a string: {frame!r:.300}"
    if not isinstance(frame.get("ok"), bool):
        return f"res ok is not a boolean: {frame!r:.300}"
    if frame["ok"]:
        return None if "payload" in frame else f"ok res without payload: {frame!r:.300}"
    err = frame.get("error")
    if not isinstance(err, dict) or err.get("code") not in ERROR_CODES:
        return f"error res without a known code: {frame!r:.300}"
    if not isinstance(err.get("message"), str) or not err["message"]:
        return f"error res without a message: {frame!r:.300}"
    return None


class Closed(Exception):
    def __init__(self, code: int | None, reason: str):
        super().__init__(f"closed {code} {reason!r}")
        self.code, self.reason = code, reason


def closed_of(exc: ConnectionClosed) -> Closed:
    """The server's close frame; code None when the socket ended without one."""
    rcvd = exc.rcvd
    return Closed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "")


@dataclass
class Outcome:
    answers: dict[str, dict] = field(default_factory=dict)
    closed: Closed | None = None


class FuzzClient:
    """One WebSocket connection to the gateway, reading every frame and checking each `res`."""

    def __init__(self, url: str):
        self.url = url
        self.ws: ClientConnection | None = None
        self.pings = 0
        self.problems: list[str] = []  # malformed res frames seen

    def open(self) -> dict:
        """Connect; returns the `connect.challenge` event."""
        self.close()
        self.ws = connect(self.url, open_timeout=10, max_size=None, close_timeout=2,
                          ping_interval=None, proxy=None, legacy=True)
        return json.loads(self.ws.recv(timeout=10))

    def authenticate(self, token: str) -> None:
        self.open()
        frame = make_request("connect", "c-" + uuid.uuid4().hex, connect_params(token), {})
        outcome = self.exchange(frame, ping=False)
        res = outcome.answers.get(frame.expect_id)
        if outcome.closed or not res or not res.get("ok"):
            raise AssertionError(f"authentication failed: {outcome.closed} {res}")

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.ws = None

    def send(self, frame: Frame) -> None:
        if frame.binary:
            self.ws.send(frame.data, text=False)
        elif isinstance(frame.data, bytes):
            self.ws.send(frame.data, text=True)  # invalid UTF-8 in a text frame
        else:
            self.ws.send(frame.data)

    def exchange(self, frame: Frame, ping: bool = True, timeout: float = ANSWER_TIMEOUT_S) -> Outcome:
        """Send `frame` (then a `health` ping) and read until the ping and, unless it may
        legitimately take longer, the frame's own answer are in, or the socket closes."""
        outcome = Outcome()
        waiting: set[str] = set()
        if frame.expect_id is not None and not frame.answer_optional and frame.wait_s < timeout - 2:
            waiting.add(frame.expect_id)
        try:
            self.send(frame)
            if ping:
                self.pings += 1
                ping_id = f"ping-{self.pings}-{uuid.uuid4().hex[:8]}"
                waiting.add(ping_id)
                self.ws.send(json.dumps({"type": "req", "id": ping_id, "method": "health"}))
            self._read_until(outcome, waiting, timeout)
        except ConnectionClosed as exc:
            outcome.closed = closed_of(exc)
            self.ws = None
        return outcome

    def _read_until(self, outcome: Outcome, waiting: set[str], timeout: float) -> None:
        """Read until every id in `waiting` is answered; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no answer within {timeout}s for {sorted(waiting)}")
            self._read(outcome, waiting, left)

    def _read(self, outcome: Outcome, waiting: set[str], timeout: float) -> None:
        try:
            raw = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return
        try:
            msg = json.loads(raw)
        except ValueError:
            self.problems.append(f"server sent a frame that is not JSON: {raw[:200]!r}")
            return
        problem = res_problem(msg)
        if problem:
            self.problems.append(problem)
        if isinstance(msg, dict) and msg.get("type") == "res" and isinstance(msg.get("id"), str):
            outcome.answers.setdefault(msg["id"], msg)
            waiting.discard(msg["id"])

    def read_answer(self, req_id: str, timeout: float = ANSWER_TIMEOUT_S) -> Outcome:
        """Read until `req_id` is answered or the socket closes."""
        outcome = Outcome()
        try:
            self._read_until(outcome, {req_id}, timeout)
        except ConnectionClosed as exc:
            outcome.closed = closed_of(exc)
            self.ws = None
        return outcome

    def read_until_closed(self, accepted_id: str | None, timeout: float = ANSWER_TIMEOUT_S) -> Outcome:
        """Before auth: every answer until the server closes, or until it accepts the
        `connect` with `accepted_id` (a fuzzed one may be valid)."""
        outcome = Outcome()
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"socket still open {timeout}s after a first frame it did not accept")
                self._read(outcome, set(), left)
                res = outcome.answers.get(accepted_id) if accepted_id is not None else None
                if res is not None and res.get("ok"):
                    return outcome
        except ConnectionClosed as exc:
            outcome.closed = closed_of(exc)
            self.ws = None
        return outcome


def connect_params(token: str) -> dict:
    return {"minProtocol": 4, "maxProtocol": 4, "role": "operator", "auth": {"token": token},
            "client": {"id": "fuzz", "version": "1.0.0", "platform": "linux", "mode": "test"}}


# --------------------------------------------------------------------------- properties

def check_first_frame(client: FuzzClient, frame: Frame, must_accept: bool) -> None:
    """One first frame on a fresh socket: a faithful `connect` gets `hello-ok` and the socket
    stays open; anything else gets an error `res` for a readable id (§5.4, unless the frame
    was too big to read) and a close with a code §2.4 prescribes."""
    client.open()
    client.send(frame)
    if must_accept:
        outcome = client.read_answer(frame.expect_id)
        res = outcome.answers.get(frame.expect_id)
        assert outcome.closed is None, f"a valid connect was closed: {outcome.closed}"
        assert res and res.get("ok") and res["payload"].get("type") == "hello-ok", res
        client.close()
        return
    outcome = client.read_until_closed(frame.expect_id)
    res = outcome.answers.get(frame.expect_id) if frame.expect_id is not None else None
    if outcome.closed is None and res is not None and res.get("ok"):
        client.close()  # a fuzzed connect that happens to be acceptable
        return
    code = outcome.closed.code
    allowed = PREAUTH_CLOSES | frame.may_close
    assert code in allowed, f"first frame closed with {outcome.closed} (allowed {sorted(allowed)})"
    too_big = len(frame.data) > MAX_HANDSHAKE_FRAME or code == 1009
    readable = frame.expect_id not in (None, "") and not frame.answer_optional and not frame.binary
    if readable and not too_big:
        assert res is not None, f"no error res for id {frame.expect_id[:60]!r} before {outcome.closed}"
        assert res["ok"] is False, res


def check_after_auth(client: FuzzClient, token: str, frame: Frame, restart_ok: bool = False) -> Outcome:
    """One frame on an authenticated socket: its id answered (when §3.2 says so), a following
    `health` answered, or a close with the code this frame may cause."""
    if client.ws is None:
        client.authenticate(token)
    outcome = client.exchange(frame)
    if outcome.closed is not None:
        allowed = frame.may_close | ({RESTART_CLOSE} if restart_ok else set())
        assert outcome.closed.code in allowed, (
            f"socket closed {outcome.closed.code} {outcome.closed.reason!r} after {frame!r} "
            f"(allowed: {sorted(allowed) or 'none'})")
    return outcome


# --------------------------------------------------------------------------- gateway side

def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class LogScan:
    """New text of the gateway's log file and stderr since the last look, for `Traceback`s."""

    def __init__(self, paths: list[Path]):
        self.offsets = {p: 0 for p in paths}

    def rewind(self) -> None:
        """After a restart that truncated the files: read them from the start again."""
        for p in self.offsets:
            self.offsets[p] = 0

    def tracebacks(self) -> list[str]:
        found = []
        for p, offset in self.offsets.items():
            if not p.exists():
                continue
            if p.stat().st_size < offset:
                offset = 0  # truncated (a restart reopened it)
            with open(p, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
            self.offsets[p] = offset + len(data)
            for line in data.decode("utf-8", errors="replace").splitlines():
                if "Traceback" in line:
                    found.append(f"{p.name}: {line[:3000]}")
        return found


class HealthPoller:
    """GET /health every `interval` seconds on a thread; failures are recorded unless paused
    (while the harness restarts the gateway on purpose)."""

    def __init__(self, base: str, interval: float = 0.5):
        self.base, self.interval = base, interval
        self.failures: list[str] = []
        self.polls = 0
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as http:
            while not self._stop.wait(self.interval):
                if self.paused.is_set():
                    continue
                try:
                    status = http.get(f"{self.base}/health").status_code
                except httpx.HTTPError as exc:
                    status = f"{type(exc).__name__}: {exc}"
                self.polls += 1
                if status != 200 and not self.paused.is_set():
                    self.failures.append(f"{time.strftime('%H:%M:%S')} /health → {status}")


def method_structs() -> dict[str, type | None]:
    """name → params Struct of every method in the table (transport/methods)."""
    from transport.methods import table
    return {name: m.params for name, m in table().items()}


# --------------------------------------------------------------------------- the phases

RESTARTING = ("gateway.restart", "gateway.restart.request")
CONFIG_WRITES = ("config.set", "config.patch", "config.apply")
REAL_HASH = "@@REAL_HASH@@"
FUZZ_CONFIG_EXTRA = {"agents": {"defaults": {"model": "offline/echo"}},
                     "tools": {"exec": {"security": "deny"}}}


def with_real_hash(name: str, req_id: Any, params: Any, use_real: bool) -> Frame:
    """A config write, given the file's real `baseHash` (filled in at send time) if `use_real`."""
    if use_real and name in CONFIG_WRITES and isinstance(params, dict):
        params = {**params, "baseHash": REAL_HASH}
    return make_request(name, req_id, params, {})


def restart_phase_frames(name: str, struct: type | None) -> st.SearchStrategy[Frame]:
    uuid_ids = st.uuids().map(str)
    return st.builds(with_real_hash, st.just(name), st.one_of(uuid_ids, uuid_ids, ids), params_for(struct),
                     st.booleans())


class Harness:
    """One gateway under fuzz: the client, the watchers, and the checks of each phase.

    `restart()` must stop the gateway, write `config_path` back to what it was when the
    harness was made, and start it again on the same port (ready); `pid()` is the gateway's
    current pid; with `rewind`, a restart truncates the log files (so they are read anew).
    """

    def __init__(self, url: str, http: str, token: str, config_path: Path, logs: list[Path],
                 pid: Any, restart: Any, rewind: bool = False):
        self.url, self.http, self.token = url, http, token
        self.config_path, self.original = config_path, config_path.read_text()
        self.pid, self._restart, self._rewind = pid, restart, rewind
        self.scan = LogScan(logs)
        self.client = FuzzClient(url)
        self.poller = HealthPoller(http)
        self.resets = 0
        self.examples: dict[str, int] = {}
        self.outcomes: dict[str, dict[str, int]] = {}  # method → answer kind → count

    def __enter__(self) -> "Harness":
        self.poller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.poller.stop()
        self.client.close()

    def count(self, phase: str) -> None:
        self.examples[phase] = self.examples.get(phase, 0) + 1

    def note(self, frame: Frame, outcome: Outcome) -> dict | None:
        res = outcome.answers.get(frame.expect_id) if frame.expect_id is not None else None
        kind = (f"closed {outcome.closed.code}" if outcome.closed else "no answer" if res is None
                else "ok" if res.get("ok") else res["error"]["code"])
        per = self.outcomes.setdefault(frame.method or frame.summary or "?", {})
        per[kind] = per.get(kind, 0) + 1
        return res

    # --- the checks, one per phase: each raises AssertionError on a broken property ---

    def first_frame(self, case: tuple[Frame, bool]) -> None:
        frame, must_accept = case
        self.count("first frames")
        client = FuzzClient(self.url)
        try:
            check_first_frame(client, frame, must_accept)
        finally:
            client.close()
        self._check_client(client)
        self.check_logs()

    def request(self, frame: Frame) -> None:
        self.count("after auth")
        outcome = check_after_auth(self.client, self.token, frame)
        self.note(frame, outcome)
        self._check_client(self.client)
        self.check_logs()

    def restarting(self, frame: Frame) -> None:
        """The restart phase: any accepted call or restart close is followed by a hard reset."""
        self.count("restart phase")
        client = self.client
        if client.ws is None:
            client.authenticate(self.token)
        if isinstance(frame.data, str) and REAL_HASH in frame.data:
            got = client.exchange(make_request("config.get", "hash-" + uuid.uuid4().hex, {}, {}), ping=False)
            real = next(iter(got.answers.values()))["payload"]["hash"]
            frame = dataclasses.replace(frame, data=frame.data.replace(json.dumps(REAL_HASH), json.dumps(real)))
        outcome = check_after_auth(client, self.token, frame, restart_ok=True)
        res = self.note(frame, outcome)
        self._check_client(client)
        if outcome.closed is not None or (res is not None and res.get("ok")):
            self.reset()
        self.check_logs()

    def reset(self) -> None:
        self.client.close()
        self.poller.paused.set()
        self.check_logs()  # before a restart that may truncate the files
        try:
            self._restart()
            if self._rewind:
                self.scan.rewind()
        finally:
            self.poller.paused.clear()
        self.resets += 1

    def _check_client(self, client: FuzzClient) -> None:
        problems, client.problems = client.problems, []
        assert not problems, "malformed frames from the gateway:\n" + "\n".join(problems[:10])

    def check_logs(self) -> None:
        found = self.scan.tracebacks()
        assert not found, "gateway logged a traceback:\n" + "\n".join(found[:5])

    def final_problems(self) -> list[str]:
        """What the run as a whole broke: tracebacks that reached the files late, /health."""
        time.sleep(0.5)  # let the last records reach the file (the gateway tells no one when)
        problems = [f"traceback: {t}" for t in self.scan.tracebacks()]
        return problems + [f"health: {f}" for f in self.poller.failures]

