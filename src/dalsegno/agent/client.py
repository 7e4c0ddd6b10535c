"""The manager's agent endpoints (`/api/v1/agents/...`), over the standard library's
`http.client`.

Every call ends in one of three ways: an answer (a dict), `Refused` (the manager said no:
a 4xx, which repeating cannot change), or `Unreachable` (no answer, or a 5xx: the manager
may be restarting, so the caller tries again later).

Not httpx (the CLI's client): an agent with one slot waits for each exchange before its
next task, and httpx spent 0.7 ms of the agent's CPU per call where `http.client` spends
0.25 (benchmarks/agents.py, 1 agent x 1 slot; docs/agents.md). Each thread of the agent
keeps one keep-alive connection of its own; one that the manager closed while it was idle
is opened anew before it is used, never found closed by the request sent on it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

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
    """The two calls an agent makes (exchange, heartbeat). Threads may share it: a
    long-poll exchange holds its thread's connection while a heartbeat or a delivery
    uses another thread's."""

    def __init__(
        self, manager_url: str, token: str, timeout: float = 10.0, cacert: str | None = None
    ) -> None:
        self.base_url = api_url(manager_url)
        parts = urlsplit(self.base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._path = parts.path
        verify = tls_verify(cacert)
        self._tls = verify if isinstance(verify, ssl.SSLContext) else None
        if self._https and self._tls is None:
            self._tls = ssl.create_default_context()
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self._timeout = timeout
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()
        self._closed = False

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
        """Close every thread's connection; a call after this is `Unreachable`."""
        with self._lock:
            self._closed = True
            found, self._open = list(self._open), set()
        for conn in found:
            _drop(conn)

    def _post(
        self, path: str, body: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        payload = json.dumps(body, allow_nan=False).encode()
        conn = self._connection()
        try:
            if conn.sock is None:  # a new connection: 5 s to connect, as before
                conn.connect()
            conn.sock.settimeout(self._timeout if timeout is None else timeout)
            conn.request("POST", self._path + path, payload, self._headers)
            response = conn.getresponse()
            status, data = response.status, response.read()
            if response.will_close:
                self._forget(conn)
        except (OSError, http.client.HTTPException) as exc:
            self._forget(conn)
            raise Unreachable(f"{type(exc).__name__}: {exc}") from None
        if status >= 500:
            raise Unreachable(f"{status}: {_reason(data, response.reason)}")
        if status >= 400:
            raise Refused(status, _reason(data, response.reason))
        try:
            found = json.loads(data)
        except ValueError:
            raise Unreachable(f"not JSON: {data[:200]!r}") from None
        if not isinstance(found, dict):
            raise Unreachable(f"not a JSON object: {found!r:.200}")
        return found

    def _connection(self) -> http.client.HTTPConnection:
        """This thread's connection: a new one if it has none, or if the manager closed it
        while it was idle (something to read before a request: its last words, or EOF)."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and (conn not in self._open or _closed_by_peer(conn)):
            self._forget(conn)
            conn = None
        if conn is None:
            with self._lock:
                if self._closed:
                    raise Unreachable("the client is closed")
                if self._https:
                    conn = http.client.HTTPSConnection(
                        self._host, self._port, timeout=_CONNECT, context=self._tls
                    )
                else:
                    conn = http.client.HTTPConnection(self._host, self._port, timeout=_CONNECT)
                self._open.add(conn)
            self._local.conn = conn
        return conn

    def _forget(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._open.discard(conn)
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        _drop(conn)


_CONNECT = 5.0  # seconds to open a connection to the manager


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """An idle connection has nothing to read unless the manager closed it."""
    if conn.sock is None:
        return True
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _drop(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # wakes a thread waiting on it (close() may not)
            sock.shutdown(socket.SHUT_RDWR)
    conn.close()


def _reason(data: bytes, phrase: str) -> str:
    try:
        found = json.loads(data)
    except ValueError:
        return data[:200].decode(errors="replace") or phrase
    if isinstance(found, dict) and isinstance(found.get("error"), str):
        return str(found["error"])
    return str(found)[:200]
