"""Schemathesis over the OpenAPI document, against the live server: never a 5xx.

Every operation gets its examples, coverage and fuzzing phases, schema-valid and
schema-breaking requests both, with the admin token; each answer is checked against the
document: its status is declared, its body fits the declared schema, a request that breaks
the schema is refused, a request without the token is refused, and none is a 5xx.

The document is built at import time from an app over a service that is never called, so
`schema.parametrize` can collect one test per operation; `test_served_document_is_the_one_
tested` checks that the live server serves the same one. (`schemathesis.pytest.from_fixture`,
which would load it from the live server, sets `Function._nodeid`, which pytest 9 no longer
has.)
"""

from __future__ import annotations

import os
import re
from typing import Any
from unittest import mock

import httpx
import hypothesis
import schemathesis

from api.conftest import ADMIN_TOKEN, LiveApi, ref
from dalsegno.api.app import create_app
from dalsegno.service.executions import ExecutionService

# 40 a route in the suite; a deeper run: DALSEGNO_SCHEMATHESIS_EXAMPLES=500
MAX_EXAMPLES = int(os.environ.get("DALSEGNO_SCHEMATHESIS_EXAMPLES", "40"))

# A schema-valid request may still be refused: the workflow reference must import and the
# params must fit its signature (422), the id must name an execution (404), and the
# execution's state must allow the transition (409). None of these is a 5xx.
ACCEPTED = ["2XX", "401", "403", "404", "409", "422"]

# How a request the document does not admit may be refused (schemathesis's defaults, and
# 413 for a body over its size limit).
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]

DOCUMENT = create_app(mock.create_autospec(ExecutionService, instance=True), "unused").openapi()

# What the server says when its request validation refuses a value: the place, then why
# (`body.agent: String should match pattern ...`), or what the service says of a name.
VALIDATION_REFUSAL = re.compile(
    r"^(body|query|path|header|cookie)\b|without control or invisible formatting characters"
)


@schemathesis.check
def no_schema_mismatch(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    """A request the document admits is never refused as malformed: the document says
    exactly what the server takes (patterns, integer types). Refusals of what it means
    (an unknown id, a workflow that is not served) are other answers."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    if response.status_code not in (400, 422):
        return
    error = str(response.json().get("error", ""))
    if VALIDATION_REFUSAL.search(error) or response.status_code == 400:
        raise AssertionError(f"the document admits what the server refuses: {error}")


schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ACCEPTED},
                # a body over its limit is refused before it is read: 413, documented
                "negative_data_rejection": {"expected-statuses": REJECTED},
            },
        }
    ),
)


def test_served_document_is_the_one_tested(live: LiveApi) -> None:
    assert httpx.get(f"{live.url}/api/v1/openapi.json").json() == DOCUMENT


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_random_requests_never_get_a_5xx(
    case: schemathesis.Case, live: LiveApi, ended: dict[str, str]
) -> None:
    case.call_and_validate(base_url=live.url)


@schema.include(path_regex=r"\{execution_id\}").parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_random_requests_on_real_executions_never_get_a_5xx(
    case: schemathesis.Case, live: LiveApi, service: ExecutionService, ended: dict[str, str]
) -> None:
    """The same, with the path naming a real execution, so resume and cancel go deep.

    The executions move from example to example (a resume hands one over, a cancel ends
    one): every state they pass through is met by random bodies.
    """
    if "pending" not in ended:
        ended["pending"] = service.create(ref("deploy")).id
    names = sorted(ended)
    case.path_parameters = {
        **(case.path_parameters or {}),
        "execution_id": ended[names[len(str(case.body)) % len(names)]],
    }
    case.call_and_validate(base_url=live.url)
