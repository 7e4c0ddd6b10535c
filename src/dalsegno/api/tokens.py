"""`/tokens`: people's and agents' tokens, made, listed and revoked by an admin.

A new token's secret is in the answer to its creation only; the store keeps its hash.
Revoking a token refuses it from the next request on and ends its web UI sessions.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from dalsegno.api.auth import MANAGE, caller_of, require
from dalsegno.api.errors import JsonResponse, responses
from dalsegno.model.access import TOKEN_NAME_PATTERN, Role
from dalsegno.model.names import NAME_LIMIT, NAME_PATTERN
from dalsegno.service.access import AccessService, token_json

TokenName = Annotated[str, Field(pattern=TOKEN_NAME_PATTERN, description="a token's name")]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TokenName
    role: Role = Field(description="viewer, operator or admin; agent (with a queue)")
    queue: Annotated[str, Field(max_length=NAME_LIMIT, pattern=NAME_PATTERN)] | None = Field(
        default=None, description="an agent token's queue (role agent only)"
    )


class Token(BaseModel):
    name: str
    role: Role
    queue: str | None
    created_at: float
    created_by: str | None
    revoked_at: float | None
    revoked_by: str | None


class NewToken(Token):
    token: str = Field(description="the secret: shown this once, the manager keeps a hash")


def _answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    found = responses(*codes)
    if 404 in found:
        found[404] = {**found[404], "description": "No active token has this name."}
    if 409 in found:
        found[409] = {**found[409], "description": "An active token already has this name."}
    return found


def tokens_router(access: AccessService) -> APIRouter:
    router = APIRouter(
        prefix="/tokens",
        tags=["tokens"],
        dependencies=[Depends(require(MANAGE))],
        responses=responses(401, 403, 422),
    )

    @router.post(
        "",
        status_code=201,
        response_model=NewToken,
        response_class=JsonResponse,
        responses=_answers(400, 409),
        summary="Create a token",
    )
    def create_token(request: Request, body: TokenRequest) -> dict[str, Any]:
        """A token for a person (with a role) or an agent (with its queue)."""
        issued = access.issue(body.name, body.role.value, caller_of(request).name, body.queue)
        return {**token_json(issued.record), "token": issued.secret}

    @router.get("", response_model=list[Token], response_class=JsonResponse, summary="List tokens")
    def list_tokens(
        revoked: Annotated[bool, Query(description="also the revoked ones")] = False,
    ) -> list[dict[str, Any]]:
        """Tokens by name (never their secrets)."""
        return [token_json(record) for record in access.list(revoked)]

    @router.delete(
        "/{name}",
        response_model=Token,
        response_class=JsonResponse,
        responses=_answers(404),
        summary="Revoke a token",
    )
    def revoke_token(
        request: Request,
        name: Annotated[str, Path(pattern=TOKEN_NAME_PATTERN, description="the token's name")],
    ) -> dict[str, Any]:
        """Refused from now on; its web UI sessions end at once."""
        return token_json(access.revoke(name, caller_of(request).name))

    return router
