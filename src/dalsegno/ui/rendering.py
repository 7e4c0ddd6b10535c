"""Templates and the filters they use: times, durations, states as colours.

Autoescape is on for every template, so whatever a workflow or an operation wrote (keys,
errors, log lines) shows as text, never as markup.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse

from dalsegno.ui.layout import label

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Colours of the states (the stylesheet's s-* classes), in the legend's order.
TASK_STATES = ("pending", "sent", "started", "rescheduled", "succeeded", "failed")
EXECUTION_STATES = (
    "pending",
    "queued",
    "started",
    "cancelling",
    "force_cancelling",
    "kill_cancelling",
    "completed",
    "failed",
    "cancelled",
)


def clock(timestamp: float | None) -> str:
    """A UTC time as `2026-11-27 03:40:12`."""
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def span(seconds: float) -> str:
    """A duration a person reads at a glance: `850 ms`, `12.4 s`, `3 min 04 s`, `2 h 05 min`."""
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def duration(started: float | None, ended: float | None) -> str:
    """How long something ran; until now while it runs; nothing before it started."""
    if started is None:
        return ""
    return span((ended if ended is not None else time.time()) - started)


def query(**params: Any) -> str:
    """A query string of `params`, leaving out empty ones; a list repeats its key."""
    kept = {key: value for key, value in params.items() if value not in ("", None, [], 1)}
    return urlencode(kept, doseq=True)


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clock"] = clock
    env.globals["duration"] = duration
    env.globals["query"] = query
    env.filters["keylabel"] = label
    env.globals["TASK_STATES"] = TASK_STATES
    env.globals["EXECUTION_STATES"] = EXECUTION_STATES
    return env


class Pages:
    """Renders a template into an HTML response."""

    def __init__(self) -> None:
        self.env = environment()

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status_code)
