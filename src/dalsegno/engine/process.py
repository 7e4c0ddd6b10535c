"""Operations declared `@operation(process=True)` run in a child process.

A thread cannot be stopped mid-line; a process can. So a kill-cancel or a task timeout
really stops such an operation: SIGTERM, then SIGKILL after a grace period. The child
imports the operation by its reference, reads its arguments as JSON on stdin, and writes
JSON lines on a pipe: its log lines as it goes, then its outcome. Nothing but JSON
crosses: never pickle.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from dalsegno.engine.attempts import Completion
from dalsegno.engine.instances import changes_from_json
from dalsegno.model.limits import MAX_RESULT, MAX_TEXT, clip, too_large
from dalsegno.model.records import NewEvent

KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
# The longest protocol line read: an outcome with the largest result, escaped, or a log
# line. Longer ones (the operation writing to the pipe itself) are cut and left out.
MAX_LINE = 8 * MAX_RESULT + 8 * MAX_TEXT


class ChildOperation:
    """One attempt running in a child process."""

    def __init__(
        self,
        reference: str,
        task_id: int,
        attempt: int,
        context: dict[str, Any],
        kwargs_json: str,
        on_log: Callable[[NewEvent], None],
    ) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self._reference = reference
        self._context = context
        self._kwargs_json = kwargs_json
        self._on_log = on_log
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def run(self) -> Completion:
        """Start the child, relay its logs, and return its outcome (in a worker thread)."""
        request = {
            "reference": self._reference,
            "context": self._context,
            "kwargs": json.loads(self._kwargs_json),
            "sys_path": sys.path,
        }
        with self._lock:
            if self._stopped:
                return self._killed()
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "dalsegno.engine.child"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    start_new_session=True,  # a signal to the manager's group does not reach it
                )
            except OSError as exc:  # no memory, too many open files: a failed attempt
                error = f"the operation's process could not be started: {exc}"
                return Completion(self.task_id, self.attempt, False, None, error, None, True)
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(request))
            process.stdin.close()
        except BrokenPipeError:
            pass
        outcome: dict[str, Any] | None = None
        stdout = process.stdout
        for line in iter(lambda: stdout.readline(MAX_LINE), ""):
            message = _parse(line)  # a line cut by the limit is no JSON: left out
            if message is None:
                continue
            if "log" in message:
                self._on_log(
                    NewEvent(
                        "log",
                        clip(str(message["log"])),
                        self._context["graph"],
                        self._context["task_key"],
                        level=str(message.get("level", "info")),
                        created_at=float(message.get("at", 0.0)),
                    )
                )
            else:
                outcome = message
        stdout.close()
        code = process.wait()
        if self._stopped:
            return self._killed()
        return self._completion(outcome, code)

    def stop(self, grace: float = KILL_GRACE) -> None:
        """SIGTERM now, SIGKILL after `grace` seconds if it is still there."""
        with self._lock:
            self._stopped = True
            process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return

        def finish() -> None:
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)

        threading.Thread(target=finish, daemon=True).start()

    def _killed(self) -> Completion:
        return Completion(self.task_id, self.attempt, False, None, "killed", None, False)

    def _completion(self, outcome: dict[str, Any] | None, code: int) -> Completion:
        if outcome is None:
            why = f"signal {-code}" if code < 0 else f"exit code {code}"
            error = f"the operation's process ended without an outcome ({why})"
            return Completion(self.task_id, self.attempt, False, None, error, None, True)
        if "result" in outcome:
            try:
                encoded = json.dumps(outcome["result"], allow_nan=False)
            except (ValueError, RecursionError) as exc:
                error = f"result is not JSON: {exc}"
                return Completion(self.task_id, self.attempt, False, None, error, None, False)
            refused = too_large("the result", encoded, MAX_RESULT)
            if refused is not None:
                return Completion(self.task_id, self.attempt, False, None, refused, None, False)
            done = Completion(self.task_id, self.attempt, True, encoded)
            if "instances" in outcome:  # a lifecycle task's changes (engine.instances)
                try:
                    done.instances = changes_from_json(outcome["instances"])
                except (KeyError, TypeError, ValueError) as exc:
                    error = f"the operation's process sent bad instance changes: {exc}"
                    return Completion(self.task_id, self.attempt, False, None, error, None, False)
            return done
        detail = outcome.get("detail")
        return Completion(
            self.task_id,
            self.attempt,
            False,
            None,
            clip(str(outcome.get("error", "failed"))),
            clip(str(detail)) if detail is not None else None,
            bool(outcome.get("recoverable", True)),
            outcome.get("retry_after"),
        )


def _parse(line: str) -> dict[str, Any] | None:
    try:
        found = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return found if isinstance(found, dict) else None
