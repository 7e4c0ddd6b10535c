"""The workflows a manager serves: its allow-list (`dalsegno manager --workflows SPEC`).

Each SPEC is a Python module (`mypkg.deploy`), a file (`deploy.py`) or a directory (its
`*.py` files that declare a `@workflow` or an `@operation`, not its subdirectories). They
are imported once, when the manager starts; from then on a request names one of the
workflows found, or is refused (422) before anything is imported: a reference to any other
module or file, on the manager's host or not, runs no code of it. Resume and takeover go
through the same list, so an execution whose workflow is no longer served is refused (or,
taken over, ends `failed` with the reason) until the manager serves it again.

The `@operation` functions of the same modules and files are the operations a blueprint
may name (`operation`): a blueprint uploaded through the manager that names any other is
refused, and a lifecycle task whose operation is not served fails before it is imported.

A file whose directory is on `sys.path` (the manager's working directory is) is imported
as its module, so `deploy:deploy` and `deploy.py:deploy` name the same function; another
file is loaded from its path. Without any SPEC the manager serves its working directory
(see `DEFAULT_SPEC`), where a file that does not import is skipped with a warning rather
than stopping the manager. docs/security.md tells what this protects. The built-in
lifecycle workflows (`dalsegno.lifecycle`) are always served.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import json
import logging
import sys
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from dalsegno.engine.references import load_source, normalize, resolve_workflow
from dalsegno.lifecycle import WORKFLOWS
from dalsegno.lifecycle import operations as built_in_operations
from dalsegno.model.definitions import (
    OperationDefinition,
    WorkflowDefinition,
    operation_definition,
    workflow_definition,
)
from dalsegno.model.errors import RefusedError
from dalsegno.service.params import describe, type_hints

log = logging.getLogger("dalsegno.workflows")

DEFAULT_SPEC = "."  # without --workflows: the .py files of the working directory
Operations = dict[str, tuple[Callable[..., Any], OperationDefinition]]  # by every reference
_KINDS = {bool: "boolean", int: "integer", float: "number", str: "string"}


@dataclass(frozen=True, slots=True)
class Parameter:
    """A parameter of a workflow, as its signature says."""

    name: str
    kind: str | None  # boolean, integer, number, string, array, object; None: any JSON
    annotation: str | None
    description: str
    required: bool
    default: Any = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class AllowedWorkflow:
    """A workflow a manager serves: its reference and the other names it answers to."""

    reference: str
    aliases: tuple[str, ...]
    name: str
    resumable: bool
    doc: str
    source: str
    parameters: tuple[Parameter, ...]
    extra_params: bool  # it takes **kwargs: any other name too
    function: Callable[..., Any] = field(repr=False, compare=False)
    definition: WorkflowDefinition = field(repr=False, compare=False)


class AllowedWorkflows:
    """The allow-list: the workflows found in the SPECs, by every reference naming them."""

    def __init__(
        self,
        workflows: Iterable[AllowedWorkflow],
        skipped: Sequence[str] = (),
        built_ins: Sequence[AllowedWorkflow] = (),
        operations: Operations | None = None,
    ) -> None:
        self.workflows = list(workflows)
        self.skipped = list(skipped)  # files of the default directory that did not import
        self.built_ins = list(built_ins)  # served too, listed apart (`built_in`)
        self._by_reference: dict[str, AllowedWorkflow] = {}
        for found in [*self.workflows, *self.built_ins]:
            for reference in (found.reference, *found.aliases):
                self._by_reference.setdefault(reference, found)
        # the operations a blueprint may name: the served files' and the built-in steps'
        steps = _operations_of(built_in_operations, [built_in_operations.__name__])
        self._operations: Operations = {**steps, **(operations or {})}

    @classmethod
    def load(cls, specs: Sequence[str]) -> AllowedWorkflows:
        """Import the SPECs (none: `DEFAULT_SPEC`, leniently); RefusedError names a SPEC
        that does not exist or does not import."""
        lenient = not specs
        found: list[AllowedWorkflow] = []
        operations: Operations = {}
        skipped: list[str] = []
        for spec in specs or [DEFAULT_SPEC]:
            for source in _sources(spec):
                try:
                    workflows, served = _served_by(source)
                except RefusedError as exc:
                    if not lenient:
                        raise
                    skipped.append(str(exc))
                    log.warning("%s (skipped: start the manager with --workflows)", exc)
                    continue
                found += workflows
                for reference, operation in served.items():
                    operations.setdefault(reference, operation)
        return cls(found, skipped, built_in(), operations)

    def resolve(self, reference: str) -> tuple[Callable[..., Any], WorkflowDefinition]:
        """The workflow `reference` names, if this manager serves it; nothing is imported."""
        allowed = self._by_reference.get(normalize(reference))
        if allowed is None:
            msg = (
                f"workflow '{reference}' is not allowed on this manager: it serves the"
                f" {len(self.workflows)} workflows of its --workflows"
                " (GET /api/v1/workflows, `dalsegno workflows list`)"
            )
            raise RefusedError(msg)
        return allowed.function, allowed.definition

    def operation(self, reference: str) -> tuple[Callable[..., Any], OperationDefinition]:
        """The `@operation` function `reference` names (a blueprint's), if a served module
        or file defines it (or it is a built-in step); nothing is imported."""
        try:
            found = self._operations.get(normalize(reference))
        except (RefusedError, OSError, ValueError):  # malformed: served by no file
            found = None
        if found is None:
            msg = (
                f"operation '{reference}' is not allowed on this manager: it serves the"
                " @operation functions of its --workflows"
            )
            raise RefusedError(msg)
        return found

    @property
    def operations(self) -> list[str]:
        """The references of every operation served, sorted."""
        return sorted(self._operations)


def built_in() -> list[AllowedWorkflow]:
    """The built-in lifecycle workflows (docs/lifecycle.md): every manager serves them,
    by their reference (`dalsegno.lifecycle:install`) and their defining module's."""
    found = []
    for reference in WORKFLOWS.values():
        func, definition = resolve_workflow(reference)
        own = f"{func.__module__}:{func.__name__}"
        found.append(_describe(func, definition, [reference, own], "dalsegno.lifecycle"))
    return found


def _sources(spec: str) -> list[str]:
    """The modules and files a SPEC names."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return [str(file) for file in sorted(path.resolve().glob("*.py")) if _declares(file)]
    if path.is_file():
        return [str(path.resolve())]
    if spec.endswith(".py"):
        return [spec]  # refused by the import: no such file
    if all(part.isidentifier() for part in spec.split(".")):
        return [spec]
    msg = f"--workflows {spec!r}: no such file, directory or module"
    raise RefusedError(msg)


def _served_by(source: str) -> tuple[list[AllowedWorkflow], Operations]:
    """Import one module or file; its `@workflow` functions, with their references, and
    its `@operation` functions by every reference naming them."""
    path = Path(source) if source.endswith(".py") or "/" in source else None
    try:
        if path is not None and not path.is_file():
            msg = f"--workflows {source!r}: no such file"
            raise RefusedError(msg)
        module, names = _import(source, path)
    except RefusedError:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - its top-level code may raise anything
        msg = f"--workflows: cannot import {source}: {type(exc).__name__}: {exc}"
        raise RefusedError(msg) from None
    found = []
    for attribute, value in sorted(vars(module).items()):
        definition = workflow_definition(value)
        if definition is None or getattr(value, "__module__", None) != module.__name__:
            continue  # not a workflow, or one imported from elsewhere (served from there)
        references = [f"{name}:{attribute}" for name in names]
        found.append(_describe(value, definition, references, source))
    return found, _operations_of(module, names)


def _operations_of(module: ModuleType, names: Sequence[str]) -> Operations:
    """The `@operation` functions `module` defines (not those it imports), by reference."""
    found: Operations = {}
    for attribute, value in vars(module).items():
        definition = operation_definition(value)
        if definition is None or getattr(value, "__module__", None) != module.__name__:
            continue
        for name in names:
            found[normalize(f"{name}:{attribute}")] = (value, definition)
    return found


def _import(source: str, path: Path | None) -> tuple[ModuleType, list[str]]:
    """The module, and the names of it references use (module name first, then path)."""
    if path is None:
        return load_source(source), [source]
    resolved = path.resolve()
    if resolved.stem.isidentifier() and _on_sys_path(resolved.parent):
        try:
            module = load_source(resolved.stem)
        except ImportError:
            module = None
        if module is not None and Path(getattr(module, "__file__", "") or "").resolve() == resolved:
            return module, [resolved.stem, str(resolved)]
    return load_source(str(resolved)), [str(resolved)]


def _on_sys_path(directory: Path) -> bool:
    for entry in sys.path:
        try:
            if Path(entry or ".").resolve() == directory:
                return True
        except OSError:
            continue
    return False


_DECORATORS = frozenset({"workflow", "operation"})


def _declares(file: Path) -> bool:
    """Whether a file defines a function decorated `@workflow` or `@operation` (read, not
    imported), so a directory's scripts and helpers are not run."""
    try:
        tree = ast.parse(file.read_bytes(), str(file))
    except (OSError, SyntaxError, ValueError):
        return True  # let the import say what is wrong with it
    names = set(_DECORATORS)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dalsegno"):
            names |= {
                alias.asname for alias in node.names if alias.name in _DECORATORS and alias.asname
            }
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if (isinstance(target, ast.Name) and target.id in names) or (
                    isinstance(target, ast.Attribute) and target.attr in _DECORATORS
                ):
                    return True
    return False


def _describe(
    func: Callable[..., Any], definition: WorkflowDefinition, references: list[str], source: str
) -> AllowedWorkflow:
    signature = inspect.signature(func)
    hints = type_hints(func)
    parameters = list(signature.parameters.values())[1:]  # the first one is ctx
    described = tuple(
        _parameter(parameter, hints.get(parameter.name, parameter.annotation))
        for parameter in parameters
        if parameter.kind
        in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )
    return AllowedWorkflow(
        reference=references[0],
        aliases=tuple(references[1:]),
        name=definition.name,
        resumable=definition.resumable,
        doc=(inspect.getdoc(func) or "").strip().split("\n\n")[0].replace("\n", " "),
        source=source,
        parameters=described,
        extra_params=any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters),
        function=func,
        definition=definition,
    )


