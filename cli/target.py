"""Finding the gateway from the CLI (cli-config §3.4): URL and credentials, first match wins."""

from __future__ import annotations

from dataclasses import dataclass

from actors.config.load import ConfigSnapshot, defaults, load_config
from actors.config.settings import resolve_auth, resolve_port
from actors.paths import env, resolve_config_path, resolve_state_dir
from cli.output import warn


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None = None
    password: str | None = None
    source: str = "none"  # where the credential came from, never the value
    explicit_url: bool = False


def local_config() -> tuple[ConfigSnapshot, str]:
    state_dir, _ = resolve_state_dir()
    path, _ = resolve_config_path(state_dir)
    snapshot = load_config(path)
    if not snapshot.valid:
        warn("config invalid; using defaults to reach the gateway (run openclaw config validate)")
        snapshot = defaults(path)
    return snapshot, str(state_dir)


def _ws_url(url: str) -> str:
    for old, new in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(old):
            return new + url[len(old):]
    return url


def _flag_creds(token: str | None, password: str | None) -> tuple[str | None, str | None, str]:
    if token:
        return token, None, "flag --token"
    if password:
        return None, password, "flag --password"
    return None, None, "none"


def _env_creds() -> tuple[str | None, str | None, str]:
    if env("OPENCLAW_GATEWAY_TOKEN"):
        return env("OPENCLAW_GATEWAY_TOKEN"), None, "env OPENCLAW_GATEWAY_TOKEN"
    if env("OPENCLAW_GATEWAY_PASSWORD"):
        return None, env("OPENCLAW_GATEWAY_PASSWORD"), "env OPENCLAW_GATEWAY_PASSWORD"
    return None, None, "none"


def resolve_target(url: str | None = None, port: int | None = None, token: str | None = None,
                   password: str | None = None) -> Target:
    if url:
        return Target(_ws_url(url), *_flag_creds(token, password), explicit_url=True)
    snapshot, state_dir = local_config()
    if port is None and (env_url := env("OPENCLAW_GATEWAY_URL")):
        creds = _flag_creds(token, password)
        return Target(_ws_url(env_url), *(creds if creds[2] != "none" else _env_creds()))
    gw = snapshot.config.gateway
    if port is None and gw.mode == "remote" and gw.remote.url:
        creds = _flag_creds(token, password)
        if creds[2] == "none":
            creds = _env_creds()
        if creds[2] == "none":
            creds = (gw.remote.token, gw.remote.password, "config gateway.remote")
        return Target(_ws_url(gw.remote.url), *creds)
    auth = resolve_auth(snapshot, state_dir, flag_token=token, flag_password=password, server=False)
    target_port = port if port is not None else resolve_port(snapshot)
    return Target(f"ws://127.0.0.1:{target_port}", auth.token, auth.password, auth.source)
