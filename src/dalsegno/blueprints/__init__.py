"""Blueprints: parse and validate the YAML format (docs/blueprints.md), resolve a
deployment's inputs, and plan the node instances a deployment or a scale creates.

Pure functions over the records of `dalsegno.model.blueprints`: no store, no engine.
"""

from dalsegno.blueprints.inputs import resolve_inputs, resolve_value
from dalsegno.blueprints.outputs import resolve_outputs
from dalsegno.blueprints.parse import parse_blueprint
from dalsegno.blueprints.plan import install_order, plan_instances
from dalsegno.blueprints.scale import ScalePlan, plan_scale

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
