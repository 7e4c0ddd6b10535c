"""A manager's allow-list serves operations too (docs/security.md): a blueprint uploaded
through a manager may name only the `@operation` functions of its `--workflows`, refused
before anything is imported and nothing stored; a lifecycle task whose operation the
manager does not serve fails with the reason, its file never imported. Real managers over
real HTTP, the CLI as a user runs it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from conftest import run_cli
from security.conftest import ManagerProcess

Managers = Callable[..., ManagerProcess]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "blueprints"
NOT_SERVED = "is not allowed on this manager: it serves the @operation functions of its --workflows"


def planted_operation(tmp_path: Path) -> tuple[Path, Path]:
    """A file elsewhere whose top-level code writes a marker, defining `create`."""
    directory = tmp_path / "elsewhere"
    directory.mkdir(exist_ok=True)
    marker = tmp_path / "op-marker"
    source = directory / "sideop.py"
    source.write_text(
        f"from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('imported')\n"
        f"from dalsegno import operation\n\n\n"
        f"@operation(resumable=True)\n"
        f"def create(ctx):\n"
        f"    pass\n"
    )
    return source, marker


def blueprint(create: str, establish: str = "flows:step") -> str:
    return (
        "node_templates:\n"
        "  net:\n"
        "    type: t.net\n"
        "  vm:\n"
        "    type: t.vm\n"
        "    operations:\n"
        "      configure: {implementation: flows:step, inputs: {name: vm}}\n"
        f"      create: {create}\n"
        "    relationships:\n"
        "      - type: connected_to\n"
        "        target: net\n"
        f"        source_operations: {{establish: {{implementation: {establish},"
        " inputs: {name: link}}}\n"
    )


def test_a_blueprint_naming_an_operation_not_served_is_refused_before_import(
    home: Path, tmp_path: Path, flows_dir: Path, managers: Managers
) -> None:
    source, marker = planted_operation(tmp_path)
    manager = managers(home, flows_dir, "--workflows", "flows.py")
    refused = {
        "node_templates.vm.operations.create": [
            (f"{source}:create", None),  # an absolute path on the manager's host
            ("sideop.py:create", str(source.parent)),  # relative to a base_dir there
            ("../elsewhere/sideop.py:create", None),  # relative to the manager's directory
            ("sideop:create", None),  # a module name
            ("flows:deploy", None),  # a served workflow is no operation
        ],
    }
    with manager.api() as api:
        for field, cases in refused.items():
            for reference, base_dir in cases:
                body = {"id": "bad", "source": blueprint(reference), "base_dir": base_dir}
                answer = api.post("/blueprints", json=body)
                assert answer.status_code == 422, answer.text
                resolved = f"{source}:create" if reference.startswith("sideop.py") else reference
                if reference.startswith("../"):
                    resolved = f"{(flows_dir / reference.split(':')[0]).resolve()}:create"
                assert answer.json()["error"] == f"{field}: operation '{resolved}' {NOT_SERVED}"
        pair = api.post(
            "/blueprints",
            json={"id": "bad", "source": blueprint("flows.py:step", f"{source}:create"),
                  "base_dir": str(flows_dir)},
        )  # fmt: skip
        assert pair.status_code == 422
        assert pair.json()["error"] == (
            "node_templates.vm.relationships[0].source_operations.establish: "
            f"operation '{source}:create' {NOT_SERVED}"
        )
        assert api.get("/blueprints").json() == []

    # the CLI with --manager says the same in one line, and stores nothing
    (tmp_path / "elsewhere" / "bad.yaml").write_text(blueprint("sideop.py:create"))
    remote = run_cli(
        home, "--manager", manager.url, "blueprints", "upload", "bad.yaml",
        cwd=tmp_path / "elsewhere",
    )  # fmt: skip
    assert remote.returncode == 2
    assert remote.stderr == (
        f"error: node_templates.vm.operations.create: operation '{source}:create' {NOT_SERVED}\n"
    )
    assert not marker.exists(), "the refused operation's file was imported"

    # the served file's operations are allowed, by path and by module
    with manager.api() as api:
        for n, reference in enumerate(
            ["flows.py:step", "flows:step", f"{flows_dir}/flows.py:step"]
        ):
            body = {"id": f"ok{n}", "source": blueprint(reference), "base_dir": str(flows_dir)}
            answer = api.post("/blueprints", json=body)
            assert answer.status_code == 201, answer.text
        assert [found["id"] for found in api.get("/blueprints").json()] == ["ok0", "ok1", "ok2"]


def test_the_three_tier_example_installs_through_a_manager_serving_its_directory(
    home: Path, tmp_path: Path, managers: Managers
) -> None:
    """`dalsegno manager --workflows examples/blueprints` serves cloud.py's operations."""
    manager = managers(home, EXAMPLES.parents[1], "--workflows", "examples/blueprints")

    def cli(*args: str) -> str:
        done = run_cli(home, "--manager", manager.url, *args, cwd=EXAMPLES)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("blueprints", "upload", "three_tier.yaml", "--id", "three-tier")
    cloud = tmp_path / "cloud"
    cli("deployments", "create", "shop", "--blueprint", "three-tier", "-i", f"cloud_dir={cloud}")
    started = cli("executions", "start", "install", "-d", "shop").strip()
    done = manager.wait_status(started, "completed", "failed", timeout=60)
    assert done["status"] == "completed", done.get("error")
    shop = json.loads(cli("deployments", "get", "shop", "--json"))
    assert shop["instance_states"] == {"started": 8}
    assert len(list((cloud / "shop").glob("*.json"))) == 8  # cloud.py ran, in the manager


