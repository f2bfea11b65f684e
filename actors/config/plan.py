"""The reload plan (cli-config §5.7): what one loaded snapshot does to the running gateway.

`plan_reload` diffs it against the applied snapshot, classifies each changed path (reload.py)
and decides under `gateway.reload.mode`: skip an invalid file, defer everything (`off`),
restart for every change (`restart`), or apply hot and channel keys live and restart for
restart-class keys (`hybrid`) or leave them pending (`hot`). The ConfigActor makes the plan
and carries out its own part; the loop side (lifecycle/reload.py) the transport's part.
"""

from __future__ import annotations

from typing import Callable, Literal

import msgspec

from actors.config.load import ConfigSnapshot, secret_values
from actors.config.reload import changed_paths, classify

ReloadAction = Literal["skip", "defer", "restart", "live"]


class ReloadPlan(msgspec.Struct, frozen=True, kw_only=True):
    """The config actor's decision for one loaded snapshot. The actor has already adopted it
    (its applied snapshot, `config.get`, the audit line, the hot keys' owners); the loop
    side (lifecycle/reload.py) carries out the rest: logging, the auth limiter, channel
    hooks, the restart scheduler, and the `configReload` status.

    `skip`: the file is invalid, nothing applies. `defer`: mode `off`, changes wait for a
    restart. `restart`: mode `restart`, every change restarts the gateway. `live`: hot and
    channel keys apply now; restart-class keys restart (hybrid) or wait (hot)."""

    action: ReloadAction
    reason: str
    snapshot: ConfigSnapshot  # the snapshot planned (loaded, or just written)
    mode: str  # the mode `configReload` reports afterwards
    summary: str | None = None  # skip: the first error and how many more
    paths: list[str] = []  # the changed paths the plan acts on (its log line)
    hot: list[str] = []
    channel: list[str] = []
    restart: list[str] = []  # paths to request an in-process restart for; [] requests none
    pending: list[str] = []  # restart-class paths that differ from what this boot runs
    refused: str | None = None  # why the wanted restart must not run (credentials)
    logging: bool = False  # a logging.* key is hot: the loop sets logging up again
    secrets: frozenset[str] | None = None  # the new secret values, when they changed
    audit: str | None = None  # the reason of the `reload` audit line, when one is written


def invalid_summary(snapshot: ConfigSnapshot) -> str:
    """`<first error with its path> (+N more)`."""
    first, more = snapshot.issues[0].line(), len(snapshot.issues) - 1
    return first + (f" (+{more} more)" if more else "")


def _ignored(snapshot: ConfigSnapshot) -> set[str]:
    """Top-most paths the loader marks as OpenClaw-only: no effect here, so class none."""
    return set(snapshot.ignored or ())


def _under(path: str, roots: set[str]) -> bool:
    return any(path == r or path.startswith((r + ".", r + "[")) for r in roots)


def effective_changes(old: ConfigSnapshot, new: ConfigSnapshot) -> list[str]:
    """changed_paths between two snapshots, without the OpenClaw-only ones."""
    ignored = _ignored(old) | _ignored(new)
    return [p for p in changed_paths(old.resolved, new.resolved) if not _under(p, ignored)]


def pending_restart(boot: ConfigSnapshot, new: ConfigSnapshot) -> list[str]:
    """Restart-class keys of `new` that differ from what this boot runs with."""
    return classify(effective_changes(boot, new))["restart"]


def plan_reload(applied: ConfigSnapshot, boot: ConfigSnapshot, new: ConfigSnapshot, reason: str,
                mode: str | None, refusal: Callable[[ConfigSnapshot], str | None]) -> ReloadPlan:
    """Plan `new` against the applied snapshot under `mode` (default: its own
    `gateway.reload.mode`; SIGHUP passes `hybrid`). Pure: `refusal` only reads the
    environment."""
    if not new.valid:
        return ReloadPlan(action="skip", reason=reason, snapshot=new, mode=applied.config.gateway.reload.mode,
                          summary=invalid_summary(new))
    mode = mode or new.config.gateway.reload.mode
    paths = effective_changes(applied, new)
    groups = classify(paths)
    live = groups["hot"] + groups["channel"]
    if mode == "off" or (mode == "restart" and (live or groups["restart"])):
        changed = live + groups["restart"]
        pending = list(dict.fromkeys(changed + pending_restart(boot, new)))
        if mode == "restart":
            return ReloadPlan(action="restart", reason=reason, snapshot=new, mode=mode, paths=changed,
                              restart=changed, pending=pending, refused=refusal(new),
                              audit=f"{reason}: {', '.join(changed)}")
        return ReloadPlan(action="defer", reason=reason, snapshot=new, mode=mode, paths=changed,
                          pending=pending)
    pending = pending_restart(boot, new)
    # Only what differs from the running boot needs a restart: an edit that puts back a key
    # whose change was refused (or not yet applied) restarts nothing.
    wants_restart = bool(groups["restart"] and mode == "hybrid" and pending)
    new_secrets = secret_values(new.resolved)
    return ReloadPlan(
        action="live", reason=reason, snapshot=new, mode=new.config.gateway.reload.mode, paths=paths,
        hot=groups["hot"], channel=groups["channel"],
        restart=groups["restart"] if wants_restart else [], pending=pending,
        refused=refusal(new) if wants_restart else None,
        logging=any(p.split(".")[0] == "logging" for p in groups["hot"]),
        secrets=frozenset(new_secrets) if live and new_secrets != secret_values(applied.resolved) else None,
        audit=f"{reason}: {', '.join(paths)}" if live or groups["restart"] else None)
