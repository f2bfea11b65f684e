"""What the session store takes from the config (cli-config §6.4, §6.5), at boot and on a hot
reload."""

from __future__ import annotations

from actors.config.schema import Config


def session_reset_policy(config: Config) -> dict:
    """`session.reset` as the SessionStore takes it; `session.idleMinutes` is the shorthand
    for `{mode: idle, idleMinutes}` (cli-config §6.4)."""
    session = config.session
    if session.idle_minutes is not None and session.reset.mode == "none":
        return {"mode": "idle", "atHour": session.reset.at_hour, "idleMinutes": session.idle_minutes}
    return {"mode": session.reset.mode, "atHour": session.reset.at_hour,
            "idleMinutes": session.reset.idle_minutes}


def session_defaults(config: Config) -> dict:
    """The `defaults` object of sessions.list (protocol §13.2) from agents.defaults.model."""
    model = config.agents.defaults.model
    ref = model if isinstance(model, str) else getattr(model, "primary", None)
    if not ref:
        return {}
    provider, _, name = ref.partition("/")
    out: dict = {"modelProvider": provider, "model": name} if name else {"model": ref}
    entry = config.models.providers.get(provider) if name else None
    for each in (entry.models if entry is not None else ()):
        if each.id == name and each.context_window:
            out["contextTokens"] = each.context_window
    return out
