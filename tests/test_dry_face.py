"""The dry run's stand-in face: it reports what a Tavus face would, marked simulated."""

from __future__ import annotations

import base64
import io
import threading
from typing import Any

import pytest

from config import Settings
from relay.dry_face import SimulatedFace, spoken_seconds
from relay.dry_run import DryRunRoom
from relay.errors import QueueFull


class Reports:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.changed = threading.Condition()

    def __call__(self, event_type: str, data: dict[str, Any]) -> None:
        with self.changed:
            self.seen.append(data["message"])
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[tuple[str, str, dict[str, Any]]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.seen) >= count, 5), self.seen
            return [(m["event_type"].rsplit(".", 1)[1], m["inference_id"], m["properties"]) for m in self.seen]

    def final_said(self) -> dict[str, Any]:
        """The final `conversation.utterance.streaming`'s properties, once the face stopped speaking."""
        with self.changed:
            stopped = lambda: self.seen and self.seen[-1]["event_type"].endswith("stopped_speaking")
            assert self.changed.wait_for(stopped, 10)
            return next(m["properties"] for m in self.seen if m["properties"].get("final"))


def echo(inference_id: str, done: bool = True, **properties: Any) -> dict[str, Any]:
    return {"event_type": "conversation.echo", "properties": {"inference_id": inference_id, "done": done, **properties}}


@pytest.fixture
def face():
    reports = Reports()
    simulated = SimulatedFace(reports, "dry-run")
    yield simulated, reports
    simulated.close()


def test_text_is_spoken_for_its_words_at_a_calm_pace():
    assert spoken_seconds({"modality": "text", "text": "one two three four five"}) == 2.0
    assert spoken_seconds({"modality": "text", "text": "Hi"}) == 0.4


def test_audio_is_spoken_for_its_length_at_its_rate():
    pcm = base64.b64encode(bytes(24000 * 2)).decode()  # 1 s at 24 kHz
    assert spoken_seconds({"modality": "audio", "audio": pcm, "sample_rate": 24000}) == 1.0
    assert spoken_seconds({"modality": "audio", "audio": pcm}) == 1.5  # Tavus's 16000 when absent


def said(speech: str, index: int = 0, *, interrupted: bool = False) -> dict[str, Any]:
    """The final `conversation.utterance.streaming` properties the stand-in sends."""
    return {"speech": speech, "content_index": index, "final": True, "is_interrupted": interrupted}


def test_an_utterance_starts_says_its_words_then_stops_after_its_length_marked_simulated(face):
    simulated, reports = face

    simulated.hear(echo("a", modality="text", text="Hi"))

    assert reports.wait_for(3) == [
        ("started_speaking", "a", {}), ("streaming", "a", said("Hi")),
        ("stopped_speaking", "a", {"duration": 0.4, "interrupted": False}),
    ]
    assert all(m["simulated"] is True and m["seq"] == n for n, m in enumerate(reports.seen, start=1))


def test_utterances_are_spoken_one_after_another(face):
    simulated, reports = face

    simulated.hear(echo("a", modality="text", text="Hi"))
    simulated.hear(echo("b", modality="text", text="There"))

    assert [(kind, who) for kind, who, _ in reports.wait_for(6)] == [
        ("started_speaking", "a"), ("streaming", "a"), ("stopped_speaking", "a"),
        ("started_speaking", "b"), ("streaming", "b"), ("stopped_speaking", "b"),
    ]


def test_an_interrupt_cuts_the_face_off_and_says_so(face):
    simulated, reports = face
    simulated.hear(echo("long", modality="text", text="word " * 100))
    reports.wait_for(1)

    simulated.hear({"event_type": "conversation.interrupt"})

    kind, who, properties = reports.wait_for(3)[2]
    assert (kind, who, properties["interrupted"]) == ("stopped_speaking", "long", True)
    assert properties["duration"] < 40


