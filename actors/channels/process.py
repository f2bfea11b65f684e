"""The channel process (architecture §1): started by its ChannelHost with the `spawn` method,
it runs one adapter inside a pykka actor and talks to the gateway over one duplex pipe.

- `os.setsid()` first: the process leads its own group, which the host kills as a whole.
- It dies with its parent: `PR_SET_PDEATHSIG` (Linux) and EOF on the pipe.
- The main thread reads the pipe (blocking) and tells the adapter actor; a heartbeat thread
  sends `Heartbeat` every `heartbeat_ms`; outbound sends run one at a time in a sender
  thread, so the actor always hears `Stop`.

Test hook (actors/testhooks.py): `OPENCLAW_TEST_CHANNEL_FAULT=<channel>:<fault>` makes that
channel misbehave on purpose (`exit-at-start`, `hang`: stops heartbeats and reading,
`raise-on-message`: the adapter actor crashes on the first inbound message), for the
supervision tests.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Literal

import msgspec
import pykka

from actors import testhooks
from actors.channels import frames
from actors.channels.adapter import Adapter

PR_SET_PDEATHSIG = 1
# The levels a Log frame carries; an adapter's other levels are sent as info.
_LOG_LEVELS: dict[str, Literal["debug", "info", "warning", "error"]] = {
    "debug": "debug", "info": "info", "warning": "warning", "error": "error"}


def die_with_parent() -> None:
    """Ask Linux to SIGKILL us when the parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # here, in the channel process: the gateway that imports this module needs none

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def adapter_class(channel: str) -> tuple[type[Adapter], type]:
    from actors.config import schema as config_schema
    if channel == "irc":
        from actors.channels.irc import IrcAdapter
        return IrcAdapter, config_schema.IrcChannel
    if channel == "telegram":
        from actors.channels.telegram import TelegramAdapter
        return TelegramAdapter, config_schema.TelegramChannel
    raise ValueError(f"unknown channel: {channel}")


class PipeWriter:
    """The channel side of the pipe; any thread may send."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, frame: Any) -> bool:
        data = frames.encode(frame)
        with self._lock:
            try:
                self._conn.send_bytes(data)
                return True
            except (OSError, ValueError):
                return False


class Emitter:
    """What adapters report through (actors/channels/adapter.py `Emitter`)."""

    def __init__(self, out: PipeWriter, fault: str | None) -> None:
        self._out = out
        self._fault = fault
        self.actor: pykka.ActorRef | None = None

    def inbound(self, message: frames.Inbound) -> None:
        if self._fault == "raise-on-message" and self.actor is not None:
            self.actor.tell(_Crash())
            return
        self._out.send(message)

    def status(self, connected: bool, error: str | None = None, **detail: Any) -> None:
        self._out.send(frames.Status(connected=connected, error=error, detail=detail))

    def log(self, level: str, message: str) -> None:
        self._out.send(frames.Log(level=_LOG_LEVELS.get(level, "info"), message=message))


class _Crash(msgspec.Struct, frozen=True):
    pass


class AdapterActor(pykka.ThreadingActor):
    """Owns the adapter inside the channel process."""

    def __init__(self, adapter: Adapter, out: PipeWriter, done: "Done") -> None:
        super().__init__()
        self._adapter = adapter
        self._out = out
        self._done = done
        self._sends: queue.Queue = queue.Queue()
        self._sender = threading.Thread(target=self._send_loop, name="channel-send", daemon=True)

    def on_start(self) -> None:
        self._sender.start()
        self._adapter.start()

    def on_receive(self, message: Any) -> None:
        if isinstance(message, frames.Outbound):
            self._sends.put(message)
        elif isinstance(message, frames.InboundAck):
            if message.ok:
                self._adapter.ack(message.id)
        elif isinstance(message, frames.Probe):
            threading.Thread(target=self._probe, args=(message.id,), daemon=True).start()
        elif isinstance(message, frames.Stop):
            self.stop()
        elif isinstance(message, _Crash):
            raise RuntimeError("channel adapter failed on an inbound message (test fault)")

    def _send_loop(self) -> None:
        while True:
            item = self._sends.get()
            if item is None:
                return
            try:
                message_id = self._adapter.send(item.to, item.text)
                self._out.send(frames.OutboundResult(id=item.id, ok=True, message_id=message_id))
            except Exception as exc:  # noqa: BLE001 - reported to the gateway, never raised
                self._out.send(frames.OutboundResult(id=item.id, ok=False, error=str(exc)))

    def _probe(self, probe_id: str) -> None:
        try:
            detail = self._adapter.probe()
            self._out.send(frames.ProbeResult(id=probe_id, ok=True, detail=detail))
        except Exception as exc:  # noqa: BLE001
            self._out.send(frames.ProbeResult(id=probe_id, ok=False, error=str(exc)))

    def on_stop(self) -> None:
        self._sends.put(None)
        try:
            self._adapter.stop()
        finally:
            self._done.set()

    def on_failure(self, *exc_info: Any) -> None:
        self._out.send(frames.Log(level="error", message=f"channel adapter crashed: {exc_info[1]}"))
        self._done.crashed = True
        try:
            self._adapter.stop()
        finally:
            self._done.set()


class Done(threading.Event):
    """Set when the adapter actor ended; `crashed` tells how."""
    crashed = False


def _heartbeats(out: PipeWriter, every_s: float, done: threading.Event) -> None:
    """The first one at once: it tells the host the process is up."""
    while out.send(frames.Heartbeat(ts=int(time.time() * 1000))) and not done.wait(every_s):
        pass


def channel_main(conn: Connection) -> None:
    """Entry point of the channel process (multiprocessing `spawn` target)."""
    os.setsid()
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the gateway's terminal is the gateway's
    start = frames.decode_to_channel(conn.recv_bytes())
    if not isinstance(start, frames.Start):
        raise SystemExit(f"channel process: expected start, got {type(start).__name__}")
    fault = testhooks.channel_fault(start.channel)
    if fault == "exit-at-start":
        raise SystemExit(3)
    if fault == "hang":
        time.sleep(3600)  # no heartbeat, no reading: the host must see it as hung
    out = PipeWriter(conn)
    done = Done()
    emitter = Emitter(out, fault)
    try:
        cls, config_type = adapter_class(start.channel)
        config: msgspec.Struct = msgspec.json.decode(start.config, type=config_type)
        adapter = cls(config, start.state_dir, emitter, start.account_id)
        threading.Thread(target=_heartbeats, args=(out, start.heartbeat_ms / 1000, done),
                         name="channel-heartbeat", daemon=True).start()
        actor = AdapterActor.start(adapter, out, done)
    except Exception as exc:  # noqa: BLE001 - the adapter could not start: exit, the host restarts
        out.send(frames.Status(connected=False, error=f"channel failed to start: {exc}"))
        raise SystemExit(1) from None
    emitter.actor = actor
    _read_pipe(conn, actor, done)
    if actor.is_alive():
        actor.stop(timeout=5)
    os._exit(1 if done.crashed else 0)


def _read_pipe(conn: Connection, actor: pykka.ActorRef, done: threading.Event) -> None:
    """Until the gateway says stop, the pipe closes (parent gone) or the actor ended."""
    while not done.is_set():
        try:
            if not conn.poll(0.5):
                continue
            frame = frames.decode_to_channel(conn.recv_bytes())
        except (EOFError, OSError):
            return
        except msgspec.DecodeError:
            continue
        try:
            actor.tell(frame)
        except pykka.ActorDeadError:
            return
        if isinstance(frame, frames.Stop):
            return
