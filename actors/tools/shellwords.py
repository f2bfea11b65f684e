"""The shell command line as the exec policy reads it (actors/tools/policy.py): a lexer for
the POSIX shell's quoting, substitutions, operators, redirections and here-documents, and
`split_command`, which cuts a command line into simple commands (`Segment`) and says why a
segment cannot be analysed safely (command or process substitution, subshells and braces,
shell keywords and the builtins that run code or change how later words resolve, assignments
to PATH-like variables, a command name the shell would expand).
"""

from __future__ import annotations

import re

import msgspec

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
