"""A store that cannot be reached or opened is one line on stderr and exit 2, on every
CLI command (docs/interface.md, exit codes), and the line never shows the password."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from conftest import run_cli

UNREACHABLE = "postgresql://someone:s3cret@127.0.0.1:1/db"
ID = "0123456789abcdef0123456789abcdef"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


COMMANDS = [
    ("run", "behaviour.py:deploy"),
    ("executions", "start", "behaviour.py:deploy"),
    ("executions", "list"),
    ("executions", "list", "--json"),
    ("executions", "get", ID),
    ("executions", "resume", ID),
    ("executions", "resume", ID, "--dry-run"),
    ("executions", "cancel", ID),
    ("events", ID),
    ("events", ID, "--follow"),
    ("agents", "list"),
    ("agents", "token", "web"),
    ("tasks", "list", ID),
    ("tasks", "get", ID, "build"),
    ("executions", "get", ID, "--task", "build"),
    ("executions", "delete", ID),
    ("executions", "purge", "--status", "completed", "--before", "30d"),
    ("tokens", "list"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: " ".join(command[:3]))
def test_an_unreachable_postgresql_store_is_one_line_and_exit_2(
    home: Path, command: tuple[str, ...]
) -> None:
    done = run_cli(home, "--store", UNREACHABLE, *command, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        "error: cannot open the store postgresql://someone:***@127.0.0.1:1/db: "
    )
    assert "Connection refused" in done.stderr
    assert "s3cret" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda path: path.write_text("not a database\n" * 100), "file is not a database"),
        (lambda path: path.mkdir(), "unable to open database file"),
    ],
    ids=["not-a-database", "a-directory"],
)
def test_a_sqlite_file_that_cannot_be_opened_is_one_line_and_exit_2(
    home: Path, tmp_path: Path, make, reason: str
) -> None:
    path = tmp_path / "store.db"
    make(path)
    for command in (("executions", "list"), ("run", "behaviour.py:deploy")):
        done = run_cli(home, "--store", f"sqlite:///{path}", *command)
        assert done.returncode == 2, done.stderr
        assert done.stderr == f"error: cannot open the store sqlite:///{path}: {reason}\n"


def test_the_manager_with_an_unreachable_store_is_one_line_and_exit_2(home: Path) -> None:
    done = run_cli(
        home, "--store", UNREACHABLE, "manager", "--bind", f"127.0.0.1:{free_port()}", timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1].startswith("error: cannot open the store postgresql://")
    assert "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr


def test_an_in_memory_sqlite_store_is_refused(home: Path) -> None:
    done = run_cli(home, "--store", "sqlite://", "executions", "list")
    assert done.returncode == 2
    assert done.stderr == (
        "error: a SQLite store is a file: sqlite:///PATH (an in-memory database keeps nothing)\n"
    )
