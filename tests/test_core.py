"""The Relay: both speak calls in one shape, `wait` for the face, the utterance tracker, and idle utterances closed."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest

import echo_messages
from config import Settings
from echo_messages import AudioRequest, TextEcho
from relay.audio import AudioEcho, PcmStream, UtteranceRates
from relay.dry_run import DryRunRoom
from relay.errors import UtteranceClosed
from tests.conftest import CONVERSATION_ID, REPLICA, sent_messages


class Face:
    """Reports started_speaking when an utterance's first echo arrives and stopped_speaking after its `done`,
    in both the unified (pal and replica, twice) and the legacy form."""

    def __init__(self, call_client: Any, *, stops: bool = True, starts: bool = True) -> None:
        self.call_client = call_client
        original = call_client.send_app_message
        started: set[str] = set()

        def send(message: Any, participant_id: Any = None, completion: Any = None) -> None:
            original(message, participant_id, completion)
            properties = message.get("properties", {})
            if message.get("event_type") != "conversation.echo":
                return
            inference_id = properties["inference_id"]
            if starts and inference_id not in started:
                started.add(inference_id)
                for role in ("pal", "replica"):
                    self.say("conversation.started_speaking", inference_id, role=role)
                self.say("conversation.replica.started_speaking", inference_id)
            if stops and properties.get("done"):
                self.say("conversation.replica.stopped_speaking", inference_id, duration=1.25, interrupted=False)

        call_client.send_app_message = send

    def say(self, kind: str, inference_id: str, **properties: Any) -> None:
        message = {
            "event_type": kind,
            "conversation_id": CONVERSATION_ID,
            "inference_id": inference_id,
            "properties": properties,
        }
        self.call_client.room_sends(message, REPLICA["id"])


@pytest.fixture
def relay(room, fake_call_client, make_app) -> Any:
    settings = Settings(replica_timeout_s=2.0, send_timeout_s=1.0, spoken_timeout_s=5.0, utterance_idle_close_s=0)
    return make_app(settings, room).extensions["relay"]


def pcm_echo(ms: int, *, inference_id: str, done: bool, rate: int = 16000) -> AudioEcho:
    pcm = b"\x01\x00" * (rate * ms // 1000)
    request = AudioRequest(audio=pcm, sample_rate=rate, inference_id=inference_id, done=done)
    return AudioEcho(request, PcmStream.of(pcm, rate), input_rate=rate)


def test_both_speak_calls_take_the_parsed_echo_and_answer_alike(relay, fake_call_client):
    text = relay.speak_text(TextEcho("Hi", inference_id="t1"), ticket=relay.sender.ticket)
    audio = relay.speak_audio(pcm_echo(40, inference_id="a1", done=True), ticket=relay.sender.ticket)

    assert text == {"inference_id": "t1", "messages_sent": 1, "conversation_id": CONVERSATION_ID}
    assert audio == {"inference_id": "a1", "messages_sent": 1, "conversation_id": CONVERSATION_ID, "audio_ms": 40,
                     "sample_rate": 16000}


@pytest.mark.parametrize("speak", ["text", "audio"])
def test_wait_spoken_answers_once_the_face_stopped_with_what_it_reported(relay, fake_call_client, speak):
    Face(fake_call_client)
    if speak == "text":
        answer = relay.speak_text(TextEcho("Hi", inference_id="w1"), wait="spoken")
    else:
        answer = relay.speak_audio(pcm_echo(40, inference_id="w1", done=True), wait="spoken")

    assert answer["messages_sent"] == 1
    assert set(answer["spoken"]) == {"started_after_ms", "duration_s", "interrupted"}
    assert answer["spoken"]["duration_s"] == 1.25 and answer["spoken"]["interrupted"] is False
    assert isinstance(answer["spoken"]["started_after_ms"], int)
    assert relay.utterance("w1")["state"] == "spoken"


def test_wait_started_answers_once_the_face_started(relay, fake_call_client):
    Face(fake_call_client, stops=False)

    answer = relay.speak_text(TextEcho("Hi", inference_id="s1"), wait="started")

    assert answer["spoken"]["duration_s"] is None and answer["spoken"]["interrupted"] is None
    assert relay.utterance("s1")["state"] == "speaking"


def test_a_face_that_never_reports_is_not_an_error_and_the_answer_says_so(room, fake_call_client, make_app):
    relay = make_app(Settings(spoken_timeout_s=0.05), room).extensions["relay"]

    answer = relay.speak_text(TextEcho("Hi", inference_id="n1"), wait="spoken")

    assert answer == {"inference_id": "n1", "messages_sent": 1, "conversation_id": CONVERSATION_ID,
                      "spoken": None, "spoken_timeout_s": 0.05}
    assert relay.utterance("n1")["state"] == "sent"


def test_the_dry_runs_face_answers_a_wait(make_app):
    relay = make_app(Settings(spoken_timeout_s=30), DryRunRoom(io.StringIO())).extensions["relay"]

    answer = relay.speak_text(TextEcho("Hi", inference_id="d1"), wait="spoken")

    assert answer["spoken"]["interrupted"] is False and answer["spoken"]["duration_s"] == 0.4
    assert relay.utterance("d1")["state"] == "spoken"
    assert relay.tracker.latency()["utterances"] == 1


def test_an_unknown_utterance_is_none(relay):
    assert relay.utterance("never-sent") is None


def test_speaking_changes_are_one_relay_speaking_event_each(relay, fake_call_client):
    Face(fake_call_client)

    relay.speak_text(TextEcho("Hi", inference_id="e1"), wait="spoken")

    speaking = [e.fields for e in relay.events.after(0)[0] if e.type == "relay.speaking"]
    assert speaking == [
        {"speaking": True, "inference_id": "e1"},
        {"speaking": False, "inference_id": "e1", "interrupted": False},
    ]
    assert relay.face_speaking.speaking is False


# --- utterances left open ------------------------------------------------------------------------


def wait_for_event(relay: Any, kind: str) -> dict[str, Any]:
    seen = 0
    while True:
        for event in relay.events.after(seen)[0]:
            seen = event.id
            if event.type == kind:
                return event.as_dict()
        assert relay.events.wait_after(seen, 5), f"no {kind} event"


def test_an_utterance_left_open_is_closed_with_its_own_rate_and_done(room, fake_call_client, make_app):
    relay = make_app(Settings(utterance_idle_close_s=0.01), room).extensions["relay"]
    relay.speak_audio(pcm_echo(40, inference_id="open-1", done=False, rate=16000))

    closed = wait_for_event(relay, "relay.utterance_closed")

    assert closed["inference_id"] == "open-1" and closed["idle_s"] >= 0.0
    last = sent_messages(fake_call_client)[-1]
    silence = base64.b64encode(echo_messages.silence(echo_messages.SILENCE_MS, 16000)).decode()
    assert last["properties"] == {"modality": "audio", "audio": silence, "sample_rate": 16000,
                                  "inference_id": "open-1", "done": True}
    with pytest.raises(UtteranceClosed, match="utterance 'open-1' was closed after"):
        relay.speak_audio(pcm_echo(40, inference_id="open-1", done=False))
    assert json.dumps(sent_messages(fake_call_client)).count('"done": true') == 1


def test_an_interrupted_utterance_gets_no_done(room, fake_call_client, make_app):
    relay = make_app(Settings(utterance_idle_close_s=0), room).extensions["relay"]
    relay.speak_audio(pcm_echo(40, inference_id="cut", done=False))
    relay.sender.interrupt(CONVERSATION_ID)
    sent_messages(fake_call_client)

    relay.close_utterance("cut", UtteranceRates(16000, 16000), ticket=0, idle_s=6.0)

    assert [m["event_type"] for m in sent_messages(fake_call_client)] == ["conversation.echo", "conversation.interrupt"]
    assert all(e.type != "relay.utterance_closed" for e in relay.events.after(0)[0])
