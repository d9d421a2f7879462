"""Every way to interrupt does the same: POST /interrupt, and `"interrupt": true` on text, JSON audio or a file.

Each one ends a script run, empties the microphone's queue, cuts off what the
face was sent and had not said, and ends every wait on what it cut off at once,
saying it was interrupted. Tried in the dry run, where the stand-in face speaks
at a calm pace, as a user would try it.
"""

from __future__ import annotations

import base64
import io
import threading
from typing import Any

import pytest

from config import Settings
from relay.dry_run import DryRunRoom
from relay.microphone import CountingMicrophoneDevice
from tests.conftest import wait_until

LONG_TEXT = " ".join(["word"] * 100)  # 40 s for the stand-in face at its calm pace
WAV_SILENCE = base64.b64encode(bytes(4800)).decode()  # 100 ms of silence at 24 kHz


def interrupt_by_post(client: Any) -> Any:
    return client.post("/interrupt")


def interrupt_by_text(client: Any) -> Any:
    return client.post("/send_text_message", json={"text": "Stop.", "interrupt": True})


def interrupt_by_json_audio(client: Any) -> Any:
    return client.post(
        "/send_audio_message", json={"audio": WAV_SILENCE, "sample_rate": 24000, "done": True, "interrupt": True}
    )


def interrupt_by_file(client: Any) -> Any:
    with open("examples/hello.wav", "rb") as wav:
        return client.post("/send_audio_message?interrupt=true", data=wav.read(), content_type="audio/wav")


INTERRUPTS = [interrupt_by_post, interrupt_by_text, interrupt_by_json_audio, interrupt_by_file]


@pytest.fixture
def dry_client(make_app: Any) -> Any:
    settings = Settings(spoken_timeout_s=600, script_line_timeout_s=600, utterance_idle_close_s=0)
    app = make_app(settings, DryRunRoom(io.StringIO()), microphone_device=CountingMicrophoneDevice(24000))
    return app.test_client()


@pytest.mark.parametrize("interrupt", INTERRUPTS)
def test_every_interrupt_empties_the_microphone_queue(dry_client, interrupt):
    clip = base64.b64encode(bytes(24000 * 2 * 5)).decode()  # 5 s: still queued when the interrupt comes
    assert dry_client.post("/microphone", json={"audio": clip, "sample_rate": 24000}).status_code == 202

    assert interrupt(dry_client).status_code == 200

    assert dry_client.get("/health").get_json()["microphone"]["queued_ms"] == 0


@pytest.mark.parametrize("interrupt", INTERRUPTS)
def test_every_interrupt_stops_a_running_script(dry_client, interrupt):
    dry_client.post("/script", json={"script": f"{LONG_TEXT}\nThe second line."})
    dry_client.post("/script/play")
    wait_until(lambda: _first_script_utterance(dry_client), "the face to start the first line")

    assert interrupt(dry_client).status_code == 200

    wait_until(lambda: not dry_client.get("/script").get_json()["playing"], "the script to stop")
    states = [e["state"] for e in dry_client.get("/events").get_json() if e["type"] == "relay.script"]
    assert states[-1] == "stopped" and "failed" not in states
    assert dry_client.get("/script").get_json()["position"] == 0  # the second line was never played


@pytest.mark.parametrize("interrupt", INTERRUPTS)
def test_every_interrupt_ends_the_waits_on_what_it_cut_off_at_once_saying_so(dry_client, interrupt):
    dry_client.post("/send_text_message", json={"text": LONG_TEXT, "inference_id": "long"})
    answers: dict[str, Any] = {}

    def wait_for_the_second() -> None:
        body = {"text": "Said after the long one.", "inference_id": "second", "wait": "spoken"}
        answers["second"] = dry_client.post("/send_text_message", json=body)

    waiting = threading.Thread(target=wait_for_the_second, daemon=True)
    waiting.start()
    wait_until(lambda: (dry_client.get("/utterances/second").get_json() or {}).get("state") == "sent",
               "the second utterance to be sent behind the long one")

    assert interrupt(dry_client).status_code == 200
    waiting.join(60)  # RELAY_SPOKEN_TIMEOUT is 600 s here: only an answer at once ends the wait in time

    assert not waiting.is_alive()
    answer = answers["second"].get_json()
    assert answers["second"].status_code == 200
    assert answer["spoken"] == {"started_after_ms": None, "duration_s": None, "interrupted": True}
    assert dry_client.get("/utterances/second").get_json()["state"] == "interrupted"


def test_an_interrupt_event_says_how_it_came_and_what_it_dropped(dry_client):
    interrupt_by_text(dry_client)
    interrupt_by_post(dry_client)

    reports = [e for e in dry_client.get("/events").get_json() if e["type"] == "relay.interrupted"]
    assert [(r["reason"], r["microphone_clips_dropped"]) for r in reports] == [
        ("interrupt: true", 0), ("POST /interrupt", 0)
    ]
    assert "inference_id" in reports[0] and "inference_id" not in reports[1]


def _first_script_utterance(client: Any) -> str | None:
    """The inference_id of the script's first line, once the relay sent it (from the relay's events)."""
    for event in client.get("/events").get_json():
        if event["type"] == "conversation.replica.started_speaking":
            return str(event["message"]["inference_id"])
    return None
