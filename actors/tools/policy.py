"""The exec policy (cli-config §6.6): what `tools.exec` decides for one shell command.

`decide` splits the command line into segments at the chain operators (`;`, `&&`, `||`, `|`,
`&`, newlines), finds each segment's executable the way the shell would (leading `VAR=value`
assignments skipped, a name with a `/` against the working directory, a bare name through
`PATH`) and checks every segment against `tools.exec.allowlist`. What the parser cannot
analyse safely (command or process substitution, subshells and braces, shell keywords and the
builtins that run code or change how later words resolve, assignments to PATH-like variables,
a command name the shell would expand) is a miss with a reason, never an allow.

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

Action = Literal["allow", "deny", "ask"]

DENIED_BY_POLICY = "exec denied by policy (tools.exec.security=deny)"
DENIED_NO_APPROVER = "exec denied: no approver connected (tools.exec.askFallback=deny)"
DENIED_EMPTY = "exec denied: empty command"

# Inline assignments that change which program runs or what it loads before the command does
# (the same names the executor refuses in the exec tool's `env`).
REFUSED_ASSIGNMENTS = frozenset({"PATH", "IFS", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4",
                                 "PROMPT_COMMAND"})
REFUSED_ASSIGNMENT_PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_")

# First words the shell handles itself: keywords make the segment structure unreliable, and
# these builtins run other code or change how later words resolve (variables, cwd, hashing),
# whatever a file of the same name on PATH would do.
SHELL_KEYWORDS = frozenset({"if", "then", "else", "elif", "fi", "case", "esac", "for", "select",
                            "while", "until", "do", "done", "in", "function", "time", "coproc",
                            "!", "{", "}", "[[", "]]"})
SHELL_BUILTINS = frozenset({"eval", "exec", "source", ".", "command", "builtin", "trap", "alias",
                            "unalias", "enable", "hash", "set", "shopt", "export", "declare",
                            "typeset", "local", "readonly", "unset", "cd", "pushd", "popd", "let",
                            "read", "mapfile", "readarray", "getopts"})

_SEPARATORS = frozenset({";", "&&", "||", "|", "&", "\n"})
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\+?=")
_REDIRECTIONS = ("<<<", "<<-", "&>>", "<<", ">>", ">|", "<>", ">&", "<&", "&>", "<", ">")
_GLOBBY = frozenset("*?[{")
# What makes the shell rewrite a command name: a glob or a brace expansion (a lone `[` is the
# test command, not a glob).
_GLOB = re.compile(r"[*?]|\[.+\]|\{.*[,.].*\}")


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


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    """One simple command of a chain: its argv (assignments and redirections left out) and
    why it cannot be checked, if it cannot."""
    argv: list[str]
    assignments: list[str] = []
    unsafe: str | None = None


# --- tokenizer ----------------------------------------------------------------------------

class _Word(msgspec.Struct, kw_only=True):
    text: str = ""  # the word after quote removal
    raw: str = ""  # as written (assignments are recognised on it)
    expands: bool = False  # has an unquoted or double-quoted `$`, or a leading `~`
    globby: bool = False  # has unquoted glob or brace characters
    unsafe: str | None = None


class _Lexer:
    """A small POSIX-shell tokenizer: words (quotes and escapes removed), chain separators,
    `(`/`)`, and redirection operators. Substitutions are skipped over as text and flagged."""

    def __init__(self, source: str) -> None:
        self.s, self.i = source, 0
        self.tokens: list[_Word | str] = []
        self.word: _Word | None = None
        self.start = 0
        self.heredocs: list[tuple[int, bool]] = []  # (token index of the delimiter, strip tabs)

    def run(self) -> list[_Word | str]:
        while self.i < len(self.s):
            self._step(self.s[self.i])
        self._end_word()
        return self.tokens

    # -- words --

    def _add(self, text: str, *, expands: bool = False, globby: bool = False,
             unsafe: str | None = None) -> None:
        if self.word is None:
            self.word, self.start = _Word(), self.i
        self.word.text += text
        self.word.expands = self.word.expands or expands
        self.word.globby = self.word.globby or globby
        self.word.unsafe = self.word.unsafe or unsafe

    def _end_word(self) -> None:
        if self.word is not None:
            self.word.raw = self.s[self.start:self.i]
            self.tokens.append(self.word)
            self.word = None

    def _step(self, c: str) -> None:
        if c in " \t":
            self._end_word()
            self.i += 1
        elif c == "\n":
            self._end_word()
            self.i += 1
            self._heredoc_bodies()
            self.tokens.append("\n")
        elif c == "#" and self.word is None:
            end = self.s.find("\n", self.i)
            self.i = len(self.s) if end < 0 else end
        elif c == "\\":
            self._backslash()
        elif c == "'":
            self._single_quoted()
        elif c == '"':
            self._double_quoted()
        elif c == "`" or (c == "$" and self._next() == "("):
            self._substitution("command substitution")
        elif c in "<>" and self._next() == "(":
            self._substitution("process substitution")
        elif c in ";&|()<>":
            self._operator(c)
        else:
            first = self.word is None
            self._add(c, expands=c == "$" or (c == "~" and first), globby=c in _GLOBBY)
            self.i += 1

    def _next(self, k: int = 1) -> str:
        return self.s[self.i + k] if self.i + k < len(self.s) else ""

    def _backslash(self) -> None:
        nxt = self._next()
        if nxt == "\n":  # line continuation: removed entirely
            self.i += 2
            return
        self._add(nxt or "\\")
        self.i += 2

    def _single_quoted(self) -> None:
        end = self.s.find("'", self.i + 1)
        if end < 0:
            self._add(self.s[self.i + 1:], unsafe="unterminated quote")
            self.i = len(self.s)
            return
        self._add(self.s[self.i + 1:end])
        self.i = end + 1

    def _double_quoted(self) -> None:
        self._add("")  # `""` is an (empty) word too
        self.i += 1
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                return
            if c == "\\" and self._next() in ('$', '`', '"', "\\", "\n"):
                self._add("" if self._next() == "\n" else self._next())
                self.i += 2
            elif c == "`" or (c == "$" and self._next() == "("):
                self._substitution("command substitution")
            else:
                self._add(c, expands=c == "$")
                self.i += 1
        self._add("", unsafe="unterminated quote")

    def _substitution(self, kind: str) -> None:
        """`$(…)`, `` `…` ``, `<(…)`, `>(…)`: kept as text, flagged; what is inside never
        splits the outer command."""
        end = _closing_backtick(self.s, self.i) if self.s[self.i] == "`" else \
            _closing_paren(self.s, self.i + 1)
        self._add(self.s[self.i:end], unsafe=kind)
        self.i = end

    def _operator(self, c: str) -> None:
        two, three = self.s[self.i:self.i + 2], self.s[self.i:self.i + 3]
        if c in "<>" or two == "&>":
            self._redirection()
            return
        self._end_word()
        if two in ("&&", "||"):
            op, n = two, 2
        elif two in ("|&", ";;", ";&"):  # stderr pipe; case terminators are separators too
            op, n = ("|" if two == "|&" else ";"), (3 if three == ";;&" else 2)
        else:
            op, n = c, 1
        self.tokens.append(op)
        self.i += n

    def _redirection(self) -> None:
        # `2>&1`, `{fd}>x`: the word glued to the operator names a descriptor, not an argument.
        if self.word is not None and re.fullmatch(r"\d+|\{[A-Za-z_][A-Za-z0-9_]*\}",
                                                  self.s[self.start:self.i]):
            self.word = None
        self._end_word()
        op = next(op for op in _REDIRECTIONS if self.s.startswith(op, self.i))
        if op in ("<<", "<<-"):
            self.heredocs.append((len(self.tokens) + 1, op == "<<-"))
        self.tokens.append("redir")
        self.i += len(op)

    def _heredoc_bodies(self) -> None:
        """Here-document bodies follow the line that opened them; an unquoted delimiter makes
        `$(…)` and backticks in the body run."""
        for index, strip in self.heredocs:
            delim = self.tokens[index] if index < len(self.tokens) else None
            if not isinstance(delim, _Word):
                continue
            body = self._body_until(delim.text, strip)
            if delim.text == delim.raw and ("$(" in body or "`" in body):
                delim.unsafe = delim.unsafe or "command substitution in a here-document"
        self.heredocs = []

    def _body_until(self, delimiter: str, strip_tabs: bool) -> str:
        lines = []
        while self.i < len(self.s):
            end = self.s.find("\n", self.i)
            end = len(self.s) if end < 0 else end
            line, self.i = self.s[self.i:end], end + 1
            if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                break
            lines.append(line)
        self.i = min(self.i, len(self.s))
        return "\n".join(lines)


def _closing_paren(s: str, i: int) -> int:
    """Index just past the `)` matching the `(` at s[i] (quotes skipped), or len(s)."""
    depth = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 1
        elif c in "'\"":
            end = s.find(c, i + 1)
            i = len(s) if end < 0 else end
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(s)


def _closing_backtick(s: str, i: int) -> int:
    i += 1
    while i < len(s) and s[i] != "`":
        i += 2 if s[i] == "\\" else 1
    return min(i + 1, len(s))


# --- segments -----------------------------------------------------------------------------

def split_command(command: str) -> list[Segment]:
    """The simple commands of a command line, in order. Segments that run nothing (empty,
    only harmless assignments or redirections) are left out."""
    segments: list[Segment] = []
    words: list[_Word] = []
    unsafe: list[str] = []
    redirect = False
    for token in _Lexer(command).run():
        if isinstance(token, _Word):
            unsafe += [token.unsafe] if token.unsafe else []
            if not redirect:
                words.append(token)
            redirect = False
        elif token == "redir":
            redirect = True
        elif token in _SEPARATORS:
            segments += _segment(words, unsafe)
            words, unsafe, redirect = [], [], False
        else:  # `(` or `)`
            unsafe.append("subshell or grouping")
    return segments + _segment(words, unsafe)


def _segment(words: list[_Word], unsafe: list[str]) -> list[Segment]:
    n = 0
    while n < len(words) and _ASSIGNMENT.match(words[n].raw):
        n += 1
    assignments = [w.text for w in words[:n]]
    argv = [w.text for w in words[n:]]
    reasons = unsafe + [f"assignment to {name}" for name in map(_assigned_name, words[:n])
                        if _refused_assignment(name)]
    if argv:
        reasons += _command_name_problems(words[n], argv)
    if not argv and not reasons:
        return []
    return [Segment(argv=argv, assignments=assignments, unsafe=reasons[0] if reasons else None)]


def _assigned_name(word: _Word) -> str:
    match = _ASSIGNMENT.match(word.raw)
    return match.group(1) if match else ""


def _refused_assignment(name: str) -> bool:
    return name in REFUSED_ASSIGNMENTS or name.startswith(REFUSED_ASSIGNMENT_PREFIXES)


def _command_name_problems(first: _Word, argv: list[str]) -> list[str]:
    name = argv[0]
    if first.text == first.raw and name in SHELL_KEYWORDS:
        return [f"shell keyword {name}"]
    if first.expands or (first.globby and _GLOB.search(first.raw)):
        return [f"the command name {first.raw} is expanded by the shell"]
    if name in SHELL_BUILTINS:
        return [f"shell builtin {name}"]
    if name == "printf" and any(a.startswith("-v") for a in argv[1:]):
        return ["printf -v sets a shell variable"]
    return []


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
