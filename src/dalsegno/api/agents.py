"""`/agents`: the agent protocol (exchange, heartbeat; and the first protocol's claim,
started and result), agents and tokens.

An agent's token is scoped `queue:NAME`: it may claim from, beat for and report on that
queue only (403 otherwise); the admin token may do everything. docs/agents.md tells the
protocol. The handlers are plain functions FastAPI runs in its thread pool, but for the
claims: their long-poll waits as a coroutine, so waiting agents hold none of its threads.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Security
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictBool, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Message, Receive, Scope, Send

from dalsegno.api.auth import MANAGE, READ, bearer, caller_of, queue_scope, require
from dalsegno.api.errors import ApiError, JsonResponse, responses
from dalsegno.api.schemas import WholeNumber
from dalsegno.model.access import TOKEN_NAME_PATTERN, Role
from dalsegno.model.names import NAME_LIMIT, NAME_PATTERN
from dalsegno.service.agents import (
    MAX_LIMIT,
    MAX_RESULTS,
    MAX_WAIT,
    AgentService,
    agent_json,
)
from dalsegno.store.agent_records import AgentBeat, AgentLog, AgentReport, Delivery, Exchange

# the rule the service checks (dalsegno.model.names), so the schema admits what it takes
Name = Annotated[str, Field(min_length=1, max_length=NAME_LIMIT, pattern=NAME_PATTERN)]
AttemptId = Annotated[str, Path(max_length=64, description="an attempt id from a claim")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimRequest(_Body):
    queue: Name
    agent: Name = Field(description="the agent's name (`--name`, default HOST:PID)")
    limit: WholeNumber = Field(default=1, ge=1, le=MAX_LIMIT)
    wait: float = Field(
        default=MAX_WAIT, ge=0, le=MAX_WAIT, strict=True, description="seconds to wait"
    )


class Assignment(BaseModel):
    attempt_id: str
    execution_id: str
    graph: str
    task_key: str
    operation: str
    kwargs: dict[str, Any]
    retries: int
    resume: bool
    idempotency_key: str
    timeout: float | None
    process: bool
    attempt: int = Field(description="the attempt's number, 0 for the first (`ctx.attempt`)")
    lifecycle: dict[str, Any] | None = Field(
        default=None,
        description="a lifecycle task: what its operation sees (binding, deployment,"
        " instances, nodes), read when its attempt started (docs/lifecycle.md)",
    )
    lifecycle_error: str | None = Field(
        default=None,
        description="a lifecycle task whose instance or deployment is gone: the agent fails"
        " the attempt with this (not recoverable)",
    )


class Claimed(BaseModel):
    tasks: list[Assignment]


class AgentRequest(_Body):
    agent: Name


class Started(BaseModel):
    attempt_id: str
    status: Literal["started"]


class LogLine(_Body):
    level: Literal["debug", "info", "warning", "error"] = "info"
    message: str = Field(max_length=100_000)
    created_at: float = Field(default=0.0, ge=0, strict=True)


class InstanceChangeDoc(_Body):
    """What a lifecycle operation changed of one instance (its state is the owner's word)."""

    instance_id: Annotated[str, Field(min_length=1, max_length=255)]
    state: str | None = Field(default=None, max_length=20)
    set: dict[str, JsonValue] = Field(default_factory=dict)
    unset: list[Annotated[str, Field(max_length=100_000)]] = Field(
        default_factory=list, max_length=10_000
    )


def _instances() -> Any:
    return Field(
        default=None,
        max_length=3,
        description="a lifecycle task's success: the runtime properties its operation set"
        " and removed, per instance (applied with the task's success by the owner)",
    )


class ResultRequest(_Body):
    agent: Name
    outcome: Literal["succeeded", "failed", "retry"]
    result: JsonValue = None
    error: str | None = Field(default=None, max_length=100_000)
    recoverable: StrictBool = True
    retry_after: float | None = Field(default=None, ge=0, strict=True)
    logs: list[LogLine] = Field(default_factory=list, max_length=10_000)
    instances: list[InstanceChangeDoc] | None = _instances()


class DeliveredResult(_Body):
    attempt_id: Annotated[str, Field(min_length=1, max_length=64)]
    agent: Name | None = Field(
        default=None,
        description="the agent that ran it, when not the caller (a predecessor that left"
        " it in the outbox before a restart under another name)",
    )
    outcome: Literal["succeeded", "failed", "retry", "released"] = Field(
        description="`released`: the agent got the task but never ran it (it was stopping)"
    )
    result: JsonValue = None
    error: str | None = Field(default=None, max_length=100_000)
    recoverable: StrictBool = True
    retry_after: float | None = Field(default=None, ge=0, strict=True)
    logs: list[LogLine] = Field(default_factory=list, max_length=10_000)
    instances: list[InstanceChangeDoc] | None = _instances()


class ExchangeRequest(_Body):
    queue: Name
    agent: Name = Field(description="the agent's name (`--name`, default HOST:PID)")
    results: list[DeliveredResult] = Field(default_factory=list, max_length=MAX_RESULTS)
    limit: WholeNumber = Field(
        default=0, ge=0, le=MAX_LIMIT, description="tasks to claim (0: none)"
    )
    wait: float = Field(
        default=0, ge=0, le=MAX_WAIT, strict=True, description="seconds a claim may wait"
    )
    claim_id: str = Field(
        pattern=r"^[A-Za-z0-9_]{8,40}$",
        description="names this claim: the same id again, with `repeat`, gets back what it took",
    )
    repeat: StrictBool = Field(
        default=False, description="this call repeats one whose answer never came"
    )


class ResultAnswer(BaseModel):
    attempt_id: str
    status: Literal["accepted", "duplicate", "conflict", "unknown"]


class Exchanged(BaseModel):
    results: list[ResultAnswer]
    tasks: list[Assignment]


class Accepted(BaseModel):
    attempt_id: str
    accepted: Literal[True]


class HeartbeatRequest(_Body):
    queue: Name
    agent: Name
    host: Name
    pid: WholeNumber = Field(ge=0, le=2**31 - 1)
    concurrency: WholeNumber = Field(ge=1, le=100_000)
    attempts: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=10_000
    )