def test_an_interrupted_face_says_the_words_it_got_through(face):
    simulated, reports = face
    simulated.hear(echo("long", modality="text", text=" ".join(f"w{n}" for n in range(100))))
    assert [kind for kind, _, _ in reports.wait_for(2)] == ["started_speaking", "streaming"]  # the words so far, at 1 s

    simulated.hear({"event_type": "conversation.interrupt"})

    (_, _, so_far), (kind, who, final) = reports.wait_for(4)[1:3]
    assert so_far["final"] is False and so_far["content_index"] == 0
    assert (kind, who, final["final"], final["is_interrupted"]) == ("streaming", "long", True, True)
    assert final["content_index"] == 1
    spoken = final["speech"].split()
    assert spoken == [f"w{n}" for n in range(len(spoken))] and len(spoken) < 100  # where it stopped
    assert so_far["speech"].split() == spoken[: len(so_far["speech"].split())]


def test_the_face_reads_markup_as_a_voice_does_not_as_words(face):
    simulated, reports = face
    text = '<emotion value="excited"/>We did it! [laughter] Code <spell>A1B2</spell>, <break time="1s"/>done.'

    simulated.hear(echo("t", modality="text", text=text))

    assert reports.final_said()["speech"] == "We did it! Code A1B2, done."
    six_words = spoken_seconds({"modality": "text", "text": "a b c d e f"})
    assert spoken_seconds({"modality": "text", "text": text}) == six_words


def test_audio_has_no_words_to_say(face):
    simulated, reports = face
    pcm = base64.b64encode(bytes(2400)).decode()  # 50 ms at 24 kHz

    simulated.hear(echo("x", modality="audio", audio=pcm, sample_rate=24000))

    assert [kind for kind, _, _ in reports.wait_for(2)] == ["started_speaking", "stopped_speaking"]


def test_an_utterance_without_done_is_spoken_until_its_done_arrives(face):
    simulated, reports = face
    simulated.hear(echo("s", done=False, modality="text", text="Hi"))
    reports.wait_for(1)

    simulated.hear(echo("s", done=True, modality="text", text=" there"))

    assert reports.wait_for(3)[1:] == [
        ("streaming", "s", said("Hi there")), ("stopped_speaking", "s", {"duration": 0.8, "interrupted": False})
    ]


def test_the_dry_run_room_reports_the_face_to_its_listeners():
    room = DryRunRoom(io.StringIO())
    reports = Reports()
    room.add_listener(reports)

    room.send(echo("x", modality="text", text="Hi"))

    assert [kind for kind, _, _ in reports.wait_for(3)] == ["started_speaking", "streaming", "stopped_speaking"]
    room.leave()


def test_past_its_bound_the_face_refuses_a_new_utterance_and_keeps_the_ones_it_has():
    reports = Reports()
    simulated = SimulatedFace(reports, "dry-run", max_waiting=2)
    try:
        simulated.hear(echo("a", done=False, modality="text", text="one"))  # speaking: no longer waiting
        reports.wait_for(1)
        simulated.hear(echo("b", modality="text", text="two"))
        simulated.hear(echo("c", modality="text", text="three"))

        with pytest.raises(QueueFull, match="the simulated face has 2 utterances waiting to be spoken already"):
            simulated.hear(echo("d", modality="text", text="four"))
        simulated.hear(echo("b", modality="text", text="more of b"))  # an utterance it has: still taken
    finally:
        simulated.close()


def test_a_message_the_face_refuses_is_a_429_and_is_not_printed(make_app):
    out = io.StringIO()
    room = DryRunRoom(out)
    assert room._face is not None
    room._face._max_waiting = 0
    app = make_app(Settings(), room)

    response = app.test_client().post("/send_text_message", json={"text": "Hi"})

    assert response.status_code == 429
    assert response.get_json()["error"].startswith("the simulated face has 0 utterances waiting to be spoken already")
    assert out.getvalue() == ""
