"""Listener sockets, port-owner lookup and local addresses (cli-config spec §6.1, §7.2).

Linux first: the owner of a listening port is found the way `lsof -i :PORT` finds it, from
/proc/net/tcp{,6} (socket inode) and /proc/<pid>/fd (who holds that inode). Without /proc
(macOS) we fall back to `lsof`/`ps` when present, else report "unknown" rather than fail.
Standard library only.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import shutil
import socket
import struct
import subprocess

__all__ = [
    "BindError", "PortInUse", "bind_sockets", "bind_listeners", "listen_addresses",
    "find_listener_pid", "process_command", "process_argv", "format_hostport",
    "local_addresses", "is_local_address", "first_tailnet_ipv4", "first_lan_ipv4",
]

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column
_CMD_MAX = 200
_TAILNET = ipaddress.ip_network("100.64.0.0/10")
_WILDCARDS = ("", "0.0.0.0", "::", "*")


# ---------------------------------------------------------------------------- errors


def format_hostport(host: str, port: int) -> str:
    """`127.0.0.1:18789`, `[::1]:18789` (IPv6 bracketed so the port stays unambiguous)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class BindError(Exception):
    """A listener could not be bound (exit 1). Base class of PortInUse."""

    def __init__(self, host: str, port: int, cause: str) -> None:
        super().__init__(f"failed to bind gateway socket on {format_hostport(host, port)}: {cause}")
        self.host, self.port, self.cause = host, port, cause


class PortInUse(BindError):
    """EADDRINUSE, with the owning process when it can be identified."""

    def __init__(self, host: str, port: int, pid: int | None, command: str | None) -> None:
        where = format_hostport(host, port)
        if pid is None:
            msg = f"port {where} is already in use by another process"
        else:
            msg = f"port {where} is already in use by pid {pid} ({command or 'unknown'})"
        Exception.__init__(self, msg)  # skip BindError's message
        self.host, self.port, self.pid, self.command = host, port, pid, command
        self.cause = os.strerror(errno.EADDRINUSE)


# ---------------------------------------------------------------------------- binding


def _is_wildcard(host: str) -> bool:
    return host in _WILDCARDS


def _covers_loopback(host: str) -> bool:
    """Whether a listener on `host` already accepts connections to 127.0.0.1.

    `::` counts because bind_sockets makes it dual-stack (IPV6_V6ONLY off).
    """
    return host in ("127.0.0.1", "0.0.0.0", "::")


def listen_addresses(bind_host: str) -> list[str]:
    """The addresses to listen on for a resolved bind host (§6.1).

    Local clients always target ws://127.0.0.1:<port> (§3.4), so every address that does not
    already accept 127.0.0.1 gets a second listener there (this includes `::1`, which is
    loopback but IPv6-only).
    """
    if _covers_loopback(bind_host):
        return [bind_host]
    return [bind_host, "127.0.0.1"]


def _addrinfo(host: str, port: int) -> tuple:
    infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                               socket.AI_NUMERICHOST | socket.AI_PASSIVE)
    return infos[0]


# The accept queue: as deep as the kernel allows (Linux caps it at net.core.somaxconn, 4096 by
# default since 5.4; macOS at kern.ipc.somaxconn). With 1024, 10,000 clients connecting at once
# overflowed it while the loop was busy with handshakes (31,871 ListenOverflows in one storm),
# and about 1 % of them were reset.
LISTEN_BACKLOG = 65535


def _open_listener(host: str, port: int, backlog: int) -> socket.socket:
    family, kind, proto, _, sockaddr = _addrinfo(host, port)
    sock = socket.socket(family, kind, proto)
    try:
        # SO_REUSEADDR only skips TIME_WAIT leftovers of a previous run. SO_REUSEPORT is never
        # set: it would let a second gateway share the port instead of failing.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # `::` is dual-stack so that it covers 127.0.0.1 (listen_addresses relies on it);
            # a specific IPv6 address stays IPv6-only.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host == "::" else 1)
        sock.setblocking(False)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_sockets(host: str, port: int, *, backlog: int = LISTEN_BACKLOG) -> list[socket.socket]:
    """Bind one non-blocking listening TCP socket on an IP literal (port 0 = ephemeral).

    Raises PortInUse on EADDRINUSE (naming the owner when /proc lets us), BindError otherwise.
    Returns a list to match tornado's `bind_sockets`/`add_sockets` conventions.
    """
    try:
        return [_open_listener(host, port, backlog)]
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            pid = find_listener_pid(host, port)
            raise PortInUse(host, port, pid, process_command(pid) if pid else None) from exc
        raise BindError(host, port, exc.strerror or str(exc)) from exc


