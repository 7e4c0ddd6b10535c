"""The child side of `@operation(process=True)`: `python -m dalsegno.engine.child`.

Reads one JSON request on stdin, runs the operation, and writes JSON lines on the pipe it
was given as stdout: `{"log": ...}` for each logged line, then the outcome. What the
operation itself prints goes to stderr, so it cannot corrupt the protocol.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO

from dalsegno.engine.attempts import run_operation, with_changes
from dalsegno.engine.context import EventLogger, OperationContext
from dalsegno.engine.instances import attach, changes_json
from dalsegno.engine.references import resolve_operation
from dalsegno.model.records import NewEvent


def main() -> None:
    protocol: TextIO = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # the operation's prints must not reach the protocol pipe
    request = json.loads(sys.stdin.read())
    sys.path[:] = [entry for entry in request.get("sys_path", []) if isinstance(entry, str)]

    def emit(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")

    def log(event: NewEvent) -> None:
        emit({"log": event.message, "level": event.level, "at": event.created_at or time.time()})

    context = request["context"]
    ctx = OperationContext(
        execution_id=context["execution_id"],
        graph=context["graph"],
        task_key=context["task_key"],
        retries=int(context["retries"]),
        attempt=int(context["attempt"]),
        resume=bool(context["resume"]),
        idempotency_key=context["idempotency_key"],
        logger=EventLogger(log, context["graph"], context["task_key"]),
    )
    try:
        func, _ = resolve_operation(request["reference"])
    except Exception as exc:  # noqa: BLE001 - reported as the outcome
        emit({"error": str(exc), "recoverable": False})
        return
    lifecycle = context.get("lifecycle")  # a lifecycle task: its instances (engine.instances)
    views = attach(ctx, lifecycle) if lifecycle is not None else {}
    completion = run_operation(func, ctx, request["kwargs"], 0)
    if lifecycle is not None:
        completion = with_changes(completion, lifecycle, views)
    if completion.succeeded:
        outcome: dict[str, Any] = {"result": json.loads(completion.result_json or "null")}
        if completion.instances is not None:
            outcome["instances"] = changes_json(completion.instances)
        emit(outcome)
    else:
        emit(
            {
                "error": completion.error,
                "detail": completion.detail,
                "recoverable": completion.recoverable,
                "retry_after": completion.retry_after,
            }
        )
    protocol.close()


if __name__ == "__main__":
    main()
