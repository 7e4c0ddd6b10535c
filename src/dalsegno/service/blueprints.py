"""Blueprints: upload (parsed and validated once), list, read, delete (docs/blueprints.md).

Through a manager, a blueprint may name only the operations the manager serves (its
`--workflows`, docs/security.md): `served` is its allow-list, checked against every
operation reference once the blueprint is parsed, before anything is imported or stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from dalsegno.model.blueprints import Blueprint, BlueprintRecord
from dalsegno.model.errors import NotFoundError, RefusedError
from dalsegno.model.names import check_id
from dalsegno.store.base import Store


class ServedOperations(Protocol):
    """A manager's allow-list (`AllowedWorkflows`): refuses an operation it does not serve."""

    def operation(self, reference: str) -> object: ...


def operation_fields(blueprint: Blueprint) -> Iterator[tuple[str, str]]:
    """Every operation reference of `blueprint`, with the field that gives it."""
    for template in blueprint.node_templates.values():
        base = f"node_templates.{template.name}"
        for name, spec in template.operations.items():
            yield f"{base}.operations.{name}", spec.implementation
        for index, relationship in enumerate(template.relationships):
            for side in ("source_operations", "target_operations"):
                for name, spec in getattr(relationship, side).items():
                    yield f"{base}.relationships[{index}].{side}.{name}", spec.implementation


def check_served(blueprint: Blueprint, served: ServedOperations) -> None:
    """Refused (one line naming the field) when an operation is not one `served` serves."""
    for path, reference in operation_fields(blueprint):
        try:
            served.operation(reference)
        except RefusedError as exc:
            raise RefusedError(f"{path}: {exc}") from None


class BlueprintService:
    """Blueprints on one store; `served`: a manager's allow-list of operations (None: any,
    as the CLI on the store runs its user's own code)."""

    def __init__(self, store: Store, served: ServedOperations | None = None) -> None:
        self.store = store
        self.served = served

    def upload(
        self,
        text: str,
        blueprint_id: str,
        *,
        source: str = "blueprint.yaml",
        base_dir: Path | None = None,
    ) -> BlueprintRecord:
        """Parse `text` and store it as uploaded and as parsed; refused (one line, nothing
        stored) when it is not valid, names an operation the manager does not serve, or
        the id is taken. `base_dir`: the directory its `path/file.py:function` operations
        are relative to."""
        from dalsegno.blueprints import parse_blueprint  # its pydantic models: only here

        check_id("blueprint", blueprint_id)
        blueprint = parse_blueprint(text, source=source, base_dir=base_dir)
        if self.served is not None:
            check_served(blueprint, self.served)
        return self.store.put_blueprint(blueprint_id, text, blueprint)

    def upload_file(self, path: Path, blueprint_id: str | None = None) -> BlueprintRecord:
        """Upload the file at `path` (its id: `blueprint_id`, else the file's stem)."""
        text = path.read_text(encoding="utf-8")
        return self.upload(
            text, blueprint_id or path.stem, source=path.name, base_dir=path.resolve().parent
        )

    def get(self, blueprint_id: str) -> BlueprintRecord:
        found = self.store.get_blueprint(blueprint_id)
        if found is None:
            msg = f"unknown blueprint: {blueprint_id}"
            raise NotFoundError(msg)
        return found

    def list(self) -> list[BlueprintRecord]:
        return self.store.list_blueprints()

    def delete(self, blueprint_id: str) -> None:
        """Refused while a deployment uses it."""
        self.store.delete_blueprint(blueprint_id)
