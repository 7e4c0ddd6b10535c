"""A workflow module that does not import (a dependency is missing): a reference to it is
refused with exit code 2, and nothing is written."""

from __future__ import annotations

from typing import Any

import dalsegno_missing_dependency  # the import that fails

from dalsegno import workflow


@workflow
def deploy(ctx: Any) -> None:
    dalsegno_missing_dependency.deploy(ctx)
