"""ChannelHost: the gateway side of one channel process (architecture §2).

It owns the process (spawned, its own process group), the pipe, the state shown by
`channels.status` (`stopped` → `starting` → `running`, `backoff` between restarts, `failed`
past the restart intensity) and the heartbeat watch. A pipe reader thread per process tells
the host every frame and, at EOF, the exit. Restarts follow OTP's intensity: an exit or a
hang (3 missed heartbeats) restarts after a backoff of 1 s doubling to 60 s; more than
`INTENSITY` restarts within `PERIOD_S` marks the channel `failed` until it is started again.

Inbound messages go to the `on_inbound` callable given at construction (the channel router),
which answers through `ack` and `deliver`. Each process start has a generation number, so a
late frame or exit of an earlier process is ignored.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable

import msgspec
import pykka

from actors import testhooks
from actors.base import DEFERRED, GatewayActor, Reply, send
from actors.channels import credentials, frames
from actors.channels.process import channel_main
from actors.clock import CLOCK
from actors.health import HEALTH, HealthActor
from actors.registry import ActorName

log = logging.getLogger("openclaw.channels")

INTENSITY, PERIOD_S = 5, 60.0
BACKOFF_FIRST_S, BACKOFF_MAX_S = 1.0, 60.0
MISSED_HEARTBEATS = 3
STOP_GRACE_S = 2.0
LABELS = {"irc": "IRC", "telegram": "Telegram"}


def now_ms() -> int:
    return int(time.time() * 1000)


class HostStatus(msgspec.Struct, kw_only=True):
    """One account snapshot of `channels.status` (protocol §12.1)."""
    accountId: str = "default"
    state: str = "stopped"
    stateSince: int = 0
    restartCount: int = 0
    lastError: str | None = None
    enabled: bool = True
    configured: bool = True
    running: bool = False
    connected: bool = False
    pid: int | None = None
    lastStartAt: int | None = None
    lastStopAt: int | None = None
    lastInboundAt: int | None = None
    lastOutboundAt: int | None = None
    detail: dict = {}


def host_name(channel: str) -> ActorName[ChannelHost]:
    """The registered name of the host of `channel` (set by the channel supervisor)."""
    return ActorName(f"channel:{channel}")


class ChannelHost(GatewayActor):
    def __init__(self, channel: str, config: Any, state_dir: str, *,
                 heartbeat_ms: int = 5000, health_monitor: bool = True,
                 on_inbound: Callable[[str, frames.Inbound], None] | None = None) -> None:
        super().__init__()
        self._channel = channel
        self._config = config
        self._state_dir = state_dir
        self._heartbeat_ms = heartbeat_ms
        self._watch = health_monitor
        self._on_inbound = on_inbound
        self._status = HostStatus(stateSince=now_ms())
        self._proc: Any = None
        self._conn: Any = None
        self._gen = 0
        self._last_beat = 0.0
        self._restarts: deque[float] = deque()
        self._pending: dict[str, Reply | None] = {}  # outbound / probe id → reply (None: told)
        self._send_lock = threading.Lock()

    # --- public: RPC and the router ------------------------------------------------------

    def status(self) -> dict:
        return msgspec.structs.asdict(self._status)

    def start_process(self) -> dict:
        """channels.start: runs the channel (a failed one too); a running one is left alone."""
        if self._status.state in ("starting", "running"):
            return self.status()
        self._restarts.clear()
        self._spawn()
        return self.status()

    def stop_process(self) -> dict:
        """channels.stop: stops the process; it stays down until started again."""
        self._gen += 1  # late frames and exits of the old process are ignored
        self._kill(graceful=True)
        self._set_state("stopped")
        self._status.lastStopAt = now_ms()
        return self.status()

    def logout(self) -> dict:
        """channels.logout: stop the process (it stays down until started again), then delete
        its stored login and cursor state. Both in this actor, so no restart of the process can
        run in between and write the state again."""
        self.stop_process()
        return credentials.logout(self._state_dir, self._channel)

    def reconfigure(self, config: Any, heartbeat_ms: int | None = None,
                    health_monitor: bool | None = None) -> dict:
        """A channel-class config change: restart with the new settings if it runs."""
        self._config = config
        self._heartbeat_ms = heartbeat_ms or self._heartbeat_ms
        self._watch = self._watch if health_monitor is None else health_monitor
        if self._status.state in ("starting", "running", "backoff"):
            self.stop_process()
            self._spawn()
        return self.status()

    def deliver(self, to: str, text: str) -> Any:
        """Send `text` to `to` through the channel; answers the OutboundResult (DEFERRED)."""
        if self._status.state != "running" or self._conn is None:
            raise ChannelDown(f"channel {self._channel} is not running ({self._status.state})")
        frame_id = uuid.uuid4().hex
        self._pending[frame_id] = self._reply
        self._write(frames.Outbound(id=frame_id, to=to, text=text))
        return DEFERRED

    def probe(self) -> Any:
        if self._status.state != "running" or self._conn is None:
            return {"ok": False, "error": f"channel is {self._status.state}"}
        frame_id = uuid.uuid4().hex
        self._pending[frame_id] = self._reply
        self._write(frames.Probe(id=frame_id))
        return DEFERRED

    def ack(self, inbound_id: str, ok: bool = True) -> None:
        """The router stored the inbound message (or gave up on it)."""
        self._write(frames.InboundAck(id=inbound_id, ok=ok))

    # --- told by the reader thread and the clock ------------------------------------------

    def frame(self, gen: int, frame: Any) -> None:
        if gen != self._gen:
            return
        self._last_beat = time.monotonic()  # any frame shows the process is alive
        if self._status.state == "starting":
            self._set_state("running")
        if isinstance(frame, frames.Inbound):
            self._status.lastInboundAt = now_ms()
            if self._on_inbound is not None:
                self._on_inbound(self._channel, frame)
        elif isinstance(frame, frames.Status):
            self._status.connected = frame.connected
            self._status.detail = dict(frame.detail)
            if frame.error:
                self._status.lastError = frame.error
        elif isinstance(frame, (frames.OutboundResult, frames.ProbeResult)):
            self._answer(frame)
        elif isinstance(frame, frames.Log):
            log.log(logging.getLevelName(frame.level.upper()), "%s: %s", self._channel, frame.message)

    def exited(self, gen: int, code: int | None) -> None:
        if gen != self._gen:
            return
        self._gen += 1
        error = f"channel process exited with code {code}"
        if self._status.lastError and self._status.lastError.startswith("channel failed to start"):
            error = f"{self._status.lastError} (exit code {code})"
        self._crashed(error)

    def check_heartbeat(self, gen: int) -> None:
        if gen != self._gen or self._status.state not in ("starting", "running"):
            return
        late = time.monotonic() - self._last_beat
        if self._watch and late > MISSED_HEARTBEATS * self._heartbeat_ms / 1000:
            self._gen += 1
            self._crashed(f"channel hung: no heartbeat for {late:.1f}s")
            return
        self._every_beat(gen)

    def retry(self, gen: int) -> None:
        if gen == self._gen and self._status.state == "backoff":
            self._spawn()

    # --- internals ------------------------------------------------------------------------

    def _spawn(self) -> None:
        self._gen += 1
        gen = self._gen
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=channel_main, args=(child,), name=f"openclaw-{self._channel}",
                           daemon=False)
        self._status.lastError = None if self._status.state != "backoff" else self._status.lastError
        self._set_state("starting")
        try:
            proc.start()
        except Exception as exc:  # noqa: BLE001 - e.g. no more processes
            child.close()
            parent.close()
            self._crashed(f"channel process did not start: {exc}")
            return
        child.close()  # the child's end lives in the child only: its exit gives us EOF
        self._proc, self._conn = proc, parent
        self._status.pid, self._status.lastStartAt = proc.pid, now_ms()
        self._last_beat = time.monotonic()
        config = msgspec.json.encode(self._config)
        self._write(frames.Start(channel=self._channel, config=config, state_dir=self._state_dir,
                                 heartbeat_ms=self._heartbeat_ms))
        threading.Thread(target=_read, args=(self.actor_ref, gen, parent, proc),
                         name=f"channel-{self._channel}-pipe", daemon=True).start()
        self._every_beat(gen)

    def _every_beat(self, gen: int) -> None:
        me = self.actor_ref
        CLOCK.call_later(self._heartbeat_ms / 1000, lambda: send(me, ChannelHost.check_heartbeat, gen))

    def _write(self, frame: Any) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            conn.send_bytes(frames.encode(frame))
        except (OSError, ValueError):
            pass  # the process is gone: its exit comes through the reader thread

    def _answer(self, result: Any) -> None:
        reply = self._pending.pop(result.id, None)
        if reply is None:
            return
        if isinstance(result, frames.OutboundResult):
            if result.ok:
                self._status.lastOutboundAt = now_ms()
            value = {"ok": result.ok, "messageId": result.message_id, "error": result.error}
        else:
            value = {"ok": result.ok, **result.detail, **({"error": result.error} if result.error else {})}
        try:
            reply(value, None)
        except Exception:  # noqa: BLE001 - the caller went away
            pass

    def _crashed(self, error: str) -> None:
        log.warning("channel %s: %s", self._channel, error)
        self._kill(graceful=False)
        self._fail_pending(error)
        self._status.lastError = error
        self._status.connected = False
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and now - self._restarts[0] > PERIOD_S:
            self._restarts.popleft()
        if len(self._restarts) > INTENSITY:
            log.error("channel %s failed: %d restarts within %gs", self._channel,
                      len(self._restarts) - 1, PERIOD_S)
            self._set_state("failed")
            return
        self._status.restartCount += 1
        delay = min(BACKOFF_MAX_S, first_backoff_s() * 2 ** (len(self._restarts) - 1))
        self._set_state("backoff")
        gen, me = self._gen, self.actor_ref
        CLOCK.call_later(delay, lambda: send(me, ChannelHost.retry, gen))

    def _fail_pending(self, error: str) -> None:
        pending, self._pending = self._pending, {}
        for reply in pending.values():
            if reply is None:
                continue
            try:
                reply({"ok": False, "error": error}, None)
            except Exception:  # noqa: BLE001
                pass

    def _kill(self, graceful: bool) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self._status.pid = None
        if proc is None:
            return
        if graceful and proc.is_alive() and conn is not None:
            try:
                conn.send_bytes(frames.encode(frames.Stop(reason="stop")))
            except (OSError, ValueError):
                pass
            proc.join(STOP_GRACE_S)
        kill_group(proc.pid)
        proc.join(1.0)
        if conn is not None:
            conn.close()
        self._fail_pending(f"channel {self._channel} stopped")

    def _set_state(self, state: str) -> None:
        if state != self._status.state:
            self._status.state, self._status.stateSince = state, now_ms()
        self._status.running = state == "running"
        self._report()

    def _report(self) -> None:
        """The channel's line in `health` (protocol §9.1): a failed channel shows there."""
        health = HEALTH.whereis()
        if health is None:
            return
        st = self._status
        account = {"accountId": st.accountId, "configured": st.configured, "state": st.state,
                   "lastError": st.lastError}
        summary = {**account, "accounts": {st.accountId: dict(account)}}
        send(health, HealthActor.set_channel, self._channel, LABELS.get(self._channel, self._channel),
             summary)

    def on_stop(self) -> None:
        self._gen += 1
        self._kill(graceful=True)

    def on_failure(self, *_: Any) -> None:
        self._gen += 1
        self._kill(graceful=False)


def first_backoff_s() -> float:
    """1 s; the test knob OPENCLAW_TEST_CHANNEL_BACKOFF_MS (actors/testhooks.py) shortens it
    for restart tests."""
    override = testhooks.channel_backoff_s()
    return override if override is not None else BACKOFF_FIRST_S


class ChannelDown(RuntimeError):
    """`send` to a channel that is not running."""


def kill_group(pid: int | None) -> None:
    """SIGKILL the channel's process group (it called setsid, so the group id is its pid)."""
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read(host: pykka.ActorRef[ChannelHost], gen: int, conn: Any, proc: Any) -> None:
    """The pipe reader thread of one process: every frame to the host, then the exit."""
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            break
        try:
            frame = frames.decode_to_gateway(data)
        except msgspec.DecodeError:
            continue
        if not send(host, ChannelHost.frame, gen, frame):
            return
    proc.join(5)
    send(host, ChannelHost.exited, gen, proc.exitcode)
