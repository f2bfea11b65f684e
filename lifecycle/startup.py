"""Everything the gateway decides before it binds (cli-config §4.1, §6.1, §7.4 step 1):
config, dev overrides, port, bind address and auth, with the startup refusals (exit 78)."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import msgspec

from actors.config.load import ConfigSnapshot, load_config
from actors.config.settings import AuthSettings, StartupRefusal, resolve_auth, resolve_port
from lifecycle import ports

log = logging.getLogger("openclaw.gateway")


class RunOptions(msgspec.Struct, frozen=True):
    """`openclaw gateway run` flags."""

    port: int | None = None
    bind: str | None = None
    token: str | None = None
    password: str | None = None
    verbose: bool = False
    force: bool = False
    dev: bool = False
    allow_unconfigured: bool = False
    log_level: str | None = None
    no_color: bool = False


class Plan(msgspec.Struct, frozen=True):
    snapshot: ConfigSnapshot
    port: int
    bind_mode: str
    bind_host: str
    auth: AuthSettings


def dev_overrides(snapshot: ConfigSnapshot) -> ConfigSnapshot:
    """`gateway --dev`: local, loopback, no auth, debug console; in memory only."""
    cfg = snapshot.config
    gateway = msgspec.structs.replace(
        cfg.gateway, mode="local", bind="loopback",
        auth=msgspec.structs.replace(cfg.gateway.auth, mode="none"))
    logging_cfg = msgspec.structs.replace(cfg.logging, console_level="debug")
    config = msgspec.structs.replace(cfg, gateway=gateway, logging=logging_cfg)
    return msgspec.structs.replace(snapshot, config=config)


def load_for_boot(config_path: str | Path, opts: RunOptions) -> ConfigSnapshot:
    """The config a (re)boot runs with: the file, plus `--dev`'s in-memory overrides when the
    file is valid. Blocking file I/O: off the event loop (run it in an executor there)."""
    snapshot = load_config(config_path)
    return dev_overrides(snapshot) if opts.dev and snapshot.valid else snapshot


def resolve_bind_host(mode: str, custom_host: str | None) -> str:
    """The address a bind mode means on this machine (§6.1)."""
    if mode in ("loopback", "auto"):
        return "127.0.0.1"
    if mode == "lan":
        return "0.0.0.0"
    if mode == "tailnet":
        found = ports.first_tailnet_ipv4()
        if found is None:
            log.warning("gateway.bind is tailnet but no 100.64.0.0/10 address exists; using loopback")
            return "127.0.0.1"
        return found
    host = custom_host if mode == "custom" else mode
    if not host or not ports.is_local_address(host):
        raise StartupRefusal(f"gateway.bind: {host} is not an address of this machine")
    return host


def is_loopback_host(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def plan(snapshot: ConfigSnapshot, opts: RunOptions, state_dir: str) -> Plan:
    """Port, address and auth for this start, or StartupRefusal."""
    gw = snapshot.config.gateway
    if gw.mode == "remote" and not opts.allow_unconfigured:
        raise StartupRefusal('Gateway start blocked: gateway.mode is "remote" (set gateway.mode=local '
                             "or pass --allow-unconfigured)")
    auth = resolve_auth(snapshot, state_dir, flag_token=opts.token, flag_password=opts.password)
    mode = opts.bind or gw.bind
    host = resolve_bind_host(mode, gw.custom_bind_host)
    if auth.mode == "none" and not is_loopback_host(host):
        raise StartupRefusal(f"refusing to bind gateway to {host} without auth",
                             hint="set gateway.auth.mode to token or password")
    return Plan(snapshot, resolve_port(snapshot, opts.port, opts.dev), mode, host, auth)
