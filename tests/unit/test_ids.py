"""One rule for blueprint and deployment ids (`dalsegno.model.names.check_id`): the
service refuses what the REST schema's pattern refuses, and the pattern is the model's."""

from __future__ import annotations

import re
from typing import Any, get_args
from unittest.mock import MagicMock

import pytest

from dalsegno.api.deployments import BlueprintId, CreateRequest, DeploymentId, UploadRequest
from dalsegno.model.errors import RefusedError
from dalsegno.model.names import ID_PATTERN, check_id
from dalsegno.service.blueprints import BlueprintService
from dalsegno.service.deployments import DeploymentService

GOOD = ["a", "shop", "three-tier", "v1.2_x", "0day", "x" * 100]
BAD = ["", "-x", ".hidden", "_x", "a b", "a/b", "a:b", "é", "x" * 101, "a\n", "a\x00", "ab\u200b"]


def path_pattern(annotated: Any) -> str:
    (found,) = [m.pattern for m in get_args(annotated)[1].metadata if hasattr(m, "pattern")]
    return str(found)


def test_the_rest_schema_carries_the_models_pattern() -> None:
    assert UploadRequest.model_json_schema()["properties"]["id"]["pattern"] == ID_PATTERN
    properties = CreateRequest.model_json_schema()["properties"]
    assert properties["id"]["pattern"] == properties["blueprint_id"]["pattern"] == ID_PATTERN
    assert path_pattern(BlueprintId) == path_pattern(DeploymentId) == ID_PATTERN


@pytest.mark.parametrize("value", GOOD + BAD)
def test_check_id_and_the_pattern_agree(value: str) -> None:
    matches = re.fullmatch(ID_PATTERN, value) is not None
    assert matches == (value in GOOD)
    if matches:
        assert check_id("deployment", value) == value
    else:
        with pytest.raises(RefusedError) as refused:
            check_id("deployment", value)
        assert str(refused.value) == (
            "a deployment id is 1 to 100 letters, digits, '_', '.' or '-', starting with a "
            f"letter or digit, not {value!r}"
        )


@pytest.mark.parametrize("value", ["a b", "x" * 101, "shop:1"])
def test_python_callers_of_the_service_get_the_same_refusal(value: str) -> None:
    store = MagicMock()
    with pytest.raises(RefusedError, match=r"^a blueprint id is 1 to 100 letters"):
        BlueprintService(store).upload("node_templates: {}", value)
    with pytest.raises(RefusedError, match=r"^a deployment id is 1 to 100 letters"):
        DeploymentService(store).create(value, "bp")
    with pytest.raises(RefusedError, match=r"^a deployment id is 1 to 100 letters"):
        DeploymentService(store).create_planned(value, "bp", {}, [])
    assert store.method_calls == []  # refused before the store is asked anything
