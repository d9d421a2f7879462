"""The API is described once: the OpenAPI document is generated from the parser's tables, and the relay is held to it.

schemathesis generates requests from the served document against the dry-run
app, with every check it has, under the repository's schemathesis.toml (the
one place listing the refusals no schema can express).
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import schemathesis
import soundfile
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

import echo_messages as em
from app import create_app
from config import Settings
from relay import openapi
from relay.dry_run import DRY_RUN_CONVERSATION_ID, DryRunRoom
from relay.events import MAX_EVENTS_LISTED
from relay.markup import EMOTIONS
from relay.microphone import CountingMicrophoneDevice

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "schemathesis.toml"
EXAMPLES_PER_OPERATION = 40  # with the coverage phase's own cases: well over the 1,000 requests docs/api.md promises
PCM = "AAAAAAAA"  # three samples of silence


def wav_bytes() -> bytes:
    """10 ms of 16 kHz silence, a whole WAV file."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(160, dtype="float32"), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def dry_run_app(**settings_given: Any) -> Any:
    settings = Settings(spoken_timeout_s=0, max_body_bytes=256 * 1024, **settings_given)
    return create_app(settings, DryRunRoom(io.StringIO()), microphone_device=CountingMicrophoneDevice(24000))


# --- the document is generated, checked in, and served ----------------------------------------------------------


def test_the_checked_in_document_is_the_generated_one():
    checked_in = (ROOT / "static" / "openapi.json").read_text(encoding="utf-8")

    assert checked_in == openapi.written(openapi.document()), (
        f"static/openapi.json is not the document the code generates: run {openapi.REGENERATE}"
    )


def test_python_m_relay_openapi_writes_the_document_and_check_says_when_it_differs(tmp_path, capsys):
    written = tmp_path / "openapi.json"

    assert openapi.main(["--output", str(written)]) == 0
    assert json.loads(written.read_text()) == openapi.document()
    assert openapi.main(["--output", str(written), "--check"]) == 0
    written.write_text("{}")
    assert openapi.main(["--output", str(written), "--check"]) == 1
    assert capsys.readouterr().err == f"{written} is not the generated document: run python -m relay.openapi\n"


def test_the_served_document_allows_only_the_rooms_conversation_id(make_app, room):
    served = make_app(Settings(), room).test_client().get("/openapi.json")

    assert served.status_code == 200 and served.mimetype == "application/json"
    assert served.get_json() == openapi.document(room.conversation_id)
    assert served.get_json()["openapi"] == "3.1.0"
    found = {json.dumps(schema["enum"]) for schema in _schemas_named(served.get_json()["paths"], "conversation_id")}
    assert found == {json.dumps([room.conversation_id]), json.dumps([room.conversation_id, None])}


def test_without_the_token_the_served_document_does_not_name_the_room(make_app, room):
    """The room's id is its name in the Daily URL: /room keeps it behind the token, and so does the document."""
    client = make_app(Settings(auth_token="s3cret-token"), room).test_client()

    anonymous = client.get("/openapi.json")
    with_token = client.get("/openapi.json", headers={"Authorization": "Bearer s3cret-token"})

    assert anonymous.status_code == 200 and anonymous.get_json() == openapi.document()
    assert room.conversation_id not in anonymous.get_data(as_text=True)
    assert with_token.get_json() == openapi.document(room.conversation_id)


def test_every_route_of_the_app_is_documented(app):
    routes = {re.sub(r"<(\w+)>", r"{\1}", rule.rule) for rule in app.url_map.iter_rules() if rule.endpoint != "static"}

    assert routes == set(openapi.document()["paths"])


def test_the_whitespace_the_patterns_name_is_what_python_strips():
    assert openapi.SPACES == "".join(char for char in map(chr, range(sys.maxunicode + 1)) if char.isspace())


