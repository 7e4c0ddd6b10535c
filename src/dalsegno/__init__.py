"""dalsegno: task-graph workflows whose every step is stored, resumed where they stopped.

from dalsegno import workflow, operation

@operation(resumable=True)
def provision(ctx, name):
    return {"name": name}

@workflow(resumable=True)
def deploy(ctx, hosts=2):
    g = ctx.graph("main")
    g.sequence(*[g.add(provision, name=f"vm{i}") for i in range(hosts)])
    g.execute()
"""

from dalsegno.engine.outcomes import GraphFailed
from dalsegno.model.definitions import operation, workflow
from dalsegno.model.errors import (
    NonRecoverableError,
    OperationRetry,
    RecoverableError,
)

__all__ = [
    "GraphFailed",
    "NonRecoverableError",
    "OperationRetry",
    "RecoverableError",
    "operation",
    "workflow",
]
__version__ = "0.1.0"
