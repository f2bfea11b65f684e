"""PairingStore: DM pairing codes and approved senders (cli-config §6.3, §4.15; protocol §12.4).

Under `dmPolicy: "pairing"` an unknown DM sender gets a one-time code; the owner approves it
with `openclaw pairing approve <channel> <code>` (RPC `pairing.approve`), which moves the
sender to the channel's approved list. This actor is the one owner of the two files per
channel, both JSON, written atomically (temp file, fsync, rename, fsync of the directory;
mode 0600 in a 0700 directory):

- `<state>/credentials/<channel>-pairing.json`: `{"version": 1, "requests": [{"code",
  "sender", "createdAt", "expiresAt"}]}`, the pending codes (ms since the epoch);
- `<state>/credentials/<channel>-allowFrom.json`: `{"version": 1, "allowFrom": [ids]}`.

Codes: 6 characters from an alphabet without look-alikes (no 0/O, 1/I/L), valid 1 hour, at
most 3 pending per channel: a 4th unknown sender gets no code until one is approved or
expires; a sender asking again gets its existing code. Codes are matched case-insensitively.

Files are read again only when they changed on disk (mtime/size), so hand edits are seen and
the per-message `approved()` check costs a stat. A file that cannot be parsed counts as empty
(logged) and is moved aside to `<name>.corrupt-<ms>` before it is next written.

Callers outside the actor system use the typed calls of actors/base.py through
`PAIRING_STORE`, e.g. `bridge.ask(PAIRING_STORE, PairingStore.approve, channel, code)`.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from typing import Any, Callable

import msgspec

from actors.base import GatewayActor
from actors.channels.access import normalize_sender
from actors.registry import ActorName

log = logging.getLogger("openclaw.pairing")

CHANNELS = ("irc", "telegram")
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
CODE_TTL_MS = 3600 * 1000
MAX_PENDING = 3
FILE_VERSION = 1

UNKNOWN_CODE = "unknown or expired pairing code"


class PairingError(ValueError):
    """A request the store refuses; the message is the client-facing text (INVALID_REQUEST)."""


class PendingCode(msgspec.Struct, rename="camel", kw_only=True):
    code: str
    sender: str
    created_at: int
    expires_at: int


class PairingFile(msgspec.Struct, kw_only=True):
    version: int = FILE_VERSION
    requests: list[PendingCode] = []


class AllowFile(msgspec.Struct, rename={"allow_from": "allowFrom"}, kw_only=True):
    version: int = FILE_VERSION
    allow_from: list[str] = []


def check_channel(channel: Any) -> str:
    if not isinstance(channel, str) or channel.strip().lower() not in CHANNELS:
        raise PairingError(f"unknown channel: {channel}")
    return channel.strip().lower()


def credentials_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "credentials")


def pairing_path(state_dir: str, channel: str) -> str:
    return os.path.join(credentials_dir(state_dir), f"{channel}-pairing.json")


def allow_path(state_dir: str, channel: str) -> str:
    return os.path.join(credentials_dir(state_dir), f"{channel}-allowFrom.json")


def new_code(taken: set[str]) -> str:
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if code not in taken:
            return code


def write_atomic(path: str, data: bytes) -> None:
    """Replace `path` with `data`: temp file (0600) in the same directory, fsync, rename,
    fsync of the directory (0700, created when missing)."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
    tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Cached:
    """One file's last parsed content and the (mtime_ns, size) it was read at."""

    __slots__ = ("stamp", "value", "corrupt")

    def __init__(self, stamp: tuple | None, value: Any, corrupt: bool) -> None:
        self.stamp, self.value, self.corrupt = stamp, value, corrupt


PAIRING_STORE: ActorName[PairingStore] = ActorName("pairing")


