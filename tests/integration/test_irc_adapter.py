"""The IRC adapter on its own against a real IRC server (ngircd on an ephemeral loopback port),
with a second raw-socket IRC client as the human on the other side."""

from __future__ import annotations

import queue
import re
import socket
import subprocess
import threading
import time
from typing import Any, Callable

import pytest

from actors.channels.frames import Inbound
from actors.channels.irc import LINE_MAX, IrcAdapter, IrcNotConnected
from actors.config.schema import IrcChannel, NickServ
from tests.fakes.ircd import NGIRCD_MISSING, SERVER_NAME, Ngircd, ngircd_available
from tests.needs import require_tool


@pytest.fixture(autouse=True)
def _ngircd_present() -> None:
    require_tool(ngircd_available(), NGIRCD_MISSING)


BOT = "clawbot"


# --- the emitter: records what the adapter reports ----------------------------------------

class Recorder:
    """Collects emitter calls, in order, from any thread."""

    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()
        self.seen: list[tuple] = []

    def inbound(self, message: Inbound) -> None:
        self.events.put(("inbound", message))

    def status(self, connected: bool, error: str | None = None, **detail: Any) -> None:
        self.events.put(("status", connected, error, detail))

    def log(self, level: str, message: str) -> None:
        self.events.put(("log", level, message))

    def wait(self, pred: Callable[[tuple], bool], timeout: float = 10.0) -> tuple:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching event within {timeout}s; saw {self.seen}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(event)
            if pred(event):
                return event

    def inbound_msg(self, timeout: float = 10.0) -> Inbound:
        return self.wait(lambda e: e[0] == "inbound", timeout)[1]

    def connected(self, timeout: float = 10.0) -> dict:
        return self.wait(lambda e: e[0] == "status" and e[1], timeout)[3]

    def disconnected(self, timeout: float = 10.0) -> str:
        return self.wait(lambda e: e[0] == "status" and not e[1], timeout)[2]


# --- the human: a raw IRC client ------------------------------------------------------------

