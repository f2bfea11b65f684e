"""Agent runs: the agents actor (run admission, waits, dedupe), the per-session actor that
keeps runs serial, a run and its events, and the model providers (`providers/`).

May import: the standard library, msgspec, pykka, `actors.config`, `actors.sessions`,
`actors.tools` and the shared actor modules. Never Tornado or `transport`.
"""
