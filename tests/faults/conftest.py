"""Fixtures of the fault suite: managers that are always stopped, whatever a test did."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faults.harness import Manager

StartManager = Callable[..., Manager]


@pytest.fixture
def managers(home: Path) -> Iterator[StartManager]:
    """`managers(name="a", **env)` starts a manager on the test's home and store."""
    started: list[Manager] = []

    def start(name: str = "manager", wait: bool = True, **env: str) -> Manager:
        manager = Manager(home, name, **env)
        started.append(manager)
        return manager.start(wait)

    yield start
    for manager in started:
        manager.kill()