def test_a_lifecycle_task_whose_operation_is_not_served_fails_without_importing_it(
    home: Path, tmp_path: Path, flows_dir: Path, managers: Managers
) -> None:
    """A blueprint put in the store by the CLI (no allow-list there), run by a manager that
    does not serve its operation: a new install fails with the reason before any task
    runs; a resume of an install the CLI stored (its `create` failed) fails that attempt
    with the reason, not recoverable. The manager never imports the file."""
    source, marker = planted_operation(tmp_path)
    flag = tmp_path / "fail-flag"
    with source.open("a") as code:  # each import appends its process id; the flag fails it
        code.write(
            f"\nimport os\nwith open({str(marker) + '.pids'!r}, 'a') as out:\n"
            f"    out.write(f'{{os.getpid()}}\\n')\n\n\n"
            f"@operation(resumable=True)\ndef flaky(ctx):\n"
            f"    if Path({str(flag)!r}).exists():\n        raise RuntimeError('flag')\n"
        )
    (flows_dir / "bp.yaml").write_text(blueprint(f"{source}:flaky"))
    for args in (
        ("blueprints", "upload", "bp.yaml"),
        ("deployments", "create", "shop", "--blueprint", "bp"),
    ):
        done = run_cli(home, *args, cwd=flows_dir)
        assert done.returncode == 0, done.stderr
    assert not marker.exists()  # an upload reads no operation

    manager = managers(home, flows_dir, "--workflows", "flows.py")
    refusal = f"operation '{source}:flaky' {NOT_SERVED}"
    with manager.api() as api:
        created = api.post("/executions", json={"workflow": "install", "deployment_id": "shop"})
    assert created.status_code == 201, created.text
    failed = manager.wait_status(created.json()["id"], "failed", "completed")
    assert failed["status"] == "failed"
    assert refusal in failed["error"], failed["error"]
    assert not marker.exists(), "the manager imported an operation it does not serve"

    # an install by the CLI on the store (it runs its user's code), its create failed
    flag.touch()
    local = run_cli(home, "run", "install", "-d", "shop", cwd=flows_dir)
    assert local.returncode != 0
    local_id = next(
        e["id"] for e in json.loads(run_cli(home, "executions", "list", "--json").stdout)
        if e["id"] != created.json()["id"]
    )  # fmt: skip
    flag.unlink()
    with manager.api() as api:
        resumed = api.post(f"/executions/{local_id}/resume", json={})
        assert resumed.status_code == 202, resumed.text
        manager.wait_status(local_id, "failed", "completed")
        tasks = api.get(f"/executions/{local_id}/tasks").json()
    create = next(
        task for task in tasks if task["key"].endswith(".create") and "vm_" in task["key"]
    )
    assert create["status"] == "failed"
    assert create["error"] == refusal
    importers = (Path(str(marker) + ".pids")).read_text().split()
    assert str(manager.process.pid) not in importers  # only the CLI's process imported it
