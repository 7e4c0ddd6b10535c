"""`dalsegno.testing`: what a user writes to test a workflow and its crash-and-resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from dalsegno import NonRecoverableError, operation, workflow
from dalsegno.testing import WorkflowHarness

RUNS: list[str] = []


@operation(resumable=True)
def provision(ctx, name: str) -> dict:
    RUNS.append(f"{name}{' (resumed)' if ctx.resume else ''}")
    return {"ip": f"10.0.0.{len(name)}"}


@operation
def charge(ctx, amount: int) -> int:
    RUNS.append(f"charge {amount}")
    return amount


@operation
def refuse(ctx) -> None:
    raise NonRecoverableError("card declined")


@workflow(resumable=True)
def deploy(ctx, hosts: int = 2) -> None:
    g = ctx.graph("main")
    vms = [g.add(provision, key=f"vm{i}", name=f"vm{i}") for i in range(hosts)]
    g.sequence(*vms)
    g.execute()


@workflow(resumable=True)
def billing(ctx) -> None:
    g = ctx.graph("main")
    g.add(charge, amount=5)
    g.execute()


@workflow(resumable=True)
def declined(ctx) -> None:
    g = ctx.graph("main")
    g.add(refuse)
    g.execute()


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    RUNS.clear()


def test_a_run_completes_and_shows_results_and_events() -> None:
    with WorkflowHarness() as harness:
        done = harness.run(deploy, hosts=2)
    assert done.status == "completed"
    assert done.task("vm1").result == {"ip": "10.0.0.3"}
    assert done.statuses == {"vm0": "succeeded", "vm1": "succeeded"}
    assert "Starting 'deploy' workflow execution" in done.events
    assert RUNS == ["vm0", "vm1"]


def test_a_crash_before_an_operation_leaves_it_started_and_resume_reruns_it() -> None:
    with WorkflowHarness() as harness:
        crashed = harness.run_until_crash(deploy, at="before_operation", task="vm1", hosts=2)
        assert crashed.status == "started"
        assert crashed.statuses == {"vm0": "succeeded", "vm1": "started"}
        resumed = harness.resume(crashed.id)
    assert resumed.status == "completed"
    assert RUNS == ["vm0", "vm1 (resumed)"]


def test_a_crash_after_an_operation_ran_reruns_a_resumable_one() -> None:
    with WorkflowHarness() as harness:
        crashed = harness.run_until_crash(deploy, at="after_operation", task="vm0", hosts=2)
        assert crashed.statuses == {"vm0": "started", "vm1": "pending"}
        resumed = harness.resume(crashed.id)
    assert resumed.status == "completed"
    assert RUNS == ["vm0", "vm0 (resumed)", "vm1"]


def test_a_non_resumable_operation_interrupted_fails_the_resume() -> None:
    with WorkflowHarness() as harness:
        crashed = harness.run_until_crash(billing, at="after_operation", task="charge")
        resumed = harness.resume(crashed.id)
        assert resumed.status == "failed"
        assert "Cannot resume - operation not resumable: charge" in (resumed.error or "")
        assert RUNS == ["charge 5"]
        again = harness.resume(crashed.id)  # a person decided: run it again
    assert again.status == "completed"
    assert RUNS == ["charge 5", "charge 5"]


def test_a_failure_fixed_and_resumed(tmp_path: Path) -> None:
    with WorkflowHarness(tmp_path / "own.db") as harness:
        failed = harness.run(declined)
        assert failed.status == "failed"
        assert "'refuse'" in (failed.error or "")
        plan = harness.service.plan(failed.id)
        assert [(task.key, task.action) for task in plan.tasks] == [("refuse", "reset")]
    assert (tmp_path / "own.db").exists()


def test_an_unknown_crash_point_is_refused() -> None:
    with WorkflowHarness() as harness, pytest.raises(ValueError, match="unknown crash point"):
        harness.run_until_crash(deploy, at="nowhere")


def test_a_crash_point_never_reached_is_reported() -> None:
    with WorkflowHarness() as harness, pytest.raises(AssertionError, match="before reaching"):
        harness.run_until_crash(deploy, at="before_operation", task="vm9", hosts=1)
