"""The params check of a start against the workflow's annotations (service/params.py)."""

from __future__ import annotations

import pytest

from dalsegno.model.errors import RefusedError
from dalsegno.service.params import check_params
from workflows.typed import typed, untyped


def refused(params: dict[str, object], texts: dict[str, str] | None = None) -> str:
    with pytest.raises(RefusedError) as caught:
        check_params(typed, params, texts)
    return str(caught.value)


def test_values_of_the_annotated_types_pass_unchanged() -> None:
    params = {
        "fail": True,
        "interval": 2,
        "count": 3,
        "version": "2.1",
        "mode": "fast",
        "note": None,
        "hosts": ["a", "b"],
        "labels": {"x": 1},
        "size": "l",
        "target": {"host": "h", "port": 80},
        "retry": {"attempts": 3},
    }
    assert check_params(typed, params) == params


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"fail": "maybe"}, "fail: expected a boolean (true or false), got 'maybe'"),
        ({"fail": 1}, "fail: expected a boolean"),
        ({"interval": "abc"}, "interval: expected a number, got 'abc'"),
        ({"count": 1.5}, "count: expected a whole number, got 1.5"),
        ({"count": True}, "count: expected a whole number, got true"),
        ({"version": 1.1}, "version: expected a string, got 1.1"),
        ({"mode": "slow"}, 'mode: expected one of "fast", "safe"'),
        ({"note": 3}, "note: expected a string or null, got 3"),
        ({"hosts": ["a", 2]}, "hosts[1]: expected a string, got 2"),
        ({"hosts": "a,b"}, "hosts: expected a JSON array or null"),
        ({"labels": {"x": "one"}}, "labels.x: expected a whole number"),
        ({"size": "medium"}, 'size: expected one of "s", "l"'),
        ({"target": {"host": "h"}}, "target: expected Target with port"),
        ({"target": {"host": "h", "port": 1, "extra": 1}}, "(not extra)"),
        ({"retry": {"attempts": "x"}}, "retry.attempts: expected a whole number"),
        ({"retry": {}}, "retry: expected Retry with attempts"),
        ({"unknown": 1}, "unexpected keyword argument 'unknown'"),
    ],
)
def test_a_value_that_does_not_fit_is_refused_in_one_line_naming_it(
    params: dict[str, object], reason: str
) -> None:
    message = refused(params)
    assert message.startswith("malformed params for typed: ")
    assert reason in message
    assert "\n" not in message


def test_command_line_texts_are_read_by_the_annotation_when_json_does_not_fit() -> None:
    # What the CLI's -p made of each text (JSON first), and the texts themselves.
    params = {"fail": "yes", "version": 1.1, "count": 7, "mode": "fast", "size": "LARGE"}
    texts = {"fail": "yes", "version": "1.10", "count": "7", "mode": "fast", "size": "LARGE"}
    assert check_params(typed, params, texts) == {
        "fail": True,
        "version": "1.10",
        "count": 7,
        "mode": "fast",
        "size": "l",
    }
    assert check_params(typed, {"note": 12}, {"note": "12"}) == {"note": "12"}
    assert check_params(typed, {"interval": "2.5"}, {"interval": "2.5"}) == {"interval": 2.5}


@pytest.mark.parametrize(
    ("name", "text"),
    [("fail", "maybe"), ("interval", "abc"), ("interval", "nan"), ("count", "1e3")],
)
def test_command_line_texts_that_the_type_cannot_read_are_refused(name: str, text: str) -> None:
    assert f"{name}: expected" in refused({name: text}, {name: text})


def test_unannotated_parameters_and_extra_keywords_take_any_json() -> None:
    params = {"value": {"a": [1, None]}, "other": "x"}
    assert check_params(untyped, params) == params


def test_params_that_are_not_a_json_object_are_refused() -> None:
    with pytest.raises(RefusedError, match="expected a JSON object"):
        check_params(typed, ["fail"])
    with pytest.raises(RefusedError, match="not JSON"):
        check_params(typed, {"interval": float("nan")})
