"""The Telegram channel adapter: Bot API long polling over httpx (actors/http_client.py, so
`HTTPS_PROXY`/`NO_PROXY` apply).

Runs inside the channel process (actors/channels/process.py). One worker thread long-polls
`getUpdates` (fixed 30 s timeout, `allowed_updates: ["message"]`) and reports each text
message through the `Emitter` as an `Inbound` with id `tg:<update_id>`.

Delivery rule (architecture §3): the update offset is the channel's cursor. It is kept in
`<state>/credentials/telegram/<accountId>/state.json` and moves past an update only once the
gateway acknowledged it (`ack("tg:<update_id>")`) together with every earlier emitted one;
updates that carry nothing to deliver (no text) count as acknowledged at once. The adapter
polls with that offset, so Telegram keeps unacknowledged updates queued: they are not emitted
twice within one process lifetime (the adapter remembers what it emitted), and after a restart
they come again. Nothing is lost, and nothing acknowledged is processed twice.

`stop()` shuts down the socket of the pending long poll from the stopping thread, so the
poll thread ends at once. Polls and sends each keep one connection open between requests.
The bot token never appears in a log line or an error message.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from actors.channels.adapter import Adapter, Emitter, chunks
from actors.channels.frames import Inbound
from actors.http_client import Line, load_httpx

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
POLL_TIMEOUT_S = 30  # getUpdates long-poll timeout (cli-config §6.3: fixed, no key)
HTTP_SLACK_S = 10  # the HTTP read timeout of a long poll is this much longer
CALL_TIMEOUT_S = 15  # getMe, sendMessage
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 60.0
UNACKED_REPOLL_S = 0.5  # while emitted updates wait for their ack, poll at most this often
SEND_429_RETRIES = 10


class TelegramError(Exception):
    """The Bot API answered `ok: false` (or something that is not its JSON)."""

    def __init__(self, method: str, status: int, description: str, error_code: int | None = None,
                 retry_after: float | None = None) -> None:
        self.method = method
        self.status = status
        self.error_code = error_code if error_code is not None else status
        self.description = description
        self.retry_after = retry_after
        super().__init__(f"telegram {method} failed: HTTP {status}: {description}")


class TelegramNetworkError(Exception):
    """The request did not get an answer (connection refused, reset, timed out)."""


class _Stopped(Exception):
    """The client was closed by stop() while a request was in flight."""


def resolve_token(config: Any) -> str:
    """botToken, else the stripped contents of tokenFile, else $TELEGRAM_BOT_TOKEN."""
    token = (getattr(config, "bot_token", None) or "").strip()
    if token:
        return token
    token_file = getattr(config, "token_file", None)
    if token_file:
        path = os.path.expanduser(token_file)
        try:
            with open(path, encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as exc:
            raise ValueError(f"telegram: cannot read channels.telegram.tokenFile {path}: "
                             f"{exc.strerror or exc}") from None
        if token:
            return token
        raise ValueError(f"telegram: channels.telegram.tokenFile {path} is empty")
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    raise ValueError("telegram: no bot token: set channels.telegram.botToken or "
                     f"channels.telegram.tokenFile, or the {TOKEN_ENV} environment variable")


class _Client:
    """One keep-alive connection to the Bot API; `close()` from any thread aborts the
    request in flight (shutdown of its socket) and every later one."""

    def __init__(self, api_root: str, token: str) -> None:
        parts = urlsplit(api_root.strip() or "https://api.telegram.org")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"telegram: channels.telegram.apiRoot must be an http(s) URL, got {api_root!r}")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        port = f":{parts.port}" if parts.port else ""
        self._base = f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"  # no user info
        self._token = token
        self._lock = threading.Lock()
        self._line: Line | None = None
        self._busy = 0
        self._closed = threading.Event()

    def call(self, method: str, params: dict[str, Any] | None, timeout: float) -> Any:
        hx = load_httpx()
        with self._lock:
            if self._closed.is_set():
                raise _Stopped()
            if self._line is None:
                self._line = Line(connect_timeout=CALL_TIMEOUT_S, read_timeout=CALL_TIMEOUT_S)
            line = self._line
            self._busy += 1
        try:
            body = json.dumps(params or {}).encode()
            url = f"{self._base}/bot{self._token}/{method}"
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            timeouts = hx.Timeout(timeout, connect=min(timeout, CALL_TIMEOUT_S))
            for attempt in (1, 2):
                if self._closed.is_set():
                    raise _Stopped()
                extensions = line.extensions()
                try:
                    resp = line.client.post(url, content=body, headers=headers, timeout=timeouts,
                                            extensions=extensions)
                except (hx.TransportError, OSError) as exc:
                    if self._closed.is_set():
                        raise _Stopped() from None
                    if not line.connected and attempt == 1 and isinstance(
                            exc, (hx.RemoteProtocolError, hx.ReadError, hx.WriteError)):
                        continue  # the server closed an idle keep-alive connection: once more, fresh
                    raise TelegramNetworkError(f"telegram {method}: {_describe(exc)}") from None
                return _result(method, resp.status_code, resp.content)
            raise AssertionError("unreachable")
        finally:
            with self._lock:
                self._busy -= 1
                release = self._closed.is_set() and self._busy == 0
            if release:
                line.close()

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            line, idle = self._line, self._busy == 0
        if line is not None:
            line.abort()
            if idle:
                line.close()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _result(method: str, status: int, data: bytes) -> Any:
    try:
        payload = json.loads(data or b"null")
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise TelegramError(method, status, f"unexpected answer ({len(data)} bytes, not Bot API JSON)")
    if payload.get("ok") is True and status < 400:
        return payload.get("result")
    params = payload.get("parameters")
    if not isinstance(params, dict):
        params = {}
    retry_after = params.get("retry_after")
    code = payload.get("error_code")
    raise TelegramError(method, status, str(payload.get("description") or "no description"),
                        error_code=code if isinstance(code, int) else None,
                        retry_after=float(retry_after) if isinstance(retry_after, (int, float)) else None)


class TelegramAdapter(Adapter):
    name = "telegram"

    def __init__(self, config: Any, state_dir: str, emit: Emitter, account_id: str = "default") -> None:
        super().__init__(config, state_dir, emit, account_id)
        self._token: str | None = None
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._poll_client: _Client | None = None
        self._send_client: _Client | None = None
        self._thread: threading.Thread | None = None
        self.bot_id: int | None = None
        self.bot_username: str | None = None
        # cursor state, under _cond
        self._offset: int | None = None  # next update_id to fetch (persisted)
        self._pending: dict[int, bool] = {}  # update_id → acked, in order, all >= _offset
        self._high: int | None = None  # highest update_id handled in this process
        self._ack_seq = 0
        self.state_file = os.path.join(state_dir, "credentials", "telegram", account_id, "state.json")

    # --- Adapter interface -------------------------------------------------------------

    def start(self) -> None:
        token = self._resolve()
        api_root = getattr(self.config, "api_root", None) or "https://api.telegram.org"
        self._poll_client = _Client(api_root, token)
        self._send_client = _Client(api_root, token)
        self._offset = self._load_offset()
        self._thread = threading.Thread(target=self._run, name="telegram-poll", daemon=True)
        self._thread.start()

    def send(self, to: str, text: str, reply_to: str | None = None) -> str | None:
        if self._send_client is None:
            raise RuntimeError("telegram: channel not started")
        limit = int(getattr(self.config, "text_chunk_limit", 4096) or 4096)
        last: str | None = None
        for i, part in enumerate(chunks(text, limit)):
            params: dict[str, Any] = {"chat_id": _chat_id(to), "text": part}
            if reply_to and i == 0:
                params["reply_parameters"] = {"message_id": int(reply_to),
                                              "allow_sending_without_reply": True}
            message = self._call_with_flood_wait(self._send_client, "sendMessage", params)
            if isinstance(message, dict) and "message_id" in message:
                last = str(message["message_id"])
        return last

    def ack(self, inbound_id: str) -> None:
        prefix, _, number = inbound_id.partition(":")
        if prefix != "tg" or not number.lstrip("-").isdigit():
            return
        update_id = int(number)
        with self._cond:
            if update_id in self._pending:
                self._pending[update_id] = True
                self._advance()
            self._ack_seq += 1
            self._cond.notify_all()

    def probe(self) -> dict:
        token = self._resolve()
        client = _Client(getattr(self.config, "api_root", None) or "https://api.telegram.org", token)
        try:
            me = client.call("getMe", None, CALL_TIMEOUT_S)
        finally:
            client.close()
        return {"ok": True, "username": (me or {}).get("username"), "id": (me or {}).get("id")}

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        for client in (self._poll_client, self._send_client):
            if client is not None:
                client.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)

    # --- token, state file -------------------------------------------------------------

    def _resolve(self) -> str:
        if self._token is None:
            self._token = resolve_token(self.config)
        return self._token

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text

    def _load_offset(self) -> int | None:
        try:
            with open(self.state_file, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self.emit.log("warning", f"telegram: ignoring unreadable {self.state_file}: {exc}")
            return None
        offset = data.get("offset") if isinstance(data, dict) else None
        return offset if isinstance(offset, int) and not isinstance(offset, bool) else None

    def _save_offset(self, offset: int) -> None:
        directory = os.path.dirname(self.state_file)
        credentials = os.path.join(self.state_dir, "credentials")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        # the dirs this channel owns are private whatever the umask made of them
        for path in (credentials, os.path.dirname(directory), directory):
            try:
                os.chmod(path, 0o700)
            except OSError:
                pass
        tmp = f"{self.state_file}.{os.getpid()}.{threading.get_ident()}.tmp"
        data = json.dumps({"offset": offset, "updatedAt": int(time.time() * 1000)}).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.state_file)

    def _advance(self) -> None:
        """Under _cond: move the offset past the leading run of acknowledged updates."""
        offset = self._offset
        for update_id in list(self._pending):
            if not self._pending[update_id]:
                break
            del self._pending[update_id]
            offset = update_id + 1
        if offset is not None and offset != self._offset:
            self._offset = offset
            try:
                self._save_offset(offset)
            except OSError as exc:
                self.emit.log("error", f"telegram: cannot write {self.state_file}: {exc}")

    # --- polling -----------------------------------------------------------------------

    def _wait(self, seconds: float) -> bool:
        """Sleeps; True when stop() was called meanwhile."""
        return self._stopping.wait(seconds)

    def _call_with_flood_wait(self, client: _Client, method: str, params: dict[str, Any]) -> Any:
        for _ in range(SEND_429_RETRIES):
            try:
                return client.call(method, params, CALL_TIMEOUT_S)
            except _Stopped:
                raise RuntimeError(f"telegram {method}: channel stopping") from None
            except TelegramError as exc:
                if exc.error_code != 429 and exc.status != 429:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else 1.0
                self.emit.log("warning", f"telegram {method}: flood control, retrying in {wait:g} s")
                if self._wait(max(0.0, wait)):
                    raise RuntimeError(f"telegram {method}: channel stopping") from None
        raise TelegramError(method, 429, f"still rate limited after {SEND_429_RETRIES} attempts")

    def _run(self) -> None:
        try:
            self._poll_loop()
        except _Stopped:
            pass
        except Exception as exc:  # noqa: BLE001 - report, the host restarts the process
            if not self._stopping.is_set():
                self.emit.log("error", self._redact(f"telegram poll thread failed: {_describe(exc)}"))
                self.emit.status(False, error=self._redact(_describe(exc)))

    def _poll_loop(self) -> None:
        client = self._poll_client
        assert client is not None
        backoff = BACKOFF_START_S
        while not self._stopping.is_set():
            try:
                me = client.call("getMe", None, CALL_TIMEOUT_S) or {}
                self.bot_id = me.get("id")
                self.bot_username = me.get("username")
                break
            except (TelegramError, TelegramNetworkError) as exc:
                error = self._redact(str(exc))
                self.emit.status(False, error=error)
                self.emit.log("warning", f"{error}; retrying in {backoff:g} s")
                if self._wait(backoff):
                    return
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        if self._stopping.is_set():
            return
        self.emit.status(True, username=self.bot_username, botId=self.bot_id)
        connected = True
        backoff = BACKOFF_START_S
        while not self._stopping.is_set():
            with self._cond:
                offset = self._offset
                ack_seq = self._ack_seq
            params: dict[str, Any] = {"timeout": POLL_TIMEOUT_S, "allowed_updates": ["message"]}
            if offset is not None:
                params["offset"] = offset
            try:
                updates = client.call("getUpdates", params, POLL_TIMEOUT_S + HTTP_SLACK_S)
            except (TelegramError, TelegramNetworkError) as exc:
                if self._stopping.is_set():
                    return
                wait = backoff
                if isinstance(exc, TelegramError) and exc.retry_after is not None:
                    wait = exc.retry_after
                else:
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                error = self._redact(str(exc))
                if connected:
                    self.emit.status(False, error=error)
                    connected = False
                self.emit.log("warning", f"{error}; retrying in {wait:g} s")
                if self._wait(wait):
                    return
                continue
            backoff = BACKOFF_START_S
            if not connected:
                self.emit.status(True, username=self.bot_username, botId=self.bot_id)
                connected = True
            fresh = self._handle(updates if isinstance(updates, list) else [])
            if not fresh:
                with self._cond:
                    if any(not acked for acked in self._pending.values()):
                        # Telegram hands the unacknowledged updates back at once: wait for an ack
                        self._cond.wait_for(partial(self._acked_since, ack_seq), UNACKED_REPOLL_S)

    def _acked_since(self, ack_seq: int) -> bool:
        """Under _cond: an ack came after `ack_seq`, or stop() was called."""
        return self._stopping.is_set() or self._ack_seq != ack_seq

    def _handle(self, updates: list[Any]) -> int:
        """Emits the updates not seen before in this process; returns how many were new."""
        fresh = 0
        for update in updates:
            if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
                continue
            update_id = update["update_id"]
            with self._cond:
                if (self._high is not None and update_id <= self._high) or \
                        (self._offset is not None and update_id < self._offset):
                    continue
                self._high = update_id
                inbound = self._inbound(update_id, update.get("message"))
                self._pending[update_id] = inbound is None  # nothing to deliver: acked now
                if inbound is None:
                    self._advance()
            fresh += 1
            if inbound is not None:
                self.emit.inbound(inbound)
        return fresh

    def _inbound(self, update_id: int, message: Any) -> Inbound | None:
        if not isinstance(message, dict):
            return None
        text = message.get("text")
        chat = message.get("chat")
        if not isinstance(text, str) or not text or not isinstance(chat, dict) or "id" not in chat:
            return None
        sender = message.get("from") if isinstance(message.get("from"), dict) else None
        sender_chat = message.get("sender_chat") if isinstance(message.get("sender_chat"), dict) else None
        if sender is not None:
            sender_id = str(sender.get("id"))
            sender_name = sender.get("username") or sender.get("first_name")
        elif sender_chat is not None:
            sender_id = str(sender_chat.get("id"))
            sender_name = sender_chat.get("username") or sender_chat.get("title")
        else:
            sender_id, sender_name = str(chat["id"]), None
        mentioned = False
        username = self.bot_username
        if username:
            pattern = re.compile(r"@" + re.escape(username) + r"\b", re.IGNORECASE)
            if pattern.search(text):
                mentioned = True
                stripped = re.sub(r"\s{2,}", " ", pattern.sub("", text)).strip()
                text = stripped or text
        reply = message.get("reply_to_message")
        if isinstance(reply, dict) and isinstance(reply.get("from"), dict):
            author = reply["from"]
            if (self.bot_id is not None and author.get("id") == self.bot_id) or \
                    (username and (author.get("username") or "").lower() == username.lower()):
                mentioned = True
        date = message.get("date")
        return Inbound(
            id=f"tg:{update_id}",
            sender=sender_id,
            sender_name=sender_name if isinstance(sender_name, str) else None,
            chat=str(chat["id"]),
            kind="direct" if chat.get("type") == "private" else "group",
            text=text,
            mentioned=mentioned,
            ts=int(date) * 1000 if isinstance(date, (int, float)) else int(time.time() * 1000),
        )


def _chat_id(to: str) -> int | str:
    """Numeric chat ids go as numbers, `@channelusername` as is; a `tg:`/`telegram:` prefix
    (as sender ids may carry) is dropped."""
    target = to.strip()
    for prefix in ("telegram:", "tg:"):
        if target.lower().startswith(prefix):
            target = target[len(prefix):]
    return int(target) if re.fullmatch(r"-?\d+", target) else target
