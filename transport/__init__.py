"""The Tornado side of the gateway, run on the event loop thread only: the HTTP application,
one WebSocket protocol connection per client (`ws`, `handshake`, `ws_protocol`), the HTTP
endpoints, the protocol frames (`protocol`), the method table (`methods/`) and the bridge that
turns actor calls into asyncio futures (`bridge`).

May import `actors` (through the bridge for calls) and Tornado. Never `lifecycle` or `cli`,
except for type annotations; nothing here blocks the loop.
"""