def bind_listeners(bind_host: str, port: int, *, backlog: int = LISTEN_BACKLOG) -> list[socket.socket]:
    """Bind every address of `listen_addresses(bind_host)` on one port; all or nothing.

    With port 0 the loopback alias reuses the ephemeral port the first socket got.
    """
    sockets: list[socket.socket] = []
    try:
        for host in listen_addresses(bind_host):
            sockets += bind_sockets(host, port, backlog=backlog)
            port = port or sockets[0].getsockname()[1]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


# ---------------------------------------------------------------------------- port owner


def _decode_proc_addr(hexaddr: str) -> str:
    """/proc/net/tcp prints each 32-bit word of the address in host byte order."""
    raw = b"".join(struct.pack("=I", int(hexaddr[i:i + 8], 16)) for i in range(0, len(hexaddr), 8))
    return str(ipaddress.ip_address(raw))


def _canonical(host: str) -> str:
    """Canonical text of an IP (IPv4-mapped IPv6 folded to IPv4, scope dropped)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _listen_rank(host: str, local: str) -> int | None:
    """How well a listening socket's address matches `host`: 0 exact, 1 wildcard, 2 any."""
    if _is_wildcard(host):
        return 0 if _is_wildcard(local) else 2
    if _canonical(local) == _canonical(host):
        return 0
    if (local == "0.0.0.0" and ":" not in host) or local == "::":
        return 1
    return None


def _listening_inodes(host: str, port: int) -> dict[str, int]:
    """Socket inodes listening on `port` whose address matches `host`, with their rank."""
    found: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as fh:
                lines = fh.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            addr, _, hexport = fields[1].partition(":")
            if int(hexport, 16) != port or fields[9] == "0":
                continue
            rank = _listen_rank(host, _decode_proc_addr(addr))
            if rank is not None:
                found[fields[9]] = min(rank, found.get(fields[9], rank))
    return found


def _pids() -> list[int]:
    try:
        return sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
    except OSError:
        return []


def _pid_holding(inodes: dict[str, int]) -> int | None:
    """The process whose fd table holds the best-ranked inode (lowest pid on ties)."""
    targets = {f"socket:[{inode}]": rank for inode, rank in inodes.items()}
    best: tuple[int, int] | None = None
    for pid in _pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone, or another user's process
            continue
        for fd in fds:
            try:
                rank = targets.get(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                continue
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, pid)
                if rank == 0:
                    return pid
    return best[1] if best else None


def _lsof_listener(port: int) -> int | None:
    """macOS fallback: `lsof -t` lists pids of listeners on the port."""
    lsof = shutil.which("lsof") or ("/usr/sbin/lsof" if os.path.exists("/usr/sbin/lsof") else None)
    if lsof is None:
        return None
    try:
        out = subprocess.run([lsof, "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-t"],
                             capture_output=True, text=True, timeout=3).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    pids = sorted(int(tok) for tok in out.split() if tok.isdigit())
    return pids[0] if pids else None


def find_listener_pid(host: str, port: int) -> int | None:
    """Pid of the process listening on TCP `port` at `host` (or a wildcard covering it).

    A wildcard `host` (`0.0.0.0`, `::`) matches any listener on the port, since any of them
    blocks the bind. None when no owner can be identified (other users' processes, no /proc).
    """
    if not os.path.exists("/proc/net/tcp"):
        return _lsof_listener(port)
    inodes = _listening_inodes(host, port)
    return _pid_holding(inodes) if inodes else None


