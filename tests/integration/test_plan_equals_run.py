"""The plan shown is the plan carried out (docs/design.md, "The lifecycle").

Random graphs (nested subgraphs with retries and failure policies, tasks whose failure is
ignored), random stored task and subgraph states and random kinds of take-up: a person's resume of
a failed or cancelled execution (with or without `--reset-operations`), a person's resume
of a crashed one, a manager's takeover of an expired lease. For each, the plan (what
`executions resume --dry-run` prints; for a takeover, the same function with its kind) is
compared task by task with what the real take-up did, read back from the operations' own
log (one line per run, with `ctx.resume` and `ctx.retries`), the tasks' and subgraphs'
final rows, the events and the execution's end. The stored states respect what the store
guarantees: a task leaves `pending` only after each of its dependencies (a subgraph: every
task inside) succeeded; every task and subgraph inside a subgraph that waits for its retry
is `pending` (the retry resets them in one transaction); a subgraph leaves `pending` only
after its dependencies succeeded, and one that failed has a failure inside. Every
operation succeeds when it runs: what fails is what a take-up fails (an interrupted
operation that is not resumable, a failure kept), and the subgraph it is in then retries or
fails as the plan says.

Agent tasks are left out here (a run would wait for an agent); their rows of the rule table
are proven in tests/unit/test_fates.py and the agent suites.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, note, settings
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


SUB_STATES = ("pending", "pending", "retrying", "failed")


@dataclass
class Tree:
    """A drawn graph, flattened: each task (in an order where dependencies come first) with
    the subgraphs it is in (innermost first), each subgraph with its parent and policy, and
    the tasks each task waits for (through the edges of its level and of its subgraphs')."""

    spec: dict[str, Any]
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    subs: dict[str, dict[str, Any]] = field(default_factory=dict)
    waits: dict[str, set[str]] = field(default_factory=dict)
    after: dict[str, set[str]] = field(default_factory=dict)  # the nodes it waits for
    members: dict[str, list[str]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)  # the nodes of each level


@st.composite
def levels(draw: st.DrawFn, prefix: str, depth: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    edges: list[list[str]] = []
    for index in range(draw(st.integers(1, 3))):
        key = f"{prefix}{index}"
        node: dict[str, Any]
        if depth < 2 and draw(st.integers(0, 3)) == 0:
            node = {
                "key": key,
                "sub": draw(levels(f"{key}.", depth + 1)),
                "retries": draw(st.sampled_from((0, 1, 2))),
                "ignore": draw(st.integers(0, 4)) == 0,
            }
        else:
            kind = draw(st.sampled_from(("resumable", "once")))
            node = {"key": key, "kind": kind, "ignore": draw(st.integers(0, 5)) == 0}
        nodes.append(node)
        for dep in sorted(draw(st.sets(st.integers(0, index - 1), max_size=2)) if index else []):
            edges.append([key, f"{prefix}{dep}"])
    return {"nodes": nodes, "edges": edges}


def ancestors(tree: Tree, key: str | None) -> list[str]:
    """`key` and the subgraphs it is nested in, innermost first."""
    found = []
    while key is not None:
        found.append(key)
        key = tree.subs[key]["parent"]
    return found


def flatten(spec: dict[str, Any]) -> Tree:
    tree = Tree(spec)

    def walk(
        level: dict[str, Any], chain: list[str], held: set[str], held_by: set[str]
    ) -> list[str]:
        inside: list[str] = []
        deps: dict[str, list[str]] = {}
        for node, dep in level["edges"]:
            deps.setdefault(node, []).append(dep)
        nodes: dict[str, list[str]] = {}
        for node in level["nodes"]:
            key = node["key"]
            waits, after = set(held), set(held_by)
            for dep in deps.get(key, []):
                waits.update(nodes[dep])
                after.add(dep)
            if "sub" in node:
                tree.subs[key] = {"parent": chain[0] if chain else None,
                                  "max": node["retries"], "ignore": node["ignore"],
                                  "waits": waits}  # fmt: skip
                nodes[key] = tree.members[key] = walk(node["sub"], [key, *chain], waits, after)
            else:
                tree.tasks[key] = {"kind": node["kind"], "ignore": node["ignore"],
                                   "chain": chain}  # fmt: skip
                tree.waits[key], tree.after[key] = waits, after
                nodes[key] = [key]
            inside.extend(nodes[key])
        tree.children[chain[0] if chain else ""] = [node["key"] for node in level["nodes"]]
        return inside

    walk(spec, [], set(), set())
    return tree


def failing(tree: Tree, key: str, task: str, states: dict[str, str]) -> bool:
    """Whether `task` failed in a way that fails subgraph `key`: its failure, and that of
    each subgraph between, not ignored."""
    if states[task] != "failed" or tree.tasks[task]["ignore"]:
        return False
    between = tree.tasks[task]["chain"]
    return not any(tree.subs[sub]["ignore"] for sub in between[: between.index(key)])


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[Tree, dict[str, str], dict[str, tuple[str, int]], str, bool]:
    tree = flatten(draw(levels("t", 0)))
    states: dict[str, str] = {}
    subs: dict[str, tuple[str, int]] = {}

    def retrying(chain: list[str]) -> bool:
        return any(subs[key][0] == "retrying" for key in chain)

    for key, sub in tree.subs.items():  # parents before children, as drawn
        subs[key] = ("pending", 0)
        if retrying(ancestors(tree, sub["parent"])):
            continue
        status = draw(st.sampled_from(SUB_STATES))
        if status == "retrying" and sub["max"] == 0:
            status = "pending"
        retries = {"pending": draw(st.integers(0, sub["max"])),
                   "retrying": draw(st.integers(1, max(1, sub["max"]))),
                   "failed": sub["max"]}[status]  # fmt: skip
        subs[key] = (status, retries)
    for key, task in tree.tasks.items():
        ready = not retrying(task["chain"])
        ready = ready and all(states[dep] == "succeeded" for dep in tree.waits[key])
        states[key] = draw(st.sampled_from(TASK_STATES)) if ready else "pending"
    for key, sub in tree.subs.items():  # a subgraph leaves `pending` after what it waits for
        if not all(states[dep] == "succeeded" for dep in sub["waits"]):
            subs[key] = ("pending", 0)
        elif subs[key][0] == "failed" and not any(
            failing(tree, key, task, states) for task in tree.members[key]
        ):
            subs[key] = ("pending", subs[key][1])  # a failed one has a failure inside
    kind = draw(st.sampled_from(KINDS))
    reset_operations = draw(st.booleans()) if kind != "takeover" else False
    return tree, states, subs, kind, reset_operations


def dead_pid() -> int:
    """The pid of a process of this host that has ended."""
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def set_up(
    store: Store,
    execution_id: str,
    states: dict[str, str],
    subs: dict[str, tuple[str, int]],
    kind: str,
) -> None:
    """Write the drawn states over a completed run, as a crash or a failure left them."""
    now = time.time()
    with store._write() as conn:  # a test's set-up: states no run path would write at once
        graph_id = select(t.graphs.c.id).where(t.graphs.c.execution_id == execution_id)
        for key, (status, retries) in subs.items():
            error = None if status == "pending" else f"an earlier failure inside {key}"
            conn.execute(
                update(t.subgraphs)
                .where(t.subgraphs.c.graph_id.in_(graph_id), t.subgraphs.c.key == key)
                .values(status=status, retries=retries, error=error,
                        next_run_at=now if status == "retrying" else None)
            )  # fmt: skip
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
        conn.execute(update(t.executions).where(t.executions.c.id == execution_id).values(lease))


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
    scenario: tuple[Tree, dict[str, str], dict[str, tuple[str, int]], str, bool],
    store: Store,
    tmp_path: Path,
) -> None:
    tree, states, sub_states, kind, reset_operations = scenario
    note(f"spec={tree.spec} states={states} subgraphs={sub_states} {kind} reset={reset_operations}")
    service = ExecutionService(store, CONFIG)
    log = tmp_path / f"runs-{time.monotonic_ns()}.log"
    first = service.start("plan_trees:planned_tree", {"log": str(log), "spec": tree.spec})
    assert first.status is not None and first.status.value == "completed"
    execution_id = first.execution_id
    set_up(store, execution_id, states, sub_states, kind)
    log.unlink()
    before = {task.key: task for task in store.list_tasks(execution_id)}
    execution = service.find(execution_id)

    if kind == "takeover":
        graphs = store.load_graphs(execution_id).values()
        plan = plan_resume(
            execution, list(before.values()), False, True, take_up=TakeUp.TAKEOVER, graphs=graphs
        )
        take_over(service, execution_id)
    else:
        plan = service.plan(execution_id, reset_operations)
        expected_kind = TakeUp.RECOVER if kind == "recover" else TakeUp.RESUME
        assert plan.take_up == expected_kind.value
        service.resume(execution_id, reset_operations)

    actions = {task.key: task for task in plan.tasks}
    assert set(actions) == set(states)
    planned_subs = {sub.key: sub for sub in plan.subgraphs}
    assert set(planned_subs) == set(tree.subs)
    after = {task.key: task for task in store.list_tasks(execution_id)}
    subs_after = {sub.key: sub for sub in store.load_graphs(execution_id)["main"].subgraphs}
    runs = runs_of(log)
    reset_events = {
        event.task_key for event in store.list_events(execution_id) if event.type == "task_reset"
    }
    # What each subgraph is once the take-up is done (its plan), as the run leaves it.
    ends: dict[str, tuple[str, int]] = {}
    for key, sub in planned_subs.items():
        where = f"subgraph {key} ({sub_states[key]}, {kind}, reset={reset_operations}): {sub}"
        ends[key] = {
            "run": ("pending", sub.retries),
            "reset": ("pending", 0),
            "failed": ("failed", sub.retries),
            "retry": ("pending", sub.retries + 1),
            "fail": ("failed", sub.retries),
        }[sub.action]
        found = subs_after[key]
        assert (found.status, found.retries) == ends[key], where
    retried = {key for key, sub in planned_subs.items() if sub.action == "retry"}

    # Which tasks end done (succeeded, or failed with their failure ignored) for what waits
    # for them: in an order where dependencies come first.
    done: dict[str, bool] = {}
    blocked: set[str] = set()

    def sub_done(key: str) -> bool:  # each node inside is done (a failure ignored is)
        if ends[key][0] == "failed":
            return bool(tree.subs[key]["ignore"])
        return all(sub_done(node) if node in tree.subs else done[node]
                   for node in tree.children[key])  # fmt: skip

    for key, task in tree.tasks.items():
        action = actions[key].action
        if any(not (sub_done(dep) if dep in tree.subs else done[dep]) for dep in tree.after[key]):
            blocked.add(key)
        if action in ("kept", "re-run"):
            done[key] = True
        elif action in ("fail", "failed"):
            done[key] = bool(task["ignore"]) and not (set(task["chain"]) & retried)
        elif action == "held":
            done[key] = False
        else:
            done[key] = key not in blocked
        if action in ("fail", "failed") and set(task["chain"]) & retried:
            done[key] = key not in blocked
    top_failed = [
        key for key in tree.tasks if not tree.tasks[key]["chain"]
        and actions[key].action in ("fail", "failed") and not tree.tasks[key]["ignore"]
    ] + [
        key for key in tree.subs
        if tree.subs[key]["parent"] is None and not sub_done(key) and ends[key][0] == "failed"
    ]  # fmt: skip

    for key, planned in actions.items():
        final, ran = after[key], runs.get(key, [])
        chain = tree.tasks[key]["chain"]
        where = f"task {key} ({states[key]}, {kind}, reset={reset_operations}): {planned}"
        action = planned.action
        resumed_reset = key in plan.reset_keys
        assert (key in reset_events) == resumed_reset, where
        if set(chain) & retried:  # its subgraph retries at the take-up: it runs again
            assert action == "reset", where
            assert [(run["resume"], run["retries"]) for run in ran] == [(False, 0)], where
            assert final.status.value == "succeeded", where
            continue
        assert (action in ("reset", "held")) if resumed_reset else action != "reset", where
        if action == "kept":
            assert ran == [] and final.status.value == "succeeded", where
        elif action == "held":  # inside a subgraph that failed: as it was (or reset)
            assert ran == [], where
            assert final.status.value == ("pending" if resumed_reset else states[key]), where
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
    status = service.find(execution_id).status.value
    assert status == ("failed" if top_failed else "completed"), (status, top_failed, plan)
