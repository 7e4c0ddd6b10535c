"""A manager runs only the workflows its operator allowed (`--workflows`), proven with real
managers over real HTTP: a request naming any other file is refused before anything is
imported (a file whose top-level code would leave a marker leaves none), the allowed ones
are listed with their parameters, and resume and takeover follow the list."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import cli_env, run_cli
from dalsegno.store import Store
from security.conftest import ManagerProcess, csrf_of, free_port, wait_for

Managers = Callable[..., ManagerProcess]


def planted(tmp_path: Path, name: str = "sideeffect") -> tuple[Path, Path]:
    """A file elsewhere on the host whose top-level code writes a marker; the marker."""
    directory = tmp_path / "elsewhere"
    directory.mkdir(exist_ok=True)
    marker = tmp_path / f"{name}-marker"
    source = directory / f"{name}.py"
    source.write_text(
        f"from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('imported')\n"
        f"from dalsegno import workflow\n\n\n"
        f"@workflow\n"
        f"def f(ctx):\n"
        f"    pass\n"
    )
    return source, marker


def test_a_file_not_allowed_is_refused_before_it_is_imported(
    home: Path, tmp_path: Path, flows_dir: Path, managers: Managers
) -> None:
    source, marker = planted(tmp_path)
    manager = managers(home, flows_dir, "--workflows", "flows.py")
    refused = [
        str(source) + ":f",  # an absolute path on the manager's host
        "../elsewhere/sideeffect.py:f",  # relative to the manager's directory
        "sideeffect:f",  # a module name
        "flows:step",  # an operation of an allowed file is not a workflow
    ]
    with manager.api() as api:
        answers = [api.post("/executions", json={"workflow": ref}) for ref in refused]
        missing = api.post("/executions", json={"workflow": str(tmp_path / "nope.py") + ":f"})
        listed = api.get("/executions").json()
    assert [answer.status_code for answer in answers] == [422] * len(refused)
    for ref, answer in zip(refused, answers, strict=True):
        assert answer.json()["error"] == (
            f"workflow '{ref}' is not allowed on this manager: it serves the 1 workflows of"
            " its --workflows (GET /api/v1/workflows, `dalsegno workflows list`)"
        )
    # a file that exists and one that does not are refused alike: nothing tells them apart
    assert missing.json()["error"] == answers[0].json()["error"].replace(
        str(source), str(tmp_path / "nope.py")
    )
    assert listed == []
    assert not marker.exists(), "the refused file's top-level code ran"

    # the web UI's start form and the remote CLI go the same way
    with manager.signed_in() as browser:
        csrf = csrf_of(browser.get("/start").text)
        page = browser.post("/start", data={"csrf": csrf, "workflow": str(source) + ":f"})
    assert page.status_code == 400 and "not allowed on this manager" in page.text
    remote = run_cli(
        home, "--manager", manager.url, "run", str(source) + ":f", cwd=tmp_path / "elsewhere"
    )
    assert remote.returncode == 2
    assert "not allowed on this manager" in remote.stderr
    assert len(remote.stderr.strip().splitlines()) == 1
    assert not marker.exists(), "the refused file's top-level code ran"


def test_without_workflows_the_manager_serves_its_directory_and_imports_nothing_else(
    home: Path, tmp_path: Path, flows_dir: Path, managers: Managers
) -> None:
    """The default: the .py files of the working directory that declare a workflow. A
    script there that declares none is not even imported."""
    script_marker = tmp_path / "script-marker"
    (flows_dir / "script.py").write_text(
        f"from pathlib import Path\nPath({str(script_marker)!r}).write_text('ran')\n"
    )
    (flows_dir / "broken.py").write_text(
        "import no_such_module_here\nfrom dalsegno import workflow\n\n\n"
        "@workflow\ndef w(ctx):\n    pass\n"
    )
    manager = managers(home, flows_dir)
    with manager.api() as api:
        served = api.get("/workflows").json()
        created = api.post("/executions", json={"workflow": "flows.py:deploy"})
        broken = api.post("/executions", json={"workflow": "broken:w"})
    assert [found["workflow"] for found in served] == ["flows:deploy"]
    assert served[0]["aliases"] == [str(flows_dir / "flows.py") + ":deploy"]
    assert created.status_code == 201, created.text
    assert broken.status_code == 422
    assert manager.wait_status(created.json()["id"], "completed")["status"] == "completed"
    assert not script_marker.exists()
    log = manager.log.read_text()
    assert "broken.py" in log and "no_such_module_here" in log  # skipped, and said so


def test_the_allowed_workflows_are_listed_with_their_parameters(
    home: Path, flows_dir: Path, managers: Managers
) -> None:
    manager = managers(home, flows_dir, "--workflows", str(flows_dir / "flows.py"))
    viewer = manager.token("vera", "viewer")
    with manager.api(viewer) as api:
        (found,) = api.get("/workflows").json()
    assert found["workflow"] == "flows:deploy"
    assert found["resumable"] is True
    assert found["doc"] == "Deploys `hosts` hosts, then an app."
    assert found["parameters"] == [
        {
            "name": "hosts",
            "type": "integer",
            "annotation": "int",
            "description": "a whole number",
            "required": False,
            "default": 2,
            "choices": None,
            "nullable": False,
        },
        {
            "name": "fail_flag",
            "type": "string",
            "annotation": "str",
            "description": "a string",
            "required": False,
            "default": "",
            "choices": None,
            "nullable": False,
        },
        {
            "name": "hold",
            "type": "string",
            "annotation": "str",
            "description": "a string",
            "required": False,
            "default": "",
            "choices": None,
            "nullable": False,
        },
    ]
    remote = run_cli(home, "--manager", manager.url, "--token", viewer, "workflows", "list")
    assert remote.returncode == 0, remote.stderr
    assert "flows:deploy" in remote.stdout and "hosts: int = 2" in remote.stdout
    local = run_cli(home, "workflows", "list", "--json", "--workflows", "flows.py", cwd=flows_dir)
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout) == [found]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("missing.py", "no such file"),
        ("no_such_module_for_dalsegno", "cannot import no_such_module_for_dalsegno"),
        ("broken.py", "broken.py: RuntimeError: refuses to load"),
        ("./nowhere/", "no such file, directory or module"),
    ],
)
def test_a_spec_that_does_not_load_stops_the_manager_in_one_line(
    home: Path, flows_dir: Path, spec: str, reason: str
) -> None:
    (flows_dir / "broken.py").write_text("raise RuntimeError('refuses to load')\n")
    done = run_cli(
        home, "manager", "--bind", f"127.0.0.1:{free_port()}", "--workflows", spec, cwd=flows_dir
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ") and reason in done.stderr, done.stderr


def test_workflows_come_from_the_environment_too(
    home: Path, flows_dir: Path, tmp_path: Path, managers: Managers
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "more.py").write_text(
        "from dalsegno import workflow\n\n\n@workflow\ndef more(ctx, n: int):\n    pass\n"
    )
    env = f"{flows_dir / 'flows.py'}:{other}"
    done = run_cli(home, "workflows", "list", "--json", cwd=tmp_path, DALSEGNO_WORKFLOWS=env)
    assert done.returncode == 0, done.stderr
    served = [found["workflow"] for found in json.loads(done.stdout)]
    assert served == [str(flows_dir / "flows.py") + ":deploy", str(other / "more.py") + ":more"]


def test_the_cli_on_the_store_runs_any_file_it_is_given(home: Path, tmp_path: Path) -> None:
    """No manager, no allow-list: `dalsegno run` runs its caller's own code."""
    source, marker = planted(tmp_path, "mine")
    done = run_cli(home, "run", f"{source}:f")
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "imported"


