"""Fixtures shared by every ring: a temporary home with a real SQLite file, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dalsegno.engine.runner import EngineConfig
from dalsegno.service.executions import ExecutionService
from dalsegno.store import Store, open_store

TESTS = Path(__file__).parent
WORKFLOWS = TESTS / "workflows"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh DALSEGNO_HOME; the default store is the SQLite file inside it."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("DALSEGNO_HOME", str(path))
    monkeypatch.delenv("DALSEGNO_STORE", raising=False)
    monkeypatch.delenv("DALSEGNO_MANAGER", raising=False)
    return path


@pytest.fixture
def store_url(home: Path) -> str:
    return f"sqlite:///{home / 'dalsegno.db'}"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def service(store: Store) -> ExecutionService:
    """The service layer on a real SQLite file, with short timers for tests."""
    return ExecutionService(
        store, EngineConfig(concurrency=4, lease_timeout=3.0, poll_interval=0.05)
    )


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DALSEGNO_")}
    env["DALSEGNO_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(
    home: Path, *args: str, cwd: Path = WORKFLOWS, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `python -m dalsegno ARGS` in a real subprocess and wait for it."""
    return subprocess.run(
        [sys.executable, "-m", "dalsegno", *args],
        cwd=cwd,
        env=cli_env(home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(home: Path, *args: str, cwd: Path = WORKFLOWS, **env: str) -> subprocess.Popen[str]:
    """Start `python -m dalsegno ARGS` in a real subprocess and return at once."""
    return subprocess.Popen(
        [sys.executable, "-m", "dalsegno", *args],
        cwd=cwd,
        env=cli_env(home, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def cli(home: Path):  # type: ignore[no-untyped-def]
    """`cli("run", "basic.py:deploy", "-p", "hosts=2")` -> CompletedProcess."""

    def call(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return run_cli(home, *args, **kwargs)  # type: ignore[arg-type]

    return call
