"""Housekeeping: deleting an ended execution, and purging the old ones by a retention rule.

Only an execution that ended (`completed`, `failed`, `cancelled`) can be deleted: a running
one must be cancelled first, and a resume that raced with the delete loses (the store's
mark changes its lease token). Its rows go in bounded batches (`dalsegno.store.
housekeeping`), so running executions write between them; a delete cut short is finished
by the next delete or purge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dalsegno.model.errors import ConflictError, RefusedError
from dalsegno.model.records import ExecutionRecord
from dalsegno.model.states import ExecutionState
from dalsegno.service.pages import parse_since, parse_states
from dalsegno.store.base import Store
from dalsegno.store.housekeeping import ENDED, Removed

CHUNK = 100  # executions chosen at a time by a purge
SHOWN = 1000  # executions a dry run lists


@dataclass(slots=True)
class PurgeReport:
    """What a purge removed, or with `dry_run`, would remove (`ids`: the first ones)."""

    dry_run: bool
    removed: Removed = field(default_factory=Removed)
    ids: list[str] = field(default_factory=list)
    skipped: int = 0  # chosen, but resumed or deleted by someone else meanwhile


class ExecutionHousekeeping:
    """Deletes and purges; `store` and `find` are `ExecutionService`'s."""

    store: Store

    def find(self, execution_id: str) -> ExecutionRecord:
        raise NotImplementedError

    def delete(self, execution_id: str) -> Removed:
        """Delete an ended execution with its graphs, tasks, attempts and events."""
        execution = self.find(execution_id)
        if execution.status not in ENDED:
            msg = (
                f"Cannot delete - execution {execution.id} is {execution.status}: only an "
                "ended execution (completed, failed, cancelled) can be deleted; cancel it first"
            )
            raise ConflictError(msg)
        if not self.store.mark_deleting(execution.id):
            msg = f"Cannot delete - execution {execution.id} changed meanwhile; try again"
            raise ConflictError(msg)
        return self.store.remove_marked(execution.id)

    def purge(
        self,
        statuses: Sequence[str],
        before: str,
        keep_last: int = 0,
        dry_run: bool = False,
    ) -> PurgeReport:
        """Delete the executions in `statuses` (ended ones) that ended before `before` (an
        age such as `30d`, or a time), keeping the newest `keep_last` of each workflow."""
        states = parse_states(statuses, ExecutionState)
        if not states:
            msg = "purge needs the states to purge: completed, failed, cancelled"
            raise RefusedError(msg)
        refused = [state.value for state in states if state not in ENDED]
        if refused:
            msg = (
                "purge deletes ended executions only (completed, failed, cancelled), "
                f"not {', '.join(refused)}"
            )
            raise RefusedError(msg)
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
            msg = f"keep_last must be a whole number >= 0, not {keep_last!r}"
            raise RefusedError(msg)
        moment = parse_since(before)
        report = PurgeReport(dry_run)
        if dry_run:
            report.ids = self.store.purge_candidates(states, moment, keep_last, SHOWN)
            report.removed.executions = len(report.ids)
            return report
        seen: set[str] = set()
        while True:
            chosen = self.store.purge_candidates(states, moment, keep_last, CHUNK)
            chosen = [execution_id for execution_id in chosen if execution_id not in seen]
            seen.update(chosen)  # one that comes back (it could not be removed) ends the loop
            done = 0
            for execution_id in chosen:
                if not self.store.mark_deleting(execution_id):
                    report.skipped += 1
                    continue
                report.removed.add(self.store.remove_marked(execution_id))
                done += 1
            if len(report.ids) < SHOWN:
                report.ids.extend(chosen[: SHOWN - len(report.ids)])
            if done == 0:
                return report
