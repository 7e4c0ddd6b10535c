"""The built-in lifecycle workflows: install, uninstall, heal, scale and
execute_operation of a deployment, as resumable task graphs (docs/lifecycle.md).

Each is an ordinary resumable workflow run against a deployment (`ctx.deployment`): one
subgraph per node instance, ordered by the instances' links; each task bound to its
instance, whose state and runtime properties the engine writes with the task's success.
"""

from dalsegno.lifecycle.execute import execute_operation
from dalsegno.lifecycle.heal import heal
from dalsegno.lifecycle.install import install, uninstall
from dalsegno.lifecycle.scale import scale

# The built-in workflows by the name a user gives (`dalsegno run install -d NAME`).
WORKFLOWS = {
    "install": "dalsegno.lifecycle:install",
    "uninstall": "dalsegno.lifecycle:uninstall",
    "heal": "dalsegno.lifecycle:heal",
    "scale": "dalsegno.lifecycle:scale",
    "execute_operation": "dalsegno.lifecycle:execute_operation",
}

__all__ = ["WORKFLOWS", "execute_operation", "heal", "install", "scale", "uninstall"]
