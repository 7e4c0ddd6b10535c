"""Who may do what: the roles of tokens, what each grants, and the records of tokens and
web UI sessions.

A person's token has a role: `viewer` reads; `operator` also starts, resumes and cancels;
`admin` also manages tokens and agents. An agent's token serves one queue and nothing
else. The manager's own admin token (the file `$DALSEGNO_HOME/token`) is the bootstrap
credential: it may do everything, and its actor is `admin`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    AGENT = "agent"


PEOPLE_ROLES = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)


class Permission(StrEnum):
    """What a route needs. `manage` (tokens, agents' tokens) is the admin's alone."""

    READ = "read"
    OPERATE = "operate"
    MANAGE = "manage"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.OPERATE}),
    Role.ADMIN: frozenset(Permission),
    Role.AGENT: frozenset(),
}

# The role a route's refusal names: the least one that grants the permission.
LEAST_ROLE = {
    Permission.READ: Role.VIEWER,
    Permission.OPERATE: Role.OPERATOR,
    Permission.MANAGE: Role.ADMIN,
}

ADMIN_ACTOR = "admin"  # the actor of the manager's admin token
DEFAULT_SESSION_IDLE = 1800.0  # seconds a web UI session may go unused (--session-idle)
LOCAL_PREFIX = "local:"  # the actor of the CLI working on the store: `local:USER`

# A token's name: what `tokens revoke NAME` takes and what events record as the actor.
TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
TOKEN_NAME_PATTERN = TOKEN_NAME.pattern
RESERVED_NAMES = frozenset({ADMIN_ACTOR})


def parse_role(value: str) -> Role:
    """The role named `value`; ValueError with the choices otherwise."""
    try:
        return Role(value)
    except ValueError:
        choices = ", ".join(role.value for role in Role)
        msg = f"unknown role {value!r}: use one of {choices}"
        raise ValueError(msg) from None


def token_name_problem(name: str) -> str | None:
    """Why `name` cannot name a token, or None when it can."""
    if not TOKEN_NAME.match(name):
        return (
            f"a token name is 1 to 64 letters, digits and . _ @ + - (starting with a letter"
            f" or digit), not {name!r}"
        )
    if name.lower() in RESERVED_NAMES:
        return f"{name!r} is reserved: it is the actor of the manager's admin token"
    return None


def queue_scope(queue: str) -> str:
    """The scope that lets a token serve the agent queue `queue`."""
    return f"queue:{queue}"


@dataclass(frozen=True, slots=True)
class Caller:
    """Whoever presented a known token: its name (the actor events record) and role."""

    name: str
    role: Role
    queue: str | None = None  # an agent token's queue

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    def serves(self, queue: str) -> bool:
        """Whether it may serve the agent queue `queue` (an admin may serve every one)."""
        return self.role is Role.ADMIN or (self.role is Role.AGENT and self.queue == queue)

    @property
    def scopes(self) -> frozenset[str]:
        """Its permissions and queue, as the strings of Starlette's `request.auth`."""
        granted = {permission.value for permission in GRANTS[self.role]}
        if self.role is Role.ADMIN:
            granted.add(ADMIN_ACTOR)
        if self.queue is not None:
            granted.add(queue_scope(self.queue))
        return frozenset(granted)


ADMIN_CALLER = Caller(ADMIN_ACTOR, Role.ADMIN)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token the store knows (never its secret: the store keeps a hash of it)."""

    name: str
    role: Role
    queue: str | None  # an agent token's queue
    created_at: float
    created_by: str | None
    revoked_at: float | None = None
    revoked_by: str | None = None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A signed-in web UI session. `token_active` is false once its token was revoked."""

    token_hash: str
    name: str
    role: Role
    csrf: str
    created_at: float
    last_seen_at: float
    expires_at: float
    token_active: bool
