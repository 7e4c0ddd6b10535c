"""Every route of a real manager, asked by every kind of caller, over real HTTP: the
status each one gets is the one this table says (docs/security.md, "Who may do what").

The table must name every route the manager serves: a route added without a row fails
`test_the_table_names_every_route`, so no route goes out without its role check decided.
Callers: nobody (no token, no session), an agent's token (queue `web`), people's tokens
of each role, and the manager's own admin token. REST routes get the token as a bearer;
web UI routes get a session signed in with it (an agent's token cannot sign in).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest

from dalsegno.api.app import create_app
from dalsegno.service.executions import ExecutionService
from security.conftest import ManagerProcess, csrf_of

ROLES = ("nobody", "agent", "viewer", "operator", "admin", "admin-token")
PEOPLE = ("viewer", "operator", "admin", "admin-token")

# REST: what each kind of route answers each caller (2xx: the route's own success code)
READ = {
    "nobody": 401,
    "agent": 403,
    "viewer": 200,
    "operator": 200,
    "admin": 200,
    "admin-token": 200,
}
OPERATE = {
    "nobody": 401,
    "agent": 403,
    "viewer": 403,
    "operator": "ok",
    "admin": "ok",
    "admin-token": "ok",
}
MANAGE = {
    "nobody": 401,
    "agent": 403,
    "viewer": 403,
    "operator": 403,
    "admin": "ok",
    "admin-token": "ok",
}
QUEUE = {
    "nobody": 401,
    "agent": 200,
    "viewer": 403,
    "operator": 403,
    "admin": 200,
    "admin-token": 200,
}
ATTEMPT = {
    "nobody": 401,
    "agent": 404,
    "viewer": 403,
    "operator": 403,
    "admin": 404,
    "admin-token": 404,
}
PUBLIC = dict.fromkeys(ROLES, 200)
# the web UI: pages for people; actions for operators and admins; others to the sign-in
LOGIN = "303 /login"
PAGE = {
    "nobody": LOGIN,
    "agent": LOGIN,
    "viewer": 200,
    "operator": 200,
    "admin": 200,
    "admin-token": 200,
}
ACTION_PAGE = {**PAGE, "viewer": 403}
DONE = "303 /executions/"
ACTION = {
    "nobody": LOGIN,
    "agent": LOGIN,
    "viewer": 403,
    "operator": DONE,
    "admin": DONE,
    "admin-token": DONE,
}


@dataclass
class Row:
    method: str
    path: str
    expected: dict[str, Any]
    prepare: str = ""  # the name of a `World` method giving the path's ids and the body
    ui: bool = False


TABLE = [
    Row("GET", "/api/v1/openapi.json", PUBLIC),
    Row("GET", "/api/v1/docs", PUBLIC),
    Row("GET", "/healthz", PUBLIC),
    Row("GET", "/readyz", PUBLIC),
    Row("GET", "/metrics", PUBLIC),
    Row("POST", "/api/v1/executions", {**OPERATE, "ok": 201}, "start_body"),
    Row("GET", "/api/v1/executions", READ),
    Row("GET", "/api/v1/executions/{execution_id}", READ, "shared"),
    Row("POST", "/api/v1/executions/{execution_id}/resume", {**OPERATE, "ok": 202}, "failed"),
    Row("POST", "/api/v1/executions/{execution_id}/cancel", {**OPERATE, "ok": 202}, "running"),
    Row("GET", "/api/v1/executions/{execution_id}/events", READ, "shared"),
    Row("GET", "/api/v1/executions/{execution_id}/tasks", READ, "shared"),
    Row("GET", "/api/v1/executions/{execution_id}/tasks/{task}", READ, "task"),
    Row("DELETE", "/api/v1/executions/{execution_id}", {**MANAGE, "ok": 200}, "doomed"),
    Row("POST", "/api/v1/housekeeping/purge", {**MANAGE, "ok": 200}, "purge_body"),
    Row("GET", "/api/v1/workflows", READ),
    Row("POST", "/api/v1/blueprints", {**OPERATE, "ok": 201}, "blueprint_body"),
    Row("GET", "/api/v1/blueprints", READ),
    Row("GET", "/api/v1/blueprints/{blueprint_id}", READ, "blueprint"),
    Row("DELETE", "/api/v1/blueprints/{blueprint_id}", {**OPERATE, "ok": 200}, "doomed_blueprint"),
    Row("POST", "/api/v1/deployments", {**OPERATE, "ok": 201}, "deployment_body"),
    Row("GET", "/api/v1/deployments", READ),
    Row("GET", "/api/v1/deployments/{deployment_id}", READ, "deployment"),
    Row(
        "DELETE",
        "/api/v1/deployments/{deployment_id}",
        {**OPERATE, "ok": 200},
        "doomed_deployment",
    ),
    Row("GET", "/api/v1/agents", READ),
    Row("POST", "/api/v1/agents/claim", QUEUE, "claim_body"),
    Row("POST", "/api/v1/agents/heartbeat", QUEUE, "heartbeat_body"),
    Row("POST", "/api/v1/agents/exchange", QUEUE, "exchange_body"),
    Row("POST", "/api/v1/agents/attempts/{attempt_id}/started", ATTEMPT, "attempt_body"),
    Row("POST", "/api/v1/agents/attempts/{attempt_id}/result", ATTEMPT, "result_body"),
    Row("POST", "/api/v1/agents/tokens", {**MANAGE, "ok": 201}, "agent_token_body"),
    Row("POST", "/api/v1/tokens", {**MANAGE, "ok": 201}, "token_body"),
    Row("GET", "/api/v1/tokens", {**MANAGE, "ok": 200}),
    Row("DELETE", "/api/v1/tokens/{name}", {**MANAGE, "ok": 200}, "victim"),
    Row("GET", "/login", {**dict.fromkeys(PEOPLE, "303 /"), "nobody": 200, "agent": 200}, ui=True),
    Row(
        "POST",
        "/login",
        {**dict.fromkeys(PEOPLE, "303 /"), "nobody": 400, "agent": 401},
        "login_body",
        ui=True,
    ),
    Row(
        "POST",
        "/logout",
        {**dict.fromkeys(PEOPLE, LOGIN), "nobody": LOGIN, "agent": LOGIN},
        "logout_form",
        ui=True,
    ),
    Row("GET", "/", PAGE, ui=True),
    Row("GET", "/fragments/executions", PAGE, ui=True),
    Row("GET", "/executions/{execution_id}", PAGE, "shared", ui=True),
    Row("GET", "/fragments/executions/{execution_id}", PAGE, "shared", ui=True),
    Row("GET", "/fragments/executions/{execution_id}/graphs", PAGE, "shared", ui=True),
    Row("GET", "/fragments/executions/{execution_id}/tasks/{task_id}", PAGE, "task", ui=True),
    Row("GET", "/agents", PAGE, ui=True),
    Row("GET", "/executions/{execution_id}/tasks/{task_id}", PAGE, "task", ui=True),
    Row("GET", "/executions/{execution_id}/resume", ACTION_PAGE, "shared", ui=True),
    Row("POST", "/executions/{execution_id}/resume", ACTION, "failed_form", ui=True),
    Row("GET", "/executions/{execution_id}/cancel", ACTION_PAGE, "shared", ui=True),
    Row("POST", "/executions/{execution_id}/cancel", ACTION, "running_form", ui=True),
    Row("GET", "/start", ACTION_PAGE, ui=True),
    Row("POST", "/start", ACTION, "start_form", ui=True),
    Row("GET", "/deployments", PAGE, ui=True),
    Row("GET", "/deployments/{deployment_id}", PAGE, "deployment", ui=True),
    Row("GET", "/deployments/{deployment_id}/{action}", ACTION_PAGE, "deployment", ui=True),
    Row("POST", "/deployments/{deployment_id}/{action}", ACTION, "install_form", ui=True),
    Row("GET", "/static/forms.js", PUBLIC, ui=True),
]


def app_routes() -> set[tuple[str, str]]:
    """Every (method, path) the manager's app serves, its static files as `/static/...`."""
    app = create_app(mock.create_autospec(ExecutionService, instance=True), "unused")

    def walk(routes: Any) -> Iterator[tuple[str, str]]:
        for route in routes:
            if hasattr(route, "effective_candidates"):  # a router FastAPI includes lazily
                yield from walk(route.effective_candidates())
            elif getattr(route, "methods", None):
                yield from ((m, route.path) for m in route.methods if m != "HEAD")
            else:
                yield ("GET", route.path + "/...")  # a mount (static files)

    return set(walk(app.router.routes))


