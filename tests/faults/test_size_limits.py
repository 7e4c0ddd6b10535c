"""Size limits, enforced everywhere with a clear error (docs/reliability.md, "Size limits"):
a request body over 2 MiB is a 413, params over 1 MiB a 422 (one line, exit 2 in the CLI),
a task key over 255 characters or operation arguments over 1 MiB fail the execution with
the reason, a log line is cut at 100,000 characters with a marker, and list views leave
out large params, so looking at many executions costs the manager little memory.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import run_cli
from faults.conftest import StartManager
from faults.harness import Manager, Tally

pytestmark = [pytest.mark.crash, pytest.mark.sqlite_only("limits of the API, not of a backend")]

MIB = 1024 * 1024


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_bodies_params_keys_arguments_and_log_lines_have_limits(
    managers: StartManager, home: Path, tmp_path: Path
) -> None:
    tally = Tally("size limits (body, params, key, arguments, result, log line)", "sqlite")
    log = tmp_path / "runs.log"
    manager = managers()

    body = json.dumps({"workflow": "faults.py:takes", "params": {"blob": "x" * (3 * MIB)}})
    declared = manager.call("POST", "/executions", content=body, timeout=60)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as it comes
        encoded = body.encode()
        for start in range(0, len(encoded), 65536):
            yield encoded[start : start + 65536]

    streamed = manager.call("POST", "/executions", content=chunks(), timeout=60)
    params = manager.call(
        "POST",
        "/executions",
        json={"workflow": "faults.py:takes", "params": {"blob": "x" * (MIB + 100)}},
    )
    too_long = manager.start_execution("faults.py:long_key", log=str(log), length=300)
    too_big = manager.start_execution("faults.py:big_kwargs", log=str(log), size=MIB + 10)
    chatty = manager.start_execution("faults.py:chatty", log=str(log), lines=2, size=MIB)
    ended = manager.wait_ended([too_long, too_big, chatty])

    for refused in (declared, streamed):
        assert refused.status_code == 413, refused.text
        assert "the request body is too large" in refused.json()["error"]
        assert "the limit is 2,097,152 bytes" in refused.json()["error"]
    assert params.status_code == 422, params.text
    size = len(json.dumps({"blob": "x" * (MIB + 100)}))
    assert params.json() == {
        "error": f"params is {size:,} bytes of JSON, over the limit of 1,048,576 bytes"
    }
    assert ended[too_long]["status"] == "failed"
    assert "a task key is 300 characters, over the limit of 255" in ended[too_long]["error"]
    assert ended[too_big]["status"] == "failed"
    assert "over the limit of 1,048,576 bytes" in ended[too_big]["error"]
    assert ended[chatty]["status"] == "completed"
    lines = [e["message"] for e in manager.events(chatty) if e["type"] == "log"]
    assert len(lines) == 2 and all(len(line) == 100_000 for line in lines)
    assert all(line.endswith(" ...(cut)") for line in lines)
    listed = manager.call("GET", "/executions").json()
    assert {execution["id"] for execution in listed} == {too_long, too_big, chatty}
    tally.injected = tally.survived = 6

    # The command line: params over the limit are one line and exit code 2, nothing stored.
    pairs = [arg for i in range(12) for arg in ("-p", f"a{i}={'y' * 100_000}")]
    done = run_cli(home, "run", "faults.py:loose", *pairs)
    assert done.returncode == 2, done.stderr
    size = len(json.dumps({f"a{i}": "y" * 100_000 for i in range(12)}))
    assert done.stderr.strip().splitlines() == [
        f"error: params is {size:,} bytes of JSON, over the limit of 1,048,576 bytes"
    ]
    assert len(manager.call("GET", "/executions").json()) == 3
    tally.injected += 1
    tally.survived += 1
    tally.record()


def test_list_views_leave_out_large_params_and_the_manager_stays_small(
    managers: StartManager,
) -> None:
    manager: Manager = managers()
    blob = "z" * (MIB - 100)
    ids = [manager.start_execution("faults.py:takes", blob=blob) for _ in range(30)]
    small = manager.start_execution("faults.py:takes", blob="small")
    manager.wait_ended([*ids, small])
    assert manager.process is not None
    before = rss(manager.process.pid)

    sizes: list[int] = []

    def look() -> None:
        for _ in range(5):
            answer = manager.call("GET", "/executions", timeout=60)
            assert answer.status_code == 200
            sizes.append(len(answer.content))

    lookers = [threading.Thread(target=look) for _ in range(4)]
    for looker in lookers:
        looker.start()
    for looker in lookers:
        looker.join(120)

    listed = {e["id"]: e for e in manager.call("GET", "/executions").json()}
    assert all(listed[execution_id]["params"] is None for execution_id in ids)
    assert listed[small]["params"] == {"blob": "small"}
    assert manager.execution(ids[0])["params"] == {"blob": blob}  # one execution shows all
    assert max(sizes) < 64 * 1024, max(sizes)
    assert rss(manager.process.pid) - before < 64 * MIB
    assert httpx.get(f"{manager.site}/healthz").status_code == 200
