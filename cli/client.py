"""The WebSocket client the CLI commands share: connect handshake as `client.id "cli"`, one
or more calls, and the mapping of every failure to an exit code (cli-config §3.3, §3.4)."""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import platform
import re
import sys
import uuid
from typing import Any, Callable

import click
import tornado.websocket
from tornado.httpclient import HTTPClientError, HTTPRequest

from cli.output import (
    EXIT_FAIL,
    EXIT_UNAUTHORIZED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    emit_json,
    fail,
    fail_usage,
)
from cli.target import Target, resolve_target
from transport.protocol import DEFAULT_OPERATOR_SCOPES, PROJECT_VERSION, PROTOCOL_VERSION

AUTH_DETAIL_CODES = {"AUTH_TOKEN_MISSING", "AUTH_TOKEN_MISMATCH", "AUTH_PASSWORD_MISSING",
                     "AUTH_PASSWORD_MISMATCH", "AUTH_TOKEN_NOT_CONFIGURED",
                     "AUTH_PASSWORD_NOT_CONFIGURED", "AUTH_RATE_LIMITED"}


class RpcError(Exception):
    def __init__(self, error: dict):
        super().__init__(error.get("message", "error"))
        self.error = error


class GatewayClient:
    """One authenticated connection; `await client.call(method, params)`."""

    def __init__(self, target: Target, timeout_ms: int):
        self.target, self.timeout = target, timeout_ms / 1000
        self.hello: dict = {}
        self._conn: tornado.websocket.WebSocketClientConnection | None = None
        self._next = 0
        # Off by default so one-shot commands never hold on to ticks; `chat` turns it on to
        # see its run's events, which may arrive before the chat.send response.
        self.keep_events = False
        self._events: collections.deque[dict] = collections.deque()

    async def __aenter__(self) -> "GatewayClient":
        try:
            await asyncio.wait_for(self._open(), self.timeout)
        except asyncio.TimeoutError:
            self.close()
            raise CliError("unreachable", f"gateway at {self.target.url} did not complete the "
                           f"handshake within {self.timeout * 1000:.0f}ms", EXIT_UNREACHABLE) from None
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    async def _open(self) -> None:
        request = HTTPRequest(self.target.url, connect_timeout=self.timeout, request_timeout=self.timeout)
        try:
            self._conn = await tornado.websocket.websocket_connect(request, max_message_size=64 * 1024 * 1024)
        except (OSError, HTTPClientError, tornado.websocket.WebSocketError) as exc:
            raise CliError("unreachable", f"gateway unreachable at {self.target.url}: {exc}",
                           EXIT_UNREACHABLE) from None
        await self._read_event("connect.challenge")
        res = await self._request("connect", self._connect_params())
        if not res.get("ok"):
            raise self._connect_error(res.get("error") or {})
        self.hello = res.get("payload") or {}

    def _connect_params(self) -> dict:
        auth = {k: v for k, v in (("token", self.target.token), ("password", self.target.password)) if v}
        return {"minProtocol": PROTOCOL_VERSION, "maxProtocol": PROTOCOL_VERSION,
                "client": {"id": "cli", "version": PROJECT_VERSION, "platform": sys.platform,
                           "deviceFamily": platform.system(), "mode": "cli",
                           "instanceId": str(uuid.uuid4())},
                "caps": [], "auth": auth, "role": "operator", "scopes": list(DEFAULT_OPERATOR_SCOPES)}

    def _connect_error(self, error: dict) -> CliError:
        details = error.get("details")
        if not isinstance(details, dict):
            details = {}
        message = error.get("message", "connect failed")
        if details.get("code") in AUTH_DETAIL_CODES:
            if self.target.explicit_url and self.target.source == "none" and "MISSING" in details["code"]:
                message = "gateway url override requires explicit credentials (--token or --password)"
            elif "MISMATCH" in details["code"]:
                kind = "token" if "TOKEN" in details["code"] else "password"
                message = f"unauthorized: {kind} rejected (source: {self.target.source})"
            return CliError("unauthorized", message, EXIT_UNAUTHORIZED, code=error.get("code"), details=details)
        return CliError("rpc_error", message, EXIT_FAIL, code=error.get("code"), details=details)

    async def call(self, method: str, params: Any = None) -> Any:
        res = await asyncio.wait_for(self._request(method, params if params is not None else {}), self.timeout)
        if not res.get("ok"):
            raise RpcError(res.get("error") or {"code": "UNAVAILABLE", "message": "no error object"})
        return res.get("payload")

    async def _request(self, method: str, params: Any) -> dict:
        self._next += 1
        req_id = f"{self._next}:{uuid.uuid4()}"
        assert self._conn is not None, "used outside `async with`"
        await self._conn.write_message(json.dumps({"type": "req", "id": req_id, "method": method,
                                                   "params": params}))
        while True:
            frame = await self._read()
            if frame.get("type") == "res" and frame.get("id") == req_id:
                return frame
            if self.keep_events and frame.get("type") == "event":
                self._events.append(frame)

    async def next_event(self) -> dict:
        """The next event frame: first those kept while a call waited for its response
        (`keep_events`), then from the socket. Responses to no pending call are skipped."""
        if self._events:
            return self._events.popleft()
        while True:
            frame = await self._read()
            if frame.get("type") == "event":
                return frame

    async def _read_event(self, name: str) -> dict:
        while True:
            frame = await self._read()
            if frame.get("type") == "event" and frame.get("event") == name:
                return frame

    async def _read(self) -> dict:
        assert self._conn is not None, "used outside `async with`"
        message = await self._conn.read_message()
        if message is None:
            code, reason = self._conn.close_code, self._conn.close_reason
            kind, exit_code = ("unauthorized", EXIT_UNAUTHORIZED) if code == 1008 and reason and \
                reason.startswith("unauthorized") else ("unreachable", EXIT_UNREACHABLE)
            raise CliError(kind, f"gateway closed the connection ({code} {reason or ''})".strip(), exit_code)
        try:
            frame = json.loads(message)
        except ValueError:
            return {}
        return frame if isinstance(frame, dict) else {}


