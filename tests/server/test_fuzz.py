"""Spec-driven fuzzing: schemathesis reads each example's /openapi.json and attacks gunicorn.

Every operation gets a bounded, derandomised run of valid (positive) requests and, where
something can be made invalid, of invalid (negative) ones. The app must never answer 5xx,
and each response must match the document: status code, content type, headers and body.
Everything goes to the gunicorn started here on 127.0.0.1.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from _helpers import run_gunicorn
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]

MAX_EXAMPLES = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # the same requests on every run: a failure here is reproducible
    database=None,
    deadline=None,
    # NOTE: no shrinking: failures are collected, not raised, so every run sends exactly
    # the generated requests and the counts below stay comparable between runs.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass
class Report:
    statuses: collections.Counter[tuple[str, str, int]] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    unnegatable: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def summary(self) -> str:
        operations = sorted({label for label, _, _ in self.statuses})
        lines = [f"{len(operations)} operations, {self.requests} requests"]
        lines += [
            f"  {label} {mode} -> {status}: {n}"
            for (label, mode, status), n in sorted(self.statuses.items())
        ]
        return "\n".join(lines)


def fuzz(base_url: str, headers: dict[str, str] | None = None) -> Report:
    """Fuzz every operation of the app at ``base_url``; collect every failed check.

    ``headers`` go with every request (credentials, so secured routes are reached).
    """
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = Report()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            session.headers.update(headers or {})
            fuzz_operation(operation, GenerationMode.POSITIVE, CHECKS, session, report)
            if len(operation.body) or len(operation.query) or len(operation.path_parameters):
                checks = [*CHECKS, negative_data_rejection]
                try:
                    fuzz_operation(operation, GenerationMode.NEGATIVE, checks, session, report)
                except Unsatisfiable:
                    # NOTE: a path parameter that is a plain string has no invalid value
                    # schemathesis can send (a '/' would change the path, not the value).
                    report.unnegatable.append(operation.label)
    return report


def fuzz_operation(operation, mode, checks, session, report: Report) -> None:
    """Send ``MAX_EXAMPLES`` generated requests to one operation and check each response."""
    label = operation.label

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        # NOTE: WSGI servers decode PATH_INFO, so a '/' (even sent as %2F) in a path
        # parameter makes another path, which may be another route's (a 405 there):
        # that request tests routing, not this operation.
        assume(not any("/" in str(value) for value in (case.path_parameters or {}).values()))
        response = case.call(session=session, timeout=10)
        report.statuses[(label, mode.value, response.status_code)] += 1
        try:
            case.validate_response(response, checks=checks)
        except BaseExceptionGroup as group:
            report.failures.extend(
                f"{label} {mode.value}: {failure}" for failure in group.exceptions
            )
        except AssertionError as failure:
            report.failures.append(f"{label} {mode.value}: {failure}")

    run()


def test_signup_example_survives_fuzzing_and_matches_its_document(tmp_path):
    env = {"SIGNUP_DB": str(tmp_path / "signup.sqlite3")}
    with run_gunicorn("examples.signup:app", tmp_path=tmp_path, env=env) as server:
        report = fuzz(server.url)
    print(report.summary())
    assert report.failures == []
    statuses = {(label, status) for label, _, status in report.statuses}
    assert statuses == {("POST /signup", 201), ("POST /signup", 422), ("GET /outbox", 200)}
    assert report.statuses[("POST /signup", "positive", 201)] == MAX_EXAMPLES
    assert report.statuses[("POST /signup", "negative", 422)] == MAX_EXAMPLES


def test_dependencies_example_survives_fuzzing_and_matches_its_document(tmp_path):
    env = {"BANK_DB": str(tmp_path / "bank.sqlite3")}
    with run_gunicorn("examples.dependencies:app", tmp_path=tmp_path, env=env) as server:
        report = fuzz(server.url)
    print(report.summary())
    assert report.failures == []
    # A taken account name is a 409, declared with responses=: the fuzzer met it, and the
    # status-code check above found it in the document.
    assert report.statuses[("POST /accounts", "positive", 409)] > 0
    assert report.statuses[("POST /accounts", "positive", 201)] > 0
    assert report.statuses[("POST /accounts", "negative", 422)] == MAX_EXAMPLES
    assert report.statuses[("POST /transfers", "negative", 422)] == MAX_EXAMPLES
    assert report.unnegatable == ["GET /accounts/{name}"]


def test_store_example_survives_fuzzing_with_security_uploads_and_decimals(tmp_path):
    env = {
        "STORE_DB": str(tmp_path / "store.sqlite3"),
        "STORE_UPLOADS": str(tmp_path / "uploads"),
        "STORE_ADMIN_TOKEN": "fuzz-admin",
        "STORE_PARTNER_KEY": "fuzz-partner",
    }
    credentials = {"Authorization": "Bearer fuzz-admin", "X-Partner-Key": "fuzz-partner"}
    with run_gunicorn("examples.store:app", tmp_path=tmp_path, env=env) as server:
        report = fuzz(server.url, headers=credentials)
        anonymous = fuzz(server.url)
    print(report.summary())
    print(anonymous.summary())
    assert report.failures == []
    assert anonymous.failures == []
    # With credentials, products are made (Decimal prices generated from the pattern);
    # without, every secured operation is a 401, whatever the body.
    assert report.statuses[("POST /products", "positive", 201)] > 0
    assert report.statuses[("GET /partner/prices", "positive", 200)] == MAX_EXAMPLES
    assert report.statuses[("GET /admin/images", "positive", 200)] == MAX_EXAMPLES
    assert anonymous.statuses[("POST /products", "positive", 401)] == MAX_EXAMPLES
    assert anonymous.statuses[("POST /products", "negative", 401)] == MAX_EXAMPLES
    image = "PUT /products/{product_id}/image"
    assert anonymous.statuses[(image, "positive", 401)] == MAX_EXAMPLES
    # A path the converter refuses is a 404 before anything else runs.
    assert {status for label, _, status in anonymous.statuses if label == image} == {401, 404}
    # An image is on disk for each upload answered 201, and for no other request.
    accepted = report.statuses[(image, "positive", 201)] + report.statuses[(image, "negative", 201)]
    assert len(list((tmp_path / "uploads").iterdir())) == accepted