def _schemas_named(node: Any, name: str) -> list[Any]:
    """Every schema given to a property or parameter called `name`, anywhere in `node`."""
    found = []
    if isinstance(node, dict):
        if node.get("name") == name and "schema" in node:
            found.append({key: value for key, value in node["schema"].items()})
        if isinstance(node.get("properties"), dict) and name in node["properties"]:
            found.append(node["properties"][name])
        for value in node.values():
            found += _schemas_named(value, name)
    elif isinstance(node, list):
        for value in node:
            found += _schemas_named(value, name)
    return found


# --- every field the parser knows, and no other ----------------------------------------------------------------


def _json_forms(endpoint: str) -> tuple[dict[str, Any], dict[str, Any]]:
    body = openapi.document()["paths"][endpoint]["post"]["requestBody"]["content"]["application/json"]["schema"]
    flat, quickstart = body["anyOf"]
    return flat, quickstart


@pytest.mark.parametrize("endpoint", list(em.JSON_FIELDS))
def test_each_json_form_takes_exactly_the_fields_the_parser_knows(endpoint):
    flat, quickstart = _json_forms(endpoint)
    envelope = {name for name in em.ENVELOPE_FIELDS if name != "properties"}
    inner = {name for name in em.JSON_FIELDS[endpoint] if name not in em.FLAT_ONLY_FIELDS}

    assert set(flat["properties"]) == envelope | set(em.JSON_FIELDS[endpoint])
    assert set(quickstart["properties"]) == envelope | inner | {"properties"}
    assert set(quickstart["properties"]["properties"]["properties"]) == inner | {"conversation_id"}
    assert flat["additionalProperties"] is quickstart["additionalProperties"] is False
    assert quickstart["properties"]["properties"]["additionalProperties"] is False


@pytest.mark.parametrize("endpoint", list(em.UPLOAD_PARAMETERS))
def test_an_upload_takes_exactly_the_parameters_the_parser_knows(endpoint):
    operation = openapi.document()["paths"][endpoint]["post"]
    multipart = operation["requestBody"]["content"]["multipart/form-data"]["schema"]

    assert [parameter["name"] for parameter in operation["parameters"]] == list(em.UPLOAD_PARAMETERS[endpoint])
    assert set(multipart["properties"]) == {"file", *em.UPLOAD_PARAMETERS[endpoint]}
    assert {*operation["requestBody"]["content"]} == {"application/json", "multipart/form-data",
                                                       *openapi.AUDIO_FILE_MIMETYPES}


def test_the_script_body_takes_exactly_the_fields_the_parser_knows():
    body = openapi.document()["paths"]["/script"]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert list(body["properties"]) == list(em.SCRIPT_FIELDS) and body["additionalProperties"] is False


def test_the_choices_are_the_codes_lists():
    flat, quickstart = _json_forms(em.TEXT_ENDPOINT)

    assert {name: flat["properties"][name]["enum"] for name in em.FIELD_CHOICES} == {
        name: [*choices, None] for name, choices in em.FIELD_CHOICES.items()
    }
    assert flat["properties"]["emotion"]["enum"][:-1] == list(EMOTIONS)
    assert "emotion" not in quickstart["properties"] and "emotion" not in quickstart["properties"]["properties"]


# --- every bound the parser enforces, at the document's bound -------------------------------------------------------

