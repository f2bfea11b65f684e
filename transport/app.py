"""The Tornado application on the gateway port: routes in the order of protocol §21.1, and
the loop-side fan-out of events the EventHub picked recipients for."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import tornado.httpserver
import tornado.web

from transport import accept
from transport.http import LiveHandler, NotFoundHandler, ReadyHandler, RpcHandler
from transport.http_openai import CompletionsHandler, ModelsHandler
from transport.http_tools import ToolsInvokeHandler
from transport.protocol import MAX_PAYLOAD
from transport.state import GatewayState
from transport.ws import GatewaySocket

log = logging.getLogger("openclaw.gateway")


def make_app(state: GatewayState) -> tornado.web.Application:
    deps = {"state": state}
    return tornado.web.Application(
        [
            (r"/healthz?", LiveHandler, deps),
            (r"/readyz?", ReadyHandler, deps),
            (r"/api/v1/admin/rpc", RpcHandler, deps),
            (r"/tools/invoke", ToolsInvokeHandler, deps),
            (r"/v1/models", ModelsHandler, deps),
            (r"/v1/models/(.+)", ModelsHandler, deps),
            (r"/v1/chat/completions", CompletionsHandler, deps),
            (r"/", GatewaySocket, deps),
        ],
        default_handler_class=NotFoundHandler,
        compress_response=False,
        log_function=_log_request,
    )


BODY_TIMEOUT_MS = 30000  # the whole request body, however it trickles in
HEADER_TIMEOUT_MS = 120000  # a request's headers; also how long a kept-alive connection may idle


def deadline_s(env: str, default_ms: int) -> float:
    """A deadline in seconds: `default_ms`, or the environment's override (a test knob)."""
    value = os.environ.get(env, "")
    return (int(value) if value.isdigit() and int(value) > 0 else default_ms) / 1000


def make_server(state: GatewayState, sockets: list) -> tornado.httpserver.HTTPServer:
    # Tornado's body_timeout bounds the whole body, not the gap between chunks: a body sent a
    # byte at a time is cut (the connection closed) at the deadline, as are trickled headers.
    server = tornado.httpserver.HTTPServer(
        make_app(state), max_body_size=MAX_PAYLOAD + 1024 * 1024, xheaders=False,
        idle_connection_timeout=deadline_s("OPENCLAW_HTTP_HEADER_TIMEOUT_MS", HEADER_TIMEOUT_MS),
        body_timeout=deadline_s("OPENCLAW_HTTP_BODY_TIMEOUT_MS", BODY_TIMEOUT_MS))
    accept.add_sockets(server, sockets)  # pauses instead of spinning when out of descriptors
    return server


def _log_request(handler: tornado.web.RequestHandler) -> None:
    if handler.get_status() >= 500 and handler.get_status() != 503:  # 503: /readyz while starting
        log.warning("%s %s -> %d", handler.request.method, handler.request.path, handler.get_status())


def make_deliver(loop: asyncio.AbstractEventLoop, state: GatewayState):
    """The EventHub's `deliver`: called on the actor thread, runs the fan-out on the loop."""

    def fan_out(recipients: tuple[str, ...], event: str, payload: bytes, versions: bytes | None,
                droppable: bool) -> None:
        for conn_id in recipients:
            conn = state.connections.get(conn_id)
            if conn is not None:
                conn.send_event(event, payload, versions, droppable)

    def deliver(recipients: tuple[str, ...], event: str, payload: bytes, versions: bytes | None,
                droppable: bool) -> None:
        try:
            loop.call_soon_threadsafe(fan_out, recipients, event, payload, versions, droppable)
        except RuntimeError:  # the loop is gone: the gateway is stopping
            pass

    return deliver


def make_health_mirror(loop: asyncio.AbstractEventLoop, state: GatewayState):
    """The HealthActor's `mirror`: keeps its latest summary on the loop for `health`."""

    def store(summary: dict) -> None:
        state.health, state.health_at = summary, time.monotonic()

    def mirror(summary: dict) -> None:
        try:
            loop.call_soon_threadsafe(store, summary)
        except RuntimeError:  # the loop is gone: the gateway is stopping
            pass

    return mirror