def test_the_table_names_every_route() -> None:
    served = app_routes()
    named = {
        (row.method, "/static/..." if row.path.startswith("/static/") else row.path)
        for row in TABLE
    }
    assert len(served) > 30
    assert served == named, f"not in the table: {served - named}; gone: {named - served}"


@dataclass
class World:
    """The manager and what the calls need: tokens of each role, executions to resume and
    to cancel (one each per call that may succeed), tokens to revoke."""

    manager: ManagerProcess
    hold: Path
    flag: Path
    tokens: dict[str, str | None] = field(default_factory=dict)
    pools: dict[str, list[str]] = field(default_factory=dict)
    shared_failed: str = ""
    shared_task: str = ""
    sessions: dict[str, httpx.Client] = field(default_factory=dict)

    def start(self, **params: Any) -> str:
        with self.manager.api() as api:
            made = api.post("/executions", json={"workflow": "flows:deploy", "params": params})
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    def take(self, pool: str, role: str, row: Row) -> str:
        succeeds = row.expected[role] in ("ok", DONE)
        return self.pools[pool].pop() if succeeds else self.pools[pool][0]

    # what each row's call carries: (path values, JSON body or form data)
    def shared(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {"execution_id": self.shared_failed}, None

    def task(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        ids = {"task_id": self.shared_task, "task": self.shared_task}
        return {"execution_id": self.shared_failed, **ids}, None

    def doomed(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {"execution_id": self.take("doomed", role, row)}, None

    def purge_body(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {}, {"status": ["completed"], "before": "30d", "dry_run": True}

    def exchange_body(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {}, {
            "queue": "web",
            "agent": f"agent-{role}",
            "claim_id": f"claim_{role.replace('-', '_')}_01",
        }

    def failed(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {"execution_id": self.take("failed", role, row)}, {}

    def running(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {"execution_id": self.take("running", role, row)}, {"mode": "cancel"}

    def failed_form(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {"execution_id": self.take("failed", role, row)}, {"csrf": self.csrf(role)}

    def running_form(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        form = {"csrf": self.csrf(role), "mode": "cancel"}
        return {"execution_id": self.take("running", role, row)}, form

    def start_body(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {}, {"workflow": "flows:deploy", "params": {"hosts": 1}}

    def start_form(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {}, {"csrf": self.csrf(role), "workflow": "flows:deploy", "param.hosts": "1"}

    def claim_body(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {}, {"queue": "web", "agent": f"agent-{role}", "wait": 0}

    def heartbeat_body(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        beat = {"queue": "web", "agent": f"agent-{role}", "host": "h", "pid": 1, "concurrency": 1}
        return {}, beat

    def attempt_body(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {"attempt_id": "no-such-attempt"}, {"agent": "agent-x"}

    def result_body(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {"attempt_id": "no-such-attempt"}, {"agent": "agent-x", "outcome": "succeeded"}

    def agent_token_body(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {}, {"queue": "web", "name": f"web-by-{role}"}

    def token_body(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {}, {"name": f"made-by-{role}", "role": "viewer"}

    def blueprint_body(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {}, {"id": f"made-by-{role}", "source": BLUEPRINT}

    def blueprint(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {"blueprint_id": "shared"}, None

    def doomed_blueprint(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {"blueprint_id": self.take("blueprints", role, row)}, None

    def deployment_body(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {}, {"id": f"made-by-{role}", "blueprint_id": "shared"}

    def deployment(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {"deployment_id": "shared", "action": "install"}, None

    def doomed_deployment(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {"deployment_id": self.take("deployments", role, row)}, None

    def install_form(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        # `box` has no operation: its install calls nothing
        return {"deployment_id": "shared", "action": "install"}, {"csrf": self.csrf(role)}

    def victim(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {"name": f"victim-{role}"}, None

    def login_body(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {}, {"token": self.tokens[role] or "", "csrf": self.csrf(role)}

    def logout_form(self, role: str, row: Row) -> tuple[dict[str, str], Any]:
        return {}, {"csrf": self.csrf(role)}

    def csrf(self, role: str) -> str:
        """The CSRF token of the role's session (a page it may see carries it)."""
        page = "/login" if role in ("nobody", "agent") else "/"
        return csrf_of(self.sessions[role].get(page).text)


def test_every_route_answers_each_role_as_the_table_says(
    home: Path, tmp_path: Path, flows_dir: Path, managers: Callable[..., ManagerProcess]
) -> None:
    manager = managers(home, flows_dir, "--workflows", "flows.py")
    world = World(manager, tmp_path / "hold", tmp_path / "fail")
    world.hold.touch()
    world.flag.touch()
    world.tokens = {
        "nobody": None,
        "agent": manager.token("agent-web", "agent", queue="web"),
        "viewer": manager.token("vic", "viewer"),
        "operator": manager.token("olga", "operator"),
        "admin": manager.token("ada", "admin"),
        "admin-token": manager.admin_token,
    }
    for role in ROLES:
        manager.token(f"victim-{role}", "viewer")
    failed = [world.start(fail_flag=str(world.flag)) for _ in range(7)]
    doomed = [world.start(fail_flag=str(world.flag)) for _ in range(3)]
    running = [world.start(hold=str(world.hold)) for _ in range(7)]
    for execution_id in failed + doomed:
        manager.wait_status(execution_id, "failed")
    for execution_id in running:
        manager.wait_status(execution_id, "started")
    world.shared_failed = failed[0]
    with manager.api() as api:
        world.shared_task = api.get(f"/executions/{failed[0]}").json()["tasks"][0]["id"]
    world.pools = {
        "failed": failed,
        "running": running,
        "doomed": doomed,
        "blueprints": _made(manager, "blueprints", 4),
        "deployments": _made(manager, "deployments", 4),
    }
    try:
        mismatches = _ask_everything(world)
    finally:
        world.hold.unlink()
        for client in world.sessions.values():
            client.close()
    assert mismatches == [], "\n".join(mismatches)


# A blueprint whose node's operation (were it installed) waits for nothing it can find.
BLUEPRINT = "node_templates:\n  box:\n    type: thing\n"


def _made(manager: ManagerProcess, kind: str, count: int) -> list[str]:
    """`count` blueprints or deployments (of the blueprint `shared`, made first), by id."""
    made = []
    with manager.api() as api:
        if kind == "blueprints" and not api.get("/blueprints/shared").is_success:
            assert api.post("/blueprints", json={"id": "shared", "source": BLUEPRINT}).is_success
        if kind == "deployments" and not api.get("/deployments/shared").is_success:
            body = {"id": "shared", "blueprint_id": "shared"}
            assert api.post("/deployments", json=body).is_success
        for number in range(count):
            body = {"id": f"{kind}-{number}", "source": BLUEPRINT, "blueprint_id": "shared"}
            if kind == "blueprints":
                body.pop("blueprint_id")
            else:
                body.pop("source")
            answer = api.post(f"/{kind}", json=body)
            assert answer.status_code == 201, answer.text
            made.append(body["id"])
    return made


def _ask_everything(world: World) -> list[str]:
    manager = world.manager
    for role in ROLES:  # the web UI's sessions: people signed in, the others anonymous
        client = manager.browser()
        form = client.get("/login")
        token = world.tokens[role]
        if token is not None and role != "agent":
            signed = client.post("/login", data={"token": token, "csrf": csrf_of(form.text)})
            assert signed.status_code == 303, (role, signed.text)
        world.sessions[role] = client
    mismatches = []
    # sign-out last: it ends the session the other rows use
    for row in sorted(TABLE, key=lambda row: row.path == "/logout"):
        for role in ROLES:
            values, body = getattr(world, row.prepare)(role, row) if row.prepare else ({}, None)
            path = row.path.format(**values)
            got = _ask(world, role, row, path, body)
            wanted = row.expected[role]
            if wanted == "ok":
                wanted = row.expected["ok"]
            if not _matches(got, wanted):
                mismatches.append(f"{row.method} {row.path} as {role}: got {got}, wanted {wanted}")
    return mismatches


def _ask(world: World, role: str, row: Row, path: str, body: Any) -> tuple[int, str]:
    if row.ui:
        client = world.sessions[role]
        if row.path == "/login" and row.method == "POST":
            client = world.manager.browser()  # a fresh browser signs in
            body = {**body, "csrf": csrf_of(client.get("/login").text)}
        answer = client.request(row.method, path, data=body)
        if client is not world.sessions[role]:
            client.close()
    else:
        token = world.tokens[role]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(base_url=world.manager.url, verify=world.manager.verify) as client:
            answer = client.request(row.method, path, json=body, headers=headers)
    return answer.status_code, answer.headers.get("location", "")


def _matches(got: tuple[int, str], wanted: Any) -> bool:
    status, location = got
    if isinstance(wanted, str):
        code, _, prefix = wanted.partition(" ")
        return status == int(code) and location.startswith(prefix)
    return status == wanted


@pytest.mark.parametrize("role", ROLES)
def test_the_table_is_complete_for_each_role(role: str) -> None:
    for row in TABLE:
        assert role in row.expected, (row.method, row.path)
