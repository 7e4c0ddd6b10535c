"""The syntax of an operation or workflow reference: `module:function`, or
`path/file.py:function`. One rule for the engine that imports references and for the
blueprints that name them (`dalsegno.blueprints` may not import the engine)."""

from __future__ import annotations

from dalsegno.model.errors import BadReferenceError

EXPECTED = "expected module:function or path/file.py:function"


def is_path(module: str) -> bool:
    """The part before the colon names a file, not a module."""
    return module.endswith(".py") or "/" in module or "\\" in module


def reference_problem(reference: str) -> str:
    """Why `reference` is not a reference, or "" when it is one."""
    module, sep, name = reference.rpartition(":")
    if not sep or not module.strip() or not name or "\x00" in reference:
        return f"malformed reference {reference!r}: {EXPECTED}"
    if not all(part.isidentifier() for part in name.split(".")):
        return f"malformed reference {reference!r}: {name!r} is not a function name"
    if not is_path(module) and not all(part.isidentifier() for part in module.split(".")):
        return f"malformed reference {reference!r}: {module!r} is not a module name; {EXPECTED}"
    return ""


def split_reference(reference: str) -> tuple[str, str]:
    """(module or file, function) of a well-formed reference; `BadReferenceError` otherwise."""
    problem = reference_problem(reference)
    if problem:
        raise BadReferenceError(problem)
    module, _, name = reference.rpartition(":")
    return module, name
