"""Fixtures shared by every ring: a temporary home with a real store, and the CLI.

The store, engine, crash and manager suites run on both backends (`[sqlite]` and
`[postgres]` in a test's id): each PostgreSQL test gets a database of its own, cloned from
a template migrated once a session, and dropped after it. Every other test, and a test
marked `sqlite_only`, runs on a SQLite file in its home.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from dalsegno.engine.runner import EngineConfig
from dalsegno.service.executions import ExecutionService
from dalsegno.store import Store, open_store

TESTS = Path(__file__).parent
WORKFLOWS = TESTS / "workflows"

BACKENDS = ("sqlite", "postgres")
# The suites that run on both backends, by path under tests/ (a directory ends in "/").
MATRIX = (
    "integration/",
    "acceptance/test_crash_points.py",
    "acceptance/test_crash_resume.py",
    "acceptance/test_deployments_cli.py",
    "acceptance/test_lifecycle.py",
    "acceptance/test_subgraphs_crash.py",
    "acceptance/test_deployments_crash.py",
    "acceptance/test_deployments_example.py",
    "acceptance/test_executions_by_deployment.py",
    "acceptance/test_run_settings.py",
    "acceptance/test_manager_process.py",
    "agents/test_agents_e2e.py",
    "agents/test_agent_subgraphs.py",
    "faults/",
    "agents/test_exchange.py",
    "agents/test_agent_signals.py",
    "agents/test_lifecycle_agents.py",
    "acceptance/test_agent_torture.py",
)
# Tests of those suites that look at the SQLite file itself; a new one is marked instead.
SQLITE_ONLY = {
    (
        "acceptance/test_manager_process.py",
        "test_a_paused_manager_loses_its_lease_and_its_writes_are_refused",
    ): "get_token() reads the lease token from the SQLite file",
}
# The server the postgres tests use; its database is where this session creates theirs.
POSTGRES_URL = os.environ.get("DALSEGNO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a test of the matrix suites once per backend, unless it is SQLite-only."""
    if "backend" not in metafunc.fixturenames:
        return
    path = Path(metafunc.definition.path).relative_to(TESTS).as_posix()
    if not path.startswith(MATRIX) or (path, metafunc.definition.originalname) in SQLITE_ONLY:
        return
    if metafunc.definition.get_closest_marker("sqlite_only") is not None:
        return
    only = metafunc.definition.get_closest_marker("postgres_only") is not None
    metafunc.parametrize("backend", ["postgres"] if only else BACKENDS, indirect=True)


# The session's bytecode cache, and the PYTHONDONTWRITEBYTECODE it took out of the environment.
PYCACHE = pytest.StashKey[tuple[Path, str | None]]()


