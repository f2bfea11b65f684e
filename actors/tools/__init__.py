"""The tool execution environment (issue 6): the ToolExecutor actor, its tool processes, the
workspace file tools, the exec policy and the pending approvals."""
