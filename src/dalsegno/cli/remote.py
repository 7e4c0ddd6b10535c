"""The CLI's remote mode: the REST API of a manager (docs/interface.md, "REST API"), over httpx.

Records come back as the JSON dicts the API answers, the same ones the CLI prints with
`--json` in local mode (`dalsegno.service.views`). Every failure is a `RemoteError` with a
one-line reason, which the CLI prints and turns into exit code 2.
"""

from __future__ import annotations

import builtins
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dalsegno.model.errors import DalsegnoError
from dalsegno.service import default_home
from dalsegno.service.tokens import read_token_file

if TYPE_CHECKING:  # httpx is imported when a client is made: a local command never needs it
    import httpx

API_PREFIX = "/api/v1"
NEXT_CURSOR = "x-next-cursor"
TOKEN_ENV = "DALSEGNO_TOKEN"  # noqa: S105 - the name of a variable, not a secret
# Connecting to a manager is quick or never happens; an answer may take a while when a
# long events list is read from a busy store.
READ_TIMEOUT, CONNECT_TIMEOUT = 30.0, 5.0


class RemoteError(DalsegnoError):
    """The manager refused a request, or could not be asked; `status` is its HTTP code."""

    def __init__(
        self, message: str, status: int | None = None, *, unreachable: bool = False
    ) -> None:
        super().__init__(" ".join(message.split()))
        self.status = status
        self.unreachable = unreachable  # no answer at all: the manager may be restarting


def resolve_token(token: str | None, token_file: str | None) -> str:
    """The token: `--token`, then `--token-file`, then `DALSEGNO_TOKEN`, then the file
    `$DALSEGNO_HOME/token` the manager writes on its first start."""
    if token is not None:
        if not token.strip():
            msg = "--token is empty"
            raise RemoteError(msg)
        return token.strip()
    if token_file is not None:
        return _read_token(Path(token_file).expanduser(), "--token-file")
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env
    default = default_home() / "token"
    if not os.path.lexists(default):
        msg = (
            f"no token for the manager: pass --token or --token-file, set {TOKEN_ENV}, "
            f"or put it in {default}"
        )
        raise RemoteError(msg)
    return _read_token(default, "the token file")


def _read_token(path: Path, what: str) -> str:
    """The token in `path`, refused unless the file may be trusted (`read_token_file`)."""
    return read_token_file(path, what)


def api_url(manager_url: str) -> str:
    """The API's base URL: the manager URL with `/api/v1`, unless it ends with it already
    (the one rule the agent follows too)."""
    from dalsegno.agent.client import api_url as normalized

    try:
        return normalized(manager_url)
    except ValueError as exc:
        raise RemoteError(str(exc)) from None


