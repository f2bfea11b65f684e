"""The sessions owner's package: session keys, the per-agent SQLite store (schema and
migrations, queries over one connection) and the store actor, plus the session defaults that
the config derives.

May import: the standard library, msgspec, pykka, `actors.config`, `actors.base` and friends.
Never Tornado or `transport`.
"""
