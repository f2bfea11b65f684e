"""The Telegram adapter on its own, in-process, against the local Bot API stand-in
(tests/fakes/telegram_api.py): inbound fields, mentions, splitting, 429 handling, the update
offset kept across restarts only for acknowledged updates, token sources, stop()."""

from __future__ import annotations

import queue
import stat
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from actors.channels.frames import Inbound
from actors.channels.telegram import TelegramAdapter, TelegramError
from actors.config.schema import TelegramChannel
from tests.fakes.telegram_api import TelegramApi

TOKEN = "987654:FAKE-secret-token-xyz"


class Collector:
    """A real Emitter: everything the adapter reports lands in one queue, in order."""

    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()
        self.logs: list[tuple[str, str]] = []
        self.statuses: list[tuple[bool, str | None, dict]] = []
        self._lock = threading.Lock()

    def inbound(self, message: Inbound) -> None:
        self.events.put(message)

    def status(self, connected: bool, error: str | None = None, **detail: Any) -> None:
        with self._lock:
            self.statuses.append((connected, error, detail))

    def log(self, level: str, message: str) -> None:
        with self._lock:
            self.logs.append((level, message))

    def next(self, timeout: float = 5.0) -> Inbound:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no inbound message within {timeout}s") from None

    def none_within(self, seconds: float) -> None:
        try:
            got = self.events.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected inbound message: {got}")

    def wait_connected(self, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for connected, _error, detail in self.statuses:
                    if connected:
                        return detail
            time.sleep(0.02)
        raise AssertionError(f"adapter never connected; statuses: {self.statuses}")


@pytest.fixture
def api() -> Iterator[TelegramApi]:
    with TelegramApi(token=TOKEN) as server:
        yield server


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Any]:
    """Factory: a started adapter; every adapter it makes is stopped at the end."""
    made: list[TelegramAdapter] = []

    def make(api: TelegramApi, state_dir: Path | None = None, **config: Any) -> tuple[TelegramAdapter, Collector]:
        config.setdefault("bot_token", TOKEN)
        cfg = TelegramChannel(api_root=api.url, **config)
        emit = Collector()
        adapter = TelegramAdapter(cfg, str(state_dir or tmp_path / "state"), emit)
        made.append(adapter)
        adapter.start()
        emit.wait_connected()
        return adapter, emit

    yield make
    for adapter in made:
        adapter.stop()


def test_direct_message_fields(api: TelegramApi, started: Any) -> None:
    adapter, emit = started(api)
    update_id = api.queue_private("hello there", user_id=4242, username="alice", first_name="Alice")
    msg = emit.next()
    assert msg.id == f"tg:{update_id}"
    assert msg.sender == "4242"
    assert msg.sender_name == "alice"
    assert msg.chat == "4242"
    assert msg.kind == "direct"
    assert msg.text == "hello there"
    assert msg.mentioned is False
    assert abs(msg.ts - time.time() * 1000) < 5000 and msg.ts % 1000 == 0
    assert emit.wait_connected()["username"] == api.username
    polls = api.calls("getUpdates")
    assert polls and polls[0]["params"]["timeout"] == 30
    assert polls[0]["params"]["allowed_updates"] == ["message"]
    assert all(r["token_ok"] for r in api.requests)


def test_group_message_and_first_name_fallback(api: TelegramApi, started: Any) -> None:
    adapter, emit = started(api)
    api.queue_group("morning all", chat_id=-100555, user_id=99, username=None, first_name="Bob")
    msg = emit.next()
    assert (msg.kind, msg.chat, msg.sender, msg.sender_name) == ("group", "-100555", "99", "Bob")
    assert msg.mentioned is False
    api.queue_group("plain group", chat_type="group", chat_id=-42)
    assert emit.next().kind == "group"


def test_mentions(api: TelegramApi, started: Any) -> None:
    adapter, emit = started(api)
    api.queue_group(f"@{api.username} what is the time?")
    msg = emit.next()
    assert msg.mentioned is True
    assert msg.text == "what is the time?"
    api.queue_group(f"hey @{api.username.upper()}, hi")
    msg = emit.next()
    assert msg.mentioned is True and msg.text == "hey , hi"
    api.queue_group("thanks!", reply_to=api.bot_message(-1001234567890, "earlier answer"))
    msg = emit.next()
    assert msg.mentioned is True and msg.text == "thanks!"
    api.queue_group("talking to @someone_else")
    msg = emit.next()
    assert msg.mentioned is False and msg.text == "talking to @someone_else"
    api.queue_group("reply to a human", reply_to={"message_id": 3, "from": api.user(5, "carol"),
                                                  "chat": {"id": -1001234567890, "type": "supergroup"},
                                                  "date": 1, "text": "x"})
    assert emit.next().mentioned is False


