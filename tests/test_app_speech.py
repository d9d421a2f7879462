"""Speaking the way Tavus's voice understands, through HTTP: emotions, markup never cut, and what the face said.

Against the Daily stand-in (what leaves for the room) and the dry run (its
stand-in face and the record file see the same messages a room would).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from relay import dry_face
from relay.dry_run import DryRunRoom
from relay.markup import EMOTIONS
from tests.conftest import REPLICA, sent_messages, wait_until

EXCITED = '<emotion value="excited"/>'
TAG = re.compile(r"<[^<>]*>|\[[^\[\]]*\]")  # the markup this file writes: every one whole, or a cut one shows


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["properties"]["text"] for m in messages if m.get("properties", {}).get("modality") == "text"]


# --- the emotion field ------------------------------------------------------------------------------------


def test_an_emotion_on_the_flat_form_goes_to_the_face_as_tavuss_tag_before_the_text(client, fake_call_client):
    response = client.post("/send_text_message", json={"text": "We did it!", "emotion": "excited"})

    assert response.status_code == 200
    assert texts(sent_messages(fake_call_client)) == [EXCITED + "We did it!"]


def test_the_properties_form_is_sent_as_written_its_own_tags_included(client, fake_call_client):
    body = {"properties": {"text": '<emotion value="sad"/>Sorry to hear it.', "done": "true"}}

    assert client.post("/send_text_message", json=body).status_code == 200
    assert texts(sent_messages(fake_call_client)) == ['<emotion value="sad"/>Sorry to hear it.']


@pytest.mark.parametrize(
    "body", [{"properties": {"text": "Hi", "emotion": "sad"}}, {"properties": {"text": "Hi"}, "emotion": "sad"}],
    ids=["inside-properties", "beside-properties"],
)
def test_an_emotion_with_the_properties_form_is_a_400_saying_how_to_write_it_there(client, fake_call_client, body):
    response = client.post("/send_text_message", json=body)

    assert response.status_code == 400
    assert response.get_json()["error"] == (
        'emotion is for the flat form, such as {"text": "We did it!", "emotion": "excited"}; with Tavus\'s properties '
        'form, write the tag into the text instead: <emotion value="excited"/>We did it!'
    )
    assert sent_messages(fake_call_client) == []


@pytest.mark.parametrize(
    "emotion, suggestion",
    [("exited", ': did you mean "excited"?'), ("Sad", ': did you mean "sad"?'), ("happy", ""), ("none", "")],
)
def test_an_unknown_emotion_is_a_400_naming_tavuss_list_with_the_closest(client, fake_call_client, emotion, suggestion):
    response = client.post("/send_text_message", json={"text": "Hi", "emotion": emotion})

    assert response.status_code == 400
    assert response.get_json()["error"] == (
        f'emotion "{emotion}" is not one of Tavus\'s emotions{suggestion} (Tavus lists {", ".join(EMOTIONS)}; '
        "leave emotion out for none)"
    )
    assert sent_messages(fake_call_client) == []


def test_every_emotion_tavus_lists_is_taken(client, fake_call_client):
    for emotion in EMOTIONS:
        assert client.post("/send_text_message", json={"text": "Hi", "emotion": emotion}).status_code == 200

    assert texts(sent_messages(fake_call_client)) == [f'<emotion value="{emotion}"/>Hi' for emotion in EMOTIONS]


# --- markup is never cut ---------------------------------------------------------------------------------


def tagged_words(count: int) -> str:
    """`count` words with a piece of markup of every form every few words."""
    forms = [EXCITED, '<speed ratio="1.2"/>', "[laughter]", '<break time="500ms"/>', "<spell>A1B2</spell>"]
    return " ".join(f"{forms[n // 7 % len(forms)]}word{n}" if n % 7 == 0 else f"word{n}" for n in range(count))


def test_a_long_text_reaches_the_room_with_every_tag_whole(client, fake_call_client):
    text = tagged_words(2000)

    assert client.post("/send_text_message", json={"text": text}).status_code == 200

    pieces = texts(sent_messages(fake_call_client))
    assert len(pieces) > 3 and "".join(pieces) == text
    assert sum(len(TAG.findall(piece)) for piece in pieces) == len(TAG.findall(text))


def test_markup_too_long_for_a_message_is_a_400_that_says_so_and_sends_nothing(client, fake_call_client):
    spelled = "<spell>" + "A1" * 2500 + "</spell>"

    response = client.post("/send_text_message", json={"text": f"My code is {spelled}, thanks."})

    assert response.status_code == 400
    assert response.get_json()["error"].startswith(
        "the text has a <spell> span of 5015 characters that does not fit one 4096-byte message, "
        "and markup is never split: shorten it"
    )
    assert sent_messages(fake_call_client) == []


@pytest.fixture
def dry_run_recorded(make_app, tmp_path, monkeypatch):
    """A dry-run relay recording to a file, its stand-in face speaking 2,000 words a second (seconds, not minutes)."""
    monkeypatch.setattr(dry_face, "WORDS_PER_SECOND", 2000)
    monkeypatch.setattr(dry_face, "MIN_TEXT_SECONDS", 0.01)
    record = tmp_path / "record.jsonl"
    app = make_app(Settings(record_file=str(record), max_message_bytes=1024), DryRunRoom(io.StringIO()))
    return app.test_client(), record


def recorded(record: Path, direction: str) -> list[dict[str, Any]]:
    lines = map(json.loads, record.read_text().splitlines())
    return [line["message"] for line in lines if line["direction"] == direction]


def test_the_dry_runs_face_and_record_file_see_every_pieces_tags_whole(dry_run_recorded):
    client, record = dry_run_recorded
    text = tagged_words(2000)

    response = client.post("/send_text_message", json={"text": text, "inference_id": "long-1", "wait": "spoken"})

    assert response.status_code == 200 and response.get_json()["spoken"]["interrupted"] is False
    pieces = texts(recorded(record, "out"))
    assert len(pieces) > 10 and "".join(pieces) == text
    assert sum(len(TAG.findall(piece)) for piece in pieces) == len(TAG.findall(text))  # a cut tag is found in neither
    said = [m["properties"] for m in recorded(record, "in") if m["event_type"] == "conversation.utterance.streaming"]
    assert said[-1]["final"] is True and said[-1]["speech"] == " ".join(TAG.sub("", text).split())


# --- what the face said ---------------------------------------------------------------------------------------


def test_utterances_shows_what_the_face_said_and_relay_said_tells_it(dry_run_recorded):
    client, _ = dry_run_recorded
    relay = client.application.extensions["relay"]

    body = {"text": "Hello there!", "emotion": "elated", "inference_id": "s-1", "wait": "spoken"}
    client.post("/send_text_message", json=body)

    answer = client.get("/utterances/s-1").get_json()
    assert answer["state"] == "spoken" and answer["spoken_text"] == "Hello there!"
    said = [e.fields for e in relay.events.after(0)[0] if e.type == "relay.said"]
    assert said == [{"inference_id": "s-1", "text": "Hello there!", "interrupted": False}]


def spoken_text_of(client: Any, inference_id: str) -> dict[str, Any] | None:
    """/utterances/<id>, once it says what the face said (the face's report reaches it a moment after the fact)."""
    answer: dict[str, Any] = client.get(f"/utterances/{inference_id}").get_json()
    return answer if "spoken_text" in answer else None


def test_an_interrupted_line_shows_where_it_stopped(make_app, monkeypatch):
    monkeypatch.setattr(dry_face, "STREAMING_INTERVAL_S", 0.05)
    client = make_app(Settings(), DryRunRoom(io.StringIO())).test_client()
    relay = client.application.extensions["relay"]
    words = [f"word{n}" for n in range(200)]  # 80 s at the stand-in's pace
    client.post("/send_text_message", json={"text": " ".join(words), "inference_id": "cut-1", "wait": "started"})
    wait_until(  # a word or two said
        lambda: any(e.type == "conversation.utterance.streaming" for e in relay.events.after(0)[0]),
        "the stand-in face to say its words so far",
    )

    assert client.post("/interrupt").status_code == 200

    answer = relay.tracker.wait("cut-1", "spoken", 10)
    assert answer is not None and answer["interrupted"] is True
    answer = wait_until(lambda: spoken_text_of(client, "cut-1"), "spoken_text")
    spoken = answer["spoken_text"].split()
    assert spoken == words[: len(spoken)] and len(spoken) < len(words)


def test_where_the_face_sends_no_streaming_utterances_answers_as_before(client, fake_call_client):
    client.post("/send_text_message", json={"text": "Hi", "inference_id": "plain-1"})
    for kind in ("started_speaking", "stopped_speaking"):
        report = {"event_type": f"conversation.replica.{kind}", "inference_id": "plain-1"}
        fake_call_client.room_sends(report, REPLICA["id"])
    relay = client.application.extensions["relay"]
    assert relay.tracker.wait("plain-1", "spoken", 5) is not None

    answer = client.get("/utterances/plain-1").get_json()

    assert list(answer) == [
        "inference_id", "state", "arrived_at", "sent_at", "started_speaking_at", "stopped_speaking_at",
        "started_after_ms", "duration_s", "interrupted",
    ]
    assert not [e for e in relay.events.after(0)[0] if e.type == "relay.said"]


def test_the_faces_final_words_from_the_room_reach_utterances(client, fake_call_client):
    client.post("/send_text_message", json={"text": "Welcome, everyone.", "inference_id": "room-1"})
    streaming = {"event_type": "conversation.utterance.streaming", "inference_id": "room-1", "seq": 7}
    fake_call_client.room_sends({**streaming, "properties": {"speech": "Welcome,", "final": False, "content_index": 0}})
    fake_call_client.room_sends({**streaming, "seq": 8, "properties": {
        "speech": "Welcome, every", "final": True, "is_interrupted": True, "content_index": 1, "role": "replica"}})
    relay = client.application.extensions["relay"]
    answer = wait_until(lambda: spoken_text_of(client, "room-1"), "spoken_text")

    assert answer["spoken_text"] == "Welcome, every"
    assert [e.fields for e in relay.events.after(0)[0] if e.type == "relay.said"] == [
        {"inference_id": "room-1", "text": "Welcome, every", "interrupted": True}
    ]
