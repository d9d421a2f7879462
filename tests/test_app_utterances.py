"""Knowing the face spoke it: `wait` on a send, and GET /utterances/<inference_id>, against the dry run's face.

The dry run's stand-in face reports speaking as a real one does (a text of one
word takes it 0.4 s), so these run with no account and no room.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import soundfile

from config import Settings
from relay.dry_run import DryRunRoom
from relay.microphone import CountingMicrophoneDevice

SPOKEN_KEYS = ["started_after_ms", "duration_s", "interrupted"]


@pytest.fixture
def dry_run(make_app):
    printed = io.StringIO()
    app = make_app(Settings(), DryRunRoom(printed), microphone_device=CountingMicrophoneDevice(24000))
    return app.test_client(), printed


def sent_texts(printed: io.StringIO) -> list[str]:
    return [json.loads(line)["properties"]["text"] for line in printed.getvalue().splitlines() if '"text"' in line]


@pytest.mark.parametrize("wait", ["spoken", "started"])
def test_wait_answers_once_the_face_reported_it_with_what_it_said(dry_run, wait):
    client, _ = dry_run

    response = client.post("/send_text_message", json={"text": "Hello", "inference_id": "hi-1", "wait": wait})

    assert response.status_code == 200
    answer = response.get_json()
    assert list(answer) == ["status", "mode", "inference_id", "messages_sent", "conversation_id", "spoken"]
    assert list(answer["spoken"]) == SPOKEN_KEYS
    assert answer["spoken"]["started_after_ms"] >= 0
    if wait == "spoken":
        assert answer["spoken"]["interrupted"] is False and answer["spoken"]["duration_s"] > 0
        assert client.get("/utterances/hi-1").get_json()["state"] == "spoken"


def test_an_audio_file_upload_waits_with_a_query_parameter(dry_run):
    client, _ = dry_run
    wav = io.BytesIO()
    soundfile.write(wav, np.zeros(2400, dtype="int16"), 24000, format="WAV", subtype="PCM_16")

    response = client.post(
        "/send_audio_message?wait=spoken&inference_id=clip-1", data=wav.getvalue(), content_type="audio/wav"
    )

    assert response.status_code == 200
    assert response.get_json()["spoken"]["interrupted"] is False
    assert client.get("/utterances/clip-1").get_json()["state"] == "spoken"


@pytest.mark.parametrize("wait", ["later", "SPOKEN", 1, True])
def test_a_wait_that_is_not_spoken_or_started_is_a_400_and_sends_nothing(dry_run, wait):
    client, printed = dry_run

    response = client.post("/send_text_message", json={"text": "Hello", "wait": wait})

    assert response.status_code == 400
    assert response.get_json()["error"].startswith("wait must be")
    assert sent_texts(printed) == []


def test_the_microphone_does_not_wait(dry_run):
    client, _ = dry_run
    silence = base64.b64encode(bytes(4800)).decode()

    response = client.post("/microphone", json={"audio": silence, "sample_rate": 24000, "wait": "spoken"})

    assert response.status_code == 400
    assert response.get_json()["error"] == (
        "wait is for /send_text_message and /send_audio_message: the microphone answers once queued"
    )


def test_a_microphone_clip_for_another_conversation_is_400(dry_run):
    client, _ = dry_run
    silence = base64.b64encode(bytes(4800)).decode()

    response = client.post("/microphone", json={"audio": silence, "sample_rate": 24000, "conversation_id": "c999"})

    assert response.status_code == 400
    assert response.get_json()["error"] == (
        "conversation_id 'c999' is not this relay's conversation ('dry-run'); "
        "leave it out or run one relay per conversation"
    )


def test_an_utterance_is_told_with_its_state_and_times(dry_run):
    client, _ = dry_run
    client.post("/send_text_message", json={"text": "Hello", "inference_id": "u-1", "wait": "spoken"})

    response = client.get("/utterances/u-1")

    assert response.status_code == 200
    found = response.get_json()
    assert list(found) == [
        "inference_id", "state", "arrived_at", "sent_at", "started_speaking_at", "stopped_speaking_at",
        *SPOKEN_KEYS, "spoken_text",  # the stand-in face says what it said, as Tavus's faces do
    ]
    assert found["inference_id"] == "u-1" and found["state"] == "spoken" and found["spoken_text"] == "Hello"
    assert found["arrived_at"] <= found["sent_at"] <= found["started_speaking_at"] <= found["stopped_speaking_at"]


def test_an_unknown_utterance_is_a_404_saying_what_to_check(dry_run):
    client, _ = dry_run

    response = client.get("/utterances/never-sent")

    assert response.status_code == 404
    assert response.get_json() == {
        "error": "no utterance 'never-sent' among the last 1000: check the inference_id a send answered with"
    }


def test_health_tells_the_latency_from_arrival_to_the_face_starting(dry_run):
    client, _ = dry_run
    client.post("/send_text_message", json={"text": "Hello", "wait": "started"})

    latency = client.get("/health").get_json()["latency"]

    assert latency["utterances"] == 1 and latency["p50_ms"] == latency["p95_ms"] >= 0