class RemoteClient:
    """Start, list, read, resume and cancel executions through a manager's REST API.

    One httpx client (a connection pool, safe to share between threads: a Ctrl-C handler
    sends its cancel from another thread while the main one follows the events).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float | httpx.Timeout | None = None,
        cacert: str | None = None,
    ) -> None:
        import httpx

        from dalsegno.agent.client import tls_verify

        if timeout is None:
            timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)

        self.manager_url = base_url.strip().rstrip("/")
        self.base_url = api_url(base_url)
        self.timeout = timeout
        try:
            verify = tls_verify(cacert)
        except ValueError as exc:
            raise RemoteError(str(exc)) from None
        self._http = httpx.Client(
            verify=verify,
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            follow_redirects=False,
            trust_env=True,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # the API ---------------------------------------------------------------------

    def start(
        self,
        workflow: str,
        params: dict[str, Any] | None = None,
        lock: str | None = None,
        texts: dict[str, str] | None = None,
        *,
        dry_run: bool = False,
        task_retries: int | None = None,
        task_retry_interval: float | None = None,
        deployment: str | None = None,
    ) -> dict[str, Any]:
        """A new `pending` (or `queued`, behind its lock) execution, which the manager runs;
        `texts` are the command-line texts of `-p` values (`param_texts` in the body)."""
        body: dict[str, Any] = {"workflow": workflow, "params": params or {}}
        if lock is not None:
            body["lock"] = lock
        if dry_run:
            body["dry_run"] = True
        if task_retries is not None:
            body["task_retries"] = task_retries
        if task_retry_interval is not None:
            body["task_retry_interval"] = task_retry_interval
        if deployment is not None:
            body["deployment_id"] = deployment
        if texts:
            body["param_texts"] = texts
        return self._object(self._call("POST", "/executions", json=body))

    def list(self, status: str | None = None) -> builtins.list[dict[str, Any]]:
        """Executions, newest first (the first page)."""
        query = {"status": status} if status is not None else None
        return self._objects(self._call("GET", "/executions", params=query))

    def page(
        self, path: str, query: dict[str, Any]
    ) -> tuple[builtins.list[dict[str, Any]], str | None, bool]:
        """A page of a list: its rows, the cursor after them, and whether it was full."""
        body, headers = self._call("GET", path, params=query, with_headers=True)
        cursor = headers.get(NEXT_CURSOR)
        return self._objects(body), cursor, "link" in headers

    def executions_page(
        self, query: dict[str, Any]
    ) -> tuple[builtins.list[dict[str, Any]], str | None, bool]:
        """A page of executions, newest first (`GET /executions` with `query`)."""
        return self.page("/executions", query)

    def tasks_page(
        self, execution_id: str, query: dict[str, Any]
    ) -> tuple[builtins.list[dict[str, Any]], str | None, bool]:
        """A page of the execution's tasks, without their results."""
        return self.page(_path(execution_id, "tasks"), query)

    def events_page(
        self, execution_id: str, query: dict[str, Any]
    ) -> tuple[builtins.list[dict[str, Any]], str | None, bool]:
        """A page of the execution's events, oldest first."""
        return self.page(_path(execution_id, "events"), query)

    def task(self, execution_id: str, task: str, graph: str | None = None) -> dict[str, Any]:
        """One task by its key, with its attempts and last events."""
        path = _path(execution_id, "tasks") + "/" + quote(task, safe="").replace(".", "%2E")
        query = {"graph": graph} if graph is not None else None
        return self._object(self._call("GET", path, params=query))

    def get(self, execution_id: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
        """One execution with its tasks (the id may be a unique prefix); `query` filters
        the tasks (`graph`, `status`, `limit`)."""
        return self._object(self._call("GET", _path(execution_id), params=query or None))

    def resume(
        self, execution_id: str, reset_operations: bool = False, dry_run: bool = False
    ) -> dict[str, Any]:
        """Hand the execution back to the manager (the execution), or with `dry_run` the
        plan of what a resume would do."""
        body = {"reset_operations": reset_operations, "dry_run": dry_run}
        return self._object(self._call("POST", _path(execution_id, "resume"), json=body))

    def cancel(self, execution_id: str, mode: str = "cancel") -> dict[str, Any]:
        """Ask to cancel (`cancel`, `force` or `kill`); the execution as it now is."""
        body = {"mode": mode}
        return self._object(self._call("POST", _path(execution_id, "cancel"), json=body))

    def events(
        self, execution_id: str, after: str | None = None, **filters: Any
    ) -> builtins.list[dict[str, Any]]:
        """The execution's events, oldest first, after the event id `after`: every page
        of them, of a task, a graph, a level and up, some types (`filters`)."""
        names = {"types": "type"}  # the REST API's name of the filter
        query: dict[str, Any] = {
            names.get(key, key): value for key, value in filters.items() if value
        }
        if after is not None:
            query["after"] = after
        found: builtins.list[dict[str, Any]] = []
        while True:
            rows, cursor, more = self.events_page(execution_id, query)
            found.extend(rows)
            if not more or cursor is None:
                return found
            query.pop("after", None)
            query["cursor"] = cursor

    def task_counts(self, execution_id: str) -> dict[str, int]:
        """How many tasks of the execution are in each state (for a progress bar)."""
        counts: dict[str, int] = {}
        for task in self.get(execution_id).get("tasks", []):
            status = str(task.get("status"))
            counts[status] = counts.get(status, 0) + 1
        return counts

    # plumbing --------------------------------------------------------------------

    def _call(self, method: str, path: str, *, with_headers: bool = False, **kwargs: Any) -> Any:
        import httpx

        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                msg = f"cannot reach the manager at {self.manager_url}: connect timed out"
            else:
                msg = f"the manager at {self.manager_url} did not answer in time ({exc})"
            raise RemoteError(msg, unreachable=True) from None
        except httpx.ConnectError as exc:
            if _is_tls(exc):  # not a restart: the certificate is not one this CLI trusts
                msg = (
                    f"cannot talk to the manager at {self.manager_url} over TLS: {_reason(exc)}"
                    " (give its CA or self-signed certificate with --cacert FILE)"
                )
                raise RemoteError(msg) from None
            msg = f"cannot reach the manager at {self.manager_url}: {_reason(exc)}"
            raise RemoteError(msg, unreachable=True) from None
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            # Refused, reset or cut off mid-answer: the manager may be restarting.
            msg = f"cannot reach the manager at {self.manager_url}: {_reason(exc)}"
            raise RemoteError(msg, unreachable=True) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            msg = f"malformed manager URL {self.manager_url!r}: {exc}"
            raise RemoteError(msg) from None
        except httpx.HTTPError as exc:
            msg = f"talking to the manager at {self.manager_url} failed: {_reason(exc)}"
            raise RemoteError(msg) from None
        body = self._answer(method, path, answer)
        return (body, answer.headers) if with_headers else body

    def _answer(self, method: str, path: str, answer: httpx.Response) -> Any:
        code = answer.status_code
        try:
            body = answer.json()
        except ValueError:
            body = None
        if 200 <= code < 300:
            if body is None:
                msg = f"the manager answered {method} {path} with something that is not JSON"
                raise RemoteError(msg, code)
            return body
        reason = body.get("error") if isinstance(body, dict) else None
        if not isinstance(reason, str) or not reason.strip():
            reason = answer.reason_phrase or f"HTTP {code}"
        if code in (401, 403):
            msg = f"the manager refused the token: {reason}"
            raise RemoteError(msg, code)
        if code >= 500:
            msg = f"the manager failed on {method} {path} (HTTP {code}): {reason}"
            raise RemoteError(msg, code)
        if 300 <= code < 400:
            msg = (
                f"the manager at {self.manager_url} redirects {method} {path} (HTTP {code}): "
                "is this the manager's URL?"
            )
            raise RemoteError(msg, code)
        raise RemoteError(reason, code)

    def _object(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            msg = f"unexpected answer from the manager: expected an object, got {_kind(body)}"
            raise RemoteError(msg)
        return body

    def _objects(self, body: Any) -> builtins.list[dict[str, Any]]:
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            msg = f"unexpected answer from the manager: expected a list, got {_kind(body)}"
            raise RemoteError(msg)
        return body


def _path(execution_id: str, action: str | None = None) -> str:
    """`/executions/ID[/action]`; the id is quoted whole, so it can never leave its place."""
    if not isinstance(execution_id, str) or not execution_id.strip():
        msg = "an execution id is required"
        raise RemoteError(msg)
    quoted = quote(execution_id.strip(), safe="").replace(".", "%2E")
    path = f"/executions/{quoted}"
    return f"{path}/{action}" if action else path


def _is_tls(exc: Exception) -> bool:
    import ssl

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSL" in str(exc)


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _kind(value: Any) -> str:
    return "JSON " + type(value).__name__ if value is not None else "nothing"
