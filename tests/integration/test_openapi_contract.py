"""The OpenAPI contract (config/openapi.json): valid, served read-only by the proxy, and obeyed by
the live service for every request schemathesis generates (documented status, body and headers;
never a 5xx)."""

from __future__ import annotations

import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.core.failures import AcceptedNegativeData, FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.integration.service import REPO_ROOT

pytestmark = pytest.mark.integration

SPEC = json.loads((REPO_ROOT / "config" / "openapi.json").read_text())
schema = schemathesis.openapi.from_dict(SPEC)


def test_contract_is_valid_openapi():
    validate(SPEC)


def test_contract_is_served_read_only(service):
    response = requests.get(service.url("/openapi.json"), timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    assert response.json() == SPEC
    assert requests.post(service.url("/openapi.json"), timeout=10).status_code == 405


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_live_service_obeys_contract(case, service):
    response = case.call(base_url=service.base_url, timeout=60)
    assert response.status_code < 500, (response.status_code, response.text[:300])
    # Schema-valid bytes are rarely a decodable image: a documented 4xx is the right answer there.
    try:
        case.validate_response(response, excluded_checks=[positive_data_acceptance])
    except (FailureGroup, AcceptedNegativeData) as failure:
        # The multi-image forms and KServe v1 reject a bad image inline (its own status inside a 200, by
        # design): schema-violating data counts as rejected there if at least one image failed.
        # Unknown multipart fields are ignored, as documented (schemathesis calls an extra field
        # a violation of `additionalProperties` even where the schema allows it).
        failures = failure.exceptions if isinstance(failure, FailureGroup) else [failure]
        accepted_negative = all(isinstance(e, AcceptedNegativeData) for e in failures)
        body = response.json() if response.status_code == 200 else {}
        results = body.get("results") or (body.get("predictions") if case.operation.path.startswith("/v1/") else [])
        rejected_inline = any("error" in result for result in results)
        description = getattr(case.meta.phase.data, "description", None) or ""
        extra_field = case.media_type == "multipart/form-data" and "additionalProperties" in description
        if not (accepted_negative and (rejected_inline or extra_field)):
            raise


def test_every_operation_of_the_contract_is_exercised(service):
    """On its own (no reliance on the property test having run first): the contract really
    has its operations, and a generated request for each one is answered without a 5xx."""
    import warnings

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17  # /predict, /health, /live, /info, /openapi.json, the v2 and the v1 routes
    statuses = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hypothesis discourages .example() outside @given
        for operation in operations:
            response = operation.as_strategy().example().call(base_url=service.base_url, timeout=60)
            statuses[operation.label] = response.status_code
    print(f"\nschemathesis: {len(operations)} operations, one generated request each: {statuses}")
    assert all(status < 500 for status in statuses.values()), statuses
