"""docs/design.md and docs/interface.md stay true to the code: the state tables are the
ones `model/states.py` enforces, every CLI command and every REST route is documented, and
no file of the repository sends a reader to a page outside it."""

from __future__ import annotations

import re
from pathlib import Path
from unittest import mock

import click

from dalsegno.api.app import create_app
from dalsegno.cli.main import main
from dalsegno.model.states import EXECUTION_TRANSITIONS, TASK_TRANSITIONS
from dalsegno.service.executions import ExecutionService

ROOT = Path(__file__).resolve().parents[2]
DESIGN = (ROOT / "docs" / "design.md").read_text()
INTERFACE = (ROOT / "docs" / "interface.md").read_text()


def table_after(text: str, heading: str) -> list[list[str]]:
    """The rows of the first table after `heading`, each a list of cells (header skipped)."""
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def states(cell: str) -> list[str]:
    """The state names of a table cell, before any remark in parentheses."""
    names = re.findall(r"[a-z_]+", cell.split("(", maxsplit=1)[0])
    return [name for name in names if name != "nothing"]


def test_the_task_table_is_the_one_the_store_enforces() -> None:
    documented = {
        (source, target)
        for sources, targets, _when in table_after(DESIGN, "### Tasks")
        for source in states(sources)
        for target in states(targets)
    }
    enforced = {
        (source.value, target.value)
        for source, targets in TASK_TRANSITIONS.items()
        for target in targets
    }
    assert documented == enforced


def test_every_execution_move_the_store_allows_is_documented() -> None:
    rows = table_after(DESIGN, "### Executions")
    documented = set()
    for names, _meaning, targets in rows:
        for source in states(names):
            for target in re.split(r",\s*(?![^(]*\))", targets):
                documented |= {(source, found) for found in states(target)}
    assert {state.value for state in EXECUTION_TRANSITIONS} == {
        source for names, _, _ in rows for source in states(names)
    }
    allowed = {
        (source.value, target.value)
        for source, targets in EXECUTION_TRANSITIONS.items()
        for target in targets
    }
    assert allowed == documented


def commands(group: click.Group, prefix: str = "dalsegno") -> list[str]:
    found = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found += commands(command, path)
        else:
            found.append(path)
    return found


def test_every_cli_command_is_in_the_interface() -> None:
    assert isinstance(main, click.Group)
    missing = [path for path in commands(main) if f"`{path}" not in INTERFACE]
    assert missing == []


def test_every_rest_route_is_in_the_interface() -> None:
    service = mock.create_autospec(ExecutionService, instance=True)
    document = create_app(service, "unused").openapi()
    missing = []
    for path in document["paths"]:
        short = re.sub(r"\{(execution_id|attempt_id)\}", "{id}", path.removeprefix("/api/v1"))
        if short not in INTERFACE:
            missing.append(path)
    assert missing == []


def test_no_file_points_outside_the_repository() -> None:
    pointing = re.compile(r"DESIGN\.md|INTERFACE\.md|STYLE\.md|\.\./shared|/work/shared")
    found = []
    for folder in ("src", "docs", "tests", "benchmarks", "examples"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in {".py", ".md", ".html", ".sh", ".toml"} or path == Path(__file__):
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if pointing.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    for name in ("README.md", "pyproject.toml"):
        found += [
            f"{name}: {line.strip()}"
            for line in (ROOT / name).read_text().splitlines()
            if pointing.search(line)
        ]
    assert found == []
