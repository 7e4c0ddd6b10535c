"""`dalsegno agent` refuses bad usage with one line and exit 2, before it claims anything."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli


def test_without_a_manager_url_the_agent_refuses(home: Path) -> None:
    done = run_cli(home, "agent", "--queue", "web", "--token", "t")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: dalsegno agent needs the manager's URL: --manager URL or DALSEGNO_MANAGER"
    )


def test_a_malformed_manager_url_is_refused(home: Path) -> None:
    done = run_cli(home, "agent", "--queue", "web", "--manager", "ftp://x", "--token", "t")
    assert done.returncode == 2
    assert "must start with http:// or https://" in done.stderr


def test_an_empty_queue_or_token_is_refused(home: Path) -> None:
    url = "http://127.0.0.1:1"
    assert run_cli(home, "--manager", url, "agent", "--queue", " ", "--token", "t").returncode == 2
    done = run_cli(home, "--manager", url, "agent", "--queue", "web", "--token", " ")
    assert (done.returncode, done.stderr.strip()) == (2, "error: --token is empty")


def test_without_a_token_the_agent_says_where_it_looked(home: Path) -> None:
    done = run_cli(home, "--manager", "http://127.0.0.1:1", "agent", "--queue", "web")
    assert done.returncode == 2
    assert "no token for the manager" in done.stderr


def test_the_agent_takes_its_options_before_or_after_the_command(home: Path) -> None:
    """A token file given before the command is read (and found missing) like after it."""
    missing = str(home / "nope")
    before = run_cli(
        home, "--manager", "http://127.0.0.1:1", "--token-file", missing, "agent", "--queue", "w"
    )
    after = run_cli(
        home, "agent", "--queue", "w", "--manager", "http://127.0.0.1:1", "--token-file", missing
    )
    assert before.returncode == after.returncode == 2
    assert before.stderr == after.stderr
    assert "--token-file" in before.stderr
