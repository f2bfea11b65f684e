"""The exec policy (cli-config §6.6): what `tools.exec` decides for one shell command.

`decide` splits the command line into segments at the chain operators (`;`, `&&`, `||`, `|`,
`&`, newlines), finds each segment's executable the way the shell would (leading `VAR=value`
assignments skipped, a name with a `/` against the working directory, a bare name through
`PATH`) and checks every segment against `tools.exec.allowlist`. What the parser cannot
analyse safely (command or process substitution, subshells and braces, shell keywords and the
builtins that run code or change how later words resolve, assignments to PATH-like variables,
a command name the shell would expand) is a miss with a reason, never an allow. The
splitting and what counts as unanalysable are actors/tools/shellwords.py.

Allowlist entries (a string means `{pattern: string}`):
- `pattern` with a `/` is an `fnmatch` glob over the resolved absolute path: `*` matches any
  characters *including* `/`, `**` is not special, matching is case-sensitive; a leading `~`
  is the user's home.
- `pattern` without a `/` (`ls`, `git`) matches only an executable the user named bare and
  that was found through an absolute `PATH` directory, with exactly that basename: a `./ls`
  copy in the working directory never matches `ls`.
- `argPattern` is a Python regex that must fullmatch the arguments joined by single spaces,
  as written (before the shell expands `$VAR`, globs or `~`).

Resolved paths are "real directory + name as found": the directory's symlinks and `..` are
resolved (so `/bin/ls` on merged-/usr systems is `/usr/bin/ls`), the last component is kept,
so `python3` stays `python3` and busybox applets keep their own names instead of all becoming
`/bin/busybox`.

Redirections are ignored (the allowlist is about what runs, not what it writes); their
targets never reach argv. Wrappers that run their arguments (`env`, `xargs`, `find -exec`,
`sh -c`, `sudo`) are the allowlist author's responsibility, as in OpenClaw.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from actors.tools.shellwords import split_command

Action = Literal["allow", "deny", "ask"]

DENIED_BY_POLICY = "exec denied by policy (tools.exec.security=deny)"
DENIED_NO_APPROVER = "exec denied: no approver connected (tools.exec.askFallback=deny)"
DENIED_EMPTY = "exec denied: empty command"

class Decision(msgspec.Struct, frozen=True, kw_only=True):
    action: Action
    reason: str  # client-facing
    argv: list[str] = []  # the first segment's
    resolved_path: str | None = None  # the first segment's executable, or the first miss's
    segments: list[list[str]] = []
    misses: list[str] = []  # resolved paths (or names not found) that are not on the allowlist
    miss_paths: list[str] = []  # the resolved absolute paths among `misses` (allow-always adds)
    unchecked: list[str] = []  # why segments could not be analysed (each one is a miss too)
    hit: bool = False  # every segment is on the allowlist (askFallback=allowlist needs it)


# --- executables --------------------------------------------------------------------------

def resolve_executable(name: str, path_env: str, cwd: Path) -> str | None:
    """The executable the shell would run for `name`: with a `/`, relative to `cwd`; bare,
    the first executable file in `path_env`. Its real directory plus its name, or None."""
    return _locate(name, path_env, cwd)[0]


def _locate(name: str, path_env: str, cwd: Path) -> tuple[str | None, bool]:
    """(resolved path, found through an absolute PATH directory)."""
    if not name:
        return None, False
    if "/" in name:
        return _executable(os.path.join(cwd, name)), False
    for entry in path_env.split(os.pathsep):
        # An empty or relative PATH entry is searched relative to the working directory, as
        # the shell does; what it finds does not count as "found through PATH".
        found = _executable(os.path.join(cwd, entry or ".", name))
        if found:
            return found, os.path.isabs(entry)
    return None, False


def _executable(path: str) -> str | None:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return None
    directory, base = os.path.split(path)
    return os.path.join(os.path.realpath(directory or "."), base)


# --- allowlist ----------------------------------------------------------------------------

def _entry(entry: Any) -> tuple[str, str | None]:
    """(pattern, arg_pattern) of a config entry: a string, an AllowEntry or a plain dict."""
    if isinstance(entry, str):
        return entry, None
    if isinstance(entry, dict):
        return str(entry.get("pattern", "")), entry.get("argPattern", entry.get("arg_pattern"))
    return entry.pattern, entry.arg_pattern


def entry_matches(entry: Any, argv: Sequence[str], resolved: str | None, via_path: bool) -> bool:
    """Does one allowlist entry cover this segment?"""
    pattern, arg_pattern = _entry(entry)
    if resolved is None or not pattern:
        return False
    if "/" in pattern:
        if not fnmatch.fnmatchcase(resolved, os.path.expanduser(pattern)):
            return False
    elif not (via_path and os.path.basename(resolved) == pattern):
        return False
    if arg_pattern is None:
        return True
    try:
        return re.fullmatch(arg_pattern, " ".join(argv[1:])) is not None
    except re.error:  # a bad regex allows nothing rather than failing every exec
        return False


class _Check(msgspec.Struct, kw_only=True):
    segments: list[list[str]]
    first_resolved: str | None = None
    misses: list[str] = []
    miss_paths: list[str] = []
    miss_resolved: list[str | None] = []
    unchecked: list[str] = []


def _check(command: str, allowlist: Iterable[Any], path_env: str, cwd: Path) -> _Check:
    entries = list(allowlist)
    segments = split_command(command)
    result = _Check(segments=[s.argv for s in segments])
    for index, segment in enumerate(segments):
        name = segment.argv[0] if segment.argv else ""
        resolved, via_path = _locate(name, path_env, cwd)
        if index == 0:
            result.first_resolved = resolved
        if segment.unsafe:
            result.unchecked.append(segment.unsafe)
            result.miss_resolved.append(resolved)
        elif not any(entry_matches(e, segment.argv, resolved, via_path) for e in entries):
            label = resolved or name
            if label not in result.misses:
                result.misses.append(label)
            if resolved and resolved not in result.miss_paths:
                result.miss_paths.append(resolved)
            result.miss_resolved.append(resolved)
    return result


# --- decisions ----------------------------------------------------------------------------

def decide(command: str, exec_cfg: Any, *, path_env: str, cwd: Path) -> Decision:
    """The policy's verdict for `command` under `exec_cfg` (config_schema.Exec)."""
    if not command.strip():
        return Decision(action="deny", reason=DENIED_EMPTY)
    check = _check(command, exec_cfg.allowlist, path_env, cwd)
    hit = not check.misses and not check.unchecked
    ask_always = exec_cfg.ask == "always"
    if exec_cfg.security == "deny":
        return _decision(check, "deny", DENIED_BY_POLICY, hit)
    if exec_cfg.security == "full" or hit:
        if ask_always:
            return _decision(check, "ask", "approval required (tools.exec.ask=always)", hit)
        why = "on the allowlist" if exec_cfg.security != "full" else \
            "allowed by policy (tools.exec.security=full)"
        return _decision(check, "allow", why, hit)
    if exec_cfg.ask == "off":
        return _decision(check, "deny", f"exec denied: {_miss_text(check)} (tools.exec.allowlist)",
                         hit)
    return _decision(check, "ask", _ask_text(check), hit)