# (endpoint, field, value): each sent in the flat form beside a body the relay takes. The relay answers 400 exactly
# when the served document's schema refuses the body: the same bounds, field by field.
BASE_BODIES = {
    em.TEXT_ENDPOINT: {"text": "Hi"},
    em.AUDIO_ENDPOINT: {"audio": PCM, "done": True},
    em.MICROPHONE_ENDPOINT: {"audio": PCM},
}
ROOM = DRY_RUN_CONVERSATION_ID
BOUNDS = [
    *[(endpoint, "inference_id", value) for endpoint in BASE_BODIES
      for value in ("x" * em.MAX_INFERENCE_ID_CHARS, "x" * (em.MAX_INFERENCE_ID_CHARS + 1), "", " \x1d", "a b", 5)],
    *[(endpoint, "conversation_id", value) for endpoint in BASE_BODIES for value in (ROOM, "c123", "", None)],
    *[(em.AUDIO_ENDPOINT, "sample_rate", value) for value in (
        em.MIN_SAMPLE_RATE - 1, em.MIN_SAMPLE_RATE, em.MAX_SAMPLE_RATE, em.MAX_SAMPLE_RATE + 1, 24000.0, 16000.5,
        True, -5, str(em.MIN_SAMPLE_RATE - 1), str(em.MIN_SAMPLE_RATE), f" {em.MAX_SAMPLE_RATE}\n",
        str(em.MAX_SAMPLE_RATE + 1), "0" * (em.MAX_NUMBER_DIGITS - 5) + "24000",
        "0" * (em.MAX_NUMBER_DIGITS - 4) + "24000", "²", "١٦٠٠٠", "+24000", "", None)],
    *[(em.TEXT_ENDPOINT, "emotion", value) for value in (*EMOTIONS, "Excited", "happy", "", 5, None)],
    *[(endpoint, "wait", value) for endpoint in (em.TEXT_ENDPOINT, em.AUDIO_ENDPOINT)
      for value in (*em.WAITS, "SPOKEN", "", None)],
    (em.MICROPHONE_ENDPOINT, "wait", "spoken"),
    *[(em.TEXT_ENDPOINT, name, value) for name in ("done", "interrupt")
      for value in (True, False, "true", " FALSE\n", "True", "yes", "", 1, None)],
    *[(em.TEXT_ENDPOINT, "text", value) for value in ("a", "", " ", "\x1d\u3000", 5, None)],
    *[(em.TEXT_ENDPOINT, name, value) for name in em.IGNORED_TEXT_FIELDS for value in ("anything", 5, [1], None)],
    *[(endpoint, "audio", value) for endpoint in (em.AUDIO_ENDPOINT, em.MICROPHONE_ENDPOINT)
      for value in (PCM, "AAAA\nAAAA", "", " \n", "====", "AA!A", 5, None)],
    *[(endpoint, "modality", value) for endpoint in BASE_BODIES for value in ("text", "audio", "", None)],
    *[(em.TEXT_ENDPOINT, name, value) for name in ("message_type", "event_type")
      for value in (em.ENVELOPE_VALUES[name], "other", None)],
    (em.TEXT_ENDPOINT, "messages", "Hi"),
]


@pytest.fixture(scope="module")
def bound_app():
    app = dry_run_app()
    yield app
    app.extensions["relay"].close()


def _valid(schema: dict[str, Any], value: Any) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(value)


@pytest.mark.parametrize("endpoint, name, value", BOUNDS)
def test_the_relay_refuses_a_field_exactly_where_the_served_document_does(bound_app, endpoint, name, value):
    client = bound_app.test_client()
    client.post("/interrupt")  # the stand-in face's queue stays short whatever ran before
    schema = json.loads(client.get("/openapi.json").data)["paths"][endpoint]["post"]["requestBody"]["content"]
    body = {**BASE_BODIES[endpoint], name: value}

    status = client.post(endpoint, json=body).status_code

    assert (status == 400) is not _valid(schema["application/json"]["schema"], body), (status, body)