class HeartbeatAnswer(BaseModel):
    kill: list[str]
    unknown: list[str]
    interval: float
    waiting_beats: bool = Field(
        default=False,
        description="true: an exchange that waits in a long-poll on this manager counts as"
        " its agent's heartbeat (an agent that holds nothing need not beat meanwhile)",
    )


class HeldTask(BaseModel):
    attempt_id: str
    execution_id: str
    graph: str
    task_key: str
    status: str


class Agent(BaseModel):
    name: str
    queue: str
    host: str
    pid: int
    concurrency: int
    last_heartbeat_at: float
    running: list[HeldTask]


class TokenRequest(_Body):
    queue: Name
    name: Annotated[str, Field(pattern=TOKEN_NAME_PATTERN)] | None = Field(
        default=None, description="the token's name (default: `agent-` and 8 hex digits)"
    )


class AgentToken(BaseModel):
    queue: str
    token: str
    name: str = Field(description="what `dalsegno tokens revoke NAME` takes")


def _attempt_answers() -> dict[int | str, dict[str, Any]]:
    found = responses(404, 409)
    found[404] = {**found[404], "description": "An unknown attempt id."}
    found[409] = {**found[409], "description": "The attempt is not held by this agent."}
    return found


def _agent(request: Request) -> None:
    """An attempt's routes: an agent's token or an admin, before the attempt is looked up
    (a person's token learns nothing of attempts)."""
    caller = caller_of(request)
    if caller.role not in (Role.AGENT, Role.ADMIN):
        msg = "this token may not do this: it needs an agent's token, or the admin role"
        raise ApiError(403, msg)


def _check_queue(request: Request, queue: str) -> None:
    if not caller_of(request).serves(queue):
        msg = f"this token may not serve queue {queue!r}: it needs the {queue_scope(queue)} scope"
        raise ApiError(403, msg)


async def _token(_: object = Security(bearer)) -> None:
    """Declares the bearer token; the middleware checked it, each route checks its scope."""