def _parameter(parameter: inspect.Parameter, hint: Any) -> Parameter:
    empty = inspect.Parameter.empty
    kind, choices, nullable = _kind(hint)
    default = None if parameter.default is empty else parameter.default
    if isinstance(default, enum.Enum):
        default = default.value  # what a start passes for it
    try:
        json.dumps(default, allow_nan=False)
    except (TypeError, ValueError):
        default = repr(default)
    return Parameter(
        name=parameter.name,
        kind=kind,
        annotation=None if hint is empty else _annotation_text(hint),
        description="any JSON value" if hint is empty else describe(hint),
        required=parameter.default is empty,
        default=default,
        choices=choices,
        nullable=nullable,
    )


def _kind(hint: Any) -> tuple[str | None, tuple[Any, ...] | None, bool]:
    """The JSON kind of an annotation, its choices (Literal, Enum), whether null is taken."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [arg for arg in args if arg is not type(None)]
        inner, choices, _ = _kind(rest[0]) if len(rest) == 1 else (None, None, False)
        return inner, choices, len(rest) < len(args)
    choices = _choices(hint)
    if choices is not None:
        kinds = {_KINDS.get(type(choice)) for choice in choices}
        return (kinds.pop() if len(kinds) == 1 else None), choices, False
    container = typing.get_origin(hint) or hint
    if hint in _KINDS:
        kind: str | None = _KINDS[hint]
    elif container in (list, tuple, set, frozenset):
        kind = "array"
    elif container is dict or typing.is_typeddict(hint) or _is_dataclass_type(hint):
        kind = "object"
    else:
        kind = None
    return kind, None, False


def _choices(hint: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return tuple(member.value for member in hint)
    return None


def _is_dataclass_type(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _annotation_text(hint: Any) -> str:
    if isinstance(hint, str):
        return hint
    return inspect.formatannotation(hint)


def workflow_json(workflow: AllowedWorkflow) -> dict[str, Any]:
    """A served workflow as `GET /api/v1/workflows` and `workflows list --json` show it."""
    return {
        "workflow": workflow.reference,
        "aliases": list(workflow.aliases),
        "name": workflow.name,
        "resumable": workflow.resumable,
        # the retry settings of its executions started without their own (`@workflow`)
        "task_retries": workflow.definition.task_retries,
        "task_retry_interval": workflow.definition.task_retry_interval,
        "doc": workflow.doc,
        "source": workflow.source,
        "extra_params": workflow.extra_params,
        "parameters": [
            {
                "name": p.name,
                "type": p.kind,
                "annotation": p.annotation,
                "description": p.description,
                "required": p.required,
                "default": p.default,
                "choices": None if p.choices is None else list(p.choices),
                "nullable": p.nullable,
            }
            for p in workflow.parameters
        ],
    }