class PairingStore(GatewayActor):
    """The one owner of the pairing files. `clock()` returns seconds since the epoch (tests
    inject a fake one to expire codes)."""

    def __init__(self, state_dir: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._state_dir = str(state_dir)
        self._clock = clock
        self._cache: dict[str, _Cached] = {}

    def _now(self) -> int:
        return int(self._clock() * 1000)

    # --- file access ------------------------------------------------------------------------

    def _load(self, path: str, kind: type) -> Any:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._cache.pop(path, None)
            return kind()
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._cache.get(path)
        if cached is not None and cached.stamp == stamp:
            return cached.value
        try:
            value: Any
            with open(path, "rb") as f:
                value, corrupt = msgspec.json.decode(f.read(), type=kind), False
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("cannot read %s (%s); treating it as empty", path, exc)
            value, corrupt = kind(), True
        self._cache[path] = _Cached(stamp, value, corrupt)
        return value

    def _save(self, path: str, value: Any) -> None:
        cached = self._cache.get(path)
        if cached is not None and cached.corrupt and os.path.exists(path):
            aside = f"{path}.corrupt-{self._now()}"
            os.replace(path, aside)
            log.warning("moved unreadable %s aside to %s", path, aside)
        write_atomic(path, msgspec.json.format(msgspec.json.encode(value), indent=2) + b"\n")
        st = os.stat(path)
        self._cache[path] = _Cached((st.st_mtime_ns, st.st_size, st.st_ino), value, False)

    def _pending(self, channel: str) -> list[PendingCode]:
        """The channel's pending codes that have not expired."""
        now = self._now()
        return [r for r in self._load(pairing_path(self._state_dir, channel), PairingFile).requests
                if r.expires_at > now]

    def _approved(self, channel: str) -> list[str]:
        return list(self._load(allow_path(self._state_dir, channel), AllowFile).allow_from)

    # --- public methods (Call) --------------------------------------------------------------

    def request(self, channel: str, sender: str) -> str | None:
        """A pairing code for `sender`: its existing one, or a new one; None when the channel
        already has MAX_PENDING codes pending or the sender is approved already."""
        channel = check_channel(channel)
        sender = normalize_sender(channel, str(sender))
        if not sender:
            raise PairingError("sender must be non-empty")
        if sender in self._approved(channel):
            return None
        pending = self._pending(channel)
        for req in pending:
            if req.sender == sender:
                return req.code
        if len(pending) >= MAX_PENDING:
            return None
        now = self._now()
        code = new_code({r.code for r in pending})
        pending.append(PendingCode(code=code, sender=sender, created_at=now,
                                   expires_at=now + CODE_TTL_MS))
        self._save(pairing_path(self._state_dir, channel), PairingFile(requests=pending))
        log.info("pairing code issued on %s for %s (expires in 1h)", channel, sender)
        return code

    def approve(self, channel: str, code: str) -> str:
        """Approve the sender of a pending `code`; returns the sender. The approved list is
        written first, so a crash in between leaves an approved sender with a stale code,
        never a lost approval."""
        channel = check_channel(channel)
        wanted = str(code).strip().upper()
        pending = self._pending(channel)
        match = next((r for r in pending if r.code == wanted), None) if wanted else None
        if match is None:
            raise PairingError(UNKNOWN_CODE)
        approved = self._approved(channel)
        if match.sender not in approved:
            approved.append(match.sender)
            self._save(allow_path(self._state_dir, channel), AllowFile(allow_from=approved))
        remaining = [r for r in pending if r.code != wanted]
        self._save(pairing_path(self._state_dir, channel), PairingFile(requests=remaining))
        log.info("pairing approved on %s for %s", channel, match.sender)
        return match.sender

    def approved(self, channel: str) -> list[str]:
        """The approved senders of `channel`, in approval order."""
        return self._approved(check_channel(channel))

    def list(self, channel: str | None = None) -> dict:
        """`pairing.list`: pending codes (expired left out), oldest first, and the approved
        senders per channel (every supported channel when `channel` is None)."""
        channels = CHANNELS if channel is None else (check_channel(channel),)
        pending: list[dict] = []
        approved: dict[str, list[str]] = {}
        for ch in channels:
            for req in self._pending(ch):
                pending.append({"channel": ch, "code": req.code, "sender": req.sender,
                                "createdAt": req.created_at, "expiresAt": req.expires_at})
            approved[ch] = self._approved(ch)
        pending.sort(key=lambda r: (r["createdAt"], r["channel"], r["code"]))
        return {"pending": pending, "approved": approved}