async def _long_poll(
    request: Request,
    service: AgentService,
    queue: str,
    wait: float,
    look: Callable[[], list[Any]],
    agent: str | None = None,
) -> list[Any]:
    """`look()` (in the thread pool) until it finds tasks, waiting between two looks as a
    coroutine for tasks of `queue` to be claimable: a waiting claim holds no thread.

    An agent that went away while its claim waited (stopped, killed: its connection is
    closed) claims nothing more: a claim that starts tasks must not start them for no one.
    """
    if wait <= 0:
        return await run_in_threadpool(look)
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake() -> None:
        loop.call_soon_threadsafe(woken.set)

    stop = service.on_tasks(queue, wake, agent)
    try:
        deadline = loop.time() + wait
        while True:
            woken.clear()  # before looking: a wake-up from here on ends the wait
            found = await run_in_threadpool(look)
            left = deadline - loop.time()
            if found or left <= 0 or service.closing:
                return found
            # The first look also resumes reading the connection (uvicorn pauses it once
            # the body is in), so a close while the claim waits is seen by the second.
            if await request.is_disconnected():
                return []
            try:
                await asyncio.wait_for(woken.wait(), left)
            except TimeoutError:
                # Nothing was claimable at any look of the signals since (they look at
                # least every second): the agent's next call looks first, no need to here.
                return []
            if await request.is_disconnected():
                return []
    finally:
        stop()


def agents_router(service: AgentService) -> APIRouter:
    router = APIRouter(
        prefix="/agents",
        tags=["agents"],
        dependencies=[Depends(_token)],
        responses=responses(400, 401, 403, 422),
    )
    admin, reads = [Depends(require(MANAGE))], [Depends(require(READ))]

    @router.post(
        "/claim", response_model=Claimed, response_class=JsonResponse, summary="Claim tasks"
    )
    async def claim(request: Request, body: ClaimRequest) -> dict[str, Any]:
        """Long-poll: tasks of the queue, held by the agent, as soon as there are any, or
        none after `wait` seconds. Claimed tasks stay `sent` until the agent starts them."""
        _check_queue(request, body.queue)
        wait = service.check_claim(body.queue, body.agent, body.limit, body.wait)

        def look() -> list[Any]:
            return service.claim_now(body.queue, body.agent, body.limit)

        return {"tasks": await _long_poll(request, service, body.queue, wait, look)}

    @router.post(
        "/exchange",
        response_model=Exchanged,
        response_class=JsonResponse,
        summary="Deliver results, claim and start tasks",
    )
    async def exchange(request: Request, body: ExchangeRequest) -> JsonResponse:
        """Records the results (each answered: `accepted` or `duplicate` are kept, the
        others will never be), then claims up to `limit` tasks of the queue and starts
        them (`started` is durable when this answers), all in one transaction. With none
        to claim and no result delivered, waits up to `wait` seconds for some. A call
        repeated with the same `claim_id` (its answer was lost) gets back the tasks that
        claim started."""
        return await exchanged(request, service, body)

    @router.post(
        "/attempts/{attempt_id}/started",
        response_model=Started,
        response_class=JsonResponse,
        responses=_attempt_answers(),
        summary="Report that an attempt starts",
    )
    def started(request: Request, attempt_id: AttemptId, body: AgentRequest) -> dict[str, Any]:
        """The task moves `sent -> started` (durable); run the operation only after this.
        409: the agent does not hold it any more and must not run it."""
        _agent(request)
        _check_queue(request, service.queue_of(attempt_id))
        return service.start(attempt_id, body.agent)

    @router.post(
        "/attempts/{attempt_id}/result",
        response_model=Accepted,
        response_class=JsonResponse,
        responses=_attempt_answers(),
        summary="Deliver an attempt's result",
    )
    def result(request: Request, attempt_id: AttemptId, body: ResultRequest) -> dict[str, Any]:
        """Recorded durably for the execution's owner; a repeat is a harmless 200.
        409: the attempt is not held by this agent (lost, killed): dropped for good."""
        _agent(request)
        _check_queue(request, service.queue_of(attempt_id))
        return service.report(attempt_id, body.agent, _report(body))

    @router.post(
        "/heartbeat",
        response_model=HeartbeatAnswer,
        response_class=JsonResponse,
        summary="Heartbeat of an agent",
    )
    def heartbeat(request: Request, body: HeartbeatRequest) -> dict[str, Any]:
        """Registers the agent; answers the attempts to kill and those it no longer holds."""
        _check_queue(request, body.queue)
        beat = AgentBeat(
            body.queue, body.agent, body.host, body.pid, body.concurrency, list(body.attempts)
        )
        return service.heartbeat(beat)

    @router.get(
        "",
        response_model=list[Agent],
        response_class=JsonResponse,
        dependencies=reads,
        summary="List agents",
    )
    def list_agents() -> list[dict[str, Any]]:
        """Agents with their queue, last heartbeat and the tasks they hold."""
        return [agent_json(agent) for agent in service.list_agents()]

    @router.post(
        "/tokens",
        status_code=201,
        response_model=AgentToken,
        response_class=JsonResponse,
        dependencies=admin,
        responses={409: {**responses(409)[409], "description": "A token has this name."}},
        summary="Create an agent token",
    )
    def create_token(request: Request, body: TokenRequest) -> dict[str, Any]:
        """A new token scoped to one queue; the manager keeps only its hash. It is listed
        and revoked with the other tokens (`/tokens`)."""
        issued = service.create_token(body.queue, caller_of(request).name, body.name)
        return {"queue": body.queue, "token": issued.secret, "name": issued.record.name}

    return router


