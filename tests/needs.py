"""Tests that need an outside tool (ngircd for IRC, the official OpenClaw CLI): skipped where
the tool is missing, so a developer without it can still run the rest; but a CI run must not
pass with them silently skipped, so when the environment variable `CI` is set (to anything but
empty, 0, false or no) a missing tool fails those tests instead, with the reason."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def tool_missing(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason}; CI is set, so a missing tool is a failure, not a skip", pytrace=False)
    pytest.skip(reason)


def require_tool(available: bool, reason: str) -> None:
    """Call from a fixture: nothing when `available`, else skip (or fail under CI)."""
    if not available:
        tool_missing(reason)
