"""ToolExecutor ("tools"): every tool run of the gateway and the pending exec approvals
(architecture §2; protocol §16.3, §17; cli-config §6.6).

`invoke(request)` answers later (DEFERRED) with a `ToolOutcome`:
- `read` / `write` / `edit` run in a short worker thread, confined to the workspace;
- `exec` passes the policy (actors/tools/policy.py): allowed → an `ExecProcess` in its own
  process group; denied → an error outcome; ask → an approval, published to the operators
  holding `operator.approvals`, or `askFallback` at once when none is connected. A command
  still running after `yieldMs` (or at once with `background`) answers `status: running`
  with a `sessionId` and keeps running as a background job for the `process` tool;
- `process` lists, polls, reads, writes to and kills those jobs.

Tool processes are watched by the reaper process (actors/tools/reaper.py), so a `kill -9` of
the gateway leaves none behind; a stop of this actor kills every group itself.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import msgspec
import pykka

from actors.base import DEFERRED, GatewayActor, Reply, send, tell_with_reply
from actors.base import answer as _answer
from actors.clock import CLOCK
from actors.config.schema import Exec
from actors.events import EVENT_HUB, EventHub
from actors.registry import ActorName
from actors.tools import fs, policy, workspace
from actors.tools.approvals import Approvals
from actors.tools.proc import ExecProcess
from actors.tools.reaper import Reaper

log = logging.getLogger("openclaw.tools")

TOOL_NAMES = ("exec", "process", "read", "write", "edit")
ENV_PASSED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
              "TERM", "SHELL")
# Additions an agent may not make: they would change what the policy resolved, or run code
# before the command does.
ENV_REFUSED = ("PATH", "IFS", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND")
ENV_REFUSED_PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_")
FINISHED_KEEP = 200  # finished background jobs kept for `process poll/log`


class ToolRequest(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    args: dict = {}
    call_id: str = ""  # the tool call id (agent) or idempotency key; cancel() names it
    session_key: str = "agent:main:main"
    agent_id: str = "main"


class ToolOutcome(msgspec.Struct, kw_only=True):
    tool: str
    ok: bool
    output: Any = None  # the tool's result object
    error: str | None = None


class UnknownTool(ValueError):
    """`tool not available: <name>` (protocol §16.3)."""


class ExecArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    command: str
    workdir: str | None = None
    env: dict[str, str] = {}
    yieldMs: int | None = None
    background: bool = False
    timeout: int | None = None  # seconds; 0 = none


class ProcessArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    action: str
    sessionId: str | None = None
    data: str | None = None
    eof: bool = False
    offset: int | None = None
    limit: int | None = None


class _Job:
    """One exec: its process, who waits for it in the foreground, and its yield timer."""
    __slots__ = ("id", "command", "proc", "owner", "reply", "timer", "session_key")

    def __init__(self, job_id: str, command: str, proc: ExecProcess, owner: str,
                 session_key: str) -> None:
        self.id, self.command, self.proc = job_id, command, proc
        self.owner, self.session_key = owner, session_key
        self.reply: Reply | None = None  # set while a caller waits in the foreground
        self.timer: Any = None


TOOLS: ActorName[ToolExecutor] = ActorName("tools")


class ToolExecutor(GatewayActor):
    def __init__(self, exec_cfg: Exec, workspace_dir: str) -> None:
        super().__init__()
        self._cfg = exec_cfg
        self._workspace = Path(workspace_dir)
        self._reaper = Reaper()
        self._jobs: dict[str, _Job] = {}
        self._finished: list[str] = []  # background job ids in the order they ended
        self._approvals = Approvals()
        # approval id → the waiting exec: (request, args, decision, (reply, on_output))
        self._waiting: dict[str, tuple[ToolRequest, ExecArgs, policy.Decision, tuple]] = {}
        self._expiry: Any = None

    def on_start(self) -> None:
        self._workspace = workspace.ensure(self._workspace)
        self._reaper.start()

    def on_stop(self) -> None:
        for job in self._jobs.values():
            if job.proc.running:
                job.proc.kill_now()
        for job in self._jobs.values():
            job.proc.wait(2.0)
        self._reaper.stop()
        if self._expiry is not None:
            self._expiry.cancel()

    def set_config(self, exec_cfg: Exec, workspace_dir: str | None = None) -> None:
        """tools.exec.* is hot: the next call uses it (a running command keeps its limits)."""
        self._cfg = exec_cfg
        if workspace_dir:
            self._workspace = workspace.ensure(Path(workspace_dir))

    # --- invoke ---------------------------------------------------------------------------

    def invoke(self, request: ToolRequest, on_output: Callable[[str], None] | None = None) -> Any:
        """`on_output(text)` (optional) sees an exec's output as it arrives, on the process's
        reader thread: the agent run turns it into `tool` update events."""
        if request.name not in TOOL_NAMES:
            raise UnknownTool(f"tool not available: {request.name}")
        reply = self._reply
        if request.name == "exec":
            self._exec(request, fs.decode_args(ExecArgs, request.args, "exec"), reply, on_output)
            return DEFERRED
        if request.name == "process":
            return self._process(request, fs.decode_args(ProcessArgs, request.args, "process"))
        args = fs.decode_args(_FS_ARGS[request.name], request.args, request.name)
        self._in_thread(request.name, lambda: _FS_TOOLS[request.name](self._workspace, args), reply)
        return DEFERRED

    def cancel(self, call_id: str) -> None:
        """The caller gave up (its run was aborted): a waiting approval is dropped and a
        foreground command is killed."""
        for pending, payload in self._approvals.drop(call_id):
            entry = self._waiting.pop(pending.id, None)
            self._publish("exec.approval.resolved", payload)
            if entry is not None:
                _answer(entry[3][0], _failed("exec", "aborted"))
        for job in self._jobs.values():
            if job.owner == call_id and job.reply is not None and job.proc.running:
                job.proc.kill(grace_s=1.0)

    def _in_thread(self, tool: str, work: Callable[[], dict], reply: Reply | None) -> None:
        """File tools touch the disk: never inside the message handler (architecture §4)."""
        def run() -> None:
            try:
                outcome = ToolOutcome(tool=tool, ok=True, output=work())
            except (fs.ToolError, workspace.WorkspaceError, OSError) as exc:
                outcome = _failed(tool, str(exc))
            _answer(reply, outcome)
        threading.Thread(target=run, name=f"tool-{tool}", daemon=True).start()

    # --- exec: policy and approvals ---------------------------------------------------------

    def _exec(self, request: ToolRequest, args: ExecArgs, reply: Reply | None,
              on_output: Callable[[str], None] | None) -> None:
        if not args.command.strip():
            raise fs.ToolArgsError("invalid args for exec: command: must be non-empty")
        try:
            cwd = self._cwd(args)
        except workspace.WorkspaceError as exc:
            _answer(reply, _failed("exec", str(exc)))
            return
        if not cwd.is_dir():
            raise fs.ToolArgsError(f"invalid args for exec: workdir: not a directory: {args.workdir}")
        for key in args.env:
            if key in ENV_REFUSED or key.startswith(ENV_REFUSED_PREFIXES) or "=" in key or not key:
                raise fs.ToolArgsError(f"invalid args for exec: env: {key} may not be set")
        decision = policy.decide(args.command, self._cfg, path_env=self._path(), cwd=cwd)
        if decision.action == "allow":
            self._start(request, args, cwd, reply, on_output)
        elif decision.action == "deny":
            _answer(reply, _failed("exec", decision.reason))
        else:
            self._ask_hub(request, args, decision, cwd, (reply, on_output))

    def _ask_hub(self, request: ToolRequest, args: ExecArgs, decision: policy.Decision, cwd: Path,
                 waiter: tuple) -> None:
        """Is anyone able to approve? The hub answers by message, never by a blocking ask."""
        me = self.actor_ref
        hub = EVENT_HUB.whereis()

        def answered(present: Any, err: BaseException | None) -> None:
            send(me, ToolExecutor.approval_needed, request, args, decision, str(cwd),
                 bool(present) and err is None, waiter)

        if hub is None:
            answered(False, None)
            return
        try:
            tell_with_reply(hub, answered, EventHub.has_approver)
        except pykka.ActorDeadError:
            answered(False, None)

    def approval_needed(self, request: ToolRequest, args: ExecArgs, decision: policy.Decision,
                        cwd: str, approver: bool, waiter: tuple) -> None:
        """`waiter` is (reply, on_output) of the waiting call."""
        if not approver:
            self._decided(request, args, policy.fallback(decision, self._cfg), Path(cwd), waiter)
            return
        shown = os.path.relpath(cwd, self._workspace)
        req = policy.exec_request(args.command, decision, cwd="." if shown == "." else shown,
                                  security=self._cfg.security, ask=self._cfg.ask,
                                  agent_id=request.agent_id, session_key=request.session_key)
        pending = self._approvals.create(req, owner=request.call_id or None)
        self._waiting[pending.id] = (request, args, decision, waiter)
        self._publish("exec.approval.requested", self._approvals.requested_payload(pending))
        self._schedule_expiry()
        log.info("exec approval %s requested: %s", pending.id, args.command)

    def _decided(self, request: ToolRequest, args: ExecArgs, decision: policy.Decision, cwd: Path,
                 waiter: tuple) -> None:
        if decision.action == "allow":
            self._start(request, args, cwd, *waiter)
        else:
            _answer(waiter[0], _failed("exec", decision.reason))

    def approvals(self) -> list[dict]:
        self._expire()
        return self._approvals.list()

    def resolve_approval(self, approval_id: str, decision: str, resolved_by: str) -> dict:
        """exec.approval.resolve: resumes the waiting exec; returns the allowlist entries an
        `allow-always` adds (the caller writes them through the config writer)."""
        self._expire()
        pending, payload = self._approvals.resolve(approval_id, decision, resolved_by)
        self._publish("exec.approval.resolved", payload)
        entry = self._waiting.pop(pending.id, None)
        if entry is None:
            return {"entries": []}
        request, args, verdict, reply = entry
        if decision == "deny":
            _answer(reply[0], _failed("exec", "exec denied"))
            return {"entries": []}
        cwd = self._cwd(args)
        self._start(request, args, cwd, *reply)
        if decision != "allow-always":
            return {"entries": []}
        return {"entries": policy.allowlist_entries_for(verdict, list(self._cfg.allowlist))}

    def expire_approvals(self) -> None:
        self._expiry = None
        self._expire()
        self._schedule_expiry()

    def _expire(self) -> None:
        for pending, payload in self._approvals.expire():
            self._publish("exec.approval.resolved", payload)
            entry = self._waiting.pop(pending.id, None)
            if entry is not None:
                request, args, decision, reply = entry
                fallback = policy.fallback(decision, self._cfg)
                cwd = self._cwd(args)
                self._decided(request, args, fallback, cwd, reply)

    def _schedule_expiry(self) -> None:
        when = self._approvals.next_expiry_ms()
        if when is None or self._expiry is not None:
            return
        me = self.actor_ref
        self._expiry = CLOCK.call_later(max(0.0, when / 1000 - time.time()) + 0.01,
                                        lambda: send(me, ToolExecutor.expire_approvals))

    # --- exec: the process ------------------------------------------------------------------

    def _start(self, request: ToolRequest, args: ExecArgs, cwd: Path, reply: Reply | None,
               on_output: Callable[[str], None] | None = None) -> None:
        cfg = self._cfg
        timeout = cfg.timeout_seconds if args.timeout is None else max(0, args.timeout)
        me, job_id = self.actor_ref, uuid.uuid4().hex[:12]

        def output(text: str) -> None:  # the reader thread; only while the caller waits
            if on_output is not None and job.reply is not None:
                on_output(text)

        proc = ExecProcess(args.command, cwd, self._env(args.env), timeout_s=float(timeout),
                           output_cap=cfg.output_cap, reaper=self._reaper, on_output=output,
                           on_exit=lambda _p: send(me, ToolExecutor.exited, job_id))
        job = _Job(job_id, args.command, proc, request.call_id, request.session_key)
        # set before the start: a fast command's first output must find its caller waiting
        job.reply = None if args.background else reply
        try:
            self._ensure_reaper()
            proc.start()
        except OSError as exc:
            _answer(reply, _failed("exec", f"exec failed to start: {exc}"))
            return
        self._jobs[job_id] = job
        if args.background:
            _answer(reply, ToolOutcome(tool="exec", ok=True, output=self._running(job)))
            return
        yield_ms = cfg.background_ms if args.yieldMs is None else max(10, args.yieldMs)
        job.timer = CLOCK.call_later(yield_ms / 1000, lambda: send(me, ToolExecutor.yielded, job_id))

    def _ensure_reaper(self) -> None:
        """A reaper that died (killed by hand, the OOM killer) is replaced before the next exec;
        the new one watches every live group and keeps the token, so its /proc net still
        covers processes that left their group."""
        if self._reaper.running:
            return
        log.warning("the tool reaper (pid %s) is gone; starting a new one", self._reaper.pid)
        self._reaper.start()
        for job in self._jobs.values():
            if job.proc.running and job.proc.pid is not None:
                self._reaper.watch(job.proc.pid)

    def yielded(self, job_id: str) -> None:
        """Still running after yieldMs: the caller gets `running`, the job goes on."""
        job = self._jobs.get(job_id)
        if job is None or job.reply is None or not job.proc.running:
            return
        reply, job.reply = job.reply, None
        _answer(reply, ToolOutcome(tool="exec", ok=True, output=self._running(job)))

    def exited(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        if job.timer is not None:
            job.timer.cancel()
        if job.reply is not None:  # a foreground command: its caller gets the result
            reply, job.reply = job.reply, None
            del self._jobs[job_id]
            _answer(reply, _exec_outcome(job.proc.result()))
            return
        self._finished.append(job_id)
        while len(self._finished) > FINISHED_KEEP:
            self._jobs.pop(self._finished.pop(0), None)

    def _running(self, job: _Job) -> dict:
        return {"status": "running", "sessionId": job.id, "pid": job.proc.pid,
                "tail": job.proc.tail(2000)}

    def _env(self, additions: dict[str, str]) -> dict[str, str]:
        env = {k: v for k in ENV_PASSED if (v := os.environ.get(k)) is not None}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(additions)
        marker, token = self._reaper.env_marker()
        env.update({"OPENCLAW_SHELL": "exec", marker: token})
        return env

    def _cwd(self, args: ExecArgs) -> Path:
        return workspace.resolve(self._workspace, args.workdir) if args.workdir else self._workspace

    def _path(self) -> str:
        return os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin"

    # --- process --------------------------------------------------------------------------

    def _process(self, request: ToolRequest, args: ProcessArgs) -> ToolOutcome:
        if args.action == "list":
            return ToolOutcome(tool="process", ok=True, output={"sessions": [
                self._job_row(j) for j in self._jobs.values() if j.reply is None]})
        if args.action not in ("poll", "log", "write", "kill", "clear", "remove"):
            raise fs.ToolArgsError(f"invalid args for process: action: unknown action {args.action!r}"
                                   " (list, poll, log, write, kill, clear, remove)")
        job = self._jobs.get(args.sessionId or "")
        if job is None or job.reply is not None:
            return _failed("process", f"no background session {args.sessionId!r}")
        proc = job.proc
        if args.action == "poll":
            out = {**self._job_row(job), "output": proc.read_new()}
        elif args.action == "log":
            lines = proc.output().splitlines()
            start = args.offset or max(0, len(lines) - (args.limit or 200))
            chosen = lines[start:start + args.limit] if args.limit else lines[start:]
            out = {**self._job_row(job), "output": "\n".join(chosen), "totalLines": len(lines)}
        elif args.action == "write":
            proc.write_stdin(args.data or "", eof=args.eof)
            out = {"sessionId": job.id, "written": len(args.data or "")}
        elif args.action == "kill" or (args.action == "remove" and proc.running):
            proc.kill()
            out = {"sessionId": job.id, "status": "killed"}
        else:  # clear, or remove of a finished job
            if proc.running:
                return _failed("process", f"session {job.id} is still running; kill it first")
            self._jobs.pop(job.id, None)
            out = {"sessionId": job.id, "status": "cleared"}
        return ToolOutcome(tool="process", ok=True, output=out)

    def _job_row(self, job: _Job) -> dict:
        proc = job.proc
        row = {"sessionId": job.id, "command": job.command, "pid": proc.pid,
               "status": "running" if proc.running else "exited", "startedAt": proc.started_at,
               "sessionKey": job.session_key}
        if not proc.running:
            row.update(exitCode=proc.exit_code, signal=proc.signal, endedAt=proc.ended_at)
        return row

    def jobs(self) -> list[dict]:
        """Every job (foreground ones too): for tests and the benchmark."""
        return [self._job_row(j) for j in self._jobs.values()]

    def _publish(self, event: str, payload: dict) -> None:
        send(EVENT_HUB, EventHub.publish, event, payload)


def workspace_dir(config: Any, state_dir: str | Path) -> str:
    """agents.defaults.workspace, or <state>/workspace (cli-config §6.5)."""
    configured = config.agents.defaults.workspace
    return os.path.expanduser(configured) if configured else str(Path(state_dir) / "workspace")


_FS_ARGS: dict[str, type[msgspec.Struct]] = {"read": fs.ReadArgs, "write": fs.WriteArgs, "edit": fs.EditArgs}
_FS_TOOLS: dict[str, Callable[[Path, Any], dict]] = {"read": fs.read, "write": fs.write,
                                                      "edit": fs.edit}


def _exec_outcome(result: dict) -> ToolOutcome:
    code = result.get("exitCode")
    if result.get("timedOut"):
        error = "command timed out"
    elif code is None:
        error = f"command killed by {result.get('signal') or 'a signal'}"
    elif code != 0:
        error = f"command exited with code {code}"
    else:
        return ToolOutcome(tool="exec", ok=True, output={"status": "completed", **result})
    return ToolOutcome(tool="exec", ok=False, output={"status": "failed", **result}, error=error)


def _failed(tool: str, message: str) -> ToolOutcome:
    return ToolOutcome(tool=tool, ok=False, error=message)
