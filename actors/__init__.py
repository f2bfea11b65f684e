"""The state owners: pykka actors, one per piece of state, and the modules they share.

Packages: `config/` (the config and its file watch), `sessions/` (the session store),
`agents/` (runs and model providers), `channels/` (channel processes and their supervision),
`tools/` (tool runs and approvals). Shared modules: `base` (the actor base class, `Call`,
supervision hooks), `supervisor` (OTP-style restarts), `registry` (actor lookup by name),
`events` (the event hub), `health`, `logs`, `clock`, `paths`, `sockets`, `testhooks` (the
`OPENCLAW_TEST_*` knobs of the test suite).

May import: the standard library and the project's runtime dependencies except Tornado. Never
`transport`, `lifecycle` or `cli` (the layer contract in pyproject.toml).
"""
