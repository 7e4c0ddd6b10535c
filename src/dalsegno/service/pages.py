"""Lists that page, as the CLI and the REST API read them: a page of executions, of an
execution's tasks, of its events, each with the cursor of the next page.

A page holds at most `limit` rows; `next_cursor` is None on the last page. List views
never carry params or results: a task's result is read with its task
(`dalsegno.service.reads`), an execution's params with its execution.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from dalsegno.model.errors import RefusedError
from dalsegno.model.names import check_id
from dalsegno.model.records import EventRecord, ExecutionRecord, TaskRecord
from dalsegno.model.states import ExecutionState, TaskState
from dalsegno.service import cursors
from dalsegno.store.base import Store
from dalsegno.store.pages import LEVELS

T = TypeVar("T")
S = TypeVar("S", ExecutionState, TaskState)
MAX_EXECUTIONS = 1000
MAX_TASKS = 10_000
MAX_EVENTS = 10_000
_AGO = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """`items`, and `cursor`: where the next page starts (None: nothing after them to ask
    for); `more`: the page is full, so more rows may follow at once."""

    items: list[T]
    cursor: str | None
    more: bool


def check_limit(limit: int, highest: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= highest:
        msg = f"limit must be a whole number from 1 to {highest}, not {limit!r}"
        raise RefusedError(msg)
    return limit


def parse_since(text: str, now: float | None = None) -> float:
    """A moment: an age (`30d`, `12h`, `90m`, `1.5w`) before now, or an ISO 8601 time
    (UTC unless it says otherwise)."""
    spelled = text.strip()
    ago = _AGO.fullmatch(spelled.lower())
    if ago:
        return (now if now is not None else time.time()) - float(ago[1]) * UNITS[ago[2]]
    try:
        moment = datetime.fromisoformat(spelled.replace("Z", "+00:00"))
    except ValueError:
        msg = f"a time is an age such as 30d, 12h, 90m, or an ISO 8601 time, not {text!r}"
        raise RefusedError(msg) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_states(values: Sequence[str], kind: type[S]) -> list[S]:
    """States named in `values` (each may list several, comma-separated)."""
    found: list[S] = []
    for value in values:
        for name in str(value).split(","):
            try:
                found.append(kind(name.strip()))
            except ValueError:
                names = ", ".join(state.value for state in kind)
                msg = f"unknown status {name.strip()!r}: use one of {names}"
                raise RefusedError(msg) from None
    return found


def check_level(level: str | None) -> str | None:
    if level is not None and level not in LEVELS:
        msg = f"unknown level {level!r}: use one of {', '.join(LEVELS)}"
        raise RefusedError(msg)
    return level


class PagedReads:
    """The paged lists; `store` and `find` are `ExecutionService`'s."""

    store: Store

    def find(self, execution_id: str) -> ExecutionRecord:
        raise NotImplementedError

    def executions_page(
        self,
        *,
        statuses: Sequence[str] = (),
        workflow: str | None = None,
        since: str | None = None,
        search: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
        deployment: str | None = None,
    ) -> Page[ExecutionRecord]:
        """Executions newest first, `limit` at most, after `cursor` (of one deployment)."""
        check_limit(limit, MAX_EXECUTIONS)
        if deployment is not None:
            check_id("deployment", deployment)
        before = None
        if cursor is not None:
            at, last = cursors.decode("executions", cursor, (float, str))
            before = (float(at), last)
        found = self.store.page_executions(
            statuses=parse_states(statuses, ExecutionState),
            workflow=workflow or None,
            since=parse_since(since) if since else None,
            search=(search or "").strip() or None,
            before=before,
            limit=limit + 1,
            deployment=deployment,
        )
        more = len(found) > limit
        found = found[:limit]
        if not more:
            return Page(found, None, False)
        last = found[-1]
        return Page(found, cursors.encode("executions", [last.created_at, last.id]), True)

    def tasks_page(
        self,
        execution_id: str,
        *,
        graph: str | None = None,
        statuses: Sequence[str] = (),
        key: str | None = None,
        cursor: str | None = None,
        limit: int = 1000,
    ) -> Page[TaskRecord]:
        """The execution's tasks in the order they were stored, `limit` at most."""
        execution = self.find(execution_id)
        check_limit(limit, MAX_TASKS)
        after = cursors.decode("tasks", cursor, (int,))[0] if cursor is not None else None
        found = self.store.page_tasks(
            execution.id,
            graph=graph,
            statuses=parse_states(statuses, TaskState),
            key_contains=key or None,
            after=after,
            limit=limit + 1,
        )
        more = len(found) > limit
        found = found[:limit]
        return Page(found, cursors.encode("tasks", [found[-1].id]) if more else None, more)

    def matching_tasks(
        self,
        execution_id: str,
        graph: str | None = None,
        statuses: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[TaskRecord]:
        """The tasks of `graph` in `statuses`, the first `limit` of them (all: None)."""
        found: list[TaskRecord] = []
        cursor = None
        while limit is None or len(found) < limit:
            size = MAX_TASKS if limit is None else min(MAX_TASKS, limit - len(found))
            page = self.tasks_page(
                execution_id, graph=graph, statuses=statuses, cursor=cursor, limit=size
            )
            found.extend(page.items)
            if page.cursor is None:
                break
            cursor = page.cursor
        return found

    def events_page(
        self,
        execution_id: str,
        *,
        after: str | None = None,
        cursor: str | None = None,
        limit: int = 1000,
        graph: str | None = None,
        task: str | None = None,
        level: str | None = None,
        types: Sequence[str] = (),
    ) -> Page[EventRecord]:
        """The execution's events oldest first, after `cursor` (or the event id `after`)."""
        execution = self.find(execution_id)
        check_limit(limit, MAX_EVENTS)
        start = None
        if cursor is not None:
            start = cursors.decode("events", cursor, (int,))[0]
        elif after is not None:
            if not (
                isinstance(after, str) and after.isascii() and after.isdigit() and len(after) <= 18
            ):
                msg = f"malformed event id: {after!r}"
                raise RefusedError(msg)
            start = int(after)
        found = self.store.page_events(
            execution.id,
            after=start,
            limit=limit + 1,
            graph=graph,
            task_key=task,
            level=check_level(level),
            types=list(types),
        )
        more = len(found) > limit
        found = found[:limit]
        # Events keep coming: the last page has a cursor too, from which a follower asks
        # again for what was written since.
        position = int(found[-1].id) if found else start
        return Page(found, None if position is None else cursors.encode("events", [position]), more)
