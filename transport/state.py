"""Loop-side state of one gateway boot, handed to every Tornado handler through
`initialize(state=...)`. Only the event loop thread touches it."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

import msgspec

from actors.config.load import ConfigSnapshot
from actors.config.settings import AuthSettings
from actors.config.watcher import KnownHash
from actors.health import default_reload_status
from transport.auth import FailedAuthLimiter

if TYPE_CHECKING:
    from lifecycle.restart import RestartScheduler
    from lifecycle.startup import RunOptions
    from transport.loopstats import LoopProbe

STARTING, READY, DRAINING = "starting", "ready", "draining"


class Connection(Protocol):
    """An entry of `GatewayState.connections`: a protocol socket (transport/ws.py) or an
    OpenAI-compatible HTTP run's event sink (transport/http_openai.py)."""

    def send_event(self, event: str, payload_json: bytes, state_version: bytes | None,
                   droppable: bool) -> None: ...

    def shutdown(self, payload_json: bytes) -> None: ...


@dataclass
class GatewayState:
    # The applied config: a read-only copy the ConfigActor pushes after every change (the
    # boot seeds it with the snapshot the actor starts from). Never assigned by a reload here.
    snapshot: ConfigSnapshot
    auth: AuthSettings
    state_dir: str
    config_path: str
    port: int
    bind_mode: str
    bind_host: str
    dev: bool = False
    verbose: bool = False
    phase: str = STARTING
    boot_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_at_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    started_mono: float = field(default_factory=time.monotonic)
    connections: dict[str, Connection] = field(default_factory=dict)
    limiter: FailedAuthLimiter = field(default_factory=FailedAuthLimiter)
    loop_probe: "LoopProbe | None" = None
    in_flight: int = 0
    health: dict | None = None  # the HealthActor's latest summary, mirrored on the loop
    health_at: float = 0.0  # monotonic time the mirror was last refreshed
    extra: dict[str, Any] = field(default_factory=dict)
    # --- config reload (lifecycle/reload.py) and in-process restart (lifecycle/restart.py) ---
    opts: "RunOptions | None" = None  # the run flags: they beat the config at every (re)boot
    state_dir_from_env: bool = False  # picks the default log file name (logs.log_file_path)
    # config.get's answer, encoded by the ConfigActor once per change and pushed with
    # `snapshot`; None until the first push (config.get then asks the actor).
    config_payload: msgspec.Raw | None = None
    # Plans and applies a snapshot the RPC write path just wrote (lifecycle/reload.py installs
    # it): (snapshot, reason, restart delay ms) -> the protocol §10.5 `restart` object.
    apply_config: Callable[[ConfigSnapshot, str, int], Awaitable[dict | None]] | None = None
    # The raw-file hash the gateway last wrote or applied, shared with the watcher thread
    # (which ignores events of that content) and the ConfigActor (which sets it for every
    # snapshot it plans). Config writers set it before they rename the new file in place.
    known_hash: KnownHash = field(default_factory=KnownHash)
    reload_status: dict = field(default_factory=lambda: default_reload_status("hybrid"))
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    restarts: "RestartScheduler | None" = None
    # Called with the changed channel paths on a `channel`-class reload (the channels issue
    # plugs its channel restarts in here).
    channel_reload_hooks: list[Callable[[list[str]], None]] = field(default_factory=list)

    def uptime_ms(self) -> int:
        return int((time.monotonic() - self.started_mono) * 1000)

    def cached_health(self, max_age_s: float = 60.0) -> dict | None:
        """The mirrored health summary if it is younger than `max_age_s` (protocol §9.1)."""
        if self.health is not None and time.monotonic() - self.health_at < max_age_s:
            return self.health
        return None

    @property
    def ready(self) -> bool:
        return self.phase == READY
