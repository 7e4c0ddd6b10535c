"""Fixtures of the fault suite: managers that are always stopped, whatever a test did."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from faults.harness import Manager

StartManager = Callable[..., Manager]


@pytest.fixture
def managers(home: Path) -> Iterator[StartManager]:
    """`managers(name="a", args=(...), **env)` starts a manager on the test's home and
    store; each one's process group is killed at the end, whatever happened."""
    started: list[Manager] = []

    def start(
        name: str = "manager", wait: bool = True, args: Iterable[str] = (), **env: str
    ) -> Manager:
        manager = Manager(home, name, args, **env)
        started.append(manager)
        return manager.start(wait)

    try:
        yield start
    finally:
        for manager in started:
            with contextlib.suppress(Exception):
                manager.kill()
