"""Blueprints: upload (parsed and validated once), list, read, delete (docs/blueprints.md)."""

from __future__ import annotations

from pathlib import Path

from dalsegno.blueprints import parse_blueprint
from dalsegno.model.blueprints import BlueprintRecord
from dalsegno.model.errors import NotFoundError
from dalsegno.model.names import check_name
from dalsegno.store.base import Store


class BlueprintService:
    """Blueprints on one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def upload(
        self,
        text: str,
        blueprint_id: str,
        *,
        source: str = "blueprint.yaml",
        base_dir: Path | None = None,
    ) -> BlueprintRecord:
        """Parse `text` and store it as uploaded and as parsed; refused (one line, nothing
        stored) when it is not valid or the id is taken. `base_dir`: the directory its
        `path/file.py:function` operations are relative to."""
        check_name("a blueprint id", blueprint_id)
        blueprint = parse_blueprint(text, source=source, base_dir=base_dir)
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
