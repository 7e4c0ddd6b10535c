"""The lifecycle workflows through real crashes, both backends (docs/lifecycle.md).

An install of 41 node instances run by a real `dalsegno manager`, SIGKILLed at a random
moment, then taken over by another manager or resumed with `dalsegno executions resume`,
each SIGKILLed at a random moment too, and resumed until it ends: every instance ends
`started` with its runtime properties, no `create` (not resumable) ran twice but after an
interrupted attempt of it (the rules: the takeover fails it, a person's resume runs it
again), and no instance was created before every instance it links to had started, all
read from the operations' own log (tests/workflows/deploy_ops.py). Also: a crash between
an operation's return and its commit, an uninstall after a partial install, and two
executions of one deployment queued behind its lock key.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from acceptance.test_crash_resume import KILLED, LONG_LEASE
from acceptance.test_manager_process import free_port
from conftest import WORKFLOWS, cli_env, run_cli, start_cli
from dalsegno.model.blueprints import InstanceState
from dalsegno.model.states import ExecutionState
from dalsegno.service.deployments import DeploymentService
from dalsegno.service.executions import ExecutionService
from dalsegno.store import Store

sys.path.insert(0, str(WORKFLOWS))

import deploy_kit

pytestmark = pytest.mark.crash

VMS = 19  # 1 network, 19 VMs, 19 apps, a database, a load balancer: 41 instances
SLOW = {"DEPLOY_OPS_DELAY": "0.02", **LONG_LEASE}
E = ExecutionState


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "operations.log"


@pytest.fixture
def deployments(store: Store, log: Path) -> DeploymentService:
    store.put_blueprint("tiers", "(built in the test)", deploy_kit.blueprint(VMS))
    made = DeploymentService(store)
    made.create_planned("d", "tiers", {"log": str(log)}, deploy_kit.instances("d", VMS))
    return made


@pytest.fixture
def manager(home: Path) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "dalsegno", "manager", "--bind", f"127.0.0.1:{free_port()}"],
            cwd=WORKFLOWS,
            env=cli_env(home, **SLOW),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def ops_logged(log: Path) -> int:
    return len(deploy_kit.lines(log))


def status(store: Store, execution_id: str) -> ExecutionState:
    found = store.get_execution(execution_id)
    assert found is not None
    return found.status


def kill_resume_after(home: Path, execution_id: str, seconds: float) -> None:
    """`dalsegno executions resume ID`, SIGKILLed after `seconds` unless it ended first."""
    proc = start_cli(home, "executions", "resume", execution_id, **SLOW)
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
    out, err = proc.communicate()
    assert proc.returncode in (KILLED, 0, 1), (out, err)


def interrupted_creates(store: Store, execution_id: str) -> Counter[str]:
    """How many attempts of each instance's `create` were interrupted (by id)."""
    keys = {task.id: task.key for task in store.list_tasks(execution_id)}
    found: Counter[str] = Counter()
    for attempt in store.list_attempts(execution_id):
        key = keys[attempt.task_id]
        if key.endswith(".create") and attempt.outcome == "interrupted":
            found[key.removesuffix(".create")] += 1
    return found


def test_an_install_killed_at_random_moments_converges(
    home: Path,
    store: Store,
    service: ExecutionService,
    deployments: DeploymentService,
    manager: Callable[[], subprocess.Popen[str]],
    log: Path,
) -> None:
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    execution = service.create("install", {}, deployment="d")
    first = manager()
    # A random moment of the install's progress, not of the clock: on a fast machine the
    # whole install (at least 3 operations per instance) can end within a second.
    at = chance.randint(1, 30)
    wait_for(lambda: ops_logged(log) >= at, f"the manager's first {at} operations")
    first.kill()
    assert first.wait(10) == KILLED
    killed_with = ops_logged(log)
    assert status(store, execution.id) is E.STARTED, f"seed {seed}"
    for round_ in range(4):  # a manager's takeover, or a person's resume, killed at random
        now = status(store, execution.id)
        if now is E.COMPLETED:
            break
        if now is E.STARTED and round_ % 2 == 0:  # its owner is dead: a manager takes it
            taker = manager()
            time.sleep(chance.uniform(0.3, 1.5))
            taker.kill()
            taker.wait(10)
        else:  # failed (an interrupted create) waits for a person: resume by hand
            kill_resume_after(home, execution.id, chance.uniform(0.3, 1.5))
    for _ in range(6):  # each resume runs again the creates its takeover failed
        if status(store, execution.id) is E.COMPLETED:
            break
        done = run_cli(home, "executions", "resume", execution.id, timeout=60, **SLOW)
        assert done.returncode in (0, 1), (seed, done.stdout, done.stderr)
    assert status(store, execution.id) is E.COMPLETED, f"seed {seed}"
    assert 0 < killed_with < ops_logged(log), f"seed {seed}: the kill came mid-install"

    found = deployments.get("d").instances
    assert len(found) == 41
    assert {i.state for i in found} == {InstanceState.STARTED}, f"seed {seed}"
    assert all(i.runtime_properties.get("running") is True for i in found)
    assert all(i.runtime_properties.get("node") == i.node for i in found)
    lb = next(i for i in found if i.node == "lb")
    assert len(lb.runtime_properties["peers"]) == VMS
    creates = Counter(line[1] for line in deploy_kit.lines(log) if line[0] == "create")
    assert set(creates) == {i.id for i in found}
    allowed = interrupted_creates(store, execution.id)
    for instance_id, count in creates.items():
        assert count <= 1 + allowed[instance_id], (seed, instance_id, count, allowed)
    deploy_kit.check_order(log, found)


