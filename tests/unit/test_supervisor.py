"""The OTP-style Supervisor on real pykka actors: restarts, intensity, escalation, ordering."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import pykka
import pytest

from actors import registry
from actors.base import GatewayActor, tell, tell_with_reply
from actors.supervisor import ChildSpec, StartError, Supervisor

Events = list[tuple[str, str]]


class Worker(GatewayActor):
    """A child that records its start and stop, and crashes on demand."""

    def __init__(self, name: str, events: Events, flags: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._name = name
        self._events = events
        self._flags = flags if flags is not None else {}

    def on_start(self) -> None:
        if self._flags.get("fail_start"):
            raise RuntimeError(f"{self._name} cannot start")
        self._events.append(("start", self._name))

    def on_stop(self) -> None:
        time.sleep(self._flags.get("slow_stop", 0))
        self._events.append(("stop", self._name))

    def crash(self) -> None:
        raise RuntimeError(f"{self._name} boom")

    def ping(self) -> str:
        return "pong"


def worker(name: str, events: Events, flags: dict[str, Any] | None = None) -> Callable[[], pykka.ActorRef]:
    return lambda: Worker.start(name, events, flags)


def wait_until(predicate: Callable[[], Any], timeout: float = 3.0) -> Any:
    """Poll until `predicate()` is truthy and return it; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"condition not met within {timeout}s")


def replaced(child_id: str, old: pykka.ActorRef) -> pykka.ActorRef:
    """Wait until `child_id` is registered to a live instance other than `old`."""
    def check() -> pykka.ActorRef | None:
        ref = registry.whereis(child_id)
        return ref if ref is not None and ref is not old else None
    return wait_until(check)


def crash(child_id: str) -> pykka.ActorRef:
    """Crash the current instance of `child_id` (a tell-ed Call without reply) and return it."""
    ref = registry.whereis(child_id)
    assert ref is not None, f"{child_id} is not running"
    tell(ref, Worker.crash)
    return ref


def crash_and_wait(child_id: str) -> pykka.ActorRef:
    """Crash `child_id` and wait for the supervisor to register its replacement."""
    return replaced(child_id, crash(child_id))


def start_root(specs: list[ChildSpec], **kwargs: Any) -> pykka.ActorRef:
    kwargs.setdefault("max_restarts", 2)
    kwargs.setdefault("period", 1.0)
    ref = Supervisor.start(specs, **kwargs)
    ref.proxy().start_children().get(timeout=5)
    return ref


def nested(specs: list[ChildSpec], **kwargs: Any) -> Callable[[], pykka.ActorRef]:
    kwargs.setdefault("max_restarts", 1)
    kwargs.setdefault("period", 1.0)
    return lambda: Supervisor.start(specs, **kwargs)


def logged(caplog: pytest.LogCaptureFixture, level: int, *words: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "openclaw.supervisor" and r.levelno == level
            and all(w in r.getMessage() for w in words)]


@pytest.fixture(autouse=True)
def clean_actors(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="openclaw.supervisor")
    registry.clear()
    yield
    # Supervisors first (oldest, i.e. roots, first), so no child is restarted while we stop it.
    for ref in pykka.ActorRegistry.get_by_class(Supervisor):
        ref.stop(block=True, timeout=5)
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
    registry.clear()


def test_crashing_child_is_restarted_and_reregistered(caplog):
    events: Events = []
    sup = start_root([ChildSpec("a", worker("a", events))])
    old = crash("a")
    new = replaced("a", old)
    assert new.is_alive() and not old.is_alive()
    assert new.proxy().ping().get(timeout=2) == "pong"
    assert sup.proxy().restart_count("a").get(timeout=2) == 1
    warnings = logged(caplog, logging.WARNING, "'a'", "a boom")
    assert len(warnings) == 1


def test_root_escalates_once_past_intensity(caplog):
    events: Events = []
    reasons: list[str] = []
    sup = start_root([ChildSpec("crashy", worker("crashy", events)),
                      ChildSpec("other", worker("other", events))], on_escalate=reasons.append)
    crash_and_wait("crashy")
    crash_and_wait("crashy")
    crash("crashy")  # the third crash within 1 s is past 2 restarts
    wait_until(lambda: not sup.is_alive())
    assert len(reasons) == 1 and "'crashy'" in reasons[0]
    assert registry.whereis("crashy") is None and registry.whereis("other") is None
    assert events[-1] == ("stop", "other")  # every child stopped before escalating
    assert len(logged(caplog, logging.ERROR, "gives up", "'crashy'")) == 1


def test_nested_supervisor_escalates_to_its_parent():
    events: Events = []
    reasons: list[str] = []
    root = start_root([ChildSpec("inner", nested([ChildSpec("w", worker("w", events))]))],
                      on_escalate=reasons.append)
    old_inner = registry.whereis("inner")
    crash_and_wait("w")
    crash("w")  # past the inner intensity of 1
    new_inner = replaced("inner", old_inner)
    assert not old_inner.is_alive()
    assert wait_until(lambda: registry.whereis("w")).proxy().ping().get(timeout=2) == "pong"
    assert root.proxy().restart_count("inner").get(timeout=2) == 1
    assert new_inner.proxy().restart_count("w").get(timeout=2) == 0
    assert reasons == []


