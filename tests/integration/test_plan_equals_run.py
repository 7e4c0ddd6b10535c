"""The plan shown is the plan carried out (docs/design.md, "The lifecycle").

Random graphs, random stored task states and random kinds of take-up: a person's resume of
a failed or cancelled execution (with or without `--reset-operations`), a person's resume
of a crashed one, a manager's takeover of an expired lease. For each, the plan (what
`executions resume --dry-run` prints; for a takeover, the same function with its kind) is
compared task by task with what the real take-up did, read back from the operations' own
log (one line per run, with `ctx.resume` and `ctx.retries`), the tasks' final rows and the
events. The stored states respect what the store guarantees: a task leaves `pending` only
after each of its dependencies succeeded.

Agent tasks are left out here (a run would wait for an agent); their rows of the rule table
are proven in tests/unit/test_fates.py and the agent suites.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update

from conftest import WORKFLOWS
from dalsegno.engine.resume import plan_resume
from dalsegno.engine.runner import EngineConfig
from dalsegno.manager.manager import Manager, ManagerConfig
from dalsegno.model.states import EXECUTION_END_STATES, TakeUp
from dalsegno.service.executions import ExecutionService
from dalsegno.store import Store
from dalsegno.store import tables as t

sys.path.insert(0, str(WORKFLOWS))
from lifecycle_flows import runs_of

TASK_STATES = ("pending", "sent", "started", "succeeded", "failed", "rescheduled")
KINDS = ("resume-failed", "resume-cancelled", "recover", "takeover")
CONFIG = EngineConfig(concurrency=4, lease_timeout=5.0, poll_interval=0.02)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[list[Any]], dict[str, str], str, bool]:
    count = draw(st.integers(1, 7))
    tasks: list[list[Any]] = []
    for index in range(count):
        deps = draw(st.sets(st.integers(0, index - 1), max_size=2)) if index else set()
        kind = draw(st.sampled_from(("resumable", "once")))
        tasks.append([f"t{index}", kind, [f"t{dep}" for dep in sorted(deps)]])
    states: dict[str, str] = {}
    for key, _, deps in tasks:
        ready = all(states[dep] == "succeeded" for dep in deps)
        states[key] = draw(st.sampled_from(TASK_STATES)) if ready else "pending"
    kind = draw(st.sampled_from(KINDS))
    reset_operations = draw(st.booleans()) if kind != "takeover" else False
    return tasks, states, kind, reset_operations


def dead_pid() -> int:
    """The pid of a process of this host that has ended."""
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def set_up(store: Store, execution_id: str, states: dict[str, str], kind: str) -> None:
    """Write the drawn states over a completed run, as a crash or a failure left them."""
    now = time.time()
    with store._write() as conn:  # a test's set-up: states no run path would write at once
        for key, state in states.items():
            values: dict[str, Any] = {"status": state, "error": None, "next_run_at": None}
            if state == "failed":
                values.update(error=f"earlier failure of {key}", attempts=1)
            elif state == "rescheduled":
                values.update(error="asked for a retry", retries=1, attempts=1, next_run_at=now)
            elif state == "started":
                values.update(attempts=1, result=None)
            elif state in ("pending", "sent"):
                values.update(attempts=0, retries=0, result=None, started_at=None, ended_at=None)
            conn.execute(
                update(t.tasks)
                .where(t.tasks.c.execution_id == execution_id, t.tasks.c.key == key)
                .values(values)
            )
            if state in ("pending", "sent"):  # it never started: no attempt of it
                task_id = select(t.tasks.c.id).where(
                    t.tasks.c.execution_id == execution_id, t.tasks.c.key == key
                )
                conn.execute(delete(t.attempts).where(t.attempts.c.task_id.in_(task_id)))
        lease: dict[str, Any] = {
            "lease_host": None,
            "lease_pid": None,
            "lease_proc_start": None,
            "lease_expires_at": None,
            "ended_at": now,
        }
        if kind == "resume-failed":
            lease.update(status="failed", error="an earlier run failed")
        elif kind == "resume-cancelled":
            lease.update(status="cancelled", error=None)
        elif kind == "recover":  # its owner on this host is dead; the lease has not expired
            lease.update(
                status="started",
                ended_at=None,
                lease_host=socket.gethostname(),
                lease_pid=dead_pid(),
                lease_proc_start="0",
                lease_expires_at=now + 600,
            )
        else:  # another host's owner, its lease expired
            lease.update(
                status="started",
                ended_at=None,
                lease_host="another-host",
                lease_pid=1,
                lease_proc_start="0",
                lease_expires_at=now - 1,
            )
        conn.execute(
            update(t.executions).where(t.executions.c.id == execution_id).values(lease)
        )


def take_over(service: ExecutionService, execution_id: str) -> None:
    manager = Manager(service, ManagerConfig(grace=0.0))
    manager.start()
    try:
        deadline = time.monotonic() + 30
        while service.find(execution_id).status not in EXECUTION_END_STATES:
            assert time.monotonic() < deadline, "the takeover did not end"
            time.sleep(0.02)
    finally:
        manager.stop(0.0)


@settings(
    max_examples=int(os.environ.get("DALSEGNO_PLAN_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_the_dry_run_plan_is_what_the_take_up_does(
    scenario: tuple[list[list[Any]], dict[str, str], str, bool],
    store: Store,
    tmp_path: Path,
) -> None:
    tasks, states, kind, reset_operations = scenario
    service = ExecutionService(store, CONFIG)
    log = tmp_path / f"runs-{time.monotonic_ns()}.log"
    first = service.start("lifecycle_flows:planned", {"log": str(log), "tasks": tasks})
    assert first.status is not None and first.status.value == "completed"
    execution_id = first.execution_id
    set_up(store, execution_id, states, kind)
    log.unlink()
    before = {task.key: task for task in store.list_tasks(execution_id)}
    execution = service.find(execution_id)

    if kind == "takeover":
        plan = plan_resume(
            execution, list(before.values()), False, True, take_up=TakeUp.TAKEOVER
        )
        take_over(service, execution_id)
    else:
        plan = service.plan(execution_id, reset_operations)
        expected_kind = TakeUp.RECOVER if kind == "recover" else TakeUp.RESUME
        assert plan.take_up == expected_kind.value
        service.resume(execution_id, reset_operations)

    actions = {task.key: task for task in plan.tasks}
    assert set(actions) == set(states)
    after = {task.key: task for task in store.list_tasks(execution_id)}
    runs = runs_of(log)
    reset_events = {
        event.task_key for event in store.list_events(execution_id) if event.type == "task_reset"
    }
    blocked: set[str] = set()
    for key, _, dep_keys in tasks:  # topological order: dependencies come first
        if any(actions[dep].action in ("fail", "failed") or dep in blocked for dep in dep_keys):
            blocked.add(key)

    for key, planned in actions.items():
        final, ran = after[key], runs.get(key, [])
        where = f"task {key} ({states[key]}, {kind}, reset={reset_operations}): {planned}"
        action = planned.action
        assert (key in reset_events) == (action == "reset"), where
        if action == "kept":
            assert ran == [] and final.status.value == "succeeded", where
        elif action == "failed":
            assert ran == [] and final.status.value == "failed", where
            assert final.error == before[key].error, where
        elif action == "fail":
            assert ran == [] and final.status.value == "failed", where
            assert final.error == planned.reason, where
        elif action == "re-run":
            assert [run["resume"] for run in ran] == [True], where
            assert final.status.value == "succeeded", where
        else:
            assert action in ("run", "reset"), where
            if key in blocked:
                assert ran == [] and final.status.value == "pending", where
                continue
            retries = before[key].retries if action == "run" else 0
            assert [(run["resume"], run["retries"]) for run in ran] == [(False, retries)], where
            assert final.status.value == "succeeded", where
