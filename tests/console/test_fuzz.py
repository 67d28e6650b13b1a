"""The API fuzzed from its own OpenAPI schema (schemathesis): whatever a client sends, the
answer is never a 500, and every refusal is JSON ``{"error": message}``. Signed in as an
admin (who may call every operation), with the CSRF header, so the fuzz reaches past the
sign-in check into each route's own validation; both valid and invalid data (the
schema's positive and negative cases)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

EXAMPLES = 25  # per operation and mode: about a minute in all on the 2-core machine


@pytest.fixture(scope="module")
def operations(app):
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    found = [result.ok() for result in schema.get_all_operations()]
    # signing out would end the fuzzing session; it is tested on its own (test_changes.py)
    return [op for op in found if op.label != "DELETE /api/v1/session"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_reaches_a_server_error(operations, signed_in, mode):
    admin = signed_in("ada")
    cookies = {"tillbox_session": admin.cookies["tillbox_session"]}
    headers = {"X-CSRF-Token": admin.csrf}
    assert len(operations) >= 15
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case) -> None:
            response = case.call(cookies=cookies, headers={**(case.headers or {}), **headers})
            where = (case.method, case.formatted_path, case.query, case.body)
            assert response.status_code < 500, (where, response.text[:300])
            if response.status_code >= 400:
                body = response.json()
                assert set(body) == {"error"} and body["error"], (where, body)

        try:
            call()
        except Unsatisfiable:
            # an operation without parameters or body has nothing to make invalid
            assert mode == GenerationMode.NEGATIVE, operation.label
