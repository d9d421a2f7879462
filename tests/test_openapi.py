"""The OpenAPI document cannot drift: schemathesis generates requests from it against the dry-run app.

Every response must be no 5xx, with a status, content type and body the document declares.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from config import Settings
from relay.dry_run import DryRunRoom
from relay.microphone import CountingMicrophoneDevice

ROOT = Path(__file__).resolve().parent.parent
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 120  # 13 operations: well over the 1,000 generated requests the README promises


@pytest.fixture
def cases_run():
    """Every generated request and its answer's status; once they all ran, at least 1,000 on every form of input.

    The lazy schema runs every operation inside the one test below, so this
    fixture's teardown sees the whole corpus: the count belongs to that test,
    which therefore passes or fails the same alone or in any order.
    """
    cases: list[tuple[str, str, int]] = []
    yield cases
    assert len(cases) >= 1000, f"only {len(cases)} generated requests ran"
    assert {path for _, path, _ in cases} >= {"/send_text_message", "/send_audio_message", "/events", "/microphone"}
    assert not [case for case in cases if case[2] >= 500]


@pytest.fixture(scope="module")
def dry_run_app():
    app = create_app(Settings(max_body_bytes=256 * 1024, spoken_timeout_s=0), DryRunRoom(io.StringIO()), microphone_device=CountingMicrophoneDevice(24000))
    yield app
    app.extensions["relay"].close()


@pytest.fixture(scope="module")
def api_schema(dry_run_app):
    return schemathesis.openapi.from_wsgi("/openapi.json", dry_run_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_over_1000_generated_requests_each_get_a_documented_answer(case, cases_run):
    response = case.call_and_validate(checks=CHECKS)
    cases_run.append((case.method, case.path, response.status_code))


def test_the_document_is_served_and_is_openapi_3_1(client):
    served = client.get("/openapi.json")

    assert served.status_code == 200 and served.mimetype == "application/json"
    assert served.get_json() == json.loads((ROOT / "static" / "openapi.json").read_text())
    assert served.get_json()["openapi"] == "3.1.0"


def test_every_route_of_the_app_is_documented(app):
    document = json.loads((ROOT / "static" / "openapi.json").read_text())
    routes = {re.sub(r"<(\w+)>", r"{\1}", rule.rule) for rule in app.url_map.iter_rules() if rule.endpoint != "static"}

    assert routes == set(document["paths"])



def test_the_emotion_field_is_documented_as_the_codes_field_tables_define_it():
    """Hand-written for now: held to echo_messages' tables, so a field or an emotion added there is added here."""
    import echo_messages

    document = json.loads((ROOT / "static" / "openapi.json").read_text())
    body = document["paths"]["/send_text_message"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    quickstart, flat = body["anyOf"]
    properties_form = document["components"]["schemas"]["TextProperties"]["properties"]
    flat_fields = {**properties_form, **flat["allOf"][1]["properties"]}

    assert set(flat_fields) == {*echo_messages.TEXT_FIELDS, "conversation_id"}
    assert {name: flat_fields[name]["enum"] for name in echo_messages.FIELD_CHOICES} == {
        name: list(choices) for name, choices in echo_messages.FIELD_CHOICES.items()
    }
    assert not set(echo_messages.FLAT_ONLY_FIELDS) & (set(properties_form) | set(quickstart["properties"]))