class Peer:
    def __init__(self, port: int, nick: str, password: str | None = None) -> None:
        self.nick = nick
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.raw: list[bytes] = []  # every line received, CRLF included
        if password:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :test peer")
        self.expect(lambda p, c, a: c == "001")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def line(self) -> tuple[str, str, list[str]]:
        while b"\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("server closed the connection")
            self.buf += data
        raw, self.buf = self.buf.split(b"\n", 1)
        self.raw.append(raw + b"\n")
        text = raw.rstrip(b"\r").decode()
        prefix = ""
        if text.startswith(":"):
            prefix, text = text[1:].split(" ", 1)
        head, _, trailing = text.partition(" :")
        args = head.split()
        if _:
            args.append(trailing)
        if args[0] == "PING":
            self.send(f"PONG :{args[-1]}")
        return prefix, args[0], args[1:]

    def expect(self, pred: Callable[[str, str, list[str]], bool], timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                prefix, command, args = self.line()
            except socket.timeout:
                break
            if pred(prefix, command, args):
                return prefix, command, args
        raise AssertionError(f"{self.nick}: expected line not received within {timeout}s")

    def join(self, channel: str) -> None:
        self.send(f"JOIN {channel}")
        self.expect(lambda p, c, a: c == "366" and a[1] == channel)

    def wait_member(self, channel: str, nick: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send(f"NAMES {channel}")
            _, _, args = self.expect(lambda p, c, a: c == "353" and a[-2] == channel)
            if nick in [n.lstrip("@+") for n in args[-1].split()]:
                return
            time.sleep(0.1)
        raise AssertionError(f"{nick} did not join {channel}")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture
def ircd(tmp_path):
    server = Ngircd(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def make(tmp_path):
    """make(port, **config) → (adapter, recorder); every adapter and peer is stopped."""
    adapters: list[IrcAdapter] = []

    def _make(port: int, **config: Any) -> tuple[IrcAdapter, Recorder]:
        config.setdefault("nick", BOT)
        config.setdefault("tls", False)
        rec = Recorder()
        adapter = IrcAdapter(IrcChannel(host="127.0.0.1", port=port, **config), str(tmp_path), rec)
        adapters.append(adapter)
        adapter.start()
        return adapter, rec

    yield _make
    for adapter in adapters:
        adapter.stop()


@pytest.fixture
def peers():
    made: list[Peer] = []

    def _peer(port: int, nick: str = "alice", password: str | None = None) -> Peer:
        peer = Peer(port, nick, password)
        made.append(peer)
        return peer

    yield _peer
    for peer in made:
        peer.close()


# --- tests ----------------------------------------------------------------------------------

def test_registers_and_reports_connected(ircd, make):
    adapter, rec = make(ircd.port)
    assert rec.connected() == {"nick": BOT, "server": SERVER_NAME}
    assert adapter.probe() == {"connected": True, "nick": BOT, "server": SERVER_NAME}
    assert adapter.name == "irc"
    adapter.ack("irc:1:0")  # no cursor: a no-op


def test_direct_message_in_and_reply_out(ircd, make, peers):
    adapter, rec = make(ircd.port)
    rec.connected()
    alice = peers(ircd.port, "alice")
    alice.send(f"PRIVMSG {BOT} :hello bot, how are you?")
    msg = rec.inbound_msg()
    assert msg.kind == "direct"
    assert msg.chat == "alice"
    assert msg.sender_name == "alice"
    assert re.fullmatch(r"alice!~?alice@127\.0\.0\.1", msg.sender), msg.sender
    assert msg.text == "hello bot, how are you?"
    assert msg.mentioned is False
    assert msg.id.startswith("irc:") and abs(msg.ts - time.time() * 1000) < 10_000

    alice.send(f"PRIVMSG {BOT} :again")
    second = rec.inbound_msg()
    assert second.text == "again" and second.id != msg.id

    adapter.send("alice", "fine, thanks")
    prefix, _, args = alice.expect(lambda p, c, a: c == "PRIVMSG")
    assert prefix.startswith(f"{BOT}!") and args == ["alice", "fine, thanks"]


def test_channel_messages_with_and_without_mention(ircd, make, peers):
    adapter, rec = make(ircd.port, channels=["#room", "#other"])
    rec.connected()
    alice = peers(ircd.port, "alice")
    alice.join("#room")
    alice.wait_member("#room", BOT)

    alice.send("PRIVMSG #room :just chatting here")
    msg = rec.inbound_msg()
    assert (msg.kind, msg.chat, msg.text, msg.mentioned) == ("group", "#room", "just chatting here", False)

    alice.send(f"PRIVMSG #room :{BOT}: what is 2+2?")
    msg = rec.inbound_msg()
    assert (msg.kind, msg.chat, msg.text, msg.mentioned) == ("group", "#room", "what is 2+2?", True)
    assert msg.sender_name == "alice"

    alice.send(f"PRIVMSG #room :{BOT.upper()}, hi")
    msg = rec.inbound_msg()
    assert (msg.text, msg.mentioned) == ("hi", True)

    alice.send(f"PRIVMSG #room :ask {BOT} about it")
    msg = rec.inbound_msg()
    assert (msg.text, msg.mentioned) == (f"ask {BOT} about it", True)

    alice.send(f"PRIVMSG #room :{BOT}s are not {BOT}_x mentions")
    msg = rec.inbound_msg()
    assert msg.mentioned is False

    adapter.send("#room", "hello room")
    _, _, args = alice.expect(lambda p, c, a: c == "PRIVMSG")
    assert args == ["#room", "hello room"]


def test_long_multiline_reply_arrives_in_order_within_line_limit(ircd, make, peers):
    adapter, rec = make(ircd.port, channels=["#room"], text_chunk_limit=1000)
    rec.connected()
    alice = peers(ircd.port, "alice")
    lines = [
        "first line",
        "",
        " ".join(f"word{i}" for i in range(300)),  # ~2,700 chars: cut at 1000 and by bytes
        "é" * 400 + "ü" * 300,  # 1,400 bytes of two-byte characters, no spaces
        "last line\r\nafter a CRLF",
    ]
    text = "\n".join(lines)
    started = time.monotonic()
    adapter.send("alice", text)
    sent_s = time.monotonic() - started
    got: list[str] = []
    expected = text.replace("\r\n", "\n").replace("\n", "").replace(" ", "")
    while "".join(got).replace(" ", "") != expected:
        _, _, args = alice.expect(lambda p, c, a: c == "PRIVMSG")
        assert args[0] == "alice"
        got.append(args[1])
        assert len("".join(got).replace(" ", "")) <= len(expected), got
    assert got[0] == "first line" and got[-2:] == ["last line", "after a CRLF"]
    assert len(got) > 6
    relayed = [raw for raw in alice.raw if b" PRIVMSG " in raw]
    assert len(relayed) == len(got)
    assert max(len(raw) for raw in relayed) <= LINE_MAX
    assert all(b"\r" not in raw[:-2] for raw in relayed)
    # paced: a burst of 5, then one line per 0.5 s
    assert sent_s >= (len(got) - 5) * 0.5 - 0.2


def test_nick_in_use_gets_an_underscore(ircd, make, peers):
    peers(ircd.port, BOT)
    adapter, rec = make(ircd.port)
    assert rec.connected()["nick"] == BOT + "_"
    alice = peers(ircd.port, "alice")
    alice.send(f"PRIVMSG {BOT}_ :you there?")
    msg = rec.inbound_msg()
    assert msg.kind == "direct" and msg.text == "you there?"
    assert adapter.probe()["nick"] == BOT + "_"


def test_nickserv_identify_after_registration(ircd, make, peers):
    service = peers(ircd.port, "NickServ")
    adapter, rec = make(ircd.port, nickserv=NickServ(password="s3cret"))
    rec.connected()
    prefix, _, args = service.expect(lambda p, c, a: c == "PRIVMSG")
    assert prefix.startswith(f"{BOT}!")
    assert args == ["NickServ", "IDENTIFY s3cret"]


def test_nickserv_password_file_and_disabled(ircd, make, peers, tmp_path):
    pw = tmp_path / "ns.txt"
    pw.write_text("from-file\n")
    service = peers(ircd.port, "Services")
    _, rec = make(ircd.port, nick="bot1", nickserv=NickServ(password_file=str(pw), service="Services"))
    rec.connected()
    _, _, args = service.expect(lambda p, c, a: c == "PRIVMSG")
    assert args == ["Services", "IDENTIFY from-file"]

    _, rec2 = make(ircd.port, nick="bot2", nickserv=NickServ(password="x", service="Services",
                                                               enabled=False))
    rec2.connected()
    service.send("PRIVMSG bot2 :ping")  # anything from bot2 would arrive before this echo
    with pytest.raises(AssertionError):
        service.expect(lambda p, c, a: c == "PRIVMSG" and p.startswith("bot2!"), timeout=1.0)


def test_server_password(tmp_path, make, peers):
    server = Ngircd(tmp_path, password="letmein").start()
    try:
        pwfile = tmp_path / "pass.txt"
        pwfile.write_text("letmein\n")
        adapter, rec = make(server.port, password_file=str(pwfile))
        assert rec.connected()["nick"] == BOT
        alice = peers(server.port, "alice", password="letmein")
        alice.send(f"PRIVMSG {BOT} :hi")
        assert rec.inbound_msg().text == "hi"

        wrong, rec_wrong = make(server.port, nick="intruder", password="nope")
        error = rec_wrong.disconnected()
        assert error and "nope" not in error
        assert wrong.probe()["connected"] is False
    finally:
        server.stop()


def test_ping_pong_keeps_the_connection(tmp_path, make):
    server = Ngircd(tmp_path, ping_timeout=2, pong_timeout=2).start()
    try:
        adapter, rec = make(server.port)
        rec.connected()
        time.sleep(7)  # the server pings every 2 s idle and drops a client that does not answer
        assert adapter.probe()["connected"] is True
        events = []
        while not rec.events.empty():
            events.append(rec.events.get())
        assert not [e for e in events if e[0] == "status" and not e[1]], events
        adapter.send(BOT, "still here")  # to ourselves: the server accepts it
    finally:
        server.stop()


def test_server_restart_reconnects_and_rejoins(ircd, make, peers):
    adapter, rec = make(ircd.port, channels=["#room"])
    rec.connected()
    alice = peers(ircd.port, "alice")
    alice.join("#room")
    alice.wait_member("#room", BOT)
    alice.send(f"PRIVMSG #room :{BOT}: before")
    assert rec.inbound_msg().text == "before"

    ircd.kill()
    error = rec.disconnected()
    assert error
    assert adapter.probe()["connected"] is False
    with pytest.raises(IrcNotConnected):
        adapter.send("#room", "nobody hears this")

    ircd.start()
    assert rec.connected(timeout=15)["nick"] == BOT
    alice2 = peers(ircd.port, "alice")
    alice2.join("#room")
    alice2.wait_member("#room", BOT)
    alice2.send(f"PRIVMSG #room :{BOT}: after")
    msg = rec.inbound_msg()
    assert (msg.text, msg.chat, msg.mentioned) == ("after", "#room", True)
    adapter.send("#room", "back again")
    _, _, args = alice2.expect(lambda p, c, a: c == "PRIVMSG")
    assert args == ["#room", "back again"]


def test_reconnect_backoff_while_server_is_down(tmp_path, make):
    server = Ngircd(tmp_path)  # configured, not started: connections are refused
    adapter, rec = make(server.port)
    first = rec.disconnected()
    assert "refused" in first.lower()
    started = time.monotonic()
    rec.disconnected(timeout=5)  # second attempt after 1 s
    rec.disconnected(timeout=5)  # third after 2 s more
    assert time.monotonic() - started >= 2.5
    server.start()
    try:
        assert rec.connected(timeout=10)["nick"] == BOT
    finally:
        server.stop()


def test_stop_sends_quit_and_ends_threads_quickly(ircd, make, peers):
    adapter, rec = make(ircd.port, channels=["#room"])
    rec.connected()
    alice = peers(ircd.port, "alice")
    alice.join("#room")
    alice.wait_member("#room", BOT)
    started = time.monotonic()
    adapter.stop()
    assert time.monotonic() - started < 1.0
    assert not [t for t in threading.enumerate() if t.name == "irc-connection" and t.is_alive()]
    _, command, _ = alice.expect(lambda p, c, a: c == "QUIT" and p.startswith(f"{BOT}!"))
    assert command == "QUIT"
    with pytest.raises(IrcNotConnected):
        adapter.send("alice", "too late")
    time.sleep(1.5)  # no reconnect after stop
    assert adapter.probe()["connected"] is False
    assert all(e[0] != "status" or not e[1] for e in list(rec.events.queue))


def test_tls(tmp_path, make, peers, monkeypatch):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    key.chmod(0o644)
    server = Ngircd(tmp_path, tls_cert=cert, tls_key=key).start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test certificate
        adapter, rec = make(server.tls_port, tls=True)
        assert rec.connected()["server"] == SERVER_NAME
        alice = peers(server.port, "alice")
        alice.send(f"PRIVMSG {BOT} :over tls")
        assert rec.inbound_msg().text == "over tls"
        adapter.send("alice", "secure reply")
        _, _, args = alice.expect(lambda p, c, a: c == "PRIVMSG")
        assert args == ["alice", "secure reply"]
        adapter.stop()
    finally:
        server.stop()


def test_config_errors():
    with pytest.raises(ValueError, match="host is required"):
        IrcAdapter(IrcChannel(), "/tmp", Recorder())
    with pytest.raises(ValueError, match="nickserv"):
        IrcAdapter(IrcChannel(host="h", nickserv=NickServ(enabled=True)), "/tmp", Recorder())
    adapter = IrcAdapter(IrcChannel(host="h"), "/tmp", Recorder())
    assert adapter._port == 6697
    assert IrcAdapter(IrcChannel(host="h", tls=False), "/tmp", Recorder())._port == 6667
    with pytest.raises(IrcNotConnected):
        adapter.send("#x", "hi")
    with pytest.raises(ValueError):
        adapter.send("two words", "hi")
