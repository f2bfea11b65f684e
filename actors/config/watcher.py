"""WatcherActor: notices edits of the config file (cli-config §5.7, architecture §3).

It watches the config file's DIRECTORY, not the file, because editors save by writing a temp
file and renaming it over the original, which replaces the inode a file watch would follow;
included files (`snapshot.included_files`, when the loader provides it) are watched the same
way. watchfiles' iterator blocks, so it runs in a worker thread this actor owns and stops
through `stop_event` (architecture §4: no blocking I/O in a message handler).

Debounce: a change settles after `gateway.reload.debounceMs` without a further one (counted
in the worker thread, at watchfiles' step resolution). A settled change whose file content hashes to the hash
the gateway itself last wrote or applied (`KnownHash`) is ignored: it is the gateway's own
write, or nothing changed. Anything else goes to `on_change` (injected by the lifecycle,
which has the ConfigActor load and plan it, in turn with the other reloads); this module never
imports tornado.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import watchfiles

from actors.base import GatewayActor, tell
from actors.config.load import revision
from actors.registry import ActorName

log = logging.getLogger("openclaw.gateway")

MAX_BATCH_MS = 60_000  # watchfiles' cap on one group of changes, far above any debounce
STEP_MS = 25  # watchfiles' polling step: the resolution of the debounce


class KnownHash:
    """The content hash (`ConfigSnapshot.hash`, of the raw file bytes) the gateway last wrote
    or applied: `GatewayState.known_hash`. Shared by threads: the ConfigActor sets it for
    every snapshot it plans (an RPC write is planned right after the write, long before a
    debounce ends); a writer that sets it before its rename closes even that window. The
    watcher's thread reads it."""

    def __init__(self, value: str | None = None) -> None:
        self._lock = threading.Lock()
        self._value = value

    def set(self, value: str | None) -> None:
        with self._lock:
            self._value = value

    def get(self) -> str | None:
        with self._lock:
            return self._value


def file_hash(path: str | os.PathLike[str]) -> str:
    """The hash load_config would give the file; a missing file hashes as empty."""
    try:
        return revision(Path(path).read_bytes())
    except OSError:
        return revision(b"")


WATCHER: ActorName[WatcherActor] = ActorName("watcher")


class WatcherActor(GatewayActor):
    def __init__(self, config_path: str, included: Iterable[str], debounce_ms: int,
                 known: KnownHash, on_change: Callable[[list[str]], None]) -> None:
        super().__init__()
        self._config = os.path.abspath(config_path)
        self._files = {self._config, *(os.path.abspath(f) for f in included)}
        self._debounce_ms = debounce_ms
        self._known, self._on_change = known, on_change
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def on_start(self) -> None:
        dirs = sorted({os.path.dirname(f) for f in self._files if os.path.isdir(os.path.dirname(f))})
        if not dirs:
            log.warning("config watcher: no existing directory to watch for %s", sorted(self._files))
            return
        self._thread = threading.Thread(target=self._watch, args=(dirs,), name="config-watcher",
                                        daemon=True)
        self._thread.start()

    def on_stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def settled(self, paths: list[str]) -> None:
        """Told by the worker thread: a change that is not the gateway's own write."""
        log.debug("config watcher: change settled in %s", paths)
        self._on_change(paths)

    # --- worker thread ---------------------------------------------------------------------

    def _watch(self, dirs: list[str]) -> None:
        files, debounce_s = self._files, self._debounce_ms / 1000
        pending: set[str] = set()
        last_change = 0.0
        try:
            # watchfiles yields a batch once STEP_MS passed without a new change, and an empty
            # batch every STEP_MS of silence: the debounce below counts quiet time from those.
            for changes in watchfiles.watch(
                    *dirs, watch_filter=lambda _change, path: os.path.abspath(path) in files,
                    debounce=MAX_BATCH_MS, step=STEP_MS, rust_timeout=STEP_MS, yield_on_timeout=True,
                    stop_event=self._halt, recursive=False, raise_interrupt=False):
                now = time.monotonic()
                if changes:
                    pending |= {os.path.abspath(p) for _, p in changes}
                    last_change = now - STEP_MS / 1000  # the batch had been quiet for a step
                if not pending or now - last_change < debounce_s:
                    continue
                paths, pending = sorted(pending), set()
                # Only the main file's hash is known; an included file's change always counts.
                if paths == [self._config] and file_hash(self._config) == self._known.get():
                    log.debug("config watcher: ignoring the gateway's own write of %s", paths)
                    continue
                tell(self.actor_ref, WatcherActor.settled, paths)
        except Exception as exc:  # noqa: BLE001 - a dead watcher must not go unnoticed
            if not self._halt.is_set():
                log.error("config watcher stopped: %s", exc)
