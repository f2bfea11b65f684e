"""The `openclaw` command line: click commands, one module per command group, and the WebSocket
client they share (`client`).

Reaches a running gateway only through the protocol (`client`), and files through `lifecycle`
and the `actors` stores when no gateway runs. Never imports `transport` beyond its protocol
constants (the layer contract in pyproject.toml).
"""