def process_argv(pid: int) -> list[str] | None:
    """argv of `pid` from /proc/<pid>/cmdline; None if unreadable or empty (zombie, kernel)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    args = [a.decode("utf-8", "replace") for a in raw.split(b"\0")]
    while args and not args[-1]:
        args.pop()
    return args or None


def _ps_command(pid: int) -> str | None:
    """macOS fallback for process_command."""
    try:
        out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)],
                             capture_output=True, text=True, timeout=3).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def process_command(pid: int) -> str | None:
    """Command line of `pid`, args joined by spaces, trimmed to about 200 characters."""
    if os.path.isdir("/proc/self"):
        args = process_argv(pid)
        # Collapse whitespace: `-c` scripts carry newlines, and this ends up in one log line.
        cmd = " ".join(" ".join(args).split()) if args else None
    else:
        cmd = _ps_command(pid)
    if cmd and len(cmd) > _CMD_MAX:
        cmd = cmd[:_CMD_MAX - 3] + "..."
    return cmd


# ---------------------------------------------------------------------------- local addresses


def _fib_trie_ipv4() -> list[str]:
    """All local IPv4 addresses (secondaries included): `/32 host LOCAL` entries."""
    try:
        with open("/proc/net/fib_trie", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    out: list[str] = []
    for prev, line in zip(lines, lines[1:], strict=False):
        if line.strip() == "/32 host LOCAL" and "|--" in prev:
            out.append(prev.split("|--", 1)[1].strip())
    return out


def _ioctl_ipv4() -> list[str]:
    """Primary IPv4 of each interface, in interface-index order (SIOCGIFADDR)."""
    request = 0x8915 if os.uname().sysname == "Linux" else 0xC0206921  # Linux / BSD+macOS
    out: list[str] = []
    try:
        names = [name for _, name in socket.if_nameindex()]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return out
    with sock:
        for name in names:
            ifreq = struct.pack("256s", name.encode()[:15])
            try:
                res = fcntl.ioctl(sock.fileno(), request, ifreq)
            except OSError:  # no IPv4 on this interface
                continue
            out.append(socket.inet_ntoa(res[20:24]))
    return out


def _proc_ipv6() -> list[str]:
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as fh:
            return [str(ipaddress.IPv6Address(bytes.fromhex(line.split()[0])))
                    for line in fh if line.strip()]
    except (OSError, ValueError):
        return []


def _resolver_addresses() -> list[str]:
    """Last resort (no /proc, no ioctl): what the hostname and default route say."""
    out: list[str] = []
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, 0, socket.SOCK_STREAM):
            out.append(str(info[4][0]))  # the host of an IPv4 or IPv6 sockaddr: a str already
    except OSError:
        pass
    try:  # UDP connect sends nothing; it only picks the outgoing interface's address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))
            out.append(sock.getsockname()[0])
    except OSError:
        pass
    return out


def local_addresses() -> list[str]:
    """IPv4 then IPv6 addresses of local interfaces, loopback included, deduplicated."""
    candidates = _ioctl_ipv4() + _fib_trie_ipv4() + _proc_ipv6()
    if not candidates:
        candidates = _resolver_addresses()
    candidates += ["127.0.0.1"] + (["::1"] if socket.has_ipv6 else [])
    seen: dict[str, None] = {}
    for addr in candidates:
        seen.setdefault(_canonical(addr), None)
    v4 = [a for a in seen if ":" not in a]
    return v4 + [a for a in seen if ":" in a]


def is_local_address(ip: str) -> bool:
    """Whether a bind to `ip` can succeed here: a local interface address, any 127/8
    address, or an unspecified address (which binds every interface)."""
    try:
        addr = ipaddress.ip_address(_canonical(ip))
    except ValueError:
        return False
    if addr.is_loopback or addr.is_unspecified:
        return True
    return str(addr) in local_addresses()


def _ipv4s() -> list[ipaddress.IPv4Address]:
    return [ipaddress.IPv4Address(a) for a in local_addresses() if ":" not in a]


def first_tailnet_ipv4() -> str | None:
    """First local IPv4 in the Tailscale CGNAT range 100.64.0.0/10 (bind `tailnet`)."""
    return next((str(a) for a in _ipv4s() if a in _TAILNET), None)


def first_lan_ipv4() -> str | None:
    """First non-internal IPv4 (not loopback or link-local), e.g. for presence."""
    return next((str(a) for a in _ipv4s()
                 if not (a.is_loopback or a.is_link_local or a.is_unspecified)), None)
