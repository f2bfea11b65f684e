"""A local stand-in for the Telegram Bot API: a real HTTP server on 127.0.0.1 (ephemeral port,
in a thread) answering `{root}/bot<token>/<method>` with the Bot API's JSON shapes.

    with TelegramApi(token="123:abc") as api:
        api.queue_private("hello", user_id=42, username="alice")
        ... adapter with apiRoot = api.url ...
        api.wait_sent(1)

Methods: `getMe`, `getUpdates` (long poll: holds the request until an update at or past
`offset` is queued or `timeout` seconds passed; an `offset` confirms — drops — every update
below it, as the real service does; `allowed_updates` filters by update type), `sendMessage`
(recorded in `sent`; rejects empty or over-long text like the real API). `fail_next(method,
code, description, retry_after=…)` scripts an error answer such as a 429 with
`parameters.retry_after`. Every request is recorded in `requests` (with the client `port`).
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_TEXT = 4096


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeTelegram/1.0"
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle and delayed ACKs hold
    # every answer back ~40 ms on loopback.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle(dict(parse_qsl(urlsplit(self.path).query)))

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = (self.headers.get("content-type") or "").split(";")[0].strip().lower()
        params: dict[str, Any]
        if ctype == "application/json":
            try:
                params = json.loads(raw or b"{}")
            except ValueError:
                return self._reply(400, {"ok": False, "error_code": 400,
                                         "description": "Bad Request: can't parse JSON"})
        else:
            params = dict(parse_qsl(raw.decode("utf-8", "replace")))
        if not isinstance(params, dict):
            params = {}
        params.update({k: v for k, v in parse_qsl(urlsplit(self.path).query) if k not in params})
        self._handle(params)

    def _handle(self, params: dict[str, Any]) -> None:
        owner: TelegramApi = self.server.owner  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        prefix, _, method = path.rpartition("/")
        token = prefix.rpartition("/bot")[2] if "/bot" in prefix else None
        owner._record(method, params, token, self.client_address[1])
        if token != owner.token:
            return self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        scripted = owner._scripted(method)
        if scripted is not None:
            return self._reply(scripted["error_code"], scripted)
        name = method.lower()
        if name == "getme":
            return self._ok(owner.bot_user())
        if name == "getupdates":
            return self._get_updates(owner, params)
        if name == "sendmessage":
            status, body = owner._send_message(params)
            return self._reply(status, body)
        self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})

    def _get_updates(self, owner: "TelegramApi", params: dict[str, Any]) -> None:
        try:
            offset = int(params["offset"]) if params.get("offset") is not None else None
            timeout = float(params.get("timeout") or 0)
            limit = int(params.get("limit") or 100)
        except (TypeError, ValueError):
            return self._reply(400, {"ok": False, "error_code": 400,
                                     "description": "Bad Request: wrong parameter"})
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            try:
                allowed = json.loads(allowed)
            except ValueError:
                allowed = None
        deadline = time.monotonic() + max(0.0, timeout)
        with owner._cond:
            owner._polls_waiting += 1
            owner._cond.notify_all()
        try:
            while True:
                with owner._cond:
                    result = owner._take(offset, allowed if isinstance(allowed, list) else None, limit)
                    if result or owner._stopping.is_set():
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    owner._cond.wait(min(remaining, 0.05))
                if self._peer_closed():
                    owner.abandoned_polls += 1
                    self.close_connection = True
                    return
        finally:
            with owner._cond:
                owner._polls_waiting -= 1
                owner._cond.notify_all()
        self._ok(result)

    def _peer_closed(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
        return False

    def _ok(self, result: Any) -> None:
        self._reply(200, {"ok": True, "result": result})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class TelegramApi:
    def __init__(self, token: str = "123456:TEST-token-abcdef", bot_id: int = 777000111,
                 username: str = "openclaw_test_bot", first_name: str = "OpenClaw Test",
                 first_update_id: int = 500000001) -> None:
        self.token = token
        self.bot_id = bot_id
        self.username = username
        self.first_name = first_name
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._updates: list[dict[str, Any]] = []  # not yet confirmed, in update_id order
        self._next_update_id = first_update_id  # later for the same bot seen through another root
        self._message_ids: dict[Any, int] = {}
        self._errors: list[tuple[str, dict[str, Any]]] = []
        self._polls_waiting = 0
        self.abandoned_polls = 0
        self.requests: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-telegram-api", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> "TelegramApi":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> "TelegramApi":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- the bot's side ----------------------------------------------------------------

    def bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": self.first_name,
                "username": self.username, "can_join_groups": True,
                "can_read_all_group_messages": False, "supports_inline_queries": False}

    # --- queueing what users send ------------------------------------------------------

    def queue_update(self, payload: dict[str, Any]) -> int:
        """Queues an update of any type (`{"message": {...}}`, `{"edited_message": …}`);
        returns its update_id."""
        with self._cond:
            update_id = self._next_update_id
            self._next_update_id += 1
            self._updates.append({"update_id": update_id, **payload})
            self._cond.notify_all()
        return update_id

    def _message(self, chat: dict[str, Any], user: dict[str, Any], text: str | None,
                 reply_to: dict[str, Any] | None, extra: dict[str, Any] | None) -> dict[str, Any]:
        with self._cond:
            message_id = self._message_ids.get(chat["id"], 0) + 1
            self._message_ids[chat["id"]] = message_id
        message: dict[str, Any] = {"message_id": message_id, "from": user, "chat": chat,
                                   "date": int(time.time())}
        if text is not None:
            message["text"] = text
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        message.update(extra or {})
        return message

    @staticmethod
    def user(user_id: int = 4242, username: str | None = "alice", first_name: str = "Alice",
             last_name: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name,
                               "language_code": "en"}
        if last_name:
            out["last_name"] = last_name
        if username:
            out["username"] = username
        return out

    def queue_private(self, text: str | None, user_id: int = 4242, username: str | None = "alice",
                      first_name: str = "Alice", reply_to: dict[str, Any] | None = None,
                      extra: dict[str, Any] | None = None) -> int:
        """A direct message to the bot; `text=None` with `extra` for non-text messages."""
        from_ = self.user(user_id, username, first_name)
        chat = {"id": user_id, "type": "private", "first_name": first_name}
        if username:
            chat["username"] = username
        return self.queue_update({"message": self._message(chat, from_, text, reply_to, extra)})

    def queue_group(self, text: str | None, chat_id: int = -1001234567890, title: str = "Test group",
                    user_id: int = 4242, username: str | None = "alice", first_name: str = "Alice",
                    chat_type: str = "supergroup", reply_to: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> int:
        from_ = self.user(user_id, username, first_name)
        chat = {"id": chat_id, "type": chat_type, "title": title}
        return self.queue_update({"message": self._message(chat, from_, text, reply_to, extra)})

    def bot_message(self, chat_id: int, text: str, message_id: int = 1,
                    chat_type: str = "supergroup") -> dict[str, Any]:
        """A message the bot sent earlier, as `reply_to_message` of a user's reply."""
        return {"message_id": message_id, "from": self.bot_user(),
                "chat": {"id": chat_id, "type": chat_type, "title": "Test group"},
                "date": int(time.time()) - 60, "text": text}

    # --- scripting and inspection --------------------------------------------------------

    def fail_next(self, method: str, code: int, description: str, retry_after: int | None = None) -> None:
        """The next call of `method` answers `{"ok": false, "error_code": code, …}`."""
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        with self._cond:
            self._errors.append((method.lower(), body))

    def pending_updates(self) -> list[int]:
        with self._cond:
            return [u["update_id"] for u in self._updates]

    def wait_poll_pending(self, timeout: float = 5.0) -> bool:
        """Waits until a getUpdates request is being held."""
        with self._cond:
            return self._cond.wait_for(lambda: self._polls_waiting > 0, timeout)

    def wait_sent(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.sent) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"fake Telegram: {len(self.sent)} messages sent, expected {count}")
                self._cond.wait(remaining)
            return list(self.sent)

    def calls(self, method: str) -> list[dict[str, Any]]:
        with self._cond:
            return [r for r in self.requests if r["method"].lower() == method.lower()]

    # --- handler side ------------------------------------------------------------------

    def _record(self, method: str, params: dict[str, Any], token: str | None, port: int = 0) -> None:
        with self._cond:
            self.requests.append({"method": method, "params": params, "token_ok": token == self.token,
                                  "at": time.monotonic(), "port": port})

    def _scripted(self, method: str) -> dict[str, Any] | None:
        with self._cond:
            for i, (name, body) in enumerate(self._errors):
                if name == method.lower():
                    del self._errors[i]
                    return body
        return None

    def _take(self, offset: int | None, allowed: list[str] | None, limit: int) -> list[dict[str, Any]]:
        """Under _cond: confirms (drops) updates below `offset`, returns the rest."""
        if offset is not None and offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if allowed:
            self._updates = [u for u in self._updates if any(k in u for k in allowed)]
        return [json.loads(json.dumps(u)) for u in self._updates[:max(1, min(limit, 100))]]

    def _send_message(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id = params.get("chat_id")
        text = params.get("text")
        if chat_id in (None, ""):
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat_id is empty"}
        if not isinstance(text, str) or not text.strip():
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
        if len(text) > MAX_TEXT:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
        key = int(chat_id) if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit() else chat_id
        with self._cond:
            message_id = self._message_ids.get(key, 0) + 1
            self._message_ids[key] = message_id
            message = {"message_id": message_id, "from": self.bot_user(),
                       "chat": {"id": key, "type": "private" if isinstance(key, int) and key > 0 else "supergroup"},
                       "date": int(time.time()), "text": text}
            self.sent.append({"chat_id": key, "text": text, "message_id": message_id,
                              "reply_parameters": params.get("reply_parameters"),
                              "at": time.monotonic()})
            self._cond.notify_all()
        return 200, {"ok": True, "result": message}