def test_non_text_updates_are_skipped_and_confirmed(api: TelegramApi, started: Any, tmp_path: Path) -> None:
    adapter, emit = started(api)
    sticker = api.queue_private(None, extra={"sticker": {"file_id": "abc", "width": 512, "height": 512}})
    text_id = api.queue_private("after the sticker")
    msg = emit.next()
    assert msg.id == f"tg:{text_id}"
    emit.none_within(0.3)
    adapter.ack(msg.id)
    state = tmp_path / "state" / "credentials" / "telegram" / "default" / "state.json"
    _wait(lambda: state.exists() and '"offset": %d' % (text_id + 1) in state.read_text(), "offset saved")
    _wait(lambda: sticker not in api.pending_updates() and text_id not in api.pending_updates(),
          "updates confirmed at the server")


def test_send_splits_long_text_in_order(api: TelegramApi, started: Any) -> None:
    adapter, emit = started(api)
    words = [f"w{i:04d}" for i in range(2000)]  # 2000 × 5 chars + spaces ≈ 12,000 chars
    text = " ".join(words)[:10_000]
    message_id = adapter.send("4242", text)
    sent = api.sent
    assert len(sent) == 3
    assert all(len(s["text"]) <= 4096 for s in sent)
    assert [s["chat_id"] for s in sent] == [4242, 4242, 4242]
    assert " ".join(s["text"] for s in sent) == text
    assert message_id == str(sent[-1]["message_id"])


def test_send_honours_429_retry_after(api: TelegramApi, started: Any) -> None:
    adapter, emit = started(api)
    api.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    begin = time.monotonic()
    message_id = adapter.send("-1001234567890", "rate limited hello")
    elapsed = time.monotonic() - begin
    sends = api.calls("sendMessage")
    assert len(sends) == 2
    assert sends[1]["at"] - sends[0]["at"] >= 1.0
    assert elapsed >= 1.0
    assert [s["text"] for s in api.sent] == ["rate limited hello"]
    assert message_id == str(api.sent[0]["message_id"])
    assert any("retrying in 1" in m for _lvl, m in emit.logs)


def test_send_reply_to_and_prefixed_target(api: TelegramApi, started: Any) -> None:
    adapter, emit = started(api)
    adapter.send("tg:4242", "first part " * 10, reply_to="17")
    sent = api.wait_sent(1)
    assert sent[0]["chat_id"] == 4242
    assert sent[0]["reply_parameters"] == {"message_id": 17, "allow_sending_without_reply": True}


def test_send_error_names_status_and_description(api: TelegramApi, started: Any) -> None:
    adapter, emit = started(api)
    api.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    with pytest.raises(TelegramError) as info:
        adapter.send("4242", "hi")
    assert "403" in str(info.value) and "bot was blocked by the user" in str(info.value)
    assert TOKEN not in str(info.value)


def test_acked_update_not_redelivered_after_restart(api: TelegramApi, started: Any, tmp_path: Path) -> None:
    state = tmp_path / "shared-state"
    first, emit1 = started(api, state)
    update_id = api.queue_private("once only")
    msg = emit1.next()
    first.ack(msg.id)
    state_file = state / "credentials" / "telegram" / "default" / "state.json"
    _wait(lambda: state_file.exists(), "state.json")
    first.stop()

    second, emit2 = started(api, state)
    later = api.queue_private("the next one")
    msg2 = emit2.next()
    assert msg2.id == f"tg:{later}" != f"tg:{update_id}"
    emit2.none_within(0.3)
    assert second.ack(msg2.id) is None


def test_unacked_update_redelivered_after_restart(api: TelegramApi, started: Any, tmp_path: Path) -> None:
    state = tmp_path / "shared-state"
    first, emit1 = started(api, state)
    acked = api.queue_private("stored")
    unacked = api.queue_private("in flight when the channel died")
    assert emit1.next().id == f"tg:{acked}"
    assert emit1.next().id == f"tg:{unacked}"
    first.ack(f"tg:{acked}")
    # emitted but unacknowledged: not emitted twice within this lifetime, despite re-polls
    emit1.none_within(1.2)
    assert len(api.calls("getUpdates")) < 10  # waits for the ack instead of spinning
    first.stop()

    second, emit2 = started(api, state)
    again = emit2.next()
    assert again.id == f"tg:{unacked}" and again.text == "in flight when the channel died"
    emit2.none_within(0.3)
    second.ack(again.id)
    newer = api.queue_private("new")
    assert emit2.next().id == f"tg:{newer}"


def test_out_of_order_acks_advance_only_past_contiguous_prefix(api: TelegramApi, started: Any,
                                                               tmp_path: Path) -> None:
    state = tmp_path / "s"
    first, emit1 = started(api, state)
    a, b = api.queue_private("a"), api.queue_private("b")
    assert [emit1.next().id, emit1.next().id] == [f"tg:{a}", f"tg:{b}"]
    first.ack(f"tg:{b}")  # b before a: the offset must not pass a
    time.sleep(0.2)
    first.stop()
    second, emit2 = started(api, state)
    assert emit2.next().id == f"tg:{a}"
    assert emit2.next().id == f"tg:{b}"  # b comes again too: the cursor could not skip a


