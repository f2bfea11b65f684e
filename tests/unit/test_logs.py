"""Gateway logging (cli-config §8.1, §8.2, §8.4, §8.5, §8.6 rule 1): actors/logs.py."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import socket
import stat
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from actors import logs

TIME_RE = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}"
LONG_SECRET = "sk-abcdefghijklmnopqrstuvwxyz"  # 29 chars → sk-abc…wxyz
SHORT_SECRET = "hunter2pass"  # 11 chars → ***


@pytest.fixture(autouse=True)
def _clean_logging(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    logs.set_secrets(())
    yield
    logs.close()
    logs.set_secrets(())


@pytest.fixture
def tz_plus_one():
    """Local time zone UTC+01:00 (POSIX TZ, no tzdata needed)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "CET-1"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def make_record(msg: str = "listening on ws://127.0.0.1:18789", *, name: str = "openclaw.gateway",
                level: int = logging.INFO, created: float | None = None, **extra) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, msg, (), None)
    if created is not None:
        record.created = created
    record.__dict__.update(extra)
    return record


# 2026-01-05T13:03:07.123Z == 14:03:07.123 at UTC+01:00
T0 = datetime(2026, 1, 5, 13, 3, 7, 123000, tzinfo=timezone.utc).timestamp()


# ----------------------------------------------------------------- levels


def test_parse_level_and_names():
    assert logs.parse_level("trace") == 5
    assert logs.parse_level("WARN") == logging.WARNING
    assert logs.parse_level(" fatal ") == logging.CRITICAL
    assert logs.parse_level("silent") == logs.SILENT
    assert logs.parse_level("warning") is None
    assert logs.parse_level("") is None
    assert logs.parse_level(None) is None
    assert logs.TRACE < logs.DEBUG < logs.INFO < logs.WARN < logs.ERROR < logs.FATAL < logs.SILENT
    assert logs.level_name(25) == "info"
    assert logs.level_name(1) == "trace"


def test_records_carry_our_level_names(tmp_path):
    logs.setup_logging(file_path=tmp_path / "x.log", console_level="silent")
    assert logging.getLevelName(logging.WARNING) == "warn"
    assert logging.getLevelName(5) == "trace"
    assert logging.getLevelName(logging.CRITICAL) == "fatal"


# One letter per level keeps the table below one case per line.
I, D, T, W, S = logs.INFO, logs.DEBUG, logs.TRACE, logs.WARN, logs.SILENT  # noqa: E741


@pytest.mark.parametrize(
    "cli, verbose, env, config, config_console, expected",
    [
        (None, False, None, None, None, (I, I)),
        (None, False, None, "warn", "debug", (W, D)),
        (None, False, "trace", "warn", "debug", (T, T)),
        (None, True, "trace", "warn", "error", (T, D)),  # --verbose beats env on the console only
        (None, True, None, "warn", "error", (W, D)),  # --verbose never changes the file level
        ("error", True, "trace", "warn", "debug", (logs.ERROR, logs.ERROR)),
        ("silent", False, None, None, None, (S, S)),
        (None, False, "", "warn", None, (W, I)),  # empty env counts as unset
    ],
)
def test_level_precedence(cli, verbose, env, config, config_console, expected):
    warnings: list[str] = []
    got = logs.resolve_levels(cli_level=cli, verbose=verbose, env_level=env, config_level=config,
                              config_console_level=config_console, warn=warnings.append)
    assert got == expected
    assert warnings == []


def test_invalid_env_level_is_ignored_with_a_warning():
    warnings: list[str] = []
    got = logs.resolve_levels(env_level="loud", config_level="error", config_console_level="debug",
                              warn=warnings.append)
    assert got == (logs.ERROR, logs.DEBUG)
    assert len(warnings) == 1 and "OPENCLAW_LOG_LEVEL" in warnings[0] and "loud" in warnings[0]


# ----------------------------------------------------------------- file location


