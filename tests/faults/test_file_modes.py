"""The store is this user's alone: `$DALSEGNO_HOME` is created 0700 and the SQLite files
(the database, its -wal and -shm) 0600, whatever the umask; so is the admin token."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import WORKFLOWS, cli_env
from faults.harness import WITH_PARENT, free_port, wait_for

pytestmark = pytest.mark.sqlite_only("the modes of the SQLite files")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_home_and_its_store_are_readable_by_their_user_only(tmp_path: Path) -> None:
    home = tmp_path / "nested" / "home"  # neither exists yet
    bind = ["--bind", f"127.0.0.1:{free_port()}"]
    process = subprocess.Popen(
        [*WITH_PARENT, sys.executable, "-m", "dalsegno", "manager", *bind],
        cwd=WORKFLOWS,
        env=cli_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        umask=0,  # the modes must not depend on the caller's umask
    )
    try:
        wait_for(lambda: (home / "token").exists() and (home / "dalsegno.db-wal").exists())
        assert mode(home) == 0o700
        for name in ("dalsegno.db", "dalsegno.db-wal", "dalsegno.db-shm", "token"):
            assert mode(home / name) == 0o600, name
    finally:
        process.kill()
        process.wait(10)