def test_resume_and_takeover_follow_the_allow_list(
    home: Path, tmp_path: Path, flows_dir: Path, managers: Managers, store: Store
) -> None:
    """An execution whose workflow is no longer served: a resume is refused with the reason
    (nothing changes), a takeover ends it failed with the reason; served again, both
    executions resume to completion."""
    (flows_dir / "other.py").write_text(
        "from dalsegno import workflow\n\n\n@workflow\ndef other(ctx):\n    pass\n"
    )
    flag = tmp_path / "fail-flag"
    flag.touch()
    first = managers(home, flows_dir, "--workflows", "flows.py")
    with first.api() as api:
        created = api.post(
            "/executions", json={"workflow": "flows:deploy", "params": {"fail_flag": str(flag)}}
        ).json()
    failed_id = created["id"]
    assert first.wait_status(failed_id, "failed")["status"] == "failed"
    first.stop()

    # an execution run by the CLI on the store, killed while its app task runs
    hold = tmp_path / "hold"
    hold.touch()
    run = subprocess.Popen(
        [sys.executable, "-m", "dalsegno", "run", "flows:deploy", "-p", f"hold={hold}"],
        cwd=flows_dir, env=cli_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert run.stderr is not None
    crashed_id = run.stderr.readline().decode().split()[-1]  # "Execution ID"

    def app_started() -> bool:
        return any(t.key == "app" and t.status == "started" for t in store.list_tasks(crashed_id))

    wait_for(app_started, 30, "the app task to start")
    run.kill()
    run.communicate(timeout=10)

    second = managers(home, flows_dir, "--workflows", "other.py")
    with second.api() as api:
        refused = api.post(f"/executions/{failed_id}/resume", json={})
        dry = api.post(f"/executions/{failed_id}/resume", json={"dry_run": True})
        unchanged = api.get(f"/executions/{failed_id}").json()
    assert refused.status_code == 422 and dry.status_code == 422
    assert "workflow 'flows:deploy' is not allowed on this manager" in refused.json()["error"]
    assert unchanged["status"] == "failed"
    assert [a["type"] for a in unchanged["actions"]] == ["workflow_started"]
    taken = second.wait_status(crashed_id, "failed")  # its owner died: taken over at once
    assert taken["error"].startswith(
        "Cannot resume - workflow 'flows:deploy' is not allowed on this manager"
    ), taken["error"]
    second.stop()

    flag.unlink()
    hold.unlink()
    third = managers(home, flows_dir, "--workflows", "flows.py", "--workflows", "other.py")
    with third.api() as api:
        for execution_id in (failed_id, crashed_id):
            answer = api.post(f"/executions/{execution_id}/resume", json={})
            assert answer.status_code == 202, answer.text
    for execution_id in (failed_id, crashed_id):
        assert third.wait_status(execution_id, "completed", "failed")["status"] == "completed"
