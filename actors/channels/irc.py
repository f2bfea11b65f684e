"""The IRC channel adapter: one client connection over stdlib `socket` / `ssl`.

Runs inside the channel process (actors/channels/process.py). `start()` returns at once; one
connection thread connects (TLS unless `tls: false`; port 6697 with TLS, else 6667), registers
(`PASS` when a server password resolves, `NICK`, `USER`; a nick in use gets a `_` appended),
identifies to NickServ after `001` when enabled, joins every configured channel, answers
`PING`, and reports each `PRIVMSG` through the `Emitter` as an `Inbound`:

- a message to our nick is `kind="direct"`, `chat` the sender's nick;
- a message to a channel is `kind="group"`, `chat` the channel, `mentioned` when the text starts
  with `<nick>:` / `<nick>,` (that prefix is stripped) or names our nick as a word.

`sender` is `nick!user@host` (what the access policy's glob masks match). When the server goes
away the thread reports `status(False, error=...)` and reconnects with backoff (1 s doubling to
60 s, back to 1 s after a registration succeeded), then joins the channels again.

IRC has no cursor and no message ids: `ack()` does nothing, and an inbound message that the
channel process did not deliver before a crash is gone (the network does not keep it).

`send(to, text)` writes one `PRIVMSG` per part: the text is cut on newlines (an IRC line cannot
hold CR/LF), then with `chunks()` at `textChunkLimit`, then so that each line, with the prefix
the server puts in front of it when relaying, fits the 512-byte IRC line. Lines are paced (a
burst of 5, then one every 0.5 s) so the server's flood protection does not drop us.

`stop()` sends `QUIT` and shuts the socket down, so the connection thread ends at once; nothing
reconnects afterwards. Passwords never appear in a log line or an error message.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import ssl
import threading
import time
from typing import Any, Literal

from actors.channels.adapter import Adapter, Emitter, chunks
from actors.channels.frames import Inbound
from actors.sockets import shutdown_socket

CONNECT_TIMEOUT_S = 15.0
REGISTER_TIMEOUT_S = 30.0  # connected but no 001 by then: try again
TICK_S = 1.0  # socket read timeout: how often the thread checks its timers
IDLE_PING_S = 90.0  # nothing heard for this long: we PING the server
DEAD_S = 150.0  # nothing heard for this long: the connection is dead
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 60.0
LINE_MAX = 512  # bytes, CRLF included (RFC 1459 §2.3)
HOST_MAX = 63  # assumed length of our host in the relay prefix until the server shows it
FLOOD_BURST = 5  # lines sent at once ...
FLOOD_INTERVAL_S = 0.5  # ... then one per this
STOP_JOIN_S = 2.0

CHANNEL_PREFIXES = "#&+!"
_NICK_CHARS = r"A-Za-z0-9\-\[\]\\`^{}|_"
_FORMATTING = re.compile(r"\x03(?:\d{1,2}(?:,\d{1,2})?)?|[\x02\x0f\x16\x1d\x1e\x1f]")


class IrcError(Exception):
    """Something an IRC server said or did that ends the connection attempt."""


class IrcNotConnected(IrcError):
    """send() while the adapter is not registered with the server."""


def _read_secret(path: str | None, what: str) -> str | None:
    if not path:
        return None
    full = os.path.expanduser(path)
    try:
        with open(full, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError as exc:
        raise ValueError(f"irc: cannot read {what} {full}: {exc.strerror or exc}") from None


def server_password(config: Any) -> str | None:
    """`password`, else the stripped contents of `passwordFile`."""
    return (getattr(config, "password", None) or None) or \
        _read_secret(getattr(config, "password_file", None), "channels.irc.passwordFile")


def nickserv_password(config: Any) -> str | None:
    """The NickServ password when identification is on (`enabled`, by default on iff a
    password resolves from `nickserv.password` / `nickserv.passwordFile`), else None."""
    ns = getattr(config, "nickserv", None)
    if ns is None or ns.enabled is False:
        return None
    password = (ns.password or None) or _read_secret(ns.password_file,
                                                     "channels.irc.nickserv.passwordFile")
    if ns.enabled and not password:
        raise ValueError("irc: nickserv.enabled is true but no nickserv.password or "
                         "nickserv.passwordFile gives a password")
    return password


def parse_line(line: str) -> tuple[dict[str, str], str, str, list[str]]:
    """One IRC line → (tags, prefix, COMMAND, params); the trailing parameter is the last."""
    tags: dict[str, str] = {}
    prefix = ""
    if line.startswith("@"):
        raw, _, line = line.partition(" ")
        for item in raw[1:].split(";"):
            key, _, value = item.partition("=")
            tags[key] = value
        line = line.lstrip(" ")
    if line.startswith(":"):
        prefix, _, line = line[1:].partition(" ")
        line = line.lstrip(" ")
    trailing = None
    if " :" in line:
        line, trailing = line.split(" :", 1)
    elif line.startswith(":"):
        line, trailing = "", line[1:]
    parts = line.split()
    command = parts[0].upper() if parts else ""
    params = parts[1:]
    if trailing is not None:
        params.append(trailing)
    return tags, prefix, command, params


def split_prefix(prefix: str) -> tuple[str, str, str]:
    """`nick!user@host` → (nick, user, host); a server name comes back as the nick."""
    nick, _, rest = prefix.partition("!")
    user, _, host = rest.partition("@")
    return nick, user, host


def fit_bytes(text: str, limit: int) -> list[str]:
    """`text` cut into parts whose UTF-8 encoding is at most `limit` bytes, at a space when
    one is in the second half of the part, never inside a character."""
    limit = max(4, limit)
    out: list[str] = []
    rest = text
    while len(rest.encode("utf-8")) > limit:
        # the longest prefix of `rest` that fits
        size, end = 0, 0
        for ch in rest:
            n = len(ch.encode("utf-8"))
            if size + n > limit:
                break
            size += n
            end += 1
        cut = rest.rfind(" ", 0, end + 1)
        if cut < end // 2:
            cut = end
        part, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if part:
            out.append(part)
    if rest:
        out.append(rest)
    return out


class IrcAdapter(Adapter):
    name = "irc"

    def __init__(self, config: Any, state_dir: str, emit: Emitter, account_id: str = "default") -> None:
        super().__init__(config, state_dir, emit, account_id)
        if not config.host:
            raise ValueError("irc: channels.irc.host is required")
        self._host: str = config.host
        self._tls: bool = bool(config.tls)
        self._port: int = config.port or (6697 if self._tls else 6667)
        self._want_nick: str = config.nick
        self._user: str = config.username or config.nick
        self._password = server_password(config)
        self._ns_password = nickserv_password(config)
        self._channels: list[str] = list(config.channels)
        self._limit: int = config.text_chunk_limit

        self._stopped = threading.Event()
        self._lock = threading.Lock()  # guards the connection fields below
        self._write_lock = threading.Lock()  # one writer at a time on the socket
        self._sock: socket.socket | None = None
        self._registered = False
        self._nick = self._want_nick
        self._server: str | None = None
        self._self_prefix: str | None = None  # our nick!user@host as the server relays it
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._out_ids = itertools.count(1)
        self._tokens = float(FLOOD_BURST)
        self._tokens_at = time.monotonic()

    # --- Adapter interface ------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="irc-connection", daemon=True)
        self._thread.start()

    def send(self, to: str, text: str) -> str | None:
        target = (to or "").strip()
        if not target or any(c in target for c in " ,\r\n\0"):
            raise ValueError(f"irc: invalid target {to!r}")
        with self._lock:
            if not self._registered or self._sock is None:
                raise IrcNotConnected(f"irc: not connected to {self._host}:{self._port}")
            head = f"PRIVMSG {target} :"
            relay_prefix = self._self_prefix or \
                f"{self._nick}!{self._user[:10]}@{'x' * HOST_MAX}"
        room = LINE_MAX - 2 - len(f":{relay_prefix} ".encode()) - len(head.encode())
        parts = [piece
                 for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
                 if line.strip()
                 for chunk in chunks(line, self._limit)
                 for piece in fit_bytes(chunk.replace("\0", ""), room)]
        last: str | None = None
        for part in parts:
            self._pace()
            self._write(head + part)
            last = f"irc:out:{next(self._out_ids)}"
        return last

    def ack(self, inbound_id: str) -> None:
        """IRC has no cursor."""

    def probe(self) -> dict:
        with self._lock:
            return {"connected": self._registered, "nick": self._nick if self._registered else None,
                    "server": self._server}

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            sock, registered = self._sock, self._registered
        if sock is not None:
            if registered:
                try:
                    self._write("QUIT :stopping", timeout=0.5)
                except (OSError, IrcError):
                    pass
            shutdown_socket(sock)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_JOIN_S)

    # --- connection thread ------------------------------------------------------------

    def _run(self) -> None:
        backoff = BACKOFF_START_S
        while not self._stopped.is_set():
            registered = False
            error: str | None = None
            try:
                registered = self._session()
            except IrcError as exc:
                error = str(exc)
            except OSError as exc:  # ssl.SSLError included
                error = f"{self._host}:{self._port}: {exc.strerror or exc}"
            except Exception as exc:  # noqa: BLE001 - keep the connection thread alive
                error = f"irc: {type(exc).__name__}: {exc}"
            with self._lock:
                sock, self._sock = self._sock, None
                was_registered = self._registered or registered
                self._registered = False
                self._self_prefix = None
            if sock is not None:
                shutdown_socket(sock)
            if self._stopped.is_set():
                break
            if was_registered:
                backoff = BACKOFF_START_S
            error = error or "server closed the connection"
            self.emit.status(False, error=error, server=self._server, retry_in_s=backoff)
            self.emit.log("warning", f"irc: {error}; reconnecting in {backoff:g} s")
            if self._stopped.wait(backoff):
                break
            backoff = min(backoff * 2, BACKOFF_MAX_S)
        with self._lock:
            self._registered = False

    def _connect(self) -> socket.socket:
        raw = socket.create_connection((self._host, self._port), timeout=CONNECT_TIMEOUT_S)
        sock: socket.socket
        try:
            if self._tls:
                ctx = ssl.create_default_context()
                sock = ctx.wrap_socket(raw, server_hostname=self._host)
            else:
                sock = raw
            sock.settimeout(TICK_S)
            return sock
        except BaseException:
            raw.close()
            raise

    def _session(self) -> bool:
        """One connection, from connect to loss. Returns whether registration succeeded;
        raises with the reason the connection ended (a clean EOF returns)."""
        sock = self._connect()
        with self._lock:
            if self._stopped.is_set():
                sock.close()
                return False
            self._sock = sock
            self._nick = self._want_nick
        if self._password:
            self._write(f"PASS {self._password}")
        self._write(f"NICK {self._nick}")
        self._write(f"USER {self._user} 0 * :{self.config.realname}")
        started = last_rx = time.monotonic()
        pinged = False
        buf = b""
        registered = False
        while not self._stopped.is_set():
            try:
                data = sock.recv(4096)
            except (socket.timeout, TimeoutError):
                now = time.monotonic()
                if not registered and now - started > REGISTER_TIMEOUT_S:
                    raise IrcError(f"{self._host}:{self._port}: no registration after "
                                   f"{REGISTER_TIMEOUT_S:g} s") from None
                if now - last_rx > DEAD_S:
                    raise IrcError(f"{self._host}:{self._port}: no answer for {DEAD_S:g} s") from None
                if now - last_rx > IDLE_PING_S and not pinged:
                    self._write(f"PING :{self._server or self._host}")
                    pinged = True
                continue
            except ssl.SSLWantReadError:
                continue
            if not data:
                if self._stopped.is_set():
                    return registered
                raise IrcError(f"{self._host}:{self._port}: server closed the connection")
            last_rx, pinged = time.monotonic(), False
            buf += data
            *lines, buf = buf.split(b"\n")
            if len(buf) > 64 * 1024:
                raise IrcError(f"{self._host}:{self._port}: line too long")
            for raw in lines:
                line = self._decode(raw.rstrip(b"\r"))
                if line and self._handle(line):
                    registered = True
        return registered

    @staticmethod
    def _decode(raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")

    def _handle(self, line: str) -> bool:
        """One line from the server; True when it completed the registration."""
        tags, prefix, command, params = parse_line(line)
        if command == "PING":
            self._write(f"PONG :{params[-1] if params else ''}")
        elif command == "001":
            return self._on_welcome(prefix, params)
        elif command == "433":  # nick in use (during registration)
            with self._lock:
                registered = self._registered
                if not registered:
                    self._nick = self._nick + "_"
                nick = self._nick
            if not registered:
                self._write(f"NICK {nick}")
        elif command in ("432", "464", "465"):  # erroneous nick, bad password, banned
            raise IrcError(f"{self._host}:{self._port}: {command} {params[-1] if params else ''}")
        elif command == "ERROR":
            raise IrcError(f"{self._host}:{self._port}: ERROR {params[-1] if params else ''}")
        elif command == "NICK":
            nick, user, host = split_prefix(prefix)
            with self._lock:
                if params and nick.lower() == self._nick.lower():
                    self._nick = params[0]
                    if user and host:
                        self._self_prefix = f"{params[0]}!{user}@{host}"
        elif command == "JOIN":
            nick, user, host = split_prefix(prefix)
            with self._lock:
                if user and host and nick.lower() == self._nick.lower():
                    self._self_prefix = prefix
        elif command == "PRIVMSG" and len(params) >= 2:
            self._on_privmsg(tags, prefix, params[0], params[-1])
        return False

    def _on_welcome(self, prefix: str, params: list[str]) -> bool:
        with self._lock:
            if params:
                self._nick = params[0]
            self._server = prefix or self._host
            self._registered = True
            nick, server = self._nick, self._server
        if self._ns_password:
            service = self.config.nickserv.service
            self._write(f"PRIVMSG {service} :IDENTIFY {self._ns_password}")
        for channel in self._channels:
            self._write(f"JOIN {channel}")
        self.emit.status(True, nick=nick, server=server)
        self.emit.log("info", f"irc: registered as {nick} on {server}")
        return True

    def _on_privmsg(self, tags: dict[str, str], prefix: str, target: str, text: str) -> None:
        nick, _, _ = split_prefix(prefix)
        with self._lock:
            me = self._nick
        if not nick or nick.lower() == me.lower():
            return
        if text.startswith("\x01"):  # CTCP: ACTION becomes its text, the rest is ignored
            body = text.strip("\x01")
            if not body.upper().startswith("ACTION "):
                return
            text = body[7:]
        text = _FORMATTING.sub("", text)
        kind: Literal["direct", "group"]
        if target[:1] in CHANNEL_PREFIXES:
            kind, chat = "group", target
            mentioned, text = self._mention(text, me)
        else:
            kind, chat, mentioned = "direct", nick, False
        if not text.strip():
            return
        now = time.time()
        self.emit.inbound(Inbound(
            id=f"irc:{next(self._ids)}:{int(now * 1000)}", sender=prefix, sender_name=nick,
            chat=chat, kind=kind, text=text, mentioned=mentioned, ts=self._ts(tags, now)))

    @staticmethod
    def _mention(text: str, me: str) -> tuple[bool, str]:
        lead = re.match(rf"\s*{re.escape(me)}\s*[:,]\s*", text, re.IGNORECASE)
        if lead:
            return True, text[lead.end():]
        word = re.search(rf"(?<![{_NICK_CHARS}]){re.escape(me)}(?![{_NICK_CHARS}])", text,
                         re.IGNORECASE)
        return word is not None, text

    @staticmethod
    def _ts(tags: dict[str, str], now: float) -> int:
        stamp = tags.get("time")  # IRCv3 server-time, when the server sends it
        if stamp:
            try:
                from datetime import datetime
                return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
            except ValueError:
                pass
        return int(now * 1000)

    # --- writing ----------------------------------------------------------------------

    def _write(self, line: str, timeout: float | None = None) -> None:
        data = line.replace("\r", " ").replace("\n", " ").encode("utf-8")[:LINE_MAX - 2] + b"\r\n"
        with self._write_lock:
            sock = self._sock
            if sock is None:
                raise IrcNotConnected(f"irc: not connected to {self._host}:{self._port}")
            try:
                if timeout is not None:
                    sock.settimeout(timeout)
                sock.sendall(data)
            except OSError as exc:
                raise IrcNotConnected(f"irc: write to {self._host}:{self._port} failed: "
                                      f"{exc.strerror or exc}") from None

    def _pace(self) -> None:
        """Token bucket: FLOOD_BURST lines at once, then one per FLOOD_INTERVAL_S."""
        while True:
            now = time.monotonic()
            self._tokens = min(float(FLOOD_BURST),
                               self._tokens + (now - self._tokens_at) / FLOOD_INTERVAL_S)
            self._tokens_at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            if self._stopped.wait((1 - self._tokens) * FLOOD_INTERVAL_S):
                raise IrcNotConnected("irc: stopped")

