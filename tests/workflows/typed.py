"""Workflows with annotated parameters: the params check of a start (service/params.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal, TypedDict

from dalsegno import workflow


class Size(enum.Enum):
    SMALL = "s"
    LARGE = "l"


class Target(TypedDict):
    host: str
    port: int


@dataclass
class Retry:
    attempts: int
    backoff: float = 1.0


@workflow
def typed(
    ctx,
    fail: bool = False,
    interval: float = 1.0,
    count: int = 1,
    version: str = "1.0",
    mode: Literal["fast", "safe"] = "safe",
    note: str | None = None,
    hosts: list[str] | None = None,
    labels: dict[str, int] | None = None,
    size: Size = Size.SMALL,
    target: Target | None = None,
    retry: Retry | None = None,
):
    """Records what it was given, with the Python type of each value."""
    ctx.logger.info(
        "given %s",
        {
            name: type(value).__name__
            for name, value in {
                "fail": fail,
                "interval": interval,
                "count": count,
                "version": version,
                "mode": mode,
            }.items()
        },
    )


@workflow
def untyped(ctx, value=None, **more):
    """No annotations: any JSON value is taken."""
