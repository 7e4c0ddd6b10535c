"""The remote worker: `dalsegno agent --queue NAME` (docs/design.md section 7, `agent/`).

An agent serves one queue of a manager over HTTP: it claims tasks by long-poll, reports
`started` and waits for the manager's acknowledgement before an operation's first line
runs, heartbeats while operations run, and keeps every result in a local SQLite outbox
until the manager has acknowledged it. It talks to the manager only through its REST API:
it never opens the store.
"""

from __future__ import annotations

from dalsegno.agent.worker import Agent, AgentConfig

__all__ = ["Agent", "AgentConfig"]
