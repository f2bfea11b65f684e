"""The gateway process's life: the run options and start-up plan, the instance lock and port
probes, the boot cycle that starts the actors and the server in order and stops them in
reverse, config reload application, in-process restart scheduling, and logging set-up.

Both the gateway (`openclaw gateway run`) and the CLI use it: the CLI for the lock, ports and
start-up decisions when no gateway runs. May import `transport` and `actors`; neither of them
imports it back (the layer contract in pyproject.toml).
"""
