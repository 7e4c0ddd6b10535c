"""The schema, as SQLAlchemy Core tables. Alembic migrations must produce exactly this."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

executions = Table(
    "executions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("workflow", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("error", Text),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("lease_host", String(255)),
    Column("lease_pid", Integer),
    Column("lease_proc_start", String(64)),
    Column("lease_expires_at", Float),
    Column("lease_token", Integer, nullable=False, server_default="0"),
    Column("lock_key", String(255)),
    Column("deleting_at", Float),  # a delete or purge is removing it (migration 0006)
    Column("runs", Integer, nullable=False, server_default="0"),
    Column("first_started_at", Float),
    Column("take_up", String(20)),  # the kind of take-up a pending execution waits for (0008)
    # how it runs at every take-up (0010): simulated, and its tasks' retry settings
    Column("dry_run", Integer, nullable=False, server_default="0"),
    Column("task_retries", Integer),
    Column("task_retry_interval", Float),
    # the deployment it runs against (0011; issue 16): its lock key is the deployment's
    Column("deployment_id", String(255)),
    Index("ix_executions_status", "status"),
    Index("ix_executions_created_at", "created_at"),
    Index("ix_executions_lock_key", "lock_key"),
    Index("ix_executions_ended_at", "ended_at"),
    Index("ix_executions_deployment_id", "deployment_id"),
)

graphs = Table(
    "graphs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "execution_id",
        String(36),
        ForeignKey("executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("execution_id", "name"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "execution_id",
        String(36),
        ForeignKey("executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("graph_id", Integer, ForeignKey("graphs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("operation", Text, nullable=False),
    Column("agent", String(255)),
    Column("kwargs", Text, nullable=False),
    Column("max_retries", Integer, nullable=False),
    Column("retry_interval", Float, nullable=False),
    Column("timeout", Float),
    Column("status", String(20), nullable=False),
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("result", Text),
    Column("next_run_at", Float),
    Column("started_at", Float),
    Column("ended_at", Float),
    # an agent task claimed by an agent: who holds it, under which attempt id, and when it
    # last showed it does (the claim, then every heartbeat that lists the attempt)
    Column("holder", String(255)),
    Column("attempt_id", String(64)),
    Column("claimed_at", Float),
    # the innermost subgraph it is in (its key), and its failure policy (null: "fail") (0009)
    Column("subgraph", String(255)),
    Column("on_failure", String(10)),
    # a lifecycle task's instance binding, JSON (`model.blueprints.InstanceBinding`; 0011)
    Column("instance", Text),
    # an agent task's `ctx.resume` for its next claim, decided when the owner sends it
    # (a lost attempt requeued: true; a reset, a retry, a first run: false; 0012)
    Column("resume", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("graph_id", "key"),
    # agent claims: a queue's sent tasks in id order, read without a sort (0014)
    Index("ix_tasks_agent_status_id", "agent", "status", "id"),
    Index("ix_tasks_attempt_id", "attempt_id"),
    Index("ix_tasks_holder", "holder"),
    # a run's tasks (its first column), and the owner's reads of its claimed tasks
    # (dalsegno.store.agent_results; 0007, and the only index on execution_id since 0014)
    Index("ix_tasks_execution_id_holder", "execution_id", "holder"),
)

dependencies = Table(
    "dependencies",
    metadata,
    Column("graph_id", Integer, ForeignKey("graphs.id", ondelete="CASCADE"), nullable=False),
    Column("task_id", Integer, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("depends_on_id", Integer, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_dependencies_graph_id", "graph_id"),
    Index("ix_dependencies_depends_on_id", "depends_on_id"),
)

# Groups of tasks that fail or retry as a unit (docs/design.md, "Subgraphs"; 0009): where
# each is nested, its policy, and its retry state (the due time of a retry it waits for).
subgraphs = Table(
    "subgraphs",
    metadata,
    Column("graph_id", Integer, ForeignKey("graphs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("parent", String(255)),
    Column("max_retries", Integer, nullable=False),
    Column("retry_interval", Float, nullable=False),
    Column("on_failure", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("next_run_at", Float),
    Column("error", Text),
)

# The edges with a subgraph on a side, by key (task-to-task edges are `dependencies`).
subgraph_edges = Table(
    "subgraph_edges",
    metadata,
    Column("graph_id", Integer, ForeignKey("graphs.id", ondelete="CASCADE"), primary_key=True),
    Column("node", String(255), primary_key=True),
    Column("depends_on", String(255), primary_key=True),
)

attempts = Table(
    "attempts",
    metadata,
    Column("task_id", Integer, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("outcome", String(20), nullable=False),
    Column("worker", String(255), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("error", Text),
    # an agent's attempt: its id, and the result the agent reported (applied by the owner)
    Column("attempt_id", String(64)),
    Column("report_outcome", String(20)),
    Column("report_result", Text),
    Column("report_error", Text),
    Column("report_recoverable", Integer),
    Column("report_retry_after", Float),
    Column("reported_at", Float),
    # a lifecycle task's success on an agent: the instance changes it reported, JSON (0013)
    Column("report_instances", Text),
    Index("ix_attempts_attempt_id", "attempt_id", unique=True),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "execution_id",
        String(36),
        ForeignKey("executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("graph", String(255)),
    Column("task_key", String(255)),
    Column("type", String(40), nullable=False),
    Column("level", String(10), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    # who asked for it (a token's name, `admin`, `local:USER`); null for the engine's own
    Column("actor", String(255)),
    Index("ix_events_execution_id_id", "execution_id", "id"),
)

agents = Table(
    "agents",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("queue", String(255), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("first_seen_at", Float, nullable=False),
    Column("last_heartbeat_at", Float, nullable=False),
)

# Every token but the manager's admin token (a file, `$DALSEGNO_HOME/token`): people's
# tokens with a role, and agents' tokens scoped to one queue. Only a hash of the secret is
# kept. A revoked token stays, for the record, and its name may be used again.
tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("role", String(20), nullable=False),
    Column("queue", String(255)),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(255)),
    Column("revoked_at", Float),
    Column("revoked_by", String(255)),
    # one token of a name at a time: unique among those not revoked
    Index(
        "ix_tokens_name_active",
        "name",
        unique=True,
        sqlite_where=text("revoked_at IS NULL"),
        postgresql_where=text("revoked_at IS NULL"),
    ),
)

# The web UI's signed-in sessions: the cookie holds a random id, the store its hash, so
# signing out, revoking the token or idling past the timeout ends the session everywhere.
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("role", String(20), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_ui_sessions_token_hash", "token_hash"),
)

# Blueprints, deployments and node instances (docs/lifecycle.md; 0011). A blueprint is kept
# as uploaded (`source`) and as parsed (`plan`: `Blueprint.to_json()`); a deployment is a
# blueprint with its resolved inputs; each node instance has its state, its runtime
# properties and its links (JSON), and a version bumped by every write.
blueprints = Table(
    "blueprints",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("source", Text, nullable=False),
    Column("plan", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("blueprint_id", String(255), ForeignKey("blueprints.id"), nullable=False),
    Column("inputs", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_deployments_blueprint_id", "blueprint_id"),
)

node_instances = Table(
    "node_instances",
    metadata,
    Column("id", String(255), primary_key=True),
    Column(
        "deployment_id",
        String(255),
        ForeignKey("deployments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("node", String(255), nullable=False),
    Column("state", String(20), nullable=False),
    Column("runtime_properties", Text, nullable=False),
    Column("links", Text, nullable=False),
    Column("host_id", String(255)),
    Column("version", Integer, nullable=False, server_default="0"),
    Column("position", Integer, nullable=False),  # its place in the deployment's order
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_node_instances_deployment_id", "deployment_id"),
)
