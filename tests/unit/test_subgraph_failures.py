"""What a take-up does to the subgraphs that fail as it starts (`subgraph_failures`,
docs/design.md, "Each task's fate"): the plan's side of what `dalsegno.engine.subgraphs`
does at run time (tests/integration/test_plan_equals_run.py compares the two)."""

from __future__ import annotations

from dalsegno.engine.fates import Action, SubgraphFound, subgraph_failures


def sub(parent: str | None = None, status: str = "pending", retries: int = 0, limit: int = 0,
        policy: str = "fail") -> SubgraphFound:  # fmt: skip
    return SubgraphFound(parent, status, retries, limit, policy)


def test_a_task_failing_at_the_take_up_retries_its_subgraph_while_it_has_retries() -> None:
    fates, status = subgraph_failures({"s": sub(retries=1, limit=2)}, {"s": "task 'a'"})
    assert fates["s"].action is Action.RETRY
    assert "retry 2/2" in fates["s"].reason
    assert status["s"] == "pending"


def test_out_of_retries_it_fails_and_its_parent_retries_resetting_it() -> None:
    subs = {"outer": sub(limit=1), "inner": sub("outer", retries=3, limit=3)}
    fates, status = subgraph_failures(subs, {"inner": "task 'a'"})
    assert fates["outer"].action is Action.RETRY
    assert fates["inner"].action is Action.RESET  # reset with its parent, count 0
    assert status == {"outer": "pending", "inner": "pending"}


def test_an_ignored_failure_stops_there_and_one_inside_a_failed_subgraph_stays() -> None:
    subs = {"outer": sub(limit=1), "inner": sub("outer", policy="ignore")}
    fates, status = subgraph_failures(subs, {"inner": "task 'a'"})
    assert fates == {"inner": fates["inner"]} and fates["inner"].action is Action.FAIL
    assert status == {"outer": "pending", "inner": "failed"}
    found = {"outer": sub(status="failed", policy="ignore"), "inner": sub("outer", limit=2)}
    fates, status = subgraph_failures(found, {"inner": "task 'a'"})
    assert fates == {}  # nothing inside a failed subgraph starts: it neither retries nor fails
    assert status == {"outer": "failed", "inner": "pending"}


def test_a_subgraph_found_failed_makes_the_pending_one_it_is_in_decide() -> None:
    subs = {"outer": sub(limit=0), "inner": sub("outer", status="failed")}
    fates, status = subgraph_failures(subs, {})
    assert fates["outer"].action is Action.FAIL
    assert "subgraph 'inner'" in fates["outer"].reason
    assert status["outer"] == "failed"
