"""`dalsegno agents token QUEUE` and `dalsegno agents list` as real subprocesses on the
test's store (both backends), and the manager's `--agent-timeout` refusals."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from dalsegno.service.agents import AgentService, token_hash
from dalsegno.service.executions import ExecutionService
from dalsegno.store import Store
from dalsegno.store.agent_records import AgentBeat


def test_a_token_is_printed_once_and_only_its_hash_is_kept(home: Path, store: Store) -> None:
    plain = run_cli(home, "agents", "token", "web")
    as_json = run_cli(home, "agents", "token", "builds", "--json")
    assert (plain.returncode, as_json.returncode) == (0, 0), plain.stderr + as_json.stderr
    token = plain.stdout.strip()
    document = json.loads(as_json.stdout)
    assert set(document) == {"queue", "token", "name"} and document["queue"] == "builds"
    assert document["name"].startswith("agent-")
    assert token != document["token"]
    assert store.agent_token_queue(token_hash(token)) == "web"
    assert store.agent_token_queue(token_hash(document["token"])) == "builds"
    assert store.agent_token_queue(token) is None  # the token itself is not stored
    scopes = AgentService(ExecutionService(store)).scopes_of(token)
    assert scopes == ["queue:web"]


def test_a_bad_queue_name_is_refused_and_nothing_is_stored(home: Path, store: Store) -> None:
    for bad in ("", "a\tb", "x" * 256):
        refused = run_cli(home, "agents", "token", bad)
        assert refused.returncode == 2
        assert refused.stdout == ""
        assert refused.stderr.startswith("error: a queue name must be")
        assert len(refused.stderr.strip().splitlines()) == 1


def test_agents_list_shows_queue_heartbeat_and_held_tasks(home: Path, store: Store) -> None:
    empty = run_cli(home, "agents", "list", "--json")
    assert (empty.returncode, json.loads(empty.stdout)) == (0, [])
    agents = AgentService(ExecutionService(store))
    agents.heartbeat(AgentBeat("web", "builder-1", "host-a", 321, 4, []))
    listed = run_cli(home, "agents", "list", "--json")
    (agent,) = json.loads(listed.stdout)
    assert {k: agent[k] for k in ("name", "queue", "host", "pid", "concurrency", "running")} == {
        "name": "builder-1",
        "queue": "web",
        "host": "host-a",
        "pid": 321,
        "concurrency": 4,
        "running": [],
    }
    table = run_cli(home, "agents", "list")
    assert table.returncode == 0
    assert "builder-1" in table.stdout and "host-a" in table.stdout and "ago" in table.stdout


def test_the_manager_refuses_a_bad_agent_timeout(home: Path) -> None:
    flag = run_cli(home, "manager", "--agent-timeout", "0", "--bind", "127.0.0.1:1")
    assert flag.returncode == 2
    assert "--agent-timeout" in flag.stderr
    env = run_cli(home, "manager", "--bind", "127.0.0.1:1", DALSEGNO_AGENT_TIMEOUT="soon")
    assert env.returncode == 2
    assert env.stderr.strip() == (
        "error: DALSEGNO_AGENT_TIMEOUT must be a number of seconds, not 'soon'"
    )