@pytest.mark.parametrize("endpoint, body", [
    (em.TEXT_ENDPOINT, {"properties": {"text": "Hi"}, "done": 5}),
    (em.TEXT_ENDPOINT, {"properties": {"text": "Hi", "done": True}, "done": False}),
    (em.TEXT_ENDPOINT, {"properties": {}, "text": "Hi"}),
    (em.TEXT_ENDPOINT, {"properties": {"text": None}, "text": "Hi"}),
    (em.TEXT_ENDPOINT, {"properties": {"text": None}}),
    (em.TEXT_ENDPOINT, {"properties": {"text": "Hi", "emotion": "sad"}}),
    (em.TEXT_ENDPOINT, {"properties": {"text": "Hi"}, "emotion": "sad"}),
    (em.TEXT_ENDPOINT, {"properties": {"text": "Hi", "message_type": "conversation"}}),
    (em.TEXT_ENDPOINT, {"properties": {"text": "Hi", "conversation_id": "c123"}, "conversation_id": ROOM}),
    (em.TEXT_ENDPOINT, {"properties": {"text": "Hi", "conversation_id": ROOM}, "conversation_id": ROOM}),
    (em.TEXT_ENDPOINT, {"properties": None, "text": "Hi"}),
    (em.AUDIO_ENDPOINT, {"properties": {"done": False}, "done": True}),
    (em.AUDIO_ENDPOINT, {"properties": {"done": None}, "done": True}),
    (em.AUDIO_ENDPOINT, {"properties": {}, "done": "true"}),
    (em.AUDIO_ENDPOINT, {"properties": {"audio": PCM}, "audio": ""}),
    (em.AUDIO_ENDPOINT, {"properties": {}, "audio": PCM}),
    (em.MICROPHONE_ENDPOINT, {"properties": {}, "audio": PCM}),
    (em.MICROPHONE_ENDPOINT, {"properties": {"done": True}}),
])
def test_the_properties_form_is_refused_exactly_where_the_served_document_does(bound_app, endpoint, body):
    """Tavus's form may give a field at either level: each value given is checked, and properties' is used."""
    client = bound_app.test_client()
    client.post("/interrupt")
    schema = json.loads(client.get("/openapi.json").data)["paths"][endpoint]["post"]["requestBody"]["content"]

    status = client.post(endpoint, json=body).status_code

    assert (status == 400) is not _valid(schema["application/json"]["schema"], body), status


@pytest.mark.parametrize("name, value", [
    *[("inference_id", value) for value in ("x" * em.MAX_INFERENCE_ID_CHARS, "x" * (em.MAX_INFERENCE_ID_CHARS + 1))],
    ("inference_id", " "),
    *[("done", value) for value in ("true", " False ", "no")],
    *[("wait", value) for value in (*em.WAITS, "soon")],
    *[("conversation_id", value) for value in (ROOM, "c123")],
])
def test_an_upload_parameter_is_refused_exactly_where_the_served_document_does(bound_app, name, value):
    client = bound_app.test_client()
    client.post("/interrupt")
    operation = json.loads(client.get("/openapi.json").data)["paths"][em.AUDIO_ENDPOINT]["post"]
    parameter = next(parameter for parameter in operation["parameters"] if parameter["name"] == name)

    status = client.post(em.AUDIO_ENDPOINT, query_string={name: value}, data=wav_bytes(),
                         content_type="audio/wav").status_code

    assert (status == 400) is not _valid(parameter["schema"], value), status


@pytest.mark.parametrize("query, headers", [
    *[({"limit": value}, {}) for value in ("0", "1", str(MAX_EVENTS_LISTED), str(MAX_EVENTS_LISTED + 1), "", " 7 ",
                                          "0" * (em.MAX_NUMBER_DIGITS - 1) + "1", "0" * em.MAX_NUMBER_DIGITS + "1")],
    *[({"after": value}, {}) for value in ("", " ", "5", "9" * em.MAX_NUMBER_DIGITS, "9" * 19, "-1", "1.0")],
    *[({}, {"Last-Event-ID": value}) for value in ("", "5", " 5 ", "x", "9" * 19)],
    ({"after": "1"}, {"Last-Event-ID": "x"}),
])
def test_an_events_parameter_is_refused_exactly_where_the_document_does(bound_app, query, headers):
    operation = openapi.document()["paths"]["/events"]["get"]
    parameters = {parameter["name"]: parameter["schema"] for parameter in operation["parameters"]}
    valid = all(_valid(parameters[name], value) for name, value in {**query, **headers}.items())

    status = bound_app.test_client().get("/events", query_string=query, headers=headers).status_code

    assert (status == 400) is not valid, status


