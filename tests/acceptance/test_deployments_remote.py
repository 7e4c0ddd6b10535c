"""The blueprint and deployment commands through a real `dalsegno manager` process
(`--manager URL`): the same commands, spoken as REST; `executions start install -d` hands
the install to the manager and prints its id, `run uninstall -d` follows it to its end;
refusals are the same one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import WORKFLOWS, run_cli
from security.conftest import ManagerProcess

ROOT = Path(__file__).resolve().parents[2]
THREE_TIER = ROOT / "examples" / "blueprints" / "three_tier.yaml"


@pytest.fixture
def manager_url(home: Path) -> Iterator[str]:
    manager = ManagerProcess(
        home, WORKFLOWS, "--workflows", str(THREE_TIER.parent)
    )  # it serves the example's operations
    try:
        yield manager.url
    finally:
        manager.stop()


def remote(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(home, "--manager", url, *args)


def answer(home: Path, url: str, *args: str) -> Any:
    done = remote(home, url, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_deployments_through_a_manager(home: Path, manager_url: str, tmp_path: Path) -> None:
    url = manager_url
    made = answer(home, url, "blueprints", "upload", str(THREE_TIER), "--id", "three-tier")
    assert made["plan"]["node_templates"][0]["operations"]["create"]["implementation"] == (
        f"{THREE_TIER.parent / 'cloud.py'}:create"
    )
    create = ("deployments", "create", "web", "--blueprint", "three-tier")
    bad = remote(home, url, *create, "-i", "app_vms=two")
    assert bad.returncode == 2
    assert bad.stderr == 'error: inputs.app_vms: must be a whole number, not "two"\n'
    cloud = f"cloud_dir={tmp_path / 'cloud'}"
    deployed = answer(home, url, *create, "-i", "app_vms=1", "-i", cloud)
    assert deployed["instance_states"] == {"uninitialized": 6}
    started = remote(home, url, "executions", "start", "install", "-d", "web")
    assert started.returncode == 0, started.stderr
    execution_id = started.stdout.strip()
    deadline = time.monotonic() + 60
    while answer(home, url, "executions", "get", execution_id)["status"] != "completed":
        assert time.monotonic() < deadline, "the install did not complete"
        time.sleep(0.5)
    execution = answer(home, url, "executions", "get", execution_id)
    assert execution["workflow"] == "dalsegno.lifecycle:install"
    assert execution["deployment_id"] == "web"
    shown = answer(home, url, "deployments", "get", "web")
    assert shown["instance_states"] == {"started": 6}
    refused = remote(home, url, "deployments", "delete", "web")
    assert refused.returncode == 2 and refused.stderr == (
        "error: Cannot delete deployment 'web': 6 of its instances are not deleted "
        "(run uninstall first, or use --force)\n"
    )
    uninstalled = remote(home, url, "run", "uninstall", "-d", "web", "-q")
    assert uninstalled.returncode == 0, uninstalled.stderr
    assert answer(home, url, "deployments", "list")[0]["instance_states"] == {"deleted": 6}
    assert answer(home, url, "deployments", "delete", "web") == {"id": "web", "deleted": True}
    assert answer(home, url, "blueprints", "delete", "three-tier")["deleted"] is True
    assert answer(home, url, "blueprints", "list") == []