@pytest.mark.parametrize(
    "state_dir, expected",
    [
        ("/tmp/x/My State.Dir", "my-state-dir"),
        ("/tmp/x/..hidden", "hidden"),
        ("/srv/gw/work_2", "work-2"),
        ("/srv/gw/" + "a" * 32, "a" * 32),
    ],
)
def test_state_dir_tag_from_env(state_dir, expected):
    assert logs.state_dir_tag(state_dir, True, home="/home/u") == expected


def test_state_dir_tag_long_name_is_hashed():
    name = "x" * 40
    tag = logs.state_dir_tag(f"/srv/{name}", True, home="/home/u")
    assert re.fullmatch(r"[0-9a-f]{8}", tag)
    assert tag == hashlib.sha1(name.encode()).hexdigest()[:8]


@pytest.mark.parametrize("state_dir", ["/home/u/.openclaw", "/home/u/.clawdbot", "/home/u/.openclaw/",
                                       "~/.openclaw"])
def test_default_state_dirs_have_no_tag(state_dir, monkeypatch):
    monkeypatch.setenv("HOME", "/home/u")
    assert logs.state_dir_tag(state_dir, True, home="/home/u") is None


def test_state_dir_not_from_env_has_no_tag():
    assert logs.state_dir_tag("/tmp/x/other", False, home="/home/u") is None


def test_log_file_path_default_and_tags(tmp_path):
    base = tmp_path / "openclaw"
    day = date(2026, 1, 5)
    p = logs.log_file_path(None, "/home/u/.openclaw", False, base_dir=base, state_dir_from_env=False,
                           today=day, home="/home/u")
    assert p == base / "openclaw-2026-01-05.log"
    assert stat.S_IMODE(base.stat().st_mode) == 0o700
    p = logs.log_file_path(None, "/tmp/x/My State.Dir", False, base_dir=base, state_dir_from_env=True,
                           today=day, home="/home/u")
    assert p.name == "openclaw-my-state-dir-2026-01-05.log"
    p = logs.log_file_path(None, "/home/u/.openclaw-dev", True, base_dir=base, today=day, home="/home/u")
    assert p.name == "openclaw-dev-2026-01-05.log"


def test_log_file_path_reads_env_when_not_told(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENCLAW_STATE_DIR", raising=False)
    monkeypatch.setenv("CLAWDBOT_STATE_DIR", "/srv/beta")
    p = logs.log_file_path(None, "/srv/beta", False, base_dir=tmp_path / "l", today=date(2026, 1, 5),
                           home="/home/u")
    assert p.name == "openclaw-beta-2026-01-05.log"


def test_log_file_path_config_file_wins(tmp_path):
    p = logs.log_file_path(str(tmp_path / "fixed.log"), "/srv/beta", True, base_dir=tmp_path / "l")
    assert p == tmp_path / "fixed.log"
    assert not (tmp_path / "l").exists()


@pytest.fixture
def fake_tmp(tmp_path, monkeypatch):
    """tempfile.gettempdir() → tmp_path/systmp, where the fallback directory goes."""
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(systmp))
    return systmp


def test_group_writable_base_dir_falls_back_with_warning(tmp_path, fake_tmp):
    base = tmp_path / "openclaw"
    base.mkdir()
    os.chmod(base, 0o770)
    warnings: list[str] = []
    p = logs.log_file_path(None, "/x", False, base_dir=base, state_dir_from_env=False,
                           today=date(2026, 1, 5), warn=warnings.append)
    fallback = fake_tmp / f"openclaw-{os.getuid()}"
    assert p == fallback / "openclaw-2026-01-05.log"
    assert stat.S_IMODE(fallback.stat().st_mode) == 0o700
    assert len(warnings) == 1 and "group/other-writable" in warnings[0] and str(fallback) in warnings[0]