@pytest.mark.parametrize("body", [
    {"script": "Hi."}, {"script": "Hi.", "name": "demo"}, {"script": "Hi.", "name": None}, {"script": "Hi.", "name": 5},
    {"script": ""}, {"script": 5}, {"script": "Hi.", "nme": "demo"}, {},
])
def test_a_script_body_is_refused_exactly_where_the_document_does(bound_app, body):
    schema = openapi.script_body()

    status = bound_app.test_client().post("/script", json=body).status_code

    assert (status == 400) is not _valid(schema, body), status


def test_every_bound_in_the_document_is_one_the_tests_above_hold_the_relay_to():
    """The reverse: no field of a JSON body has a bound (enum, pattern, length, range) that BOUNDS leaves untested."""
    bound_words = ('"enum"', '"pattern"', 'Length"', '"minimum"', '"maximum"')
    bounded = set()
    for endpoint in em.JSON_FIELDS:
        flat, quickstart = _json_forms(endpoint)
        inner = quickstart["properties"]["properties"]["properties"]
        for name, schema in [*flat["properties"].items(), *quickstart["properties"].items(), *inner.items()]:
            if name != "properties" and any(word in json.dumps(schema) for word in bound_words):
                bounded.add(name)

    assert bounded == {name for _, name, _ in BOUNDS} - {"messages", *em.IGNORED_TEXT_FIELDS} | {"audio", "sample_rate"}


@pytest.mark.parametrize("low, high", [(1, MAX_EVENTS_LISTED), (em.MIN_SAMPLE_RATE, em.MAX_SAMPLE_RATE)])
def test_a_number_pattern_matches_exactly_the_numbers_the_parser_takes(low, high):
    pattern = re.compile(openapi.digits_between(low, high))
    for number in (*range(1100), *range(low - 1100, low + 1100), *range(high - 1100, high + 1100), 10**18 - 1):
        for text in (str(number), f" {number}\t", str(number).zfill(em.MAX_NUMBER_DIGITS),
                     str(number).zfill(em.MAX_NUMBER_DIGITS + 1)):
            try:
                taken = low <= em.ascii_int(text, "n") <= high
            except em.MessageError:
                taken = False
            assert bool(pattern.search(text)) is taken, text


# --- schemathesis, with every check -----------------------------------------------------------------------------


@pytest.fixture
def cases_run():
    """Every generated request and its answer's status; once they all ran, over 1,000 on every form of input.

    The lazy schema runs every operation inside the one test below, so this
    fixture's teardown sees the whole corpus: the count belongs to that test,
    which therefore passes or fails the same alone or in any order.
    """
    cases: list[tuple[str, str, int]] = []
    yield cases
    assert len(cases) >= 1000, f"only {len(cases)} generated requests ran"
    # schemathesis leaves out the document's own endpoint; test_the_served_document_... holds that one
    assert {path for _, path, _ in cases} == set(openapi.document()["paths"]) - {"/openapi.json"}
    assert not [case for case in cases if case[2] >= 500]


@pytest.fixture(scope="module")
def fuzzed_app():
    app = dry_run_app()
    yield app
    app.extensions["relay"].close()


@pytest.fixture(scope="module")
def api_schema(fuzzed_app):
    return schemathesis.openapi.from_wsgi("/openapi.json", fuzzed_app, config=SchemathesisConfig.from_path(CONFIG))


schema = schemathesis.pytest.from_fixture("api_schema")
load_all_checks()
ALL_CHECKS = list(CHECKS.get_all())  # `--checks all`


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_generated_request_gets_the_answer_the_document_promises(case, cases_run):
    """Every check schemathesis has; the statuses schemathesis.toml allows beside the document, and no others."""
    response = case.call_and_validate(checks=ALL_CHECKS)
    cases_run.append((case.method, case.path, response.status_code))


def test_the_suite_runs_every_check_schemathesis_has():
    assert {check.__name__ for check in ALL_CHECKS} >= {
        "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_headers_conformance",
        "response_schema_conformance", "negative_data_rejection", "positive_data_acceptance",
        "missing_required_header", "unsupported_method", "allow_header_conformance",
    }
