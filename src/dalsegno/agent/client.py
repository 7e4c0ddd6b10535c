"""The manager's agent endpoints (`/api/v1/agents/...`), over httpx.

Every call ends in one of three ways: an answer (a dict), `Refused` (the manager said no:
a 4xx, which repeating cannot change), or `Unreachable` (no answer, or a 5xx: the manager
may be restarting, so the caller tries again later).
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

API_PREFIX = "/api/v1"
# A long-poll exchange waits up to this long on the manager; the read timeout adds a margin.
CLAIM_WAIT = 30.0
_MARGIN = 10.0


class Unreachable(Exception):
    """No answer from the manager, or a 5xx: try again later."""


class Refused(Exception):
    """The manager refused the request (4xx); `status` is its HTTP code."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


def api_url(manager_url: str) -> str:
    """The API's base URL: the manager URL with `/api/v1`, unless it ends with it already."""
    url = manager_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        msg = f"the manager URL must start with http:// or https://, not {manager_url!r}"
        raise ValueError(msg)
    return url if url.endswith(API_PREFIX) else url + API_PREFIX


def tls_verify(cacert: str | None) -> ssl.SSLContext | bool:
    """How https:// answers are checked: against the CA certificate(s) in `cacert` (PEM:
    a private CA, or a self-signed certificate), else against the system's CAs. ValueError
    when `cacert` cannot be read."""
    if cacert is None:
        return True
    try:
        return ssl.create_default_context(cafile=cacert)
    except (OSError, ssl.SSLError) as exc:
        msg = f"cannot use --cacert {cacert}: {getattr(exc, 'strerror', None) or exc}"
        raise ValueError(msg) from None


class ManagerClient:
    """The two calls an agent makes (exchange, heartbeat). One httpx client, a connection
    pool that threads may share (httpx documents `Client` as thread-safe): a long-poll
    exchange holds one connection while a heartbeat or a delivery takes another."""

    def __init__(
        self, manager_url: str, token: str, timeout: float = 10.0, cacert: str | None = None
    ) -> None:
        self.base_url = api_url(manager_url)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=5.0),
            follow_redirects=False,
            verify=tls_verify(cacert),
        )

    def exchange(
        self,
        queue: str,
        agent: str,
        results: list[dict[str, Any]],
        limit: int,
        wait: float,
        claim_id: str,
        repeat: bool = False,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Deliver results, then claim and start up to `limit` tasks, waiting up to `wait`
        seconds for some: the answer for each result, and the tasks (already `started`)."""
        answer = self._post(
            "/agents/exchange",
            {
                "queue": queue,
                "agent": agent,
                "results": results,
                "limit": limit,
                "wait": wait,
                "claim_id": claim_id,
                "repeat": repeat,
            },
            timeout=wait + _MARGIN,
        )
        answers, tasks = answer.get("results"), answer.get("tasks")
        if not isinstance(answers, list) or not isinstance(tasks, list):
            raise Unreachable(f"malformed exchange answer: {answer!r:.200}")
        return (
            [found for found in answers if isinstance(found, dict)],
            [task for task in tasks if isinstance(task, dict)],
        )

    def heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/agents/heartbeat", body)

    def close(self) -> None:
        self._http.close()

    def _post(
        self, path: str, body: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(timeout, connect=5.0)
        try:
            response = self._http.post(path, json=body, **extra)
        except httpx.HTTPError as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 500:
            raise Unreachable(f"{response.status_code}: {_reason(response)}")
        if response.status_code >= 400:
            raise Refused(response.status_code, _reason(response))
        try:
            found = response.json()
        except ValueError:
            raise Unreachable(f"not JSON: {response.text[:200]!r}") from None
        if not isinstance(found, dict):
            raise Unreachable(f"not a JSON object: {found!r:.200}")
        return found


def _reason(response: httpx.Response) -> str:
    try:
        found = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(found, dict) and isinstance(found.get("error"), str):
        return str(found["error"])
    return str(found)[:200]
