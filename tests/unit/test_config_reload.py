"""The per-path diff behind reload classes (cli-config §5.7)."""

from __future__ import annotations

from actors.config.reload import changed_paths, classify

TELEGRAM = {"botToken": "1:a", "apiRoot": "http://127.0.0.1:9"}


def test_leaves_and_whole_objects():
    assert changed_paths({"logging": {"level": "info"}}, {"logging": {"level": "debug"}}) == ["logging.level"]
    assert changed_paths({}, {"gateway": {"port": 1}}) == ["gateway"]
    assert changed_paths({"gateway": {"port": 1}}, {}) == ["gateway"]
    assert changed_paths({"a": [1]}, {"a": [1, 2]}) == ["a"]


def test_the_whole_channels_block_is_one_path_per_channel():
    # Added or removed as a whole, `channels` acts on each channel (issue 11, defect 4).
    added = changed_paths({}, {"channels": {"telegram": TELEGRAM, "irc": {}}})
    assert added == ["channels.telegram", "channels.irc"]
    assert classify(added)["channel"] == added
    assert changed_paths({"channels": {"telegram": TELEGRAM}}, {}) == ["channels.telegram"]
    assert changed_paths({"channels": {"telegram": TELEGRAM}}, {"channels": None}) == ["channels.telegram"]
    assert changed_paths({}, {"channels": {}}) == []  # no channel, nothing to start
    assert changed_paths({"channels": {}}, {"channels": {"telegram": {}}}) == ["channels.telegram"]
