"""The README's main job, as a new user runs it: `examples/demo.sh` on a fresh home. The
deployment fails at configure_dns, the cause is fixed, the resume keeps the VMs (each ran
once) and completes; and `cd examples && dalsegno manager` would serve `deploy:deploy`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BIN = Path(sys.executable).parent  # where pip put the `dalsegno` command


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DALSEGNO_")}
    return {**env, "DALSEGNO_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{env['PATH']}"}


def dalsegno(home: Path, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "dalsegno"), *args],
        cwd=EXAMPLES,
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_demo_fails_is_fixed_and_resumes_keeping_the_vms(tmp_path: Path) -> None:
    home = tmp_path / "home"
    demo = subprocess.run(
        ["bash", str(EXAMPLES / "demo.sh")],
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "exit code: 1 (1 = failed)" in demo.stdout
    [execution] = json.loads(dalsegno(home, "executions", "list", "--json"))
    assert execution["status"] == "completed"
    assert execution["params"] == {"hosts": 3, "version": "2.1"}
    lines = dalsegno(home, "events", execution["id"], "--json").splitlines()
    events = [json.loads(line) for line in lines]
    started = [e["task_key"] for e in events if e["type"] == "task_started"]
    assert sorted(started) == ["app", "configure_dns", "configure_dns", "vm0", "vm1", "vm2"]
    assert [e["type"] for e in events].count("workflow_resumed") == 1


def test_the_examples_directory_serves_the_demo_workflow(tmp_path: Path) -> None:
    served = json.loads(dalsegno(tmp_path / "home", "workflows", "list", "--json"))
    assert "deploy:deploy" in [found["workflow"] for found in served]
