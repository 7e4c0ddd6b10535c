"""The rule table of docs/design.md ("Resume: the rules", "The lifecycle"), row by row, on
the one function every path calls (`dalsegno.engine.fates`). No store, no import of an
operation: resumability is given."""

from __future__ import annotations

import pytest

from dalsegno.engine.fates import Action, fate, lost_attempt, placement, resets
from dalsegno.model.states import TakeUp, TaskState

S = TaskState
K = TakeUp


def resumable(_: str) -> tuple[bool, str | None]:
    return True, None


def not_resumable(_: str) -> tuple[bool, str | None]:
    return False, None


def broken(_: str) -> tuple[bool, str | None]:
    return False, "cannot import 'gone.ops:create'"


def action(
    state: S, take_up: K, *, agent: str | None = None, reset: bool = False, can: bool = True
) -> str:
    return fate(
        state, "t", "ops:op", agent, take_up, reset, resumable if can else not_resumable
    ).action.value


# rows: task state; columns: manager-side resumable, manager-side not, agent
TAKEOVER_TABLE = {
    S.SUCCEEDED: ("kept", "kept", "kept"),
    S.PENDING: ("run", "run", "run"),
    S.RESCHEDULED: ("run", "run", "run"),
    S.SENT: ("run", "run", "awaited"),
    S.STARTED: ("re-run", "fail", "awaited"),
    S.FAILED: ("failed", "failed", "failed"),
}


@pytest.mark.parametrize("take_up", [K.TAKEOVER, K.RECOVER])
@pytest.mark.parametrize("state", list(TAKEOVER_TABLE))
def test_a_takeover_and_a_crashed_execution_resumed_by_hand_reset_nothing(
    take_up: K, state: S
) -> None:
    expected = TAKEOVER_TABLE[state]
    assert action(state, take_up) == expected[0]
    assert action(state, take_up, can=False) == expected[1]
    assert action(state, take_up, agent="web") == expected[2]


@pytest.mark.parametrize("state", list(TAKEOVER_TABLE))
def test_a_resume_of_a_failed_or_cancelled_execution_resets_failed_and_rescheduled(
    state: S,
) -> None:
    expected = {S.FAILED: "reset", S.RESCHEDULED: "reset"}.get(state, TAKEOVER_TABLE[state][0])
    assert action(state, K.RESUME) == expected
    if state in (S.FAILED, S.RESCHEDULED):  # a person decided: resumable or not
        assert action(state, K.RESUME, can=False) == "reset"
        assert action(state, K.RESUME, agent="web") == "reset"


@pytest.mark.parametrize("take_up", [K.RESUME, K.RECOVER])
def test_reset_operations_also_resets_interrupted_tasks_and_only_by_hand(take_up: K) -> None:
    for state in (S.SENT, S.STARTED):
        assert action(state, take_up, reset=True) == "reset"
        assert action(state, take_up, reset=True, agent="web", can=False) == "reset"
    assert action(S.SUCCEEDED, take_up, reset=True) == "kept"
    assert action(S.FAILED, K.RECOVER, reset=True) == "failed"  # a crash resets no failure
    assert not resets(S.STARTED, K.TAKEOVER, True)


def test_the_reasons_are_the_documented_messages() -> None:
    found = placement(S.STARTED, "vm1", "ops:create", None, not_resumable)
    assert found.action is Action.FAIL
    assert found.reason == "Cannot resume - operation not resumable: vm1 (ops:create)"
    found = placement(S.STARTED, "vm1", "gone.ops:create", None, broken)
    assert found.reason == "Cannot resume - cannot import 'gone.ops:create'"
    assert fate(S.FAILED, "vm1", "ops:create", None, K.RESUME, False, resumable).resets


def test_a_lost_agent_attempt_is_queued_again_or_fails_with_the_documented_message() -> None:
    assert lost_attempt(S.SENT, "k", "ops:op", "a1", not_resumable).action is Action.RUN
    assert lost_attempt(S.STARTED, "k", "ops:op", "a1", resumable).action is Action.RERUN
    lost = lost_attempt(S.STARTED, "k", "ops:op", "a1", not_resumable)
    assert lost.action is Action.FAIL
    assert lost.reason == "operation interrupted on agent a1 and not resumable: k (ops:op)"


def test_resumability_is_asked_only_of_interrupted_manager_side_operations() -> None:
    asked: list[str] = []

    def counting(operation: str) -> tuple[bool, str | None]:
        asked.append(operation)
        return True, None

    for state in S:
        for take_up in K:
            fate(state, "t", f"ops:{state}", "web", take_up, False, counting)
    assert asked == []
    placement(S.STARTED, "t", "ops:started", None, counting)
    assert asked == ["ops:started"]
