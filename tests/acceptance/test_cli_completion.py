"""Shell completion as docs/operations.md shows it: click's own scripts for bash, zsh and
fish, and completions of commands and options from the installed `dalsegno` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DALSEGNO = Path(sys.executable).with_name("dalsegno")  # the console script pip installed


def completion(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DALSEGNO_", "_DALSEGNO"))}
    return subprocess.run(
        [str(DALSEGNO)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("shell", "begins"),
    [
        ("bash", "_dalsegno_completion() {"),
        ("zsh", "#compdef dalsegno"),
        ("fish", "function _dalsegno_completion;"),
    ],
)
def test_each_documented_shell_gets_its_script(shell: str, begins: str) -> None:
    done = completion(_DALSEGNO_COMPLETE=f"{shell}_source")
    assert done.returncode == 0, done.stderr
    assert done.stdout.lstrip().startswith(begins), done.stdout[:200]
    assert f"_DALSEGNO_COMPLETE={shell}_complete" in done.stdout


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("dalsegno executions re", ["plain,resume"]),
        ("dalsegno ta", ["plain,tasks"]),
        ("dalsegno executions resume abcd --re", ["plain,--reset-operations"]),
    ],
)
def test_bash_completes_commands_and_options(words: str, expected: list[str]) -> None:
    cword = str(len(words.split()) - 1)
    done = completion(_DALSEGNO_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=cword)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected
