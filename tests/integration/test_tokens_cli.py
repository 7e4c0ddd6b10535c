"""`dalsegno tokens create|list|revoke` as real subprocesses on the test's store (both
backends): the secret printed once, only its hash kept, names unique among active tokens,
revocation recorded, refusals in one line with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from dalsegno.model.access import Role
from dalsegno.service.access import AccessService
from dalsegno.service.tokens import token_hash
from dalsegno.store import Store


def test_create_prints_the_secret_once_and_the_store_keeps_its_hash(
    home: Path, store: Store
) -> None:
    plain = run_cli(home, "tokens", "create", "alice", "--role", "operator")
    as_json = run_cli(home, "tokens", "create", "bob", "--role", "viewer", "--json")
    assert (plain.returncode, as_json.returncode) == (0, 0), plain.stderr + as_json.stderr
    secret = plain.stdout.strip()
    assert len(secret) >= 43 and "\n" not in secret
    document = json.loads(as_json.stdout)
    assert (document["name"], document["role"]) == ("bob", "viewer")
    assert document["created_by"].startswith("local:")
    found = store.token_by_hash(token_hash(secret))
    assert found is not None and (found.name, found.role) == ("alice", Role.OPERATOR)
    assert store.token_by_hash(secret) is None  # the secret itself is not stored
    caller = AccessService.on(store).caller_of(document["token"])
    assert caller is not None and (caller.name, caller.role) == ("bob", Role.VIEWER)

    listed = run_cli(home, "tokens", "list", "--json")
    assert listed.returncode == 0
    rows = json.loads(listed.stdout)
    assert [(row["name"], row["role"]) for row in rows] == [
        ("alice", "operator"),
        ("bob", "viewer"),
    ]
    assert secret not in listed.stdout and document["token"] not in listed.stdout
    table = run_cli(home, "tokens", "list")
    assert "alice" in table.stdout and "operator" in table.stdout


def test_revoke_refuses_the_token_at_once_and_keeps_the_record(home: Path, store: Store) -> None:
    secret = run_cli(home, "tokens", "create", "carol", "--role", "admin").stdout.strip()
    revoked = run_cli(home, "tokens", "revoke", "carol")
    assert revoked.returncode == 0, revoked.stderr
    assert AccessService.on(store).caller_of(secret) is None
    assert json.loads(run_cli(home, "tokens", "list", "--json").stdout) == []
    (record,) = json.loads(run_cli(home, "tokens", "list", "--revoked", "--json").stdout)
    assert record["name"] == "carol" and record["revoked_by"].startswith("local:")
    again = run_cli(home, "tokens", "revoke", "carol")
    assert again.returncode == 2
    assert again.stderr.startswith("error: no such token: 'carol'")
    # the name is free again once revoked
    assert run_cli(home, "tokens", "create", "carol", "--role", "viewer").returncode == 0


def test_agent_tokens_are_listed_and_revoked_with_the_others(home: Path, store: Store) -> None:
    agent = json.loads(run_cli(home, "agents", "token", "web", "--name", "web-1", "--json").stdout)
    other = run_cli(home, "tokens", "create", "web-2", "--role", "agent", "--queue", "web")
    assert other.returncode == 0, other.stderr
    rows = json.loads(run_cli(home, "tokens", "list", "--json").stdout)
    assert [(r["name"], r["role"], r["queue"]) for r in rows] == [
        ("web-1", "agent", "web"),
        ("web-2", "agent", "web"),
    ]
    assert store.agent_token_queue(token_hash(agent["token"])) == "web"
    assert run_cli(home, "tokens", "revoke", "web-1").returncode == 0
    assert store.agent_token_queue(token_hash(agent["token"])) is None


def test_refusals_are_one_line_and_change_nothing(home: Path, store: Store) -> None:
    assert run_cli(home, "tokens", "create", "dave", "--role", "viewer").returncode == 0
    cases = [
        (("tokens", "create", "dave", "--role", "viewer"), "a token named 'dave' exists"),
        (("tokens", "create", "admin", "--role", "viewer"), "reserved"),
        (("tokens", "create", "a/b", "--role", "viewer"), "a token name is"),
        (("tokens", "create", "eve", "--role", "agent"), "serves one queue"),
        (("tokens", "create", "eve", "--role", "viewer", "--queue", "q"), "only an agent"),
        (("tokens", "revoke", "nobody"), "no such token"),
    ]
    for args, reason in cases:
        refused = run_cli(home, *args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert refused.stdout == ""
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert reason in refused.stderr, refused.stderr
    assert [record.name for record in store.list_tokens(include_revoked=True)] == ["dave"]
    bad_role = run_cli(home, "tokens", "create", "eve", "--role", "root")
    assert bad_role.returncode == 2
