"""A bare Tornado + msgspec WebSocket server: the baseline the gateway is compared with.

It answers the frames the benchmark sends exactly as the gateway does on the wire, with none
of the gateway's machinery (no actors, no auth, no dispatch table, no per-request task):

- on open: `event connect.challenge {nonce, ts}`;
- first frame `req connect`: `res ok:true` with a small hello-ok-like payload;
- `req health`: `res ok:true` with a payload of the same size and shape as the gateway's
  health summary (HEALTH below, captured from `openclaw gateway` with an empty state dir);
- any other request: an INVALID_REQUEST error.

The listener mirrors the gateway's socket options that matter for the comparison: loopback,
backlog as deep as the kernel allows (somaxconn), TCP_NODELAY, no per-message compression, 64 KiB
frame cap before the handshake.

Usage: python bench/bare_server.py --port 18800
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
import uuid
from typing import Annotated

import msgspec
import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket
from loadgen import raise_nofile_limit  # the same helper the client uses (bench/ is on sys.path)

# A health payload captured from the gateway (`health` with no params, empty state dir), with
# its state-dir path replaced by one of the same length as the gateway's under bench/run.py
# (`<mkdtemp openclaw-bench-XXXXXXXX>/gateway/state`). `ts` is refreshed per answer.
HEALTH = {
    "ok": True, "ts": 1795498719053, "durationMs": 0,
    "channels": {}, "channelOrder": [], "channelLabels": {},
    "heartbeatSeconds": 0, "defaultAgentId": "main",
    "agents": [{"agentId": "main", "isDefault": True,
                "heartbeat": {"enabled": False, "every": "disabled", "everyMs": None},
                "sessions": {"path": "/tmp/openclaw-bench-x1y2z3ab/gateway/state/agents/main/sessions.sqlite",
                             "count": 0, "recent": []}}],
    "sessions": {"path": "/tmp/openclaw-bench-x1y2z3ab/gateway/state/agents/main/sessions.sqlite",
                 "count": 0, "recent": []},
    "configReload": {"mode": "hybrid", "status": "ok", "lastReloadAt": None, "lastError": None,
                     "pendingRestart": []},
}


class RequestFrame(msgspec.Struct, tag="req", tag_field="type"):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    method: Annotated[str, msgspec.Meta(min_length=1)]
    params: msgspec.Raw = msgspec.Raw(b"{}")


class ResponseFrame(msgspec.Struct, tag="res", tag_field="type", omit_defaults=True):
    id: str
    ok: bool
    payload: object = msgspec.UNSET
    error: object = msgspec.UNSET


decoder = msgspec.json.Decoder(RequestFrame)
encoder = msgspec.json.Encoder()


def now_ms() -> int:
    return int(time.time() * 1000)


class BareSocket(tornado.websocket.WebSocketHandler):
    def initialize(self) -> None:
        self.connected = False
        self.conn_id = str(uuid.uuid4())

    def check_origin(self, origin: str) -> bool:
        return True

    def get_compression_options(self) -> None:
        return None

    @property
    def max_message_size(self) -> int:
        return 65536

    def open(self) -> None:
        self.set_nodelay(True)
        challenge = {"nonce": str(uuid.uuid4()), "ts": now_ms()}
        self.write_message(encoder.encode({"type": "event", "event": "connect.challenge",
                                           "payload": challenge}))

    def on_message(self, message: str | bytes) -> None:
        try:
            frame = decoder.decode(message)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        if frame.method == "health":
            payload = dict(HEALTH)
            payload["ts"] = now_ms()
            self.write_message(encoder.encode(ResponseFrame(frame.id, True, payload=payload)))
        elif frame.method == "connect" and not self.connected:
            self.connected = True
            hello = {"type": "hello-ok", "protocol": 4,
                     "server": {"version": "2026.9.6", "buildId": "bare-server",
                                "connId": self.conn_id},
                     "policy": {"maxPayload": 26214400, "maxBufferedBytes": 52428800,
                                "tickIntervalMs": 30000}}
            self.write_message(encoder.encode(ResponseFrame(frame.id, True, payload=hello)))
        else:
            error = {"code": "INVALID_REQUEST", "message": f"unknown method: {frame.method}"}
            self.write_message(encoder.encode(ResponseFrame(frame.id, False, error=error)))


class ReadyHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(b'{"ok":true,"status":"ready"}')


async def serve(port: int) -> None:
    app = tornado.web.Application([(r"/readyz?", ReadyHandler), (r"/", BareSocket)],
                                  compress_response=False, log_function=lambda handler: None)
    server = tornado.httpserver.HTTPServer(app, idle_connection_timeout=120)
    server.add_sockets(tornado.netutil.bind_sockets(port, "127.0.0.1", backlog=65535))  # as the gateway
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    raise_nofile_limit()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