async def exchanged(request: Request, service: AgentService, body: ExchangeRequest) -> JsonResponse:
    """`POST /agents/exchange` once its body is valid (the route, and `LeanExchange`)."""
    _check_queue(request, body.queue)
    call = Exchange(
        body.queue,
        body.agent,
        [Delivery(r.attempt_id, _report(r), r.agent) for r in body.results],
        body.limit,
        body.claim_id,
        body.repeat,
    )
    wait = service.check_exchange(call, body.wait)
    if call.deliveries:
        wait = 0.0  # results are acknowledged at once, not after a long-poll
    answers: list[Any] = []

    def look() -> list[Any]:
        recorded, tasks = service.exchange(call)
        if call.deliveries:  # recorded by the first look; the next ones only claim
            answers.extend(recorded)
            call.deliveries = []
        return tasks

    tasks = await _long_poll(request, service, body.queue, wait, look, body.agent)
    # built by the service, field by field as documented: not validated once more
    return JsonResponse({"results": answers, "tasks": tasks})


class LeanExchange(BaseRoute):
    """`POST /agents/exchange` with a JSON body, served without FastAPI's per-request
    machinery (route search, dependency solving): most of a manager's requests are
    agents' exchanges, and that machinery cost about a third of each one's CPU.

    It sits first among the app's routes, inside every middleware (security headers, the
    guards, authentication) and inside the exception handlers, so those rules hold as for
    any route. A body it does not take as it is (not `application/json`, not JSON, or
    refused by `ExchangeRequest`) goes on to the documented route, as it came: what is
    refused, and how, is that route's answer, word for word.
    """

    def __init__(self, path: str, service: AgentService) -> None:
        self.path = self.path_format = path  # `path_format`: the route's name in telemetry
        self.methods = frozenset({"POST"})
        self.service = service

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] == "http"
            and scope["path"] == self.path
            and scope["method"] == "POST"
            and _LEAN not in scope
            and _json_body(scope)
        ):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        more = True
        while more:  # the guards' `receive` refuses a body past its limit (413)
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body came
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            parsed = ExchangeRequest.model_validate(json.loads(body))
        except (ValueError, RecursionError, ValidationError):  # the route's to refuse
            scope[_LEAN] = True
            router = scope["router"]
            await router.app(scope, _replay(body, receive), send)
            return
        request = Request(scope, receive, send)
        answer = await exchanged(request, self.service, parsed)
        await answer(scope, receive, send)


_LEAN = "dalsegno.lean_declined"


def _json_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower() == b"application/json"
    return False


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` that gives `body` once more, then what the connection gives."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _report(body: ResultRequest | DeliveredResult) -> AgentReport:
    return AgentReport(
        outcome=body.outcome,
        result_json=None if body.outcome != "succeeded" else _json(body.result),
        error=body.error,
        recoverable=body.recoverable,
        retry_after=body.retry_after,
        logs=[AgentLog(log.level, log.message, log.created_at) for log in body.logs],
        instances_json=None
        if body.instances is None or body.outcome != "succeeded"
        else _json([change.model_dump() for change in body.instances]),
    )


def _json(value: Any) -> str:
    return json.dumps(value, allow_nan=False)