def pytest_configure(config: pytest.Config) -> None:
    """The processes the tests start (the CLI, managers, agents: well over a thousand) share
    a bytecode cache in a directory of this session. Without it, where PYTHONDONTWRITEBYTECODE
    is set (as on the machine CI runs on), each one compiles dalsegno and its libraries again:
    a sixth of a CLI command's CPU time. The source tree is left as it is."""
    if os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    prefix = Path(tempfile.mkdtemp(prefix="dalsegno-tests-pycache-"))
    config.stash[PYCACHE] = (prefix, os.environ.pop("PYTHONDONTWRITEBYTECODE", None))
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's bytecode cache; the environment is as it was."""
    if PYCACHE not in config.stash:
        return
    prefix, dont_write = config.stash[PYCACHE]
    del os.environ["PYTHONPYCACHEPREFIX"]
    if dont_write is not None:
        os.environ["PYTHONDONTWRITEBYTECODE"] = dont_write
    shutil.rmtree(prefix, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`db_restart` tests restart the PostgreSQL server, cutting every other test's
    connections: they run last, one after the other (the sort keeps their order)."""
    items.sort(key=lambda item: item.get_closest_marker("db_restart") is not None)


class PostgresServer:
    """The PostgreSQL server of the tests: creates and drops databases on it."""

    def __init__(self, url: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        self.url = make_url(url)
        self.session = uuid.uuid4().hex[:8]
        self.template = f"dalsegno_tpl_{self.session}"
        self._count = 0
        self.admin = psycopg.connect(
            self.dsn(self.url.database or "postgres"), autocommit=True, connect_timeout=5
        )

    def reconnect(self) -> None:
        """A new admin connection: a restart of the server (a `db_restart` test) cut it."""
        import psycopg

        self.admin.close()
        self.admin = psycopg.connect(
            self.dsn(self.url.database or "postgres"), autocommit=True, connect_timeout=5
        )

    def dsn(self, database: str, user: str | None = None, password: str | None = None) -> str:
        """A libpq URL of `database` (for psql-like clients and psycopg)."""
        return self.store_url(database, user, password).replace("postgresql+psycopg", "postgresql")

    def store_url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        """A dalsegno store URL of `database`, its user and password URL-escaped."""
        user = user or self.url.username or "postgres"
        password = password if password is not None else self.url.password
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        host = f"{self.url.host or '127.0.0.1'}:{self.url.port or 5432}"
        return f"postgresql://{auth}@{host}/{database}"

    def create(self, template: str | None = None) -> str:
        """A new database (a copy of `template`, else empty); returns its name."""
        self._count += 1
        name = f"dalsegno_t_{self.session}_{self._count}"
        source = f" TEMPLATE {template}" if template else ""
        self.admin.execute(f"CREATE DATABASE {name}{source}")
        return name

    def drop(self, name: str) -> None:
        """Drop `name`, ending whatever is still connected (a killed manager's sockets)."""
        self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        self.drop(self.template)
        self.admin.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The server, with a template database at the schema's head; unreachable: in CI the
    postgres tests fail, elsewhere they are skipped with the reason."""
    try:
        server = PostgresServer(POSTGRES_URL)
    except Exception as exc:
        reason = f"PostgreSQL is not reachable at {POSTGRES_URL} (DALSEGNO_TEST_POSTGRES): {exc}"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        server.admin.execute(f"CREATE DATABASE {server.template}")
        open_store(server.store_url(server.template)).close()  # migrated once a session
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_database(postgres: PostgresServer) -> Iterator[str]:
    """A fresh database at the schema's head, dropped after the test; yields its name."""
    name = postgres.create(template=postgres.template)
    try:
        yield name
    finally:
        postgres.drop(name)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend of this test: `sqlite` unless the matrix made it `postgres`."""
    return str(getattr(request, "param", "sqlite"))


# The store URL of each home whose test runs on PostgreSQL, for the CLI processes it starts.
HOME_STORES: dict[Path, str] = {}


@pytest.fixture
def home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """A fresh DALSEGNO_HOME; the store is the SQLite file inside it, or on the postgres
    backend a fresh database, named to this process and to the CLI by `DALSEGNO_STORE`."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("DALSEGNO_HOME", str(path))
    monkeypatch.delenv("DALSEGNO_STORE", raising=False)
    monkeypatch.delenv("DALSEGNO_MANAGER", raising=False)
    if backend == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.store_url(request.getfixturevalue("postgres_database"))
        monkeypatch.setenv("DALSEGNO_STORE", url)
        HOME_STORES[path] = url
    yield path
    HOME_STORES.pop(path, None)


@pytest.fixture
def store_url(home: Path) -> str:
    return HOME_STORES.get(home) or f"sqlite:///{home / 'dalsegno.db'}"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def service(store: Store) -> ExecutionService:
    """The service layer on the test's store, with short timers for tests."""
    return ExecutionService(
        store, EngineConfig(concurrency=4, lease_timeout=3.0, poll_interval=0.05)
    )


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI process on `home` and its test's store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DALSEGNO_")}
    env["DALSEGNO_HOME"] = str(home)
    if home in HOME_STORES:
        env["DALSEGNO_STORE"] = HOME_STORES[home]
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(
    home: Path, *args: str, cwd: Path = WORKFLOWS, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `python -m dalsegno ARGS` in a real subprocess and wait for it."""
    return subprocess.run(
        [sys.executable, "-m", "dalsegno", *args],
        cwd=cwd,
        env=cli_env(home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(home: Path, *args: str, cwd: Path = WORKFLOWS, **env: str) -> subprocess.Popen[str]:
    """Start `python -m dalsegno ARGS` in a real subprocess and return at once."""
    return subprocess.Popen(
        [sys.executable, "-m", "dalsegno", *args],
        cwd=cwd,
        env=cli_env(home, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def cli(home: Path):  # type: ignore[no-untyped-def]
    """`cli("run", "basic.py:deploy", "-p", "hosts=2")` -> CompletedProcess."""

    def call(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return run_cli(home, *args, **kwargs)

    return call
