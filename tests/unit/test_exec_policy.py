"""The exec policy (actors/tools/policy.py): segment splitting, executable resolution, the
allowlist matching rules and every security × ask × askFallback combination, on real
executables of this machine and temporary directories."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from actors.config.schema import AllowEntry, Exec
from actors.tools.policy import (
    DENIED_BY_POLICY,
    DENIED_NO_APPROVER,
    Decision,
    allowlist_entries_for,
    allowlist_entry_for,
    decide,
    entry_matches,
    exec_request,
    fallback,
    resolve_executable,
    split_command,
)

PATH = os.environ.get("PATH", os.defpath)


def _real(name: str) -> str:
    """What the policy resolves a bare name to: the real PATH directory plus the name."""
    found = shutil.which(name, path=PATH)
    if found is None:
        pytest.skip(f"{name} not on PATH", allow_module_level=True)
    directory, base = os.path.split(found)
    return os.path.join(os.path.realpath(directory), base)


LS, ECHO, TRUE = _real("ls"), _real("echo"), _real("true")


def argvs(command: str) -> list[list[str]]:
    return [s.argv for s in split_command(command)]


def unsafe(command: str) -> list[str | None]:
    return [s.unsafe for s in split_command(command)]


def run(command: str, cwd: Path, path_env: str = PATH, **cfg) -> Decision:
    return decide(command, Exec(**cfg), path_env=path_env, cwd=cwd)


def make_exe(path: Path, body: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# -- segments -------------------------------------------------------------------------------

class TestSplit:
    def test_simple(self) -> None:
        assert argvs("ls -la /tmp") == [["ls", "-la", "/tmp"]]

    def test_operators_without_spaces(self) -> None:
        assert argvs("a;b") == [["a"], ["b"]]
        assert argvs("a&&b||c|d") == [["a"], ["b"], ["c"], ["d"]]

    def test_all_chain_operators(self) -> None:
        assert argvs("a && b || c | d ; e") == [["a"], ["b"], ["c"], ["d"], ["e"]]

    def test_background_and_stderr_pipe_split_too(self) -> None:
        assert argvs("sleep 1 & rm x") == [["sleep", "1"], ["rm", "x"]]
        assert argvs("a |& b") == [["a"], ["b"]]

    def test_newlines_split(self) -> None:
        assert argvs("ls\necho hi\n\n") == [["ls"], ["echo", "hi"]]

    def test_quotes_keep_operators(self) -> None:
        assert argvs("echo 'a;b' \"c && d\" e\\;f") == [["echo", "a;b", "c && d", "e;f"]]

    def test_quotes_join_into_one_word(self) -> None:
        assert argvs("echo a'b c'\"d\" ''") == [["echo", "ab cd", ""]]

    def test_backslash_escapes(self) -> None:
        assert argvs(r"echo a\ b \| c\\") == [["echo", "a b", "|", "c\\"]]

    def test_double_quote_escapes(self) -> None:
        assert argvs(r'echo "a\"b\$c\d"') == [["echo", 'a"b$c\\d']]

    def test_line_continuation(self) -> None:
        assert argvs("ls \\\n  -la") == [["ls", "-la"]]

    def test_env_assignments_skipped(self) -> None:
        (seg,) = split_command("FOO=1 BAR='x y' BAZ+=z ls -l")
        assert seg.argv == ["ls", "-l"]
        assert seg.assignments == ["FOO=1", "BAR=x y", "BAZ+=z"]

    def test_quoted_assignment_is_a_command(self) -> None:
        assert argvs("'FOO=1' ls") == [["FOO=1", "ls"]]

    def test_assignment_only_runs_nothing(self) -> None:
        assert argvs("FOO=bar") == []
        assert argvs("FOO=bar; ls") == [["ls"]]

    def test_comments(self) -> None:
        assert argvs("echo a#b # rm -rf /\nls") == [["echo", "a#b"], ["ls"]]

    def test_redirections_stay_out_of_argv(self) -> None:
        assert argvs("ls -l > out.txt 2>&1 < in | wc -l >>log") == [["ls", "-l"], ["wc", "-l"]]
        assert argvs("2>/dev/null ls &>/dev/null") == [["ls"]]
        assert argvs("echo 2 >x") == [["echo", "2"]]  # a spaced digit is an argument

    def test_redirection_only_runs_nothing(self) -> None:
        assert argvs("> out") == []

    def test_quoted_heredoc_body_is_data(self) -> None:
        segs = split_command("cat <<'EOF' > f\nrm -rf / $(id)\nEOF\nls")
        assert [(s.argv, s.unsafe) for s in segs] == [(["cat"], None), (["ls"], None)]

    def test_heredoc_body_with_substitution_is_a_miss(self) -> None:
        assert unsafe("cat <<EOF\nhi $(id)\nEOF\nls") == [
            "command substitution in a here-document", None]

    def test_heredoc_without_substitution(self) -> None:
        assert unsafe("cat <<-EOF\n\thello $USER\n\tEOF") == [None]

    @pytest.mark.parametrize("command", [
        "echo $(rm -rf /)", "echo `id`", 'echo "$(id)"', 'echo "`id`"', "x=$(id) ls",
        "echo hi > $(id)", "echo $(a; b) c", "echo $((1+2))",
    ])
    def test_command_substitution_is_a_miss(self, command: str) -> None:
        assert unsafe(command)[0] == "command substitution"

    def test_substitution_does_not_split_the_outer_command(self) -> None:
        assert argvs("echo $(a; b) c") == [["echo", "$(a; b)", "c"]]

    def test_single_quotes_do_not_substitute(self) -> None:
        assert unsafe("echo '$(id)' '`id`'") == [None]

    def test_process_substitution(self) -> None:
        assert unsafe("diff <(ls a) >(cat)") == ["process substitution"]

    @pytest.mark.parametrize("command", ["(cd x; ls)", "ls; (rm x)", "f() { rm x; }"])
    def test_subshells_are_misses(self, command: str) -> None:
        assert "subshell or grouping" in unsafe(command)

    def test_braces_and_keywords_are_misses(self) -> None:
        assert unsafe("{ ls; }") == ["shell keyword {", "shell keyword }"]
        assert unsafe("if true; then ls; fi")[0] == "shell keyword if"

    @pytest.mark.parametrize("name", ["eval", "exec", "source", ".", "command", "cd", "export"])
    def test_builtins_that_run_code_are_misses(self, name: str) -> None:
        assert unsafe(f"{name} x") == [f"shell builtin {name}"]

    def test_printf_v_sets_a_variable(self) -> None:
        assert unsafe("printf -v PATH /tmp") == ["printf -v sets a shell variable"]
        assert unsafe("printf '%s' x") == [None]

    @pytest.mark.parametrize("name", ["PATH", "IFS", "LD_PRELOAD", "DYLD_INSERT_LIBRARIES",
                                      "BASH_ENV"])
    def test_path_like_assignments_are_misses(self, name: str) -> None:
        assert unsafe(f"{name}=/tmp/x ls") == [f"assignment to {name}"]
        assert unsafe(f"{name}=/tmp/x; ls") == [f"assignment to {name}", None]

    @pytest.mark.parametrize("command", ["$X -rf", '"$X"', "/usr/bin/l? x", "~/bin/x",
                                         "/usr/bin/{ls,rm}", "$'rm' x"])
    def test_expanded_command_names_are_misses(self, command: str) -> None:
        assert unsafe(command)[0].startswith("the command name ")

    def test_test_bracket_is_a_command(self) -> None:
        assert [(s.argv, s.unsafe) for s in split_command("[ -f x ] && echo y")] == [
            (["[", "-f", "x", "]"], None), (["echo", "y"], None)]

    def test_arguments_may_expand(self) -> None:
        assert unsafe("echo $HOME *.txt {a,b} ~") == [None]

    def test_unterminated_quote(self) -> None:
        assert unsafe("echo 'abc") == ["unterminated quote"]
        assert unsafe('echo "abc') == ["unterminated quote"]


# -- resolution ------------------------------------------------------------------------------

class TestResolve:
    def test_bare_name_via_path(self, tmp_path: Path) -> None:
        assert resolve_executable("ls", PATH, tmp_path) == LS

    def test_unknown_name(self, tmp_path: Path) -> None:
        assert resolve_executable("no-such-command-xyz", PATH, tmp_path) is None
        assert resolve_executable("", PATH, tmp_path) is None

    def test_first_path_entry_wins(self, tmp_path: Path) -> None:
        a, b = make_exe(tmp_path / "a" / "tool"), make_exe(tmp_path / "b" / "tool")
        path_env = os.pathsep.join([str(a.parent), str(b.parent)])
        assert resolve_executable("tool", path_env, tmp_path) == str(a)

    def test_non_executable_files_and_dirs_are_skipped(self, tmp_path: Path) -> None:
        (tmp_path / "a").mkdir()
        (tmp_path / "a" / "tool").write_text("not executable")
        (tmp_path / "b" / "tool").mkdir(parents=True)
        c = make_exe(tmp_path / "c" / "tool")
        path_env = os.pathsep.join(str(tmp_path / d) for d in "abc")
        assert resolve_executable("tool", path_env, tmp_path) == str(c)

    def test_relative_to_cwd(self, tmp_path: Path) -> None:
        exe = make_exe(tmp_path / "bin" / "run.sh")
        assert resolve_executable("./bin/run.sh", PATH, tmp_path) == str(exe)
        assert resolve_executable("bin/run.sh", PATH, tmp_path) == str(exe)
        assert resolve_executable("bin/../bin/run.sh", PATH, tmp_path) == str(exe)
        assert resolve_executable(str(exe), PATH, Path("/")) == str(exe)

    def test_path_with_slash_never_searches_path(self, tmp_path: Path) -> None:
        assert resolve_executable("./ls", PATH, tmp_path) is None

    def test_directory_symlinks_are_resolved_the_name_is_kept(self, tmp_path: Path) -> None:
        real = make_exe(tmp_path / "real" / "tool")
        (tmp_path / "link").symlink_to(tmp_path / "real")
        (tmp_path / "real" / "alias").symlink_to(real)
        assert resolve_executable("./link/tool", PATH, tmp_path) == str(real)
        alias = tmp_path / "real" / "alias"
        assert resolve_executable("./link/alias", PATH, tmp_path) == str(alias)

    def test_not_executable(self, tmp_path: Path) -> None:
        (tmp_path / "plain").write_text("x")
        assert resolve_executable("./plain", PATH, tmp_path) is None
        assert resolve_executable(str(tmp_path), PATH, tmp_path) is None


# -- allowlist matching ----------------------------------------------------------------------

class TestAllowlist:
    def test_bare_pattern(self, tmp_path: Path) -> None:
        assert run("ls -la", tmp_path, allowlist=["ls"]).action == "allow"
        assert run("ls", tmp_path, allowlist=["ll"]).action == "ask"

    def test_cwd_copy_does_not_match_a_bare_pattern(self, tmp_path: Path) -> None:
        shutil.copy2(LS, tmp_path / "ls")
        d = run("./ls", tmp_path, allowlist=["ls"])
        assert d.action == "ask"
        assert d.resolved_path == str(tmp_path / "ls")
        assert d.misses == [str(tmp_path / "ls")]

    def test_relative_path_entry_does_not_count_as_path(self, tmp_path: Path) -> None:
        # PATH=".:…" finds ./ls first, as the shell would; a bare pattern must not cover it.
        make_exe(tmp_path / "ls")
        for path_env in (f".{os.pathsep}{PATH}", f"{os.pathsep}{PATH}"):
            d = run("ls", tmp_path, path_env=path_env, allowlist=["ls"])
            assert (d.action, d.resolved_path) == ("ask", str(tmp_path / "ls"))

    def test_absolute_path_typed_does_not_match_bare_pattern(self, tmp_path: Path) -> None:
        assert run(LS, tmp_path, allowlist=["ls"]).action == "ask"
        assert run(LS, tmp_path, allowlist=[LS]).action == "allow"

    def test_glob_on_absolute_path(self, tmp_path: Path) -> None:
        directory = os.path.dirname(LS)
        assert run("ls /", tmp_path, allowlist=[f"{directory}/*"]).action == "allow"
        assert run(LS, tmp_path, allowlist=[f"{directory}/*"]).action == "allow"
        assert run("ls", tmp_path, allowlist=["/nowhere/*"]).action == "ask"

    def test_star_crosses_slashes(self, tmp_path: Path) -> None:
        exe = make_exe(tmp_path / "a" / "b" / "tool")
        assert run(str(exe), tmp_path, allowlist=[f"{tmp_path}/*"]).action == "allow"
        assert run(str(exe), tmp_path, allowlist=[f"{tmp_path}/*/tool"]).action == "allow"
        assert run(str(exe), tmp_path, allowlist=[f"{tmp_path}/a/*/x"]).action == "ask"

    def test_glob_is_case_sensitive(self, tmp_path: Path) -> None:
        assert run("ls", tmp_path, allowlist=[LS.upper()]).action == "ask"

    def test_glob_on_a_cwd_script(self, tmp_path: Path) -> None:
        make_exe(tmp_path / "scripts" / "build.sh")
        cfg = {"allowlist": [f"{tmp_path}/scripts/*.sh"]}
        assert run("./scripts/build.sh --fast", tmp_path, **cfg).action == "allow"
        assert run("scripts/build.sh", tmp_path, **cfg).action == "allow"

    def test_arg_pattern_fullmatch(self, tmp_path: Path) -> None:
        cfg = {"allowlist": [AllowEntry(pattern="ls", arg_pattern=r"-l( \S+)?")]}
        assert run("ls -l", tmp_path, **cfg).action == "allow"
        assert run("ls -l /tmp", tmp_path, **cfg).action == "allow"
        assert run("ls -la", tmp_path, **cfg).action == "ask"  # a prefix match is not enough
        assert run("ls -l /a /b", tmp_path, **cfg).action == "ask"
        assert run("ls", tmp_path, **cfg).action == "ask"

    def test_arg_pattern_sees_args_joined_by_one_space(self, tmp_path: Path) -> None:
        cfg = {"allowlist": [AllowEntry(pattern="echo", arg_pattern="a b")]}
        assert run("echo   a    b", tmp_path, **cfg).action == "allow"
        assert run("echo 'a b'", tmp_path, **cfg).action == "allow"  # joined text is the same

    def test_empty_arg_pattern_means_no_arguments(self, tmp_path: Path) -> None:
        cfg = {"allowlist": [AllowEntry(pattern="true", arg_pattern="")]}
        assert run("true", tmp_path, **cfg).action == "allow"
        assert run("true x", tmp_path, **cfg).action == "ask"

    def test_bad_regex_allows_nothing(self, tmp_path: Path) -> None:
        cfg = {"allowlist": [AllowEntry(pattern="ls", arg_pattern="(")]}
        assert run("ls", tmp_path, **cfg).action == "ask"

    def test_entry_forms(self) -> None:
        for entry in ("ls", AllowEntry(pattern="ls"), {"pattern": "ls"}):
            assert entry_matches(entry, ["ls"], LS, True)
        assert entry_matches({"pattern": "ls", "argPattern": "-l"}, ["ls", "-l"], LS, True)
        assert not entry_matches({"pattern": "ls", "argPattern": "-l"}, ["ls"], LS, True)
        assert not entry_matches("ls", ["ls"], None, True)

    def test_chain_needs_every_segment(self, tmp_path: Path) -> None:
        cfg = {"allowlist": ["ls", "echo"]}
        assert run("ls && echo ok | echo x; ls", tmp_path, **cfg).action == "allow"
        d = run("ls && rm -rf x; echo ok", tmp_path, **cfg)
        assert d.action == "ask"
        assert d.misses == [_real("rm")]
        assert d.resolved_path == _real("rm")
        assert d.argv == ["ls"]
        assert d.segments == [["ls"], ["rm", "-rf", "x"], ["echo", "ok"]]

    def test_unknown_command_misses_by_name(self, tmp_path: Path) -> None:
        d = run("ls | no-such-command-xyz", tmp_path, allowlist=["ls"])
        assert (d.action, d.misses, d.resolved_path) == ("ask", ["no-such-command-xyz"], None)
        assert d.reason == "not on the allowlist: no-such-command-xyz"

    def test_unsafe_segment_misses_even_if_listed(self, tmp_path: Path) -> None:
        d = run("echo $(id)", tmp_path, allowlist=["echo", "id"])
        assert d.action == "ask" and not d.hit
        assert d.unchecked == ["command substitution"]
        assert d.reason == "cannot be checked against the allowlist: command substitution"

    def test_path_assignment_misses(self, tmp_path: Path) -> None:
        assert run("PATH=/tmp ls", tmp_path, allowlist=["ls"]).action == "ask"
        assert run("LC_ALL=C ls", tmp_path, allowlist=["ls"]).action == "allow"

    def test_nothing_to_run_is_a_hit(self, tmp_path: Path) -> None:
        d = run("FOO=bar # only a comment", tmp_path)
        assert (d.action, d.hit, d.argv) == ("allow", True, [])


# -- decide: security × ask -----------------------------------------------------------------

HIT, MISS = "ls -la", "rm -rf build"


class TestDecide:
    @pytest.mark.parametrize("ask", ["off", "on-miss", "always"])
    @pytest.mark.parametrize("command", [HIT, MISS])
    def test_security_deny(self, tmp_path: Path, ask: str, command: str) -> None:
        d = run(command, tmp_path, security="deny", ask=ask, allowlist=["ls"])
        assert (d.action, d.reason) == ("deny", DENIED_BY_POLICY)
        assert d.reason == "exec denied by policy (tools.exec.security=deny)"

    @pytest.mark.parametrize("ask,action", [("off", "allow"), ("on-miss", "allow"),
                                            ("always", "ask")])
    @pytest.mark.parametrize("command", [HIT, MISS, "echo $(id)"])
    def test_security_full(self, tmp_path: Path, ask: str, action: str, command: str) -> None:
        d = run(command, tmp_path, security="full", ask=ask, allowlist=["ls"])
        assert d.action == action

    @pytest.mark.parametrize("ask,action", [("off", "allow"), ("on-miss", "allow"),
                                            ("always", "ask")])
    def test_allowlist_hit(self, tmp_path: Path, ask: str, action: str) -> None:
        d = run(HIT, tmp_path, ask=ask, allowlist=["ls"])
        assert (d.action, d.hit) == (action, True)
        if action == "ask":
            assert d.reason == "approval required (tools.exec.ask=always)"

    @pytest.mark.parametrize("ask,action", [("off", "deny"), ("on-miss", "ask"),
                                            ("always", "ask")])
    def test_allowlist_miss(self, tmp_path: Path, ask: str, action: str) -> None:
        d = run(MISS, tmp_path, ask=ask, allowlist=["ls"])
        assert (d.action, d.hit) == (action, False)

    def test_miss_messages(self, tmp_path: Path) -> None:
        rm = _real("rm")
        assert run(MISS, tmp_path, ask="off").reason == \
            f"exec denied: {rm} is not on the allowlist (tools.exec.allowlist)"
        assert run(MISS, tmp_path).reason == f"not on the allowlist: {rm}"
        assert run("rm x; no-such-xyz", tmp_path, ask="off").reason == \
            f"exec denied: {rm}, no-such-xyz are not on the allowlist (tools.exec.allowlist)"
        assert run("echo `id`", tmp_path, ask="off", allowlist=["echo"]).reason == \
            "exec denied: command substitution cannot be checked against the allowlist " \
            "(tools.exec.allowlist)"

    def test_defaults_are_allowlist_on_miss(self, tmp_path: Path) -> None:
        assert run(HIT, tmp_path).action == "ask"  # the allowlist is empty by default

    @pytest.mark.parametrize("command", ["", "   ", "\n\t"])
    @pytest.mark.parametrize("security", ["deny", "allowlist", "full"])
    def test_blank_command(self, tmp_path: Path, command: str, security: str) -> None:
        d = run(command, tmp_path, security=security)
        assert (d.action, d.reason) == ("deny", "exec denied: empty command")

    def test_decision_fields(self, tmp_path: Path) -> None:
        d = run("FOO=1 ls -la | echo x", tmp_path, allowlist=["ls", "echo"])
        assert d.argv == ["ls", "-la"]
        assert d.resolved_path == LS
        assert d.segments == [["ls", "-la"], ["echo", "x"]]
        assert d.misses == [] and d.miss_paths == [] and d.unchecked == []


# -- askFallback ----------------------------------------------------------------------------

class TestFallback:
    def cfg(self, mode: str, **kw) -> Exec:
        return Exec(ask_fallback=mode, allowlist=["ls"], **kw)

    def ask(self, command: str, tmp_path: Path, **kw) -> Decision:
        d = decide(command, self.cfg("deny", **kw), path_env=PATH, cwd=tmp_path)
        assert d.action == "ask"
        return d

    def test_deny(self, tmp_path: Path) -> None:
        d = fallback(self.ask(MISS, tmp_path), self.cfg("deny"))
        assert (d.action, d.reason) == ("deny", DENIED_NO_APPROVER)
        assert d.reason == "exec denied: no approver connected (tools.exec.askFallback=deny)"

    def test_deny_even_a_hit(self, tmp_path: Path) -> None:
        d = fallback(self.ask(HIT, tmp_path, ask="always"), self.cfg("deny"))
        assert d.action == "deny"

    def test_allowlist_allows_a_hit(self, tmp_path: Path) -> None:
        d = fallback(self.ask(HIT, tmp_path, ask="always"), self.cfg("allowlist"))
        assert d.action == "allow"

    def test_allowlist_denies_a_miss(self, tmp_path: Path) -> None:
        d = fallback(self.ask(MISS, tmp_path), self.cfg("allowlist"))
        assert d.action == "deny"
        assert d.reason == (f"exec denied: {_real('rm')} is not on the allowlist "
                            "(tools.exec.askFallback=allowlist)")

    def test_allowlist_under_security_full(self, tmp_path: Path) -> None:
        cfg = Exec(security="full", ask="always", ask_fallback="allowlist", allowlist=["ls"])
        assert fallback(decide(HIT, cfg, path_env=PATH, cwd=tmp_path), cfg).action == "allow"
        assert fallback(decide(MISS, cfg, path_env=PATH, cwd=tmp_path), cfg).action == "deny"

    def test_full_allows(self, tmp_path: Path) -> None:
        assert fallback(self.ask(MISS, tmp_path), self.cfg("full")).action == "allow"
        assert fallback(self.ask("echo $(id)", tmp_path), self.cfg("full")).action == "allow"

    def test_keeps_the_analysis(self, tmp_path: Path) -> None:
        asked = self.ask(MISS, tmp_path)
        d = fallback(asked, self.cfg("full"))
        assert (d.argv, d.segments, d.misses, d.resolved_path) == \
            (asked.argv, asked.segments, asked.misses, asked.resolved_path)

    @pytest.mark.parametrize("mode", ["deny", "allowlist", "full"])
    def test_allow_and_deny_pass_through(self, tmp_path: Path, mode: str) -> None:
        allowed = run(HIT, tmp_path, allowlist=["ls"])
        denied = run(HIT, tmp_path, security="deny")
        assert fallback(allowed, self.cfg(mode)) is allowed
        assert fallback(denied, self.cfg(mode)) is denied


# -- allow-always entries and the approval request -------------------------------------------

class TestEntries:
    def test_single_entry(self, tmp_path: Path) -> None:
        d = run(MISS, tmp_path)
        assert allowlist_entry_for(d) == {"pattern": _real("rm")}
        assert allowlist_entries_for(d) == [{"pattern": _real("rm")}]

    def test_entry_for_a_hit_under_ask_always(self, tmp_path: Path) -> None:
        d = run(HIT, tmp_path, ask="always", allowlist=["ls"])
        assert allowlist_entry_for(d) == {"pattern": LS}
        assert allowlist_entries_for(d, ["ls"]) == []  # nothing missed, nothing to add

    def test_entry_for_nothing_resolved(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError):
            allowlist_entry_for(run("no-such-xyz", tmp_path))

    def test_chain_one_per_missed_path_deduped(self, tmp_path: Path) -> None:
        d = run("ls; echo a | echo b && true; ls", tmp_path)
        assert allowlist_entries_for(d) == [{"pattern": p} for p in (LS, ECHO, TRUE)]

    def test_skips_present_entries(self, tmp_path: Path) -> None:
        d = run("ls; echo a; true", tmp_path, security="full", ask="always")
        existing = [LS, AllowEntry(pattern=ECHO, arg_pattern="x"), {"pattern": TRUE}]
        # A restricted entry for echo does not cover every use: echo is still added.
        assert allowlist_entries_for(d, existing) == [{"pattern": ECHO}]

    def test_unknown_and_unsafe_segments_add_nothing(self, tmp_path: Path) -> None:
        d = run("no-such-xyz; echo $(id); ls", tmp_path)
        assert allowlist_entries_for(d) == [{"pattern": LS}]

    def test_added_entries_make_the_command_a_hit(self, tmp_path: Path) -> None:
        entries = allowlist_entries_for(run("ls | echo x", tmp_path))
        assert run("ls | echo x", tmp_path, allowlist=entries).action == "allow"

    def test_exec_request(self, tmp_path: Path) -> None:
        d = run("rm -rf build", tmp_path)
        req = exec_request("rm -rf build", d, "~/proj", "allowlist", "on-miss", "main",
                           "agent:main:main")
        assert req == {"command": "rm -rf build", "commandArgv": ["rm", "-rf", "build"],
                       "cwd": "~/proj", "host": "gateway", "security": "allowlist",
                       "ask": "on-miss", "agentId": "main", "resolvedPath": _real("rm"),
                       "sessionKey": "agent:main:main"}

    def test_exec_request_keywords(self, tmp_path: Path) -> None:
        d = run("no-such-xyz", tmp_path)
        req = exec_request("no-such-xyz", d, cwd=".", security="full", ask="always",
                           agent_id="a", session_key="k")
        assert (req["resolvedPath"], req["cwd"], req["commandArgv"]) == (None, ".", ["no-such-xyz"])

