"""The state machines of docs/design.md section 2, checked row by row against the code's tables."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dalsegno.model.states import (
    ACTIVE_STATES,
    CANCELLING_STATES,
    EXECUTION_END_STATES,
    EXECUTION_TRANSITIONS,
    RESUMABLE_END_STATES,
    TASK_IN_FLIGHT,
    TASK_TRANSITIONS,
    ExecutionState,
    TaskState,
    can_move_execution,
    can_move_task,
    execution_sources,
    task_path_sources,
    task_sources,
)

E = ExecutionState
T = TaskState

# docs/design.md, execution table: "state | may move to", copied word for word.
DESIGN_EXECUTION_TABLE: dict[str, set[str]] = {
    "pending": {"started", "cancelled", "failed"},
    "queued": {"pending", "cancelled"},
    "started": {
        "completed",
        "failed",
        "cancelling",
        "force_cancelling",
        "kill_cancelling",
        "started",
    },
    "cancelling": {"cancelled", "failed", "force_cancelling", "kill_cancelling"},
    "force_cancelling": {"cancelled", "kill_cancelling"},
    "kill_cancelling": {"cancelled"},
    # a resume waits in `queued` while another execution holds its lock key (docs/design.md,
    # "Lock keys hold on every path")
    "cancelled": {"pending", "queued", "started"},
    "failed": {"pending", "queued", "started"},
    "completed": set(),
}

# docs/design.md section 2, task table: one entry per row, "from | to".
DESIGN_TASK_ROWS: list[tuple[set[str], set[str]]] = [
    ({"pending"}, {"sent"}),
    ({"sent"}, {"started"}),
    ({"started"}, {"succeeded", "failed", "rescheduled"}),
    ({"rescheduled"}, {"sent"}),
    ({"started", "sent"}, {"sent"}),
    ({"started", "sent"}, {"failed"}),
    ({"failed", "rescheduled"}, {"pending"}),
    ({"sent", "started"}, {"pending"}),
    ({"succeeded", "failed", "rescheduled", "sent", "started"}, {"pending"}),
]

DESIGN_TASK_MOVES: set[tuple[str, str]] = {
    (source, target)
    for sources, targets in DESIGN_TASK_ROWS
    for source in sources
    for target in targets
}
DESIGN_EXECUTION_MOVES: set[tuple[str, str]] = {
    (source, target) for source, targets in DESIGN_EXECUTION_TABLE.items() for target in targets
}


def _as_names(table: dict[E, frozenset[E]] | dict[T, frozenset[T]]) -> dict[str, set[str]]:
    return {source.value: {target.value for target in targets} for source, targets in table.items()}


# --- the tables -------------------------------------------------------------------------


def test_state_names_are_the_ones_in_the_design() -> None:
    assert {state.value for state in ExecutionState} == set(DESIGN_EXECUTION_TABLE)
    assert {state.value for state in TaskState} == {
        "pending",
        "sent",
        "started",
        "succeeded",
        "failed",
        "rescheduled",
    }


def test_execution_table_matches_the_design_row_by_row() -> None:
    code = _as_names(EXECUTION_TRANSITIONS)
    assert set(code) == set(DESIGN_EXECUTION_TABLE)
    for state, targets in DESIGN_EXECUTION_TABLE.items():
        assert code[state] == targets, f"execution state {state}"


def test_task_table_matches_the_design_row_by_row() -> None:
    code = _as_names(TASK_TRANSITIONS)
    assert set(code) == {state.value for state in TaskState}
    for sources, targets in DESIGN_TASK_ROWS:
        for source in sources:
            assert targets <= code[source], f"row {sorted(sources)} -> {sorted(targets)}"
    code_moves = {(source, target) for source, targets in code.items() for target in targets}
    assert code_moves - DESIGN_TASK_MOVES == set(), "moves the design does not list"
    assert DESIGN_TASK_MOVES - code_moves == set(), "moves the design lists but the code lacks"


def test_can_move_agrees_with_the_design_for_every_pair() -> None:
    for source in ExecutionState:
        for target in ExecutionState:
            listed = (source.value, target.value) in DESIGN_EXECUTION_MOVES
            assert can_move_execution(source, target) is listed, f"{source} -> {target}"
    for source in TaskState:
        for target in TaskState:
            listed = (source.value, target.value) in DESIGN_TASK_MOVES
            assert can_move_task(source, target) is listed, f"{source} -> {target}"


def test_end_states() -> None:
    assert set(EXECUTION_END_STATES) == {E.COMPLETED, E.FAILED, E.CANCELLED}
    assert set(RESUMABLE_END_STATES) == {E.FAILED, E.CANCELLED}
    assert EXECUTION_TRANSITIONS[E.COMPLETED] == frozenset()
    # a succeeded task runs again only when its subgraph is reset as a unit
    assert TASK_TRANSITIONS[T.SUCCEEDED] == frozenset({T.PENDING})
    # The resumable end states leave only by a resume: to pending or started, or to
    # queued behind their lock key.
    for state in RESUMABLE_END_STATES:
        assert EXECUTION_TRANSITIONS[state] == {E.PENDING, E.QUEUED, E.STARTED}


def test_groups_of_states() -> None:
    assert set(CANCELLING_STATES) == {E.CANCELLING, E.FORCE_CANCELLING, E.KILL_CANCELLING}
    assert set(ACTIVE_STATES) == {E.STARTED, E.CANCELLING, E.FORCE_CANCELLING, E.KILL_CANCELLING}
    assert set(TASK_IN_FLIGHT) == {T.SENT, T.STARTED}


def test_a_takeover_is_the_only_move_from_a_state_to_itself() -> None:
    assert [state for state in ExecutionState if can_move_execution(state, state)] == [E.STARTED]
    # For tasks, only a re-send of a sent task (resume, lost agent attempt).
    assert [state for state in TaskState if can_move_task(state, state)] == [T.SENT]


# --- sources: the table read backwards (what the store's guarded updates use) --------------


def test_execution_sources_examples() -> None:
    assert execution_sources(E.STARTED) == {E.PENDING, E.STARTED, E.CANCELLED, E.FAILED}
    assert execution_sources(E.CANCELLED) == {
        E.PENDING,
        E.QUEUED,
        E.CANCELLING,
        E.FORCE_CANCELLING,
        E.KILL_CANCELLING,
    }
    assert execution_sources(E.CANCELLING) == {E.STARTED}
    assert execution_sources(E.KILL_CANCELLING) == {
        E.STARTED,
        E.CANCELLING,
        E.FORCE_CANCELLING,
    }
    assert execution_sources(E.COMPLETED) == {E.STARTED}
    assert execution_sources(E.QUEUED) == {E.CANCELLED, E.FAILED}  # a resume behind a lock


def test_task_sources_examples() -> None:
    assert task_sources(T.SENT) == {T.PENDING, T.SENT, T.STARTED, T.RESCHEDULED}
    assert task_sources(T.STARTED) == {T.SENT}
    assert task_sources(T.PENDING) == {T.SENT, T.STARTED, T.FAILED, T.RESCHEDULED, T.SUCCEEDED}
    assert task_sources(T.SUCCEEDED) == {T.STARTED}
    assert task_sources(T.FAILED) == {T.SENT, T.STARTED}
    assert task_sources(T.RESCHEDULED) == {T.STARTED}


def test_sources_are_exactly_the_table_inverted() -> None:
    for target in ExecutionState:
        expected = {s for s in ExecutionState if target in EXECUTION_TRANSITIONS[s]}
        assert execution_sources(target) == expected, target
    for target in TaskState:
        expected = {s for s in TaskState if target in TASK_TRANSITIONS[s]}
        assert task_sources(target) == expected, target


# --- task_path_sources: several listed moves committed together ---------------------------


def test_dispatch_path_sources() -> None:
    # A manager-side task's `sent` and `started` are committed together.
    assert task_path_sources((T.SENT, T.STARTED)) == {
        T.PENDING,
        T.RESCHEDULED,
        T.SENT,
        T.STARTED,
    }


def test_a_path_with_an_unlisted_step_has_no_sources() -> None:
    assert task_path_sources((T.PENDING, T.STARTED)) == frozenset()
    assert task_path_sources((T.SUCCEEDED, T.SENT)) == frozenset()


def test_a_one_step_path_is_task_sources() -> None:
    for target in TaskState:
        assert task_path_sources((target,)) == task_sources(target)


def test_the_empty_path_starts_anywhere() -> None:
    assert task_path_sources(()) == set(TaskState)


@given(st.lists(st.sampled_from(TaskState), min_size=1, max_size=6), st.sampled_from(TaskState))
def test_extending_a_path_keeps_its_sources_only_when_the_step_is_listed(
    path: list[TaskState], step: TaskState
) -> None:
    # Every walk of `path` ends in path[-1], so one more step depends on that state only.
    before = task_path_sources(tuple(path))
    after = task_path_sources((*path, step))
    if can_move_task(path[-1], step):
        assert after == before
    else:
        assert after == frozenset()


# --- a random walk: only listed moves are ever accepted --------------------------------------


class StateWalk(RuleBasedStateMachine):
    """An execution and one of its tasks, moved at random; a refused move changes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.execution = E.PENDING
        self.task = T.PENDING
        self.execution_path = [self.execution]
        self.task_path = [self.task]

    @rule(state=st.sampled_from(ExecutionState))
    def move_execution(self, state: ExecutionState) -> None:
        accepted = can_move_execution(self.execution, state)
        assert accepted is ((self.execution.value, state.value) in DESIGN_EXECUTION_MOVES)
        if accepted:
            self.execution = state
            self.execution_path.append(state)

    @rule(state=st.sampled_from(TaskState))
    def move_task(self, state: TaskState) -> None:
        accepted = can_move_task(self.task, state)
        assert accepted is ((self.task.value, state.value) in DESIGN_TASK_MOVES)
        if accepted:
            self.task = state
            self.task_path.append(state)

    @invariant()
    def completed_has_no_exits(self) -> None:
        if self.execution is E.COMPLETED:
            assert not any(can_move_execution(E.COMPLETED, state) for state in ExecutionState)
            # Once completed, the walk can never leave it.
            assert self.execution_path.index(E.COMPLETED) == len(self.execution_path) - 1

    @invariant()
    def succeeded_leaves_only_by_a_reset(self) -> None:
        if self.task is T.SUCCEEDED:
            exits = {state for state in TaskState if can_move_task(T.SUCCEEDED, state)}
            assert exits == {T.PENDING}  # a subgraph's retry or a resume of it
            after = self.task_path[self.task_path.index(T.SUCCEEDED) + 1 :]
            assert after[:1] in ([], [T.PENDING])

    @invariant()
    def a_resumable_end_state_leaves_only_by_resume(self) -> None:
        if self.execution in RESUMABLE_END_STATES:
            exits = {s for s in ExecutionState if can_move_execution(self.execution, s)}
            assert exits == {E.PENDING, E.QUEUED, E.STARTED}

    @invariant()
    def every_step_walked_is_listed(self) -> None:
        for before, after in itertools.pairwise(self.execution_path):
            assert after in EXECUTION_TRANSITIONS[before]
        for before, after in itertools.pairwise(self.task_path):
            assert after in TASK_TRANSITIONS[before]


StateWalk.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestStateWalk = StateWalk.TestCase
