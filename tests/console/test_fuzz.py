"""The API fuzzed from its own OpenAPI schema (schemathesis): whatever a client sends, the
answer is never a 500, and every refusal is JSON ``{"error": message}``. Signed in as the
role that may call each operation (the tax reporter's, the promoter's and the inspector's
as those roles, every other as an admin), with the CSRF header, so the fuzz reaches past
the sign-in and role checks into each route's own validation; both valid and invalid
data (the schema's positive and negative cases)."""

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


# Who calls each operation: the role that may, so the fuzz gets past the role check into
# the route's own validation (the tax reporter's, promoter's and inspector's operations
# are theirs alone); every other operation as the admin.
CALLER = (
    ("/api/v1/tax", "tom"),
    ("/api/v1/promoter/", "pia"),
    ("/api/v1/inspector/", "ivan"),
)
NEW_OPERATIONS = {
    "GET /api/v1/tax",
    "GET /api/v1/tax/export.csv",
    "GET /api/v1/tax/export.pdf",
    "GET /api/v1/tax/filings",
    "POST /api/v1/tax/filings",
    "GET /api/v1/tax/filings/{filing_id}",
    "GET /api/v1/tax/filings/{filing_id}/export.csv",
    "GET /api/v1/tax/filings/{filing_id}/export.pdf",
    "GET /api/v1/promoter/events",
    "GET /api/v1/promoter/events/{event_id}",
    "GET /api/v1/inspector/devices",
    "GET /api/v1/inspector/devices/{device_id}",
    "POST /api/v1/inspector/devices/{device_id}/package",
    "GET /api/v1/enrollments/{device_id}/media/{sha256}",
    "GET /api/v1/enrollments",
    "POST /api/v1/enrollments",
    "GET /api/v1/enrollments/{device_id}",
    "POST /api/v1/enrollments/{device_id}/review",
    "POST /api/v1/enrollments/{device_id}/publish",
}


def caller(label: str) -> str:
    path = label.split(" ", 1)[1]
    return next((name for prefix, name in CALLER if path.startswith(prefix)), "ada")


def fuzzer(operation, mode, cookies: dict, headers: dict):
    """One operation's fuzz: every answer under 500, every refusal ``{"error"}``."""

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

    return call


@pytest.fixture(scope="module")
def sessions(signed_in):
    """Every caller signed in once, before any fuzzing: the fuzzed sign-ins fail, and past
    the sign-in limit a new session would be refused (429) for the rest of the module."""
    return {name: signed_in(name) for name in ("ada", "tom", "pia", "ivan")}


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_reaches_a_server_error(operations, sessions, mode):
    assert len(operations) >= 15
    assert NEW_OPERATIONS <= {op.label for op in operations}
    for operation in operations:
        user = sessions[caller(operation.label)]
        call = fuzzer(
            operation,
            mode,
            {"tillbox_session": user.cookies["tillbox_session"]},
            {"X-CSRF-Token": user.csrf},
        )
        try:
            call()
        except Unsatisfiable:
            # an operation without parameters or body has nothing to make invalid
            assert mode == GenerationMode.NEGATIVE, operation.label
