"""The OpenAPI contract under generated requests (schemathesis), for several roles.

Every documented operation is called with generated parameters and bodies as a
reading physician, a department clinician (need-to-know applies), the auditor
and the HIS machine client. No answer may be a server error, and every answer
must match the response schema the spec documents for its status. The one 5xx
allowed is the documented 503 "workflow service unavailable" (and /health's 503):
these tests run without Temporal, as the API must while Temporal is down.

Examples per operation are few (`EXAMPLES`) to keep the run near 30 s on a loaded
machine; raise RADLOOP_FUZZ_EXAMPLES locally for a longer search.
"""
from __future__ import annotations

import os
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from api.main import create_app
from domain.enums import Role

EXAMPLES = int(os.environ.get("RADLOOP_FUZZ_EXAMPLES", "2"))
ROLES = (Role.radiologist, Role.clinician, Role.auditor, Role.his_system)
TEMPORAL_DOWN = "workflow service unavailable"
STREAMS = {"/api/v1/queues/feed"}
# Contract gaps this test found and that are not fixed yet: (method, path, schemathesis code) ->
# why. Empty: the ones it found (local times, DICOM JSON, 422 bodies) are fixed. Anything fails.
KNOWN: dict[tuple[str, str, str], str] = {}


def _check(case: schemathesis.Case, response: schemathesis.Response) -> list[str]:
    """What is wrong with this answer (empty when nothing)."""
    if response.status_code == 503 and (TEMPORAL_DOWN in response.text or case.path == "/health"):
        return []  # documented: Temporal down; /health says 503 until every component answers
    problems = []
    for check in (not_a_server_error, response_schema_conformance, content_type_conformance):
        try:
            case.validate_response(response, checks=[check])
        except (Failure, FailureGroup) as failure:
            text = str(failure)
            title = next((ln.strip() for ln in text.splitlines() if ln.strip().startswith("- ST")), text[:120])
            detail = next((ln.strip() for ln in text.splitlines()[3:] if ln.strip()), "")
            code = title.removeprefix("- ").split(" ", 1)[0]
            if (case.method.upper(), case.path, code) not in KNOWN:
                problems.append(f"{title} ({detail[:160]})")
    return problems


@pytest.mark.timeout(300)
def test_every_operation_answers_within_its_contract_for_each_role(users, auth) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
    # The queue feed is a server-sent event stream that stays open: not a request/response to fuzz.
    operations = [op for r in schema.get_all_operations() if (op := r.ok()).path not in STREAMS]
    assert len(operations) > 50
    failures: list[str] = []
    calls = 0
    started = time.monotonic()
    for role in ROLES:
        headers = auth(role)
        for op in operations:

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy())
            def run(case: schemathesis.Case) -> None:
                nonlocal calls
                calls += 1
                response = case.call(headers=headers)
                failures.extend(f"{op.method.upper()} {op.path} -> {response.status_code}: {p}"
                                for p in _check(case, response))

            run()
    elapsed = time.monotonic() - started
    print(f"schemathesis: {calls} calls over {len(operations)} operations x {len(ROLES)} roles in {elapsed:.1f} s")
    assert calls >= len(operations) * len(ROLES)
    assert failures == [], "\n".join(sorted(set(failures))[:60])
