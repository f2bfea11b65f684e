"""`POST /tools/invoke` (protocol §21.3): one tool call outside a chat, with the bearer of
§21.1 and a 2 MB body cap; the same executor path as the `tools.invoke` method."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import tornado.web

from transport.http import BearerBody, _reject, _Rejection
from transport.methods.tools import invoke_tool, tool_request
from transport.protocol import GatewayError, decode_json, encoder

log = logging.getLogger("openclaw.tools")

MAX_BODY = 2 * 1024 * 1024


class InvokeBody(msgspec.Struct, kw_only=True):
    tool: str | None = None
    name: str | None = None  # alias of tool
    action: str | None = None
    args: dict[str, Any] = {}
    sessionKey: str | None = None
    agentId: str | None = None
    idempotencyKey: str | None = None
    dryRun: bool = False  # accepted, ignored (§21.3)


@tornado.web.stream_request_body
class ToolsInvokeHandler(BearerBody):
    limit = MAX_BODY

    def rejection(self, refused: _Rejection) -> _Rejection:
        if refused.status != 401:
            return refused  # 429: the shared lockout envelope
        body = encoder.encode({"ok": False, "error": {"type": "unauthorized", "message": "Unauthorized"}})
        return _Rejection(401, body, {"WWW-Authenticate": "Bearer"})

    async def post(self) -> None:
        if isinstance(self._auth, _Rejection):
            return _reject(self, self.rejection(self._auth))
        if self._size > MAX_BODY:
            return self._fail(413, "payload_too_large", f"body larger than {MAX_BODY} bytes")
        try:
            body = decode_json(self.body(), InvokeBody)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return self._fail(400, "invalid_request", f"invalid request body: {exc}")
        name = (body.tool or body.name or "").strip()
        if not name:
            return self._fail(400, "invalid_request", "tool: required")
        args = dict(body.args)
        if body.action is not None and name == "process" and "action" not in args:
            args["action"] = body.action
        try:
            request = tool_request(name, args, body.sessionKey, body.agentId, body.idempotencyKey)
            outcome = await invoke_tool(request, body.idempotencyKey)
        except GatewayError as err:
            if err.message.startswith("tool not available"):
                return self._fail(404, "not_found", err.message)
            if err.code == "INVALID_REQUEST":
                return self._fail(400, "invalid_request", err.message)
            return self._fail(500, "internal_error", err.message)
        if outcome.ok:
            return self._json(200, encoder.encode({"ok": True, "result": outcome.output}))
        error: dict[str, Any] = {"type": "tool_error", "message": outcome.error or "tool failed"}
        if outcome.output is not None:
            error["output"] = outcome.output
        self._json(400, encoder.encode({"ok": False, "error": error}))

    def _fail(self, status: int, kind: str, message: str, headers: dict | None = None) -> None:
        for key, value in (headers or {}).items():
            self.set_header(key, value)
        self._json(status, encoder.encode({"ok": False, "error": {"type": kind, "message": message}}))

    def get(self) -> None:
        self.set_header("Allow", "POST")
        self._fail(405, "method_not_allowed", "use POST")

    put = patch = delete = get
