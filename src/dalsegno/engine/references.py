"""Workflow and operation references: `module:function` or `path/file.py:function`.

A reference is what the store keeps, so it must name the same function in another
process: a function loaded from a file is referred to by the file's absolute path.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from dalsegno.model.definitions import (
    OperationDefinition,
    WorkflowDefinition,
    operation_definition,
    workflow_definition,
)
from dalsegno.model.errors import BadReferenceError
from dalsegno.model.references import is_path, split_reference

_lock = threading.RLock()
_files_by_module: dict[str, str] = {}  # module name -> absolute path of the file it came from
_cache: dict[str, Callable[..., Any]] = {}
_references: dict[Callable[..., Any], str] = {}


def reference_of(func: Callable[..., Any]) -> str:
    """The reference that imports `func` again, in this process or another one."""
    known = _references.get(func)
    if known is not None:
        return known
    module = func.__module__
    name = func.__qualname__
    if "<locals>" in name:
        msg = f"{name} is defined inside a function: operations and workflows must be importable"
        raise BadReferenceError(msg)
    source = _files_by_module.get(module)
    if source is None and module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if main_file:
            source = str(Path(main_file).resolve())
    reference = f"{source or module}:{name}"
    with _lock:
        _cache.setdefault(reference, func)
        _references[func] = reference
    return reference


@functools.lru_cache(maxsize=4096)
def normalize(reference: str) -> str:
    """A file reference with an absolute path; a module reference as it is."""
    module, name = split_reference(reference)
    if is_path(module):
        return f"{Path(module).resolve()}:{name}"
    return f"{module}:{name}"


def resolve(reference: str) -> Callable[..., Any]:
    """Import the function a reference names (cached)."""
    with _lock:
        found = _cache.get(reference)
        if found is not None:
            return found
        module_name, attribute = split_reference(reference)
        try:
            module = _load_file(module_name) if is_path(module_name) else _load_module(module_name)
        except BadReferenceError:
            raise
        except Exception as exc:
            msg = f"cannot import '{reference}': {type(exc).__name__}: {exc}"
            raise BadReferenceError(msg) from exc
        target: Any = module
        for part in attribute.split("."):
            target = getattr(target, part, None)
            if target is None:
                msg = f"cannot import '{reference}': no '{attribute}' in {module_name}"
                raise BadReferenceError(msg)
        if not callable(target):
            msg = f"'{reference}' is not a function"
            raise BadReferenceError(msg)
        _cache[reference] = target
        return target  # type: ignore[no-any-return]


def resolve_workflow(reference: str) -> tuple[Callable[..., Any], WorkflowDefinition]:
    func = resolve(reference)
    definition = workflow_definition(func)
    if definition is None:
        msg = f"'{reference}' is not a workflow: decorate it with @workflow"
        raise BadReferenceError(msg)
    return func, definition


class WorkflowSource(Protocol):
    """Where the workflows a process runs come from: `resolve` gives the one a reference
    names, or refuses it (`dalsegno.service.workflows` serves a manager's allow-list).
    `operation` does the same for the operation of a lifecycle task (a task bound to a
    node instance), whose reference came from a blueprint, not from a workflow's code."""

    def resolve(self, reference: str) -> tuple[Callable[..., Any], WorkflowDefinition]: ...

    def operation(self, reference: str) -> tuple[Callable[..., Any], OperationDefinition]: ...


class ImportAny:
    """Imports whatever a reference names: the CLI on the store runs its caller's own code."""

    def resolve(self, reference: str) -> tuple[Callable[..., Any], WorkflowDefinition]:
        return resolve_workflow(reference)

    def operation(self, reference: str) -> tuple[Callable[..., Any], OperationDefinition]:
        return resolve_operation(reference)


def bound_operation(
    source: WorkflowSource, reference: str, bound: bool
) -> tuple[Callable[..., Any], OperationDefinition]:
    """The operation of a task: a bound (lifecycle) task's from `source`, before anything
    is imported; any other's imported, as its workflow's code named it."""
    return source.operation(reference) if bound else resolve_operation(reference)


IMPORT_ANY = ImportAny()


def load_source(source: str) -> ModuleType:
    """Import a module by name, or a file by path as `path/file.py:function` references
    do (so its functions' references are the same); raises whatever its code raises."""
    loaded: ModuleType = _load_file(source) if is_path(source) else importlib.import_module(source)
    return loaded


def resolve_operation(reference: str) -> tuple[Callable[..., Any], OperationDefinition]:
    func = resolve(reference)
    definition = operation_definition(func)
    if definition is None:
        msg = f"'{reference}' is not an operation: decorate it with @operation"
        raise BadReferenceError(msg)
    return func, definition


def _load_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        msg = f"cannot import module '{name}': {exc}"
        raise BadReferenceError(msg) from exc


def _load_file(path_text: str) -> Any:
    path = Path(path_text).resolve()
    if not path.is_file():
        msg = f"no such workflow file: {path_text}"
        raise BadReferenceError(msg)
    digest = hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:10]
    module_name = f"dalsegno_file_{path.stem}_{digest}"
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        msg = f"cannot load {path_text} as Python"
        raise BadReferenceError(msg)
    module = importlib.util.module_from_spec(spec)
    _files_by_module[module_name] = str(path)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        _files_by_module.pop(module_name, None)
        raise
    return module
