"""The tool execution environment: workspace path confinement (`workspace`), the file tools
`read`/`write`/`edit` (`fs`), one exec'd shell command in its own process group with capped
output, timeout and kill escalation (`proc`), and the watchdog process that kills every tool
process group when the gateway dies without cleaning up (`reaper`). Plain Python, no actors:
the tools actor builds on these modules."""
