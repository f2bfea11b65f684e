"""Port and shared-secret resolution (cli-config §1, §2, §4.1; protocol §5.6), shared by the
gateway and the CLI so both find the same port and token the same way."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

import msgspec

from actors.config.load import ConfigSnapshot
from actors.paths import env

DEFAULT_PORT = 18789
DEV_PORT = 19001
TOKEN_FILE = "gateway.token"


class StartupRefusal(Exception):
    """The gateway must not start with this configuration (exit 78)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class AuthSettings(msgspec.Struct, frozen=True):
    mode: str  # none | token | password
    token: str | None = None
    password: str | None = None
    source: str = "none"  # where the secret came from, for messages (never the value)
    generated: bool = False

    @property
    def secret(self) -> str | None:
        return self.token if self.mode == "token" else self.password if self.mode == "password" else None


def resolve_port(snapshot: ConfigSnapshot, flag: int | None = None, dev: bool = False) -> int:
    if flag is not None:
        return flag
    if dev:
        return DEV_PORT
    from_env = env("OPENCLAW_GATEWAY_PORT")
    if from_env and from_env.isdigit() and 0 < int(from_env) < 65536:
        return int(from_env)
    return snapshot.config.gateway.port


def _config_secret(snapshot: ConfigSnapshot, key: str) -> str | None:
    value = getattr(snapshot.config.gateway.auth, key)
    if not value or f"gateway.auth.{key}" in snapshot.unresolved:
        return None
    return value


def _pick(flag: str | None, env_name: str, snapshot: ConfigSnapshot, key: str,
          flag_name: str) -> tuple[str | None, str]:
    if flag:
        return flag, f"flag {flag_name}"
    from_env = env(env_name)
    if from_env:
        primary = env_name if os.environ.get(env_name) else env_name.replace("OPENCLAW_", "CLAWDBOT_")
        return from_env, f"env {primary}"
    value = _config_secret(snapshot, key)
    return (value, f"config gateway.auth.{key}") if value else (None, "none")


def token_file(state_dir: str | Path) -> Path:
    return Path(state_dir) / TOKEN_FILE


def read_generated_token(state_dir: str | Path) -> str | None:
    try:
        text = token_file(state_dir).read_text().strip()
    except OSError:
        return None
    return text or None


def generate_token(state_dir: str | Path) -> str:
    """Create `<state>/gateway.token` once (0600); reuse it on later starts."""
    existing = read_generated_token(state_dir)
    if existing:
        return existing
    path = token_file(state_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_hex(32)
    # Written under a private name and linked into place: a concurrent start (two gateways on
    # one state dir, the second one about to lose the lock) never reads a half-written file,
    # and the loser of the race adopts the winner's token instead of failing.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            existing = read_generated_token(state_dir)
            if existing:
                return existing
            os.replace(tmp, path)  # an empty leftover file: replace it
    finally:
        tmp.unlink(missing_ok=True)
    return token


def resolve_auth(snapshot: ConfigSnapshot, state_dir: str | Path, *, flag_token: str | None = None,
                 flag_password: str | None = None, server: bool = True) -> AuthSettings:
    """The auth mode and secret. `server=True` generates the token file when no secret exists;
    the CLI passes False and only reads it."""
    token, token_src = _pick(flag_token, "OPENCLAW_GATEWAY_TOKEN", snapshot, "token", "--token")
    password, pw_src = _pick(flag_password, "OPENCLAW_GATEWAY_PASSWORD", snapshot, "password",
                             "--password")
    mode = snapshot.config.gateway.auth.mode
    if server:
        # §1: an unresolved `${VAR}` secret counts as unset and stops the start (§4.1), unless
        # a flag or env value replaces it or the mode does not use it.
        if not token and mode in (None, "token"):
            _refuse_unresolved(snapshot, "token")
        if not password and (mode == "password" or (mode is None and not token)):
            _refuse_unresolved(snapshot, "password")
    if mode is None:
        mode = _implied_mode(token, password, flag_token, server)
    if mode == "none":
        return AuthSettings("none")
    if mode == "password":
        return AuthSettings("password", password=password, source=pw_src)
    if token:
        return AuthSettings("token", token=token, source=token_src)
    if server:
        return AuthSettings("token", token=generate_token(state_dir),
                            source=f"generated {token_file(state_dir)}", generated=True)
    stored = read_generated_token(state_dir)
    return AuthSettings("token", token=stored, source=f"generated {token_file(state_dir)}" if stored else "none")


def dropped_config_secret(current: AuthSettings, snapshot: ConfigSnapshot, *,
                          flag_token: str | None = None, flag_password: str | None = None) -> str | None:
    """Why a restart onto `snapshot` must not happen, or None: the running secret came from
    `gateway.auth.token`/`password` and `snapshot` gives none (nor do flags or env), so the
    restart would silently switch every client to the generated `<state>/gateway.token`.
    Pure: reads the environment only, never the token file."""
    if not current.source.startswith("config gateway.auth."):
        return None
    key = current.source.removeprefix("config ")
    if any(f"gateway.auth.{k}" in snapshot.unresolved for k in ("token", "password")):
        return None  # an unset ${VAR}: the restart's own refusal names the variable
    token, _ = _pick(flag_token, "OPENCLAW_GATEWAY_TOKEN", snapshot, "token", "--token")
    password, _ = _pick(flag_password, "OPENCLAW_GATEWAY_PASSWORD", snapshot, "password", "--password")
    mode = snapshot.config.gateway.auth.mode
    if mode == "none" or token or (password and mode != "token"):
        return None
    return (f"{key} is no longer set in the config: keeping the configured {key.rsplit('.', 1)[1]} "
            f"instead of switching every client to the generated gateway.token; set {key} back, "
            "or stop and start the gateway process to use the generated token")


def _implied_mode(token: str | None, password: str | None, flag_token: str | None,
                  server: bool) -> Literal["token", "password"]:
    if flag_token:
        return "token"
    if token and password:
        if server:
            raise StartupRefusal("gateway.auth: both token and password are set; set gateway.auth.mode")
        return "token"
    return "password" if password else "token"


def _refuse_unresolved(snapshot: ConfigSnapshot, key: str) -> None:
    var = snapshot.unresolved.get(f"gateway.auth.{key}")
    if var:
        raise StartupRefusal(f"gateway.auth.{key}: environment variable {var} is not set")