def test_symlinked_base_dir_falls_back_with_warning(tmp_path, fake_tmp):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    base = tmp_path / "openclaw"
    base.symlink_to(real)
    warnings: list[str] = []
    p = logs.log_file_path(None, "/x", False, base_dir=base, state_dir_from_env=False,
                           today=date(2026, 1, 5), warn=warnings.append)
    assert p.parent == fake_tmp / f"openclaw-{os.getuid()}"
    assert "symlink" in warnings[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown to another user")
def test_foreign_owned_base_dir_falls_back(tmp_path, fake_tmp):
    base = tmp_path / "openclaw"
    base.mkdir(mode=0o700)
    os.chown(base, 4242, -1)
    warnings: list[str] = []
    p = logs.log_file_path(None, "/x", False, base_dir=base, state_dir_from_env=False,
                           warn=warnings.append)
    assert p.parent == fake_tmp / f"openclaw-{os.getuid()}"
    assert "owned by uid 4242" in warnings[0]


def test_safe_existing_base_dir_is_used(tmp_path):
    base = tmp_path / "openclaw"
    base.mkdir(mode=0o700)
    warnings: list[str] = []
    assert logs.safe_log_dir(base, warn=warnings.append) == base
    assert warnings == []


# ----------------------------------------------------------------- file records


def test_file_record_shape(tmp_path):
    path = tmp_path / "gw.log"
    logs.setup_logging(file_path=path, file_level="debug", console_level="silent")
    log = logging.getLogger("openclaw.gateway")
    log.info("listening on %s", "ws://127.0.0.1:18789")
    log.debug("rpc done", extra={"connId": "c1", "method": "config.get", "durationMs": 3,
                                 "sessionKey": "main", "data": {"n": 1, "tags": ("a", "b")}})
    log.log(logs.TRACE, "below the file level")
    logs.close()
    first, second = read_records(path)
    assert list(first) == ["time", "level", "subsystem", "message", "pid", "hostname"]
    assert first["level"] == "info" and first["subsystem"] == "gateway"
    assert first["message"] == "listening on ws://127.0.0.1:18789"
    assert first["pid"] == os.getpid() and first["hostname"] == socket.gethostname()
    assert re.fullmatch(TIME_RE, first["time"])
    assert second["level"] == "debug"
    assert {k: second[k] for k in ("sessionKey", "connId", "method", "durationMs", "data")} == {
        "sessionKey": "main", "connId": "c1", "method": "config.get", "durationMs": 3,
        "data": {"n": 1, "tags": ["a", "b"]}}
    assert "err" not in second


def test_file_record_exception(tmp_path):
    path = tmp_path / "gw.log"
    logs.setup_logging(file_path=path, console_level="silent")
    try:
        raise ValueError("bad frame")
    except ValueError:
        logging.getLogger("openclaw.ws").exception("parse failed")
    logs.close()
    (rec,) = read_records(path)
    assert rec["level"] == "error" and rec["subsystem"] == "ws" and rec["message"] == "parse failed"
    assert rec["err"]["type"] == "ValueError" and rec["err"]["message"] == "bad frame"
    assert rec["err"]["stack"].startswith("Traceback (most recent call last):")
    assert rec["err"]["stack"].endswith("ValueError: bad frame")


def test_time_is_local_with_offset_and_milliseconds(tz_plus_one):
    rec = json.loads(logs.JsonFormatter().format(make_record(created=T0)))
    assert rec["time"] == "2026-01-05T14:03:07.123+01:00"
    assert logs.format_time(T0) == "2026-01-05T14:03:07.123+01:00"


def test_file_created_0600_in_append_mode(tmp_path):
    path = tmp_path / "sub" / "gw.log"
    old = os.umask(0)  # prove the mode comes from us, not from the umask
    try:
        logs.setup_logging(file_path=path, console_level="silent")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    logging.getLogger("openclaw").info("one")
    logs.setup_logging(file_path=path, console_level="silent")  # reload reopens, appends
    logging.getLogger("openclaw").info("two")
    logs.close()
    assert [r["message"] for r in read_records(path)] == ["one", "two"]


def test_daily_file_follows_the_record_date(tmp_path, tz_plus_one):
    first = tmp_path / "openclaw-beta-2026-01-05.log"
    handler = logs.JsonLinesFileHandler(first, daily=True)
    handler.open()
    handler.handle(make_record("day one", created=T0))
    handler.handle(make_record("day two", created=T0 + 86400))
    handler.close()
    assert [r["message"] for r in read_records(first)] == ["day one"]
    second = tmp_path / "openclaw-beta-2026-01-06.log"
    assert [r["message"] for r in read_records(second)] == ["day two"]
    assert stat.S_IMODE(second.stat().st_mode) == 0o600


def test_daily_needs_a_dated_name(tmp_path):
    with pytest.raises(ValueError):
        logs.JsonLinesFileHandler(tmp_path / "fixed.log", daily=True)


def test_io_errors_never_raise(capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    logs.setup_logging(file_path="/dev/full", console_level="silent")
    logging.getLogger("openclaw").error("disk is full")  # must not raise
    logs.flush()  # the listener thread writes the file: wait for its attempt
    assert "Logging error" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, subsystem",
    [
        ("openclaw", "gateway"),
        ("openclaw.gateway", "gateway"),
        ("openclaw.ws", "ws"),
        ("openclaw.channels.telegram", "channels/telegram"),
        ("pykka", "pykka"),
        ("pykka._actor", "pykka"),
        ("tornado.access", "tornado"),
        ("root", "gateway"),
    ],
)
def test_subsystem_mapping(name, subsystem):
    assert logs.subsystem_for(name) == subsystem


# ----------------------------------------------------------------- console styles


def console_line(style: str, record: logging.LogRecord, colour: bool = False) -> str:
    return logs.console_formatter(style, colour=colour).format(record)


def test_pretty_line(tz_plus_one):
    assert console_line("pretty", make_record(created=T0)) == \
        "2026-01-05T14:03:07.123+01:00 info  [gateway] listening on ws://127.0.0.1:18789"
    rec = make_record("polling", name="openclaw.channels.telegram", level=logging.WARNING, created=T0)
    assert console_line("pretty", rec) == "2026-01-05T14:03:07.123+01:00 warn  [telegram] polling"


def test_pretty_colour():
    line = console_line("pretty", make_record(level=logging.ERROR), colour=True)
    assert "\x1b[31merror\x1b[0m" in line
    colour = logs.subsystem_colour("gateway")
    assert f"{colour}[gateway]\x1b[0m" in line
    assert colour == logs.subsystem_colour("gateway")  # stable
    assert re.sub(r"\x1b\[[0-9;]*m", "", line).endswith(" error [gateway] listening on ws://127.0.0.1:18789")


def test_compact_line(tz_plus_one):
    assert console_line("compact", make_record(created=T0)) == \
        "2026-01-05T14:03:07.123+01:00 I gateway: listening on ws://127.0.0.1:18789"
    letters = [console_line("compact", make_record(level=lv, name="openclaw.channels.telegram")).split(" ")[1:3]
               for lv in (5, 10, 20, 30, 40, 50)]
    assert letters == [[c, "telegram:"] for c in "TDIWEF"]
    assert "\x1b" not in logs.console_formatter("compact", colour=True).format(make_record())


def test_json_console_is_the_file_record(tz_plus_one):
    rec = make_record(created=T0, connId="c9")
    assert json.loads(console_line("json", rec)) == {
        "time": "2026-01-05T14:03:07.123+01:00", "level": "info", "subsystem": "gateway",
        "message": "listening on ws://127.0.0.1:18789", "pid": os.getpid(),
        "hostname": socket.gethostname(), "connId": "c9"}


def test_continuation_lines_are_indented():
    line = console_line("compact", make_record("first\nsecond\nthird", name="openclaw.config"))
    assert line.endswith(" I config: first\n  second\n  third")


def test_console_exception_is_indented():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = logging.LogRecord("openclaw.agent", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    lines = console_line("compact", rec).split("\n")
    assert lines[0].endswith(" E agent: failed")
    assert lines[1] == "  Traceback (most recent call last):"
    assert lines[-1] == "  RuntimeError: boom"


def test_setup_console_to_stderr_without_tty_is_compact_and_plain(capsys):
    logs.setup_logging(file_path=None)
    logging.getLogger("openclaw.http").info("hello")
    err = capsys.readouterr().err
    assert re.fullmatch(TIME_RE + r" I http: hello\n", err)


def test_force_color_colours_pretty(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setenv("FORCE_COLOR", "1")
    logs.setup_logging(file_path=None, console_style="pretty", console_stream=stream)
    logging.getLogger("openclaw").info("hi")
    assert "\x1b[" in stream.getvalue()


@pytest.mark.parametrize("no_color_env, no_color_flag", [("1", False), (None, True)])
def test_no_color_beats_force_color(monkeypatch, no_color_env, no_color_flag):
    monkeypatch.setenv("FORCE_COLOR", "1")
    if no_color_env:
        monkeypatch.setenv("NO_COLOR", no_color_env)
    stream = io.StringIO()
    logs.setup_logging(file_path=None, console_style="pretty", console_stream=stream, no_color=no_color_flag)
    logging.getLogger("openclaw").info("hi")
    assert "\x1b" not in stream.getvalue()
    assert re.fullmatch(TIME_RE + r" info  \[gateway\] hi\n", stream.getvalue())


def test_colour_rules():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert logs.use_colour(Tty(), environ={}) is True
    assert logs.use_colour(io.StringIO(), environ={}) is False
    assert logs.use_colour(io.StringIO(), environ={"FORCE_COLOR": "1"}) is True
    assert logs.use_colour(Tty(), environ={"NO_COLOR": "1"}) is False
    assert logs.use_colour(Tty(), environ={}, no_color=True) is False
    assert logs.default_console_style(Tty()) == "pretty"
    assert logs.default_console_style(io.StringIO()) == "compact"


# ----------------------------------------------------------------- redaction


def test_mask_secret():
    assert logs.mask_secret(LONG_SECRET) == "sk-abc…wxyz"
    assert logs.mask_secret(SHORT_SECRET) == "***"
    assert logs.mask_secret("a" * 18) == "aaaaaa…aaaa"
    assert logs.mask_secret("a" * 17) == "***"


def test_secrets_masked_in_file_and_console(tmp_path):
    path, stream = tmp_path / "gw.log", io.StringIO()
    logs.setup_logging(file_path=path, console_style="compact", console_stream=stream,
                       secrets=[LONG_SECRET, SHORT_SECRET, "short", None])
    log = logging.getLogger("openclaw.gateway")
    log.info("token=%s password=%s short=short", LONG_SECRET, SHORT_SECRET,
             extra={"data": {"auth": {"token": LONG_SECRET}, "list": [SHORT_SECRET]}})
    try:
        raise ConnectionError(f"refused with {LONG_SECRET}")
    except ConnectionError:
        log.exception("connect with %s failed", SHORT_SECRET)
    logs.close()
    text = path.read_text() + stream.getvalue()
    assert LONG_SECRET not in text and SHORT_SECRET not in text
    first, second = read_records(path)
    assert first["message"] == "token=sk-abc…wxyz password=*** short=short"
    assert first["data"] == {"auth": {"token": "sk-abc…wxyz"}, "list": ["***"]}
    assert second["message"] == "connect with *** failed"
    assert second["err"]["message"] == "refused with sk-abc…wxyz"
    assert second["err"]["stack"].endswith("ConnectionError: refused with sk-abc…wxyz")
    assert "  ConnectionError: refused with sk-abc…wxyz" in stream.getvalue()


def test_set_secrets_replaces_and_setup_none_keeps():
    logs.set_secrets([LONG_SECRET])
    assert logs.redact(f"x {LONG_SECRET} y") == "x sk-abc…wxyz y"
    logs.setup_logging(file_path=None, console_level="silent")  # secrets=None keeps the set
    assert logs.redact(LONG_SECRET) == "sk-abc…wxyz"
    logs.set_secrets([SHORT_SECRET])
    assert logs.redact(LONG_SECRET) == LONG_SECRET
    assert logs.redact(SHORT_SECRET) == "***"


def test_secret_containing_another_is_masked_whole():
    inner = "abcdefghij"
    outer = f"prefix-{inner}-and-more-chars"
    logs.set_secrets([inner, outer])
    assert logs.redact(outer) == logs.mask_secret(outer)


def test_bad_format_args_do_not_raise(tmp_path):
    path = tmp_path / "gw.log"
    logs.setup_logging(file_path=path, console_level="silent", secrets=[LONG_SECRET])
    logging.getLogger("openclaw").info("two %s %s", LONG_SECRET)  # one arg short
    logs.close()
    (rec,) = read_records(path)
    assert rec["message"].startswith("unformattable log message")
    assert LONG_SECRET not in rec["message"]


# ----------------------------------------------------------------- setup lifecycle


def test_setup_is_idempotent_and_close_restores(tmp_path):
    oc, pykka_log, access = (logging.getLogger(n) for n in ("openclaw", "pykka", "tornado.access"))
    before = (oc.level, oc.propagate, list(oc.handlers), access.level)
    logs.setup_logging(file_path=tmp_path / "a.log", console_level="silent")
    handle = logs.setup_logging(file_path=tmp_path / "b.log", console_level="info")
    assert logs.current() is handle
    ours = [h for h in oc.handlers if h not in before[2]]
    assert len(ours) == 2 and set(ours) == set(handle.handlers)
    assert set(pykka_log.handlers) >= set(ours)
    assert oc.propagate is False
    assert access.level == logs.SILENT  # access log only at debug
    logs.close()
    assert (oc.level, oc.propagate, list(oc.handlers), access.level) == before
    assert logs.current() is None


def test_library_loggers_are_routed(tmp_path):
    path = tmp_path / "gw.log"
    logs.setup_logging(file_path=path, file_level="debug", console_level="silent")
    logging.getLogger("pykka").debug("actor started")
    logging.getLogger("tornado.access").debug("200 GET /health")
    logging.getLogger("tornado.application").error("handler failed")
    logs.close()
    got = [(r["subsystem"], r["message"]) for r in read_records(path)]
    assert got == [("pykka", "actor started"), ("tornado", "200 GET /health"),
                   ("tornado", "handler failed")]


def test_tornado_access_dropped_above_debug(tmp_path):
    path = tmp_path / "gw.log"
    logs.setup_logging(file_path=path, console_level="silent")
    logging.getLogger("tornado.access").warning("404 GET /nope")
    logging.getLogger("openclaw").info("kept")
    logs.close()
    assert [r["message"] for r in read_records(path)] == ["kept"]


def test_levels_per_handler(tmp_path):
    path, stream = tmp_path / "gw.log", io.StringIO()
    logs.setup_logging(file_path=path, file_level="warn", console_level="debug",
                       console_style="compact", console_stream=stream)
    log = logging.getLogger("openclaw.sessions")
    log.debug("dbg")
    log.warning("wrn")
    logs.close()
    assert [r["message"] for r in read_records(path)] == ["wrn"]
    assert [line.split(" ", 3)[3] for line in stream.getvalue().splitlines()] == ["dbg", "wrn"]


def test_silent_file_level_opens_no_file(tmp_path):
    handle = logs.setup_logging(file_path=tmp_path / "gw.log", file_level="silent", console_level="silent")
    assert handle.file_path is None and handle.handlers == ()
    assert not (tmp_path / "gw.log").exists()


def test_bad_file_path_keeps_previous_setup(tmp_path):
    good = logs.setup_logging(file_path=tmp_path / "gw.log", console_level="silent")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        logs.setup_logging(file_path=blocker / "gw.log", console_level="silent")
    assert logs.current() is good
    logging.getLogger("openclaw").info("still here")
    logs.close()
    assert read_records(tmp_path / "gw.log")[0]["message"] == "still here"


def test_invalid_style_or_level_rejected():
    with pytest.raises(ValueError):
        logs.setup_logging(file_path=None, console_style="fancy")
    with pytest.raises(ValueError):
        logs.setup_logging(file_path=None, console_level="loud")