def _decision(check: _Check, action: Action, reason: str, hit: bool) -> Decision:
    missed = check.miss_resolved[0] if check.miss_resolved else check.first_resolved
    return Decision(action=action, reason=reason,
                    argv=check.segments[0] if check.segments else [],
                    resolved_path=missed, segments=check.segments, misses=check.misses,
                    miss_paths=check.miss_paths, unchecked=check.unchecked, hit=hit)


def _miss_text(check: _Check | Decision) -> str:
    """`<path> is not on the allowlist` / `<why> cannot be checked against the allowlist`."""
    parts = []
    if check.misses:
        verb = "is" if len(check.misses) == 1 else "are"
        parts.append(f"{', '.join(check.misses)} {verb} not on the allowlist")
    if check.unchecked:
        parts.append(f"{'; '.join(_dedupe(check.unchecked))} cannot be checked against the "
                     "allowlist")
    return "; ".join(parts)


def _ask_text(check: _Check) -> str:
    parts = []
    if check.misses:
        parts.append(f"not on the allowlist: {', '.join(check.misses)}")
    if check.unchecked:
        why = "; ".join(_dedupe(check.unchecked))
        parts.append(f"cannot be checked against the allowlist: {why}")
    return "; ".join(parts)


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def fallback(decision: Decision, exec_cfg: Any) -> Decision:
    """What `askFallback` decides for an `ask` when nobody can approve (or the approval
    expired). Allow and deny verdicts pass through unchanged. `allowlist` uses the hit
    computed by `decide` (the allowlist of that moment)."""
    if decision.action != "ask":
        return decision
    mode = exec_cfg.ask_fallback
    if mode == "full":
        return msgspec.structs.replace(decision, action="allow",
                                       reason="allowed by policy (tools.exec.askFallback=full)")
    if mode == "allowlist" and decision.hit:
        return msgspec.structs.replace(decision, action="allow", reason="on the allowlist")
    if mode == "allowlist":
        return msgspec.structs.replace(
            decision, action="deny",
            reason=f"exec denied: {_miss_text(decision)} (tools.exec.askFallback=allowlist)")
    return msgspec.structs.replace(decision, action="deny", reason=DENIED_NO_APPROVER)


def allowlist_entry_for(decision: Decision) -> dict:
    """The entry an `allow-always` adds for a simple command: its resolved binary."""
    path = decision.miss_paths[0] if decision.miss_paths else decision.resolved_path
    if not path:
        raise ValueError("the command has no resolved executable to allow")
    return {"pattern": path}


def allowlist_entries_for(decision: Decision, existing: Iterable[Any] = ()) -> list[dict]:
    """The entries an `allow-always` adds: one per missed resolved binary of the chain, in
    order, without duplicates and without those already present as plain entries. Segments
    that cannot be analysed add nothing (they would still miss next time)."""
    present = {pattern for pattern, arg in map(_entry, existing) if arg is None}
    return [{"pattern": p} for p in decision.miss_paths if p not in present]


def exec_request(command: str, decision: Decision, cwd: str, security: str, ask: str,
                 agent_id: str, session_key: str) -> dict:
    """The `request` object of `exec.approval.requested` (protocol §7.6); `cwd` as shown."""
    return {"command": command, "commandArgv": list(decision.argv), "cwd": cwd,
            "host": "gateway", "security": security, "ask": ask, "agentId": agent_id,
            "resolvedPath": decision.resolved_path, "sessionKey": session_key}
