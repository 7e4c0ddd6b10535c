"""Operation references in a blueprint: `module:function`, or `path/file.py:function`
with a path relative to the blueprint's file, made absolute when it is parsed so that the
stored reference names the same function in any process (the engine imports it)."""

from __future__ import annotations

from pathlib import Path


def _is_path(module: str) -> bool:
    # the engine's rule (dalsegno.engine.references): a file, not a module name
    return module.endswith(".py") or "/" in module or "\\" in module


def reference_problem(reference: str) -> str:
    """Why `reference` is not an operation reference, or "" when it is one."""
    module, sep, name = reference.rpartition(":")
    expected = "expected module:function or path/file.py:function"
    if not sep or not module.strip() or not name or "\x00" in reference:
        return f"malformed reference {reference!r}: {expected}"
    if not all(part.isidentifier() for part in name.split(".")):
        return f"malformed reference {reference!r}: {name!r} is not a function name"
    if not _is_path(module) and not all(part.isidentifier() for part in module.split(".")):
        return f"malformed reference {reference!r}: {module!r} is not a module name; {expected}"
    return ""


def absolute_reference(reference: str, base: Path) -> str:
    """A file reference with its path made absolute against `base`; a module reference as
    it is."""
    module, _, name = reference.rpartition(":")
    if not _is_path(module):
        return reference
    return f"{(base / Path(module).expanduser()).resolve()}:{name}"
