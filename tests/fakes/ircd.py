"""A real IRC server for the tests: ngircd (Debian package, installed by tests/run.sh) in the
foreground (`-n`), in its own process group, on an ephemeral loopback port, configured from a
file written into the test's tmp dir. `stop()` kills the whole group and is idempotent;
`kill()` is the abrupt SIGKILL used for "the server goes away"; `start()` again reuses the
same port and config.

    srv = Ngircd(tmp_path, password="pw")
    srv.start()
    ... connect to 127.0.0.1:srv.port ...
    srv.stop()
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

NGIRCD = shutil.which("ngircd") or "/usr/sbin/ngircd"
SERVER_NAME = "irc.test.local"
NGIRCD_MISSING = "ngircd not installed (tests/run.sh installs it; Debian/Ubuntu: apt-get install ngircd)"


def ngircd_available() -> bool:
    return os.path.exists(NGIRCD)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Ngircd:
    def __init__(self, root: Path, *, password: str | None = None, ping_timeout: int = 120,
                 pong_timeout: int = 20, tls_cert: Path | None = None,
                 tls_key: Path | None = None) -> None:
        self.root = Path(root) / f"ngircd-{_free_port()}"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.tls_port = _free_port() if tls_cert else None
        self.password = password
        self.conf = self.root / "ngircd.conf"
        self.log = self.root / "ngircd.log"
        self.proc: subprocess.Popen | None = None
        lines = [
            "[Global]",
            f"  Name = {SERVER_NAME}",
            "  Info = openclaw test server",
            "  Listen = 127.0.0.1",
            f"  Ports = {self.port}",
            '  MotdPhrase = "openclaw tests"',
        ]
        # ngircd will not run as root: started as root it switches to ServerUID
        if os.getuid() == 0:
            lines += ["  ServerUID = nobody", "  ServerGID = nogroup"]
        else:
            lines += [f"  ServerUID = {os.getuid()}", f"  ServerGID = {os.getgid()}"]
        if password:
            lines.append(f"  Password = {password}")
        lines += [
            "[Limits]",
            "  MaxConnectionsIP = 0",
            "  MaxNickLength = 30",
            "  MaxPenaltyTime = 0",  # no command throttling: keeps the tests fast
            f"  PingTimeout = {ping_timeout}",
            f"  PongTimeout = {pong_timeout}",
            "[Options]",
            "  PAM = no",
            "  Ident = no",
            "  DNS = no",
            "  ConnectIPv6 = no",
        ]
        if tls_cert:
            lines += [
                "[SSL]",
                f"  CertFile = {tls_cert}",
                f"  KeyFile = {tls_key}",
                f"  Ports = {self.tls_port}",
            ]
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> "Ngircd":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([NGIRCD, "-n", "-f", str(self.conf)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        ports = [p for p in (self.port, self.tls_port) if p]
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ngircd exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                for port in ports:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"ngircd did not listen on {ports} within {timeout}s: {self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL the server (its process group): every connection drops at once."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(3)