def test_state_file_is_private(api: TelegramApi, started: Any, tmp_path: Path) -> None:
    adapter, emit = started(api)
    api.queue_private("x")
    adapter.ack(emit.next().id)
    state_dir = tmp_path / "state" / "credentials" / "telegram" / "default"
    state_file = state_dir / "state.json"
    _wait(lambda: state_file.exists(), "state.json")
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((state_dir.parent).stat().st_mode) == 0o700
    assert [p.name for p in state_dir.iterdir()] == ["state.json"]  # no temp file left behind


def test_token_from_file(api: TelegramApi, started: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "tg.token"
    token_file.write_text(f"  {TOKEN}\n")
    adapter, emit = started(api, bot_token=None, token_file=str(token_file))
    api.queue_private("via file")
    assert emit.next().text == "via file"
    assert adapter.probe() == {"ok": True, "username": api.username, "id": api.bot_id}


def test_token_from_env(api: TelegramApi, started: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    adapter, emit = started(api, bot_token=None)
    api.queue_private("via env")
    assert emit.next().text == "via env"


def test_missing_token_error(api: TelegramApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    adapter = TelegramAdapter(TelegramChannel(api_root=api.url), str(tmp_path), Collector())
    with pytest.raises(ValueError) as info:
        adapter.start()
    text = str(info.value)
    assert "botToken" in text and "tokenFile" in text and "TELEGRAM_BOT_TOKEN" in text
    adapter.stop()


def test_wrong_token_reports_status_and_never_logs_token(api: TelegramApi, tmp_path: Path) -> None:
    emit = Collector()
    bad = "111:wrong-token-value"
    adapter = TelegramAdapter(TelegramChannel(api_root=api.url, bot_token=bad), str(tmp_path), emit)
    adapter.start()
    try:
        _wait(lambda: emit.statuses, "a status")
        connected, error, _ = emit.statuses[0]
        assert connected is False and "401" in (error or "") and "Unauthorized" in (error or "")
        assert all(bad not in m for _lvl, m in emit.logs) and bad not in (error or "")
    finally:
        begin = time.monotonic()
        adapter.stop()
        assert time.monotonic() - begin < 1.0  # the backoff sleep is interrupted


def test_stop_during_long_poll_is_immediate(api: TelegramApi, started: Any) -> None:
    adapter, emit = started(api)
    assert api.wait_poll_pending()
    time.sleep(0.1)
    begin = time.monotonic()
    adapter.stop()
    elapsed = time.monotonic() - begin
    assert elapsed < 1.0
    assert adapter._thread is not None and not adapter._thread.is_alive()
    _wait(lambda: api.abandoned_polls >= 1, "the server saw the poll go")


def test_polls_and_sends_keep_their_connections(api: TelegramApi, started: Any) -> None:
    adapter, emit = started(api)
    for text in ("one", "two"):
        api.queue_private(text)
        adapter.ack(emit.next().id)
    adapter.send("4242", "a")
    adapter.send("4242", "b")
    polls = {r["port"] for r in api.requests if r["method"] in ("getMe", "getUpdates")}
    sends = {r["port"] for r in api.calls("sendMessage")}
    assert len(polls) == 1 and len(sends) == 1 and polls != sends, (polls, sends)


def test_poll_recovers_after_server_error(api: TelegramApi, started: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("actors.channels.telegram.BACKOFF_START_S", 0.1)
    adapter, emit = started(api)
    api.fail_next("getUpdates", 502, "Bad Gateway")
    api.queue_private("wake the poll")  # the held poll answers; the next one gets the 502
    first = emit.next()
    adapter.ack(first.id)
    _wait(lambda: any(not c and "502" in (e or "") for c, e, _ in emit.statuses), "status down")
    api.queue_private("after the error")
    assert emit.next().text == "after the error"
    assert emit.statuses[-1][0] is True


def _wait(predicate: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_fake_server_offset_semantics(api: TelegramApi) -> None:
    """The stand-in behaves like the real service where the adapter relies on it."""
    import http.client
    import json

    a = api.queue_private("a")
    b = api.queue_private("b")
    conn = http.client.HTTPConnection("127.0.0.1", int(api.url.rsplit(":", 1)[1]), timeout=5)

    def call(params: dict) -> Any:
        conn.request("POST", f"/bot{TOKEN}/getUpdates", body=json.dumps(params),
                     headers={"Content-Type": "application/json"})
        return json.loads(conn.getresponse().read())

    try:
        assert [u["update_id"] for u in call({})["result"]] == [a, b]
        assert [u["update_id"] for u in call({"offset": b})["result"]] == [b]
        assert [u["update_id"] for u in call({})["result"]] == [b]  # a is confirmed and gone
        begin = time.monotonic()
        assert call({"offset": b + 1, "timeout": 0.3})["result"] == []
        assert time.monotonic() - begin >= 0.3
    finally:
        conn.close()
