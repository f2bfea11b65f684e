"""The tool execution environment (issue 6): the ToolExecutor actor (`executor`), the exec
policy (`policy`) and the pending approvals (`approvals`), on top of plain modules with no
actors: workspace path confinement (`workspace`), the file tools read/write/edit (`fs`), one
exec'd shell command in its own process group with capped output, timeout and kill
escalation (`proc`), and the watchdog process that kills every tool process group when the
gateway dies without cleaning up (`reaper`)."""
