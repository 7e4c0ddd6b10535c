"""The filters of `dalsegno events`: one task, one graph, a level and up, some types."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

LEVELS = ("debug", "info", "warning", "error")


def event_filters(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the event filter options to `command`, which gets them as one `filters` dict
    (the keyword arguments of `ExecutionService.events` and `RemoteClient.events`)."""

    @functools.wraps(command)
    def collected(
        *args: Any,
        task_key: str | None,
        graph: str | None,
        level: str | None,
        types: tuple[str, ...],
        **kwargs: Any,
    ) -> Any:
        filters = {"task": task_key, "graph": graph, "level": level, "types": list(types)}
        kept = {key: value for key, value in filters.items() if value}
        return command(*args, filters=kept, **kwargs)

    options = [
        click.option("--task", "task_key", metavar="KEY", help="Only this task's events."),
        click.option("--graph", metavar="NAME", help="Only this graph's events."),
        click.option(
            "--level", type=click.Choice(LEVELS), help="Only this level and the more severe."
        ),
        click.option("--type", "types", multiple=True, help="Only events of this type."),
    ]
    for option in reversed(options):
        collected = option(collected)
    return collected