def test_start_is_ordered_and_stop_is_reversed():
    events: Events = []
    sup = start_root([ChildSpec("a", worker("a", events)),
                      ChildSpec("inner", nested([ChildSpec("x", worker("x", events)),
                                                 ChildSpec("y", worker("y", events))])),
                      ChildSpec("b", worker("b", events))])
    assert events == [("start", "a"), ("start", "x"), ("start", "y"), ("start", "b")]
    sup.proxy().stop_children().get(timeout=5)
    assert events[4:] == [("stop", "b"), ("stop", "y"), ("stop", "x"), ("stop", "a")]
    assert all(registry.whereis(n) is None for n in ("a", "inner", "x", "y", "b"))
    children = sup.proxy().which_children().get(timeout=2)
    assert [c["alive"] for c in children] == [False, False, False]


def test_failing_start_stops_earlier_children_and_names_the_child():
    events: Events = []
    sup = Supervisor.start([ChildSpec("a", worker("a", events)),
                            ChildSpec("b", worker("b", events, {"fail_start": True})),
                            ChildSpec("c", worker("c", events))])
    with pytest.raises(StartError) as err:
        sup.proxy().start_children().get(timeout=5)
    assert err.value.child_id == "b" and "b cannot start" in str(err.value)
    assert events == [("start", "a"), ("stop", "a")]
    assert registry.whereis("a") is None


def test_failing_start_inside_a_nested_supervisor_names_the_path():
    events: Events = []
    sup = Supervisor.start([ChildSpec("a", worker("a", events)),
                            ChildSpec("inner", nested([
                                ChildSpec("x", worker("x", events)),
                                ChildSpec("bad", worker("bad", events, {"fail_start": True}))]))])
    with pytest.raises(StartError) as err:
        sup.proxy().start_children().get(timeout=5)
    assert err.value.child_id == "inner" and "'bad'" in str(err.value)
    assert events == [("start", "a"), ("start", "x"), ("stop", "x"), ("stop", "a")]


def test_transient_restarted_after_crash_but_not_after_normal_stop(caplog):
    events: Events = []
    sup = start_root([ChildSpec("t", worker("t", events), restart="transient")])
    new = crash_and_wait("t")
    new.stop(block=True, timeout=2)
    wait_until(lambda: logged(caplog, logging.INFO, "'t'", "normal", "not restarted"))
    assert registry.whereis("t") is None
    assert sup.proxy().which_children().get(timeout=2) == [
        {"id": "t", "alive": False, "restarts": 1, "restart": "transient"}]


def test_permanent_restarted_even_after_normal_stop():
    events: Events = []
    sup = start_root([ChildSpec("p", worker("p", events))])
    old = registry.whereis("p")
    old.stop(block=True, timeout=2)
    replaced("p", old)
    assert sup.proxy().restart_count("p").get(timeout=2) == 1


def test_temporary_never_restarted(caplog):
    events: Events = []
    sup = start_root([ChildSpec("tmp", worker("tmp", events), restart="temporary")])
    crash("tmp")
    wait_until(lambda: logged(caplog, logging.INFO, "'tmp'", "boom", "not restarted"))
    assert registry.whereis("tmp") is None
    assert sup.proxy().restart_count("tmp").get(timeout=2) == 0


def test_a_call_that_raises_is_not_a_crash():
    events: Events = []
    sup = start_root([ChildSpec("a", worker("a", events))])
    ref = registry.whereis("a")
    outcome: list[BaseException | None] = []
    answered = threading.Event()

    def reply(result: Any, err: BaseException | None) -> None:
        outcome.append(err)
        answered.set()

    tell_with_reply(ref, reply, Worker.crash)
    assert answered.wait(2) and isinstance(outcome[0], RuntimeError)
    with pytest.raises(RuntimeError):
        ref.proxy().crash().get(timeout=2)  # a pykka ask that raises: not a crash either
    assert ref.proxy().ping().get(timeout=2) == "pong"
    assert registry.whereis("a") is ref
    assert sup.proxy().restart_count("a").get(timeout=2) == 0


def test_restart_that_cannot_start_is_retried_then_escalates():
    events: Events = []
    flags: dict[str, Any] = {}
    reasons: list[str] = []
    sup = start_root([ChildSpec("f", worker("f", events, flags))], on_escalate=reasons.append)
    flags["fail_start"] = True
    crash("f")
    wait_until(lambda: reasons)
    wait_until(lambda: not sup.is_alive())
    assert len(reasons) == 1 and "'f'" in reasons[0] and "f cannot start" in reasons[0]


def test_shutdown_timeout_gives_up_on_a_slow_child(caplog):
    events: Events = []
    sup = start_root([ChildSpec("slow", worker("slow", events, {"slow_stop": 0.5}),
                                shutdown_timeout=0.1)])
    began = time.monotonic()
    sup.proxy().stop_children().get(timeout=5)
    assert time.monotonic() - began < 0.45
    assert logged(caplog, logging.WARNING, "'slow'", "did not stop")


def test_bad_specs_are_rejected():
    with pytest.raises(ValueError):
        ChildSpec("x", worker("x", []), restart="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Supervisor([ChildSpec("x", worker("x", [])), ChildSpec("x", worker("x", []))])
