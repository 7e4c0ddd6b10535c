"""Operation references in a blueprint: `module:function`, or `path/file.py:function`
with a path relative to the blueprint's file, made absolute when it is parsed so that the
stored reference names the same function in any process (the engine imports it)."""

from __future__ import annotations

from pathlib import Path

from dalsegno.model.references import is_path, reference_problem

__all__ = ["absolute_reference", "reference_problem"]


def absolute_reference(reference: str, base: Path) -> str:
    """A file reference with its path made absolute against `base`; a module reference as
    it is."""
    module, _, name = reference.rpartition(":")
    if not is_path(module):
        return reference
    return f"{(base / Path(module).expanduser()).resolve()}:{name}"
