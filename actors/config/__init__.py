"""The config owner's package: the typed schema, the load pipeline (`$include`, `${VAR}`),
validation that collects every error, atomic writes, the JSON Schema, reload planning (which
key changes need what), the config actor and the file watcher.

May import: the standard library, msgspec, json5, watchfiles, pykka, and `actors` modules
outside the other state-owner packages (`actors.base`, `actors.paths`, ...). Never Tornado or
`transport`.
"""
