"""A token file is trusted only when nobody else could have read or planted it: the
manager, the CLI and agents refuse, in one line with exit 2 and the reason, a token file
that is a symlink (dangling or not), not owned by the user, readable or writable by its
group or others, or shorter than 32 characters."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import run_cli
from security.conftest import ManagerProcess, free_port

GOOD = "a-token-of-exactly-forty-three-characters-x"


def write(path: Path, text: str = GOOD, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def refused_in_one_line(done: object, *reasons: str) -> str:
    returncode, stderr = done.returncode, done.stderr  # type: ignore[attr-defined]
    assert returncode == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert "Traceback" not in stderr and "AssertionError" not in stderr
    for reason in reasons:
        assert reason in stderr, stderr
    return str(stderr)


def _identity(path: Path) -> tuple[int, ...]:
    found = os.lstat(path)
    return (found.st_ino, found.st_mode, found.st_uid, found.st_size, found.st_mtime_ns)


def start_manager(home: Path) -> object:
    bind = f"127.0.0.1:{free_port()}"
    return run_cli(home, "manager", "--bind", bind, cwd=home.parent, timeout=30)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("world-readable", "may be read or written by its group or others (mode 0644)"),
        ("group-readable", "(mode 0640)"),
        ("group-writable", "(mode 0620)"),
        ("symlink", "is a symlink"),
        ("dangling-symlink", "is a symlink"),
        ("short", "holds a token of 20 characters: at least 32 are needed"),
        ("directory", "is not a regular file"),
    ],
)
def test_the_manager_refuses_an_untrusted_token_file(
    home: Path, tmp_path: Path, kind: str, reason: str
) -> None:
    token = home / "token"
    target = tmp_path / "elsewhere-token"
    if kind == "world-readable":
        write(token, mode=0o644)
    elif kind == "group-readable":
        write(token, mode=0o640)
    elif kind == "group-writable":
        write(token, mode=0o620)
    elif kind == "symlink":
        token.symlink_to(write(target))
    elif kind == "dangling-symlink":
        token.symlink_to(tmp_path / "nothing-here")
    elif kind == "short":
        write(token, "x" * 20)
    elif kind == "directory":
        token.mkdir(mode=0o700)
    before = _identity(token)
    line = refused_in_one_line(start_manager(home), "the admin token file", str(token), reason)
    assert _identity(token) == before, "the refused file was changed"
    # the CLI reading the same file for a manager refuses it alike, before any request
    remote = run_cli(home, "--manager", "http://127.0.0.1:1", "executions", "list")
    assert refused_in_one_line(remote, str(token), reason).replace("admin token", "token") == (
        line.replace("admin token", "token")
    )


def test_a_token_file_of_another_user_is_refused(home: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("only root can give a file to another user here (the test needs chown)")
    token = write(home / "token")
    os.chown(token, 4242, os.getgid())
    refused_in_one_line(start_manager(home), "is owned by uid 4242, not by this user")


def test_a_good_token_file_is_used_as_it_is(
    home: Path, flows_dir: Path, managers: Callable[..., ManagerProcess]
) -> None:
    write(home / "token")
    manager = managers(home, flows_dir)
    assert manager.admin_token == GOOD
    with manager.api(GOOD) as api:
        assert api.get("/executions").status_code == 200
    assert stat.S_IMODE(os.stat(home / "token").st_mode) == 0o600


def test_the_cli_and_agents_refuse_an_untrusted_token_file(home: Path, tmp_path: Path) -> None:
    readable = write(tmp_path / "readable", mode=0o644)
    link = tmp_path / "link"
    link.symlink_to(write(tmp_path / "real"))
    short = write(tmp_path / "short", "y" * 31)
    manager = "http://127.0.0.1:1"
    for path, reason in (
        (readable, "(mode 0644): chmod 600"),
        (link, "is a symlink"),
        (short, "holds a token of 31 characters"),
    ):
        cli = run_cli(home, "--manager", manager, "--token-file", str(path), "executions", "list")
        refused_in_one_line(cli, "--token-file", reason)
        agent = run_cli(
            home, "agent", "--queue", "web", "--manager", manager, "--token-file", str(path)
        )
        refused_in_one_line(agent, "--token-file", reason)
    assert stat.S_IMODE(os.stat(readable).st_mode) == 0o644  # nothing is "fixed" silently
