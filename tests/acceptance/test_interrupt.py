"""Ctrl-C on `dalsegno run`: the first asks a graceful cancel, the second forces it."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from conftest import run_cli, start_cli


def wait_for(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def _status(home: Path) -> dict:
    listed = run_cli(home, "executions", "list", "--json")
    return json.loads(listed.stdout)[0]


def test_first_ctrl_c_cancels_gracefully(home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "began"
    proc = start_cli(
        home, "run", "interrupt.py:naps", "-p", "n=5", "-p", "seconds=0.6", "-p", f"marker={marker}"
    )
    wait_for(marker.exists, timeout=20)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 3, err
    assert "cancel requested" in err
    execution = _status(home)
    assert execution["status"] == "cancelled"
    got = json.loads(run_cli(home, "executions", "get", execution["id"], "--json").stdout)
    states = [task["status"] for task in got["tasks"]]
    # the running nap was awaited and succeeded; nothing new started after the cancel
    assert states[0] == "succeeded"
    assert states[-1] == "pending"
    assert "started" not in states


def test_second_ctrl_c_forces(home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "began"
    proc = start_cli(
        home, "run", "interrupt.py:naps", "-p", "n=3", "-p", "seconds=30", "-p", f"marker={marker}"
    )
    wait_for(marker.exists, timeout=20)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 3, err
    assert time.monotonic() - began < 5  # it did not wait for the 30 s nap
    execution = _status(home)
    assert execution["status"] == "cancelled"
    got = json.loads(run_cli(home, "executions", "get", execution["id"], "--json").stdout)
    assert got["tasks"][0]["status"] == "started"  # force leaves the running one alone
