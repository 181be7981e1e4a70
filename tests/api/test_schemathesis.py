"""Property-based API testing with schemathesis against ferry's own OpenAPI, over real HTTP.

A bounded run (``EXAMPLES`` cases per operation) that fails on any 5xx, on a response that does
not match the documented schema or content type, or on an undocumented status code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from app.settings import Settings
from tests.api.conftest import settings_for
from tests.fakes.engine import FakeEngine
from tests.servers import live_server

EXAMPLES = 50

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture
def api_schema(database_url: str, tmp_path: Path) -> Iterator[schemathesis.BaseSchema]:
    settings: Settings = settings_for(database_url, tmp_path)
    engines = {"files": FakeEngine("files"), "disk": FakeEngine("disk")}
    with live_server(settings, engines) as server:
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def test_no_input_breaks_the_api(api_schema: schemathesis.BaseSchema) -> None:
    """Whatever the input, ferry answers with a documented status and body, never a 5xx."""
    cases = 0
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            nonlocal cases
            cases += 1
            case.call_and_validate(checks=CHECKS)

        check()
    print(f"schemathesis: {cases} cases over {len(operations)} operations")
