"""Bad input, in one place: every malformed request is a 4xx in the documented {"error": "..."} shape, its words
name the mistake (a typo, a wrong endpoint, a missing header), and nothing is sent.

Every test here runs twice, as test_app.py's do: with the fast path for plain text, and with Flask alone.
"""

from __future__ import annotations

import functools
import io
import json
from typing import Any

import numpy as np
import pytest
import soundfile

from config import Settings
from tests.conftest import sent_messages
from tests.test_app import b64, pcm_of

JSON = "application/json"


@pytest.fixture
def make_app(make_app, fast_path):
    """conftest's make_app, with or without the fast path."""
    return functools.partial(make_app, fast_path=fast_path)


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


# (id, method, path, raw body, content type, extra headers, expected status)
CORPUS: list[tuple[str, str, str, bytes | None, str | None, dict[str, str], int]] = [
    # types
    ("text-list", "POST", "/send_text_message", body({"text": ["Hi"]}), JSON, {}, 400),
    ("text-object", "POST", "/send_text_message", body({"text": {"en": "Hi"}}), JSON, {}, 400),
    ("text-bool", "POST", "/send_text_message", body({"text": True}), JSON, {}, 400),
    ("text-null", "POST", "/send_text_message", body({"text": None}), JSON, {}, 400),
    ("text-number", "POST", "/send_text_message", body({"properties": {"text": 3.14}}), JSON, {}, 400),
    ("properties-list", "POST", "/send_text_message", body({"properties": [{"text": "Hi"}]}), JSON, {}, 400),
    ("body-string", "POST", "/send_text_message", body("Hello there!"), JSON, {}, 400),
    ("body-number", "POST", "/send_text_message", b"42", JSON, {}, 400),
    ("body-null", "POST", "/send_text_message", b"null", JSON, {}, 400),
    ("done-number", "POST", "/send_text_message", body({"text": "Hi", "done": 1}), JSON, {}, 400),
    ("done-word", "POST", "/send_text_message", body({"text": "Hi", "done": "yes please"}), JSON, {}, 400),
    ("interrupt-list", "POST", "/send_text_message", body({"text": "Hi", "interrupt": []}), JSON, {}, 400),
    ("modality-number", "POST", "/send_text_message", body({"text": "Hi", "modality": 1}), JSON, {}, 400),
    ("message-type-wrong", "POST", "/send_text_message",
     body({"message_type": "system", "properties": {"text": "Hi"}}), JSON, {}, 400),
    ("sample-rate-list", "POST", "/send_audio_message", body({"audio": "AAAA", "sample_rate": [24000]}), JSON, {}, 400),
    ("sample-rate-word", "POST", "/send_audio_message", body({"audio": "AAAA", "sample_rate": "fast"}), JSON, {}, 400),
    ("sample-rate-negative-string", "POST", "/send_audio_message",
     body({"audio": "AAAA", "sample_rate": "-1"}), JSON, {}, 400),
    ("audio-object", "POST", "/send_audio_message", body({"audio": {"data": "AAAA"}}), JSON, {}, 400),
    # typos and misplaced fields
    ("field-typo", "POST", "/send_text_message", body({"text": "Hi", "interupt": True}), JSON, {}, 400),
    ("field-wrong-case", "POST", "/send_text_message",
     body({"properties": {"text": "Hi", "Done": True}}), JSON, {}, 400),
    ("text-on-audio", "POST", "/send_audio_message", body({"text": "Hi"}), JSON, {}, 400),
    ("query-on-json", "POST", "/send_text_message?done=false", body({"text": "Hi"}), JSON, {}, 400),
    ("upload-param-typo", "POST", "/send_audio_message?dne=false",
     b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav", {}, 400),
    ("multipart-nameless-part", "POST", "/send_audio_message",
     (b'--XX\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XX\r\nContent-Disposition: form-data; name="file"; '
     b'filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--XX--\r\n'),
     "multipart/form-data; boundary=XX", {}, 400),
    # encodings
    ("invalid-utf8", "POST", "/send_text_message", b'{"text": "caf\xe9"}', JSON, {}, 400),
    ("truncated-json", "POST", "/send_text_message", b'{"text": "Hi"', JSON, {}, 400),
    ("trailing-garbage", "POST", "/send_text_message", b'{"text": "Hi"} x', JSON, {}, 400),
    ("single-quotes", "POST", "/send_text_message", b"{'text': 'Hi'}", JSON, {}, 400),
    ("base64-urlsafe", "POST", "/send_audio_message", body({"audio": "AA-_AA==", "done": True}), JSON, {}, 400),
    ("base64-no-padding", "POST", "/send_audio_message", body({"audio": "AAAAAA", "done": True}), JSON, {}, 400),
    ("base64-odd-pcm", "POST", "/send_audio_message", body({"audio": "AAAA", "done": True}), JSON, {}, 400),
    ("base64-blank", "POST", "/send_audio_message", body({"audio": "   "}), JSON, {}, 400),
    # sizes
    ("inference-id-too-long", "POST", "/send_text_message",
     body({"text": "Hi", "inference_id": "i" * 129}), JSON, {}, 400),
    ("inference-id-blank", "POST", "/send_text_message", body({"text": "Hi", "inference_id": "   "}), JSON, {}, 400),
    ("conversation-id-too-long", "POST", "/send_text_message",
     body({"text": "Hi", "conversation_id": "c" * 200}), JSON, {}, 400),
    ("body-over-limit", "POST", "/send_text_message", body({"text": "x" * 70_000}), JSON, {}, 413),
    ("empty-body", "POST", "/send_text_message", b"", JSON, {}, 400),
    # headers
    ("content-type-png", "POST", "/send_text_message", b"\x89PNG", "image/png", {}, 415),
    ("content-type-html", "POST", "/send_text_message", b"<p>Hi</p>", "text/html", {}, 415),
    ("content-type-audio-on-text", "POST", "/send_text_message", b"RIFF", "audio/wav", {}, 415),
    ("content-type-video-on-audio", "POST", "/send_audio_message", b"\x00\x00", "video/mp4", {}, 415),
    ("multipart-without-file", "POST", "/send_audio_message",
     b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--\r\n",
     "multipart/form-data; boundary=b", {}, 400),
    ("bad-last-event-id", "GET", "/events", None, None, {"Last-Event-ID": "yesterday"}, 400),
    # methods
    ("get-send-text", "GET", "/send_text_message", None, None, {}, 405),
    ("put-send-audio", "PUT", "/send_audio_message", body({"audio": "AAAA"}), JSON, {}, 405),
    ("delete-interrupt", "DELETE", "/interrupt", None, None, {}, 405),
    ("post-health", "POST", "/health", body({}), JSON, {}, 405),
    ("post-events", "POST", "/events", body({}), JSON, {}, 405),
    # paths
    ("typo-path", "POST", "/send_text_messages", body({"text": "Hi"}), JSON, {}, 404),
    ("upper-case-path", "POST", "/SEND_TEXT_MESSAGE", body({"text": "Hi"}), JSON, {}, 404),
    ("trailing-slash", "POST", "/send_text_message/", body({"text": "Hi"}), JSON, {}, 404),
    ("dot-dot-path", "GET", "/static/../app.py", None, None, {}, 404),
    ("unknown-file", "GET", "/index.php", None, None, {}, 404),
    ("static-traversal", "GET", "/static/../app.py", None, None, {}, 404),
    # unicode edge cases
    ("lone-surrogate-text", "POST", "/send_text_message", b'{"text": "Hi \\ud800"}', JSON, {}, 400),
    ("lone-surrogate-id", "POST", "/send_text_message", b'{"text": "Hi", "inference_id": "\\udfff"}', JSON, {}, 400),
    ("only-unicode-spaces", "POST", "/send_text_message", body({"text": "\u2003\u3000\n\t"}), JSON, {}, 400),
    ("bidi-modality", "POST", "/send_text_message", body({"text": "Hi", "modality": "\u202etxet"}), JSON, {}, 400),
    # huge numbers
    ("sample-rate-huge", "POST", "/send_audio_message", body({"audio": "AAAA", "sample_rate": 10**400}), JSON, {}, 400),
    ("sample-rate-infinity", "POST", "/send_audio_message", b'{"audio": "AAAA", "sample_rate": 1e999}', JSON, {}, 400),
    ("sample-rate-nan", "POST", "/send_audio_message", b'{"audio": "AAAA", "sample_rate": NaN}', JSON, {}, 400),
    ("number-too-long-to-parse", "POST", "/send_audio_message",
     b'{"audio": "AAAA", "sample_rate": ' + b"9" * 5000 + b"}", JSON, {}, 400),
    ("event-id-huge", "GET", "/events?after=" + "9" * 30, None, None, {}, 400),
    # nested junk
    ("deeply-nested", "POST", "/send_text_message", b"[" * 100_000 + b"]" * 100_000, JSON, {}, 413),
    ("nested-properties", "POST", "/send_text_message",
     body({"properties": {"properties": {"text": "Hi"}}}), JSON, {}, 400),
    ("junk-everywhere", "POST", "/send_audio_message",
     body({"properties": {"audio": [[[{"x": None}]]], "done": {"a": 1}}}), JSON, {}, 400),
    ("microphone-without-flag", "POST", "/microphone", body({"audio": "AAAA"}), JSON, {}, 409),
]


@pytest.fixture
def small_client(room, settings, make_app):
    """The relay with a 64 KB body limit, so size cases stay small."""
    from dataclasses import replace

    return make_app(replace(settings, max_body_bytes=64 * 1024), room).test_client()


@pytest.mark.parametrize("name, method, path, data, content_type, headers, status", CORPUS, ids=[c[0] for c in CORPUS])
def test_malformed_requests_get_a_documented_4xx_and_send_nothing(
    small_client, fake_call_client, name, method, path, data, content_type, headers, status
):
    response = small_client.open(path, method=method, data=data, content_type=content_type, headers=headers)

    assert response.status_code == status, response.get_data(as_text=True)
    answer = response.get_json()
    assert set(answer) == {"error"} and isinstance(answer["error"], str) and answer["error"]
    assert "\n" not in answer["error"] and len(answer["error"]) < 400
    assert sent_messages(fake_call_client) == []


def test_the_corpus_is_at_least_40_requests():
    assert len(CORPUS) >= 40 and len({c[0] for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("content_type", [JSON, "text/plain"], ids=["plain-form", "flask-route"])
def test_a_duplicate_key_is_a_400_naming_it_and_sends_nothing(client, fake_call_client, content_type):
    response = client.post(
        "/send_text_message", data=b'{"text": "Hi", "interrupt": false, "interrupt": true}', content_type=content_type
    )

    assert response.status_code == 400
    assert response.get_json() == {"error": 'the body has the key "interrupt" twice: send each field once'}
    assert sent_messages(fake_call_client) == []


def test_json_nested_100000_deep_says_it_is_nested_too_deep(client, fake_call_client):
    response = client.post("/send_text_message", data=b"[" * 100_000 + b"]" * 100_000, content_type=JSON)

    assert response.status_code == 400
    assert response.get_json() == {
        "error": 'the body is JSON nested too deep to read: send a JSON object, such as {"text": "Hello there!"}'
    }
    assert sent_messages(fake_call_client) == []


@pytest.mark.parametrize(
    "sample_rate, shown",
    [("²", '"\\u00b2"'), ("١٦٠٠٠", '"\\u0661\\u0666\\u0660\\u0660\\u0660"')],
    ids=["superscript", "arabic-indic"],
)
def test_a_sample_rate_in_unicode_digits_is_a_400_naming_the_field(client, fake_call_client, sample_rate, shown):
    response = client.post("/send_audio_message", json={"audio": "AAAAAA==", "sample_rate": sample_rate, "done": True})

    assert response.status_code == 400
    assert response.get_json() == {"error": f"sample_rate must be a positive whole number such as 24000, got {shown}"}
    assert sent_messages(fake_call_client) == []


@pytest.mark.parametrize("after", ["%C2%B2", "%D9%A1%D9%A6", "-1", "1.5", "x"])
def test_an_event_cursor_that_is_not_ascii_digits_is_a_400_naming_it(client, after):
    """`str.isdigit()` takes "²" (int() then refuses it: a 500) and Arabic-Indic digits: only 0-9 make an id."""
    for response in (client.get(f"/events?after={after}"), client.get("/events", headers={"Last-Event-ID": after})):
        assert response.status_code == 400
        assert response.get_json()["error"].startswith("after (or Last-Event-ID) must be an event id")


# --- bad input: the status, the words, and nothing sent ------------------------

BAD_REQUESTS = [
    ("/send_text_message", "not json", 400, "the body is not valid JSON"),
    ("/send_text_message", "", 400, "the body is empty"),
    ("/send_text_message", "[1, 2]", 400, "the body must be a JSON object"),
    ("/send_text_message", {}, 400, "text is required"),
    ("/send_text_message", {"properties": {"text": "  "}}, 400, "properties.text is required"),
    ("/send_text_message", {"text": 5}, 400, "text must be a string"),
    ("/send_text_message", {"properties": "text"}, 400, "properties must be a JSON object"),
    ("/send_text_message", {"text": "Hi", "modality": "video"}, 400, 'modality must be "text"'),
    ("/send_text_message", {"text": "Hi", "modality": "audio"}, 400, "send audio to /send_audio_message"),
    ("/send_text_message", {"text": "Hi", "done": "yes"}, 400, "done must be true or false"),
    ("/send_text_message", {"text": "Hi", "inference_id": 7}, 400, "inference_id must be a non-empty string"),
    ("/send_text_message", {"text": "Hi", "inference_id": "x" * 200}, 400, "inference_id must be at most 128"),
    ("/send_text_message", {"text": "Hi", "conversation_id": "other"}, 400, "is not this relay's conversation"),
    ("/send_text_message", {"text": "Hi", "event_type": "conversation.interrupt"}, 400, "use POST /interrupt"),
    ("/send_text_message", {"text": "Hi", "interrupt": "maybe"}, 400, "interrupt must be true or false"),
    ("/send_audio_message", {"audio": "!!!notbase64", "done": True}, 400, "audio is not valid base64"),
    ("/send_audio_message", {"audio": b64(b"\x01\x02\x03")}, 400, "whole 16-bit samples"),
    ("/send_audio_message", {"audio": b64(pcm_of(10)), "sample_rate": 0}, 400, "sample_rate must be a positive"),
    ("/send_audio_message", {"audio": b64(pcm_of(10)), "sample_rate": -5}, 400, "sample_rate must be a positive"),
    ("/send_audio_message", {"audio": b64(pcm_of(10)), "sample_rate": 16000.5}, 400, "sample_rate must be a positive"),
    ("/send_audio_message", {"audio": b64(pcm_of(10)), "sample_rate": True}, 400, "sample_rate must be a positive"),
    ("/send_audio_message", {"audio": b64(pcm_of(10)), "sample_rate": 10**9}, 400, "sample_rate must be between"),
    ("/send_audio_message", {"audio": b64(pcm_of(10)), "modality": "text"}, 400, "send text to /send_text_message"),
    ("/send_audio_message", {"sample_rate": 24000}, 400, "audio is required"),
    ("/send_audio_message", {"audio": "", "done": True}, 400, "audio is empty: put base64 of raw 16-bit PCM"),
    ("/send_audio_message", {"audio": 12}, 400, "audio must be a string"),
    ("/send_audio_message", {"audio": b64(b"RIFF\x00\x00\x00\x00WAVEjunk"), "done": True}, 400,
     "could not decode audio"),
]


@pytest.mark.parametrize("path, body, status, words", BAD_REQUESTS)
def test_bad_input_gets_a_clear_error_and_sends_nothing(client, fake_call_client, path, body, status, words):
    data = body if isinstance(body, str) else json.dumps(body)

    response = client.post(path, data=data, content_type="application/json")

    assert response.status_code == status
    assert words in response.get_json()["error"]
    assert sent_messages(fake_call_client) == []


def test_unsupported_content_type_is_415(client, fake_call_client):
    response = client.post("/send_text_message", data=b"\x00\x01", content_type="image/png")

    assert response.status_code == 415
    assert "application/json" in response.get_json()["error"]
    assert sent_messages(fake_call_client) == []


def test_body_over_the_limit_is_413_naming_the_setting(room, fake_call_client, make_app):
    app = make_app(Settings(max_body_bytes=2048), room)
    response = app.test_client().post("/send_text_message", json={"text": "x" * 5000})

    assert response.status_code == 413
    assert "RELAY_MAX_BODY_BYTES" in response.get_json()["error"]
    assert sent_messages(fake_call_client) == []


def test_unknown_path_and_wrong_method_answer_in_the_error_shape(client):
    assert client.get("/nope").get_json() == {
        "error": "no endpoint /nope: GET /openapi.json lists every endpoint (docs/api.md describes them)"
    }
    response = client.get("/send_text_message")
    assert response.status_code == 405 and "use POST" in response.get_json()["error"]


@pytest.mark.parametrize(
    "data, error",
    [
        (
            b'{"text": "Hi",}',
            "the body is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 15",
        ),
        (b'{"txt": "Hi"}', 'unknown field "txt": did you mean "text"?'),
        (b'{"message": "Hi"}', 'unknown field "message": did you mean "text"?'),
        (b'{"audio": "AAAA", "done": true}',
         "text is required: a non-empty string for the face to say (to play audio, POST it to /send_audio_message)"),
        (b'{"text": ""}', "text is required: a non-empty string for the face to say"),
    ],
)
def test_a_json_body_that_fails_its_checks_names_the_mistake(client, fake_call_client, data, error):
    response = client.post("/send_text_message", data=data, content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["error"].startswith(error)
    assert sent_messages(fake_call_client) == []


def test_a_query_string_on_a_json_request_is_refused_naming_the_field(client, fake_call_client):
    response = client.post("/send_text_message?inference_id=x", json={"text": "Hi"})

    assert response.status_code == 400 and "put it in the JSON body" in response.get_json()["error"]
    assert sent_messages(fake_call_client) == []


# --- typos and wrong endpoints are named, never ignored ---------------------------------------------


@pytest.mark.parametrize(
    "path, body, query, error",
    [
        ("/send_text_message", {"text": "Hi", "interupt": True}, "",
         ('unknown field "interupt": did you mean "interrupt"? (known: message_type, event_type, conversation_id, '
         "properties, modality, text, emotion, inference_id, done, interrupt, wait, audio, sample_rate)")),
        ("/send_text_message", {"properties": {"text": "Hi", "Done": True}}, "",
         'unknown field "properties.Done": did you mean "properties.done"?'),
        ("/send_audio_message", {"audio": b64(pcm_of(10)), "sampel_rate": 24000}, "",
         'unknown field "sampel_rate": did you mean "sample_rate"?'),
        ("/send_text_message", {"text": "Hi"}, "?interrupt=true",
         "query parameter 'interrupt' is not read here: put it in the JSON body"),
        ("/send_audio_message", {"text": "Hi"}, "",
         "text is for POST /send_text_message: /send_audio_message speaks audio"),
        ("/microphone", {"text": "Hi"}, "", "text is for POST /send_text_message: /microphone speaks audio"),
    ],
)
def test_an_unknown_field_is_a_400_naming_it_and_the_closest_known_one(room, make_app, path, body, query, error):
    client = make_app(Settings(), room, microphone_device=object()).test_client()

    response = client.post(path + query, json=body)

    assert response.status_code == 400
    assert error in response.get_json()["error"]
    assert sent_messages(room._client) == []


def test_an_unknown_upload_parameter_is_a_400_naming_the_closest(client, fake_call_client):
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(1600, dtype="float32"), 16000, format="WAV", subtype="PCM_16")

    response = client.post("/send_audio_message?dne=false", data=buffer.getvalue(), content_type="audio/wav")

    assert response.status_code == 400
    assert response.get_json()["error"].startswith('unknown parameter "dne": did you mean "done"?')
    assert sent_messages(fake_call_client) == []


@pytest.mark.parametrize("path, hint", [
    ("/send_audio_message", 'send it with -H "Content-Type: audio/wav"'),
    ("/send_text_message", 'POST it to /send_audio_message with -H "Content-Type: audio/wav"'),
])
def test_a_wav_sent_without_a_content_type_says_which_header_to_add(client, fake_call_client, path, hint):
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(1600, dtype="float32"), 16000, format="WAV", subtype="PCM_16")

    # what `curl --data-binary @speech.wav` sends without -H
    response = client.post(path, data=buffer.getvalue(), content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert response.get_json()["error"] == f"the body is an audio file (WAV), not JSON: {hint}"


def test_a_wav_sent_as_json_to_the_text_route_says_where_to_post_it(client, fake_call_client):
    """Found by schemathesis: on the fast path (no Flask request) this answer was a 500."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(1600, dtype="float32"), 16000, format="WAV", subtype="PCM_16")

    response = client.post("/send_text_message", data=buffer.getvalue(), content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["error"] == (
        'the body is an audio file (WAV), not JSON: POST it to /send_audio_message with -H "Content-Type: audio/wav"'
    )
    assert sent_messages(fake_call_client) == []
