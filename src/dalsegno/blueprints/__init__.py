"""Blueprints: parse and validate the YAML format (docs/blueprints.md), resolve a
deployment's inputs, and plan the node instances a deployment or a scale creates.

Pure functions over the records of `dalsegno.model.blueprints`: no store, no engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dalsegno.blueprints.inputs import resolve_inputs, resolve_value
from dalsegno.blueprints.outputs import resolve_outputs
from dalsegno.blueprints.plan import install_order, plan_instances
from dalsegno.blueprints.scale import ScalePlan, plan_scale

if TYPE_CHECKING:
    from dalsegno.blueprints.parse import parse_blueprint

__all__ = [
    "ScalePlan",
    "install_order",
    "parse_blueprint",
    "plan_instances",
    "plan_scale",
    "resolve_inputs",
    "resolve_outputs",
    "resolve_value",
]


def __getattr__(name: str) -> Any:
    """`parse_blueprint` is imported when first asked for: its pydantic models take a tenth
    of a CLI command's start, and only an upload parses a blueprint."""
    if name == "parse_blueprint":
        from dalsegno.blueprints.parse import parse_blueprint

        return parse_blueprint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