def test_an_uninstall_after_a_partial_install(
    home: Path,
    store: Store,
    service: ExecutionService,
    deployments: DeploymentService,
    manager: Callable[[], subprocess.Popen[str]],
    log: Path,
) -> None:
    execution = service.create("install", {}, deployment="d")
    running = manager()
    wait_for(lambda: ops_logged(log) >= 12, "a dozen operations")
    running.kill()
    assert running.wait(10) == KILLED
    cancelled = run_cli(home, "executions", "cancel", execution.id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert status(store, execution.id) is E.CANCELLED  # its owner was dead: at once
    partial = {i.id: i.state for i in deployments.get("d").instances}
    assert InstanceState.UNINITIALIZED in partial.values()
    assert InstanceState.STARTED in partial.values()
    made = {line[1] for line in deploy_kit.lines(log) if line[0] == "create"}
    log.write_text("")

    result = service.start("uninstall", {}, deployment="d")
    assert service.find(result.execution_id).status is E.COMPLETED
    after = deployments.get("d").instances
    assert {i.state for i in after} == {InstanceState.DELETED}
    seen = deploy_kit.lines(log)
    deleted = {line[1] for line in seen if line[0] == "delete"}
    # a delete for every instance whose create began (its attempt started: `creating`),
    # so for every one whose create ran; none for the others
    assert deleted == {i for i, state in partial.items() if state != "uninitialized"}
    assert made <= deleted
    stopped = {line[1] for line in seen if line[0] == "stop"}
    assert stopped == {i for i, state in partial.items() if state in ("starting", "started")}
    deploy_kit.check_order(log, after)
    deployments.delete("d")


def test_two_executions_of_one_deployment_queue(
    store: Store,
    service: ExecutionService,
    deployments: DeploymentService,
    manager: Callable[[], subprocess.Popen[str]],
    log: Path,
) -> None:
    install = service.create("install", {}, deployment="d")
    backup = service.create("execute_operation", {"operation": "backup"}, deployment="d")
    assert backup.status is E.QUEUED
    assert backup.lock_key == install.lock_key == "deployment:d"
    manager()
    wait_for(lambda: status(store, backup.id) is E.COMPLETED, "both executions", 60)
    first, second = store.get_execution(install.id), store.get_execution(backup.id)
    assert first is not None and second is not None
    assert first.status is E.COMPLETED
    assert second.started_at is not None and first.ended_at is not None
    assert second.started_at >= first.ended_at  # it waited for the install to end
    seen = deploy_kit.lines(log)
    last_install = max(i for i, line in enumerate(seen) if line[0] != "backup")
    first_backup = min(i for i, line in enumerate(seen) if line[0] == "backup")
    assert first_backup > last_install
    assert {i.runtime_properties.get("backup") for i in deployments.get("d").instances} == {
        "nightly"
    }


def test_a_crash_between_an_operation_and_its_commit_leaves_the_instance_as_it_was(
    home: Path,
    store: Store,
    service: ExecutionService,
    deployments: DeploymentService,
    manager: Callable[[], subprocess.Popen[str]],
    log: Path,
) -> None:
    """The manager SIGKILLs itself after `create` of the database returned (its runtime
    properties changed in memory), before the success is committed: the instance keeps its
    `creating` state and no runtime property; the takeover fails the interrupted create
    (not resumable), a person's resume runs it again, and the install completes."""
    execution = service.create("install", {}, deployment="d")
    crashed = manager_with(home, DALSEGNO_CRASH_AT="after_operation:db_000000.create")
    assert crashed.wait(60) == KILLED
    assert ["create", "db_000000"] in [line[:2] for line in deploy_kit.lines(log)]
    db = store.get_instances(["db_000000"])["db_000000"]
    assert (db.state, db.runtime_properties) == (InstanceState.CREATING, {})
    task = next(t for t in store.list_tasks(execution.id) if t.key == "db_000000.create")
    assert task.status == "started"

    taken = run_cli(home, "executions", "resume", execution.id, timeout=60, **SLOW)
    assert taken.returncode == 1, taken.stdout  # the takeover fails the interrupted create
    assert status(store, execution.id) is E.FAILED
    assert "operation not resumable: db_000000.create" in (
        store.get_execution(execution.id).error or ""
    )  # type: ignore[union-attr]
    done = run_cli(home, "executions", "resume", execution.id, timeout=60, **SLOW)
    assert done.returncode == 0, done.stderr
    db = store.get_instances(["db_000000"])["db_000000"]
    assert db.state is InstanceState.STARTED
    assert db.runtime_properties["address"] == "10.0.0.9"
    creates = [line[1] for line in deploy_kit.lines(log) if line[0] == "create"]
    assert creates.count("db_000000") == 2
    allowed = interrupted_creates(store, execution.id)  # others were in flight at the kill
    assert allowed["db_000000"] == 1
    assert all(count <= 1 + allowed[key] for key, count in Counter(creates).items())
    assert {i.state for i in deployments.get("d").instances} == {InstanceState.STARTED}


def manager_with(home: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dalsegno", "manager", "--bind", f"127.0.0.1:{free_port()}"],
        cwd=WORKFLOWS,
        env=cli_env(home, **SLOW, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
