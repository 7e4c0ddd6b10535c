"""`executions list --deployment NAME` and `GET /api/v1/executions?deployment_id=`: the
executions run against one deployment, on the store and through a real manager, on both
backends; an id that is not a deployment id is refused in one line, changing nothing."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import WORKFLOWS, run_cli
from dalsegno.service.deployments import DeploymentService
from dalsegno.service.executions import ExecutionService
from dalsegno.store import Store
from security.conftest import ManagerProcess

sys.path.insert(0, str(WORKFLOWS))

import deploy_kit


@pytest.fixture
def manager_url(home: Path) -> Iterator[str]:
    manager = ManagerProcess(home, WORKFLOWS)
    try:
        yield manager.url
    finally:
        manager.stop()


def test_executions_are_listed_by_deployment(
    home: Path, store: Store, service: ExecutionService, tmp_path: Path, manager_url: str
) -> None:
    store.put_blueprint("tiers", "(built in the test)", deploy_kit.blueprint(1))
    deployments = DeploymentService(store)
    for name in ("a", "b"):
        log = str(tmp_path / f"{name}.log")
        deployments.create_planned(
            name, "tiers", {"log": log}, deploy_kit.instances(name, 1, prefix=f"{name}_")
        )
    (tmp_path / "plain.py").write_text(
        "from dalsegno import workflow\n\n\n@workflow\ndef hello(ctx):\n    pass\n"
    )
    a1 = service.create("install", {}, deployment="a").id
    b1 = service.create("install", {}, deployment="b").id
    a2 = service.create("uninstall", {}, deployment="a").id  # queued behind a1
    plain = service.create(f"{tmp_path / 'plain.py'}:hello", {}).id
    assert {a1, a2, b1, plain} <= set(listed_by(home, (), ()))

    local = ("--deployment", "a")
    assert listed_by(home, (), local) == [a2, a1]  # newest first
    assert listed_by(home, (), ("-d", "b")) == [b1]
    assert listed_by(home, (), ("-d", "nothing-here")) == []
    remote = ("--manager", manager_url)
    assert listed_by(home, remote, local) == [a2, a1]
    assert listed_by(home, remote, ("-d", "b", "--limit", "1")) == [b1]

    token = (home / "token").read_text().strip()
    with httpx.Client(
        base_url=f"{manager_url}/api/v1", headers={"Authorization": f"Bearer {token}"}
    ) as api:
        answer = api.get("/executions", params={"deployment_id": "a"})
        assert answer.status_code == 200
        assert [e["id"] for e in answer.json()] == [a2, a1]
        assert {e["deployment_id"] for e in answer.json()} == {"a"}
        paged = api.get("/executions", params={"deployment_id": "a", "limit": 1})
        assert [e["id"] for e in paged.json()] == [a2] and "x-next-cursor" in paged.headers
        assert api.get("/executions", params={"deployment_id": "a b"}).status_code == 422

    for mode in ((), remote):
        refused = run_cli(home, *mode, "executions", "list", "-d", "a b")
        assert refused.returncode == 2
        assert refused.stderr == (
            "error: a deployment id is 1 to 100 letters, digits, '_', '.' or '-', starting"
            " with a letter or digit, not 'a b'\n"
        )


def listed_by(home: Path, mode: tuple[str, ...], by: tuple[str, ...]) -> list[str]:
    done = run_cli(home, *mode, "executions", "list", *by, "--json")
    assert done.returncode == 0, done.stderr
    return [found["id"] for found in json.loads(done.stdout)]
