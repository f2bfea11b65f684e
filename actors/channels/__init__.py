"""Channels (issue 5; architecture §1-§3): each messaging channel runs in its own OS process.

- `frames.py`: the msgspec messages on the pipe between a `ChannelHost` (gateway side) and
  its channel process.
- `adapter.py`: what a channel adapter implements (`irc.py`, `telegram.py`), and the
  `Emitter` it reports through. Adapters run inside the channel process only.
"""