def connection_options(func: Callable | None = None, *, timeout_default: int = 10000,
                       timeout_help: str = "Bound on connect, handshake and call, in ms.") -> Callable:
    """--url --port --token --password --timeout, shared by every client command; use bare
    (`@connection_options`) or with another --timeout default (`@connection_options(...)`)."""
    options = [
        click.option("--url",
                     help="Gateway URL (ws:// or wss://); credentials then come only from --token/--password."),
        click.option("--port", type=int, help="Local gateway port (ws://127.0.0.1:PORT)."),
        click.option("--token", help="Gateway token."),
        click.option("--password", help="Gateway password."),
        click.option("--timeout", "timeout_ms", type=click.IntRange(min=1), default=timeout_default,
                     show_default=True, help=timeout_help),
    ]

    def decorate(target: Callable) -> Callable:
        for option in reversed(options):
            target = option(target)
        return target

    return decorate(func) if func is not None else decorate


def make_target(conn: dict) -> Target:
    if conn.get("url") and conn.get("port") is not None:
        fail_usage("--url and --port cannot be combined")
    return resolve_target(conn.get("url"), conn.get("port"), conn.get("token"), conn.get("password"))


def rpc_failure(err: RpcError) -> CliError:
    e = err.error
    extra = {"code": e.get("code")}
    if "details" in e:
        extra["details"] = e["details"]
    return CliError("rpc_error", e.get("message", "error"), EXIT_FAIL, **extra)


def run_or_fail(main: Callable[[], Any], target: Target, timeout_ms: int | None, as_json: bool) -> Any:
    """`asyncio.run(main())`, with every client failure turned into its exit code."""
    try:
        return asyncio.run(main())
    except CliError as err:
        fail(err, as_json)
    except RpcError as err:
        fail(rpc_failure(err), as_json)
    except asyncio.TimeoutError:
        fail(CliError("unreachable", f"no answer from {target.url} within {timeout_ms or 10000}ms",
                      EXIT_UNREACHABLE), as_json)


def with_client(conn: dict, as_json: bool, work: Callable[[GatewayClient], Any]) -> Any:
    """Connect, run `await work(client)`, and turn any failure into its exit code."""
    target = make_target(conn)

    async def main() -> Any:
        async with GatewayClient(target, conn.get("timeout_ms") or 10000) as client:
            return await work(client)

    return run_or_fail(main, target, conn.get("timeout_ms"), as_json)


def with_gateway_or_local(conn: dict, as_json: bool,
                          work: Callable[[GatewayClient], Any]) -> tuple[bool, Any]:
    """(True, `await work(client)`) through a reachable gateway; (False, None) when none
    answers on the target, so the caller can work locally instead. An explicit --url never
    falls back: the user asked for that gateway, not for local files."""
    target = make_target(conn)

    async def main() -> tuple[bool, Any]:
        client = GatewayClient(target, conn.get("timeout_ms") or 10000)
        try:
            await client.__aenter__()
        except CliError as err:
            if err.kind == "unreachable" and not target.explicit_url:
                return False, None
            raise
        try:
            return True, await work(client)
        finally:
            client.close()

    return run_or_fail(main, target, conn.get("timeout_ms"), as_json)


METHOD_NAME = re.compile(r"^[a-z][A-Za-z0-9._-]*$")


def run_call(method: str, params_text: str, as_json: bool, conn: dict) -> None:
    if not METHOD_NAME.match(method):
        fail(CliError("usage", f"invalid method name: {method}", EXIT_USAGE), as_json)
    try:
        params = json.loads(params_text)
    except ValueError as exc:
        fail(CliError("usage", f"--params is not valid JSON: {exc}", EXIT_USAGE), as_json)
    if not isinstance(params, dict):
        fail(CliError("usage", "--params must be a JSON object", EXIT_USAGE), as_json)
    payload = with_client(conn, as_json, functools.partial(_call_one, method, params))
    emit_json({"ok": True, "payload": payload} if as_json else payload)


async def _call_one(method: str, params: dict, client: GatewayClient) -> Any:
    return await client.call(method, params)
