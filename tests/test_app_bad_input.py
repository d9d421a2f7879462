"""A corpus of malformed requests: every one is a 4xx in the documented {"error": "..."} shape, and sends nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import sent_messages

JSON = "application/json"


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
    ("message-type-wrong", "POST", "/send_text_message", body({"message_type": "system", "properties": {"text": "Hi"}}), JSON, {}, 400),
    ("sample-rate-list", "POST", "/send_audio_message", body({"audio": "AAAA", "sample_rate": [24000]}), JSON, {}, 400),
    ("sample-rate-word", "POST", "/send_audio_message", body({"audio": "AAAA", "sample_rate": "fast"}), JSON, {}, 400),
    ("sample-rate-negative-string", "POST", "/send_audio_message", body({"audio": "AAAA", "sample_rate": "-1"}), JSON, {}, 400),
    ("audio-object", "POST", "/send_audio_message", body({"audio": {"data": "AAAA"}}), JSON, {}, 400),
    # typos and misplaced fields
    ("field-typo", "POST", "/send_text_message", body({"text": "Hi", "interupt": True}), JSON, {}, 400),
    ("field-wrong-case", "POST", "/send_text_message", body({"properties": {"text": "Hi", "Done": True}}), JSON, {}, 400),
    ("text-on-audio", "POST", "/send_audio_message", body({"text": "Hi"}), JSON, {}, 400),
    ("query-on-json", "POST", "/send_text_message?done=false", body({"text": "Hi"}), JSON, {}, 400),
    ("upload-param-typo", "POST", "/send_audio_message?dne=false", b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav", {}, 400),
    ("multipart-nameless-part", "POST", "/send_audio_message",
     (b'--XX\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XX\r\nContent-Disposition: form-data; name="file"; '
     b'filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--XX--\r\n'), "multipart/form-data; boundary=XX", {}, 400),
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
    ("inference-id-too-long", "POST", "/send_text_message", body({"text": "Hi", "inference_id": "i" * 129}), JSON, {}, 400),
    ("inference-id-blank", "POST", "/send_text_message", body({"text": "Hi", "inference_id": "   "}), JSON, {}, 400),
    ("conversation-id-too-long", "POST", "/send_text_message", body({"text": "Hi", "conversation_id": "c" * 200}), JSON, {}, 400),
    ("body-over-limit", "POST", "/send_text_message", body({"text": "x" * 70_000}), JSON, {}, 413),
    ("empty-body", "POST", "/send_text_message", b"", JSON, {}, 400),
    # headers
    ("content-type-png", "POST", "/send_text_message", b"\x89PNG", "image/png", {}, 415),
    ("content-type-html", "POST", "/send_text_message", b"<p>Hi</p>", "text/html", {}, 415),
    ("content-type-audio-on-text", "POST", "/send_text_message", b"RIFF", "audio/wav", {}, 415),
    ("content-type-video-on-audio", "POST", "/send_audio_message", b"\x00\x00", "video/mp4", {}, 415),
    ("multipart-without-file", "POST", "/send_audio_message", b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--\r\n",
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
    ("number-too-long-to-parse", "POST", "/send_audio_message", b'{"audio": "AAAA", "sample_rate": ' + b"9" * 5000 + b"}", JSON, {}, 400),
    ("event-id-huge", "GET", "/events?after=" + "9" * 30, None, None, {}, 400),
    # nested junk
    ("deeply-nested", "POST", "/send_text_message", b"[" * 100_000 + b"]" * 100_000, JSON, {}, 413),
    ("nested-properties", "POST", "/send_text_message", body({"properties": {"properties": {"text": "Hi"}}}), JSON, {}, 400),
    ("junk-everywhere", "POST", "/send_audio_message", body({"properties": {"audio": [[[{"x": None}]]], "done": {"a": 1}}}), JSON, {}, 400),
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
    "sample_rate, shown", [("²", '"\\u00b2"'), ("١٦٠٠٠", '"\\u0661\\u0666\\u0660\\u0660\\u0660"')], ids=["superscript", "arabic-indic"]
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
