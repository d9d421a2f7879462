"""Participants in the room, over HTTP: only the face speaks for the face, and no one in the relay's name.

Played with the Daily stand-in: `room_sends(message, sender)` is one participant's app message. The face is
REPLICA (its user id is Tavus's `tavus-replica-…`); VIEWER is the presenter's browser tab, or anyone who joined.
Every participant sees every `inference_id` the relay sends (echo goes to the whole room), so each can name one.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from config import Settings
from relay.room import Room
from tests.conftest import CONVERSATION_URL, REPLICA, wait_until
from tests.fake_daily import VIEWER, FakeCallClient

STORY = "story-1"
_markers = itertools.count(1)


def started(inference_id: str, seq: int | None = None) -> dict[str, Any]:
    return _report("conversation.replica.started_speaking", inference_id, seq, {})


def stopped(inference_id: str, duration: float, seq: int | None = None) -> dict[str, Any]:
    return _report(
        "conversation.replica.stopped_speaking", inference_id, seq, {"duration": duration, "interrupted": False}
    )


def said(inference_id: str, speech: str) -> dict[str, Any]:
    properties = {"speech": speech, "final": True, "is_interrupted": False}
    return _report("conversation.utterance.streaming", inference_id, None, properties)


def _report(kind: str, inference_id: str, seq: int | None, properties: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"message_type": "conversation", "event_type": kind, "inference_id": inference_id,
                               "properties": properties}
    if seq is not None:
        message["seq"] = seq
    return message


def events(client: Any) -> list[dict[str, Any]]:
    return client.get("/events?after=0").get_json()


def handled(client: Any, fake: FakeCallClient, seq: int | None = None) -> None:
    """Every message the room sent before now has been handled: the relay takes them one at a time, in order
    (in `seq` order where they have one), so once a marker sent after them is in /events, they are done."""
    marker: dict[str, Any] = {"event_type": "test.marker", "n": next(_markers)}
    if seq is not None:
        marker["seq"] = seq
    fake.room_sends(marker, VIEWER["id"])
    wait_until(lambda: any(e.get("message") == marker for e in events(client)), "the marker to be handled")


def speaking_events(client: Any) -> list[dict[str, Any]]:
    return [{k: e[k] for k in ("speaking", "inference_id")} for e in events(client) if e["type"] == "relay.speaking"]


@pytest.fixture
def viewer(fake_call_client: FakeCallClient) -> FakeCallClient:
    """The room with the face and a viewer in it (the viewer's messages reach the relay as the face's do)."""
    fake_call_client.participant_joins(VIEWER)
    return fake_call_client


def post_waiting(client: Any, pool: ThreadPoolExecutor, wait: str = "spoken") -> Any:
    """The story sent with `wait`, on a thread of its own; returns once Daily confirmed it (the answer waits on)."""
    answer = pool.submit(client.post, "/send_text_message", json={"text": "Once upon a time.", "inference_id": STORY,
                                                                 "wait": wait})
    wait_until(lambda: (client.get(f"/utterances/{STORY}").get_json() or {}).get("state") == "sent", "the story sent")
    return answer


# --- 1. only the face's reports change what the relay believes about the face ---------------------------------


def test_a_viewers_stop_does_not_end_a_wait_mark_it_spoken_or_silence_the_face(client, viewer):
    with ThreadPoolExecutor(1) as pool:
        answer = post_waiting(client, pool)
        viewer.room_sends(started(STORY))  # the face
        viewer.room_sends(stopped(STORY, 0.1), VIEWER["id"])  # a viewer, naming the story it saw go out
        handled(client, viewer)

        assert client.get(f"/utterances/{STORY}").get_json()["state"] == "speaking"
        assert client.get("/health").get_json()["replica_speaking"] is True
        assert speaking_events(client) == [{"speaking": True, "inference_id": STORY}]
        forged = [e for e in events(client) if e["type"] == "conversation.replica.stopped_speaking"]
        assert [(e["sender"], e["message"]["properties"]["duration"]) for e in forged] == [(VIEWER["id"], 0.1)]

        viewer.room_sends(stopped(STORY, 2.4))  # the face
        response = answer.result(20)

    assert response.status_code == 200
    spoken = response.get_json()["spoken"]
    assert spoken["duration_s"] == 2.4 and spoken["interrupted"] is False
    assert client.get(f"/utterances/{STORY}").get_json()["duration_s"] == 2.4


def test_a_viewers_start_does_not_answer_a_wait_for_the_start(client, viewer):
    with ThreadPoolExecutor(1) as pool:
        answer = post_waiting(client, pool, wait="started")
        viewer.room_sends(started(STORY), VIEWER["id"])
        handled(client, viewer)

        assert client.get(f"/utterances/{STORY}").get_json()["state"] == "sent"
        assert client.get("/health").get_json()["replica_speaking"] is False

        viewer.room_sends(started(STORY))  # the face
        response = answer.result(20)

    assert response.status_code == 200 and response.get_json()["spoken"]["duration_s"] is None


def test_what_a_viewer_says_the_face_said_is_not_taken(client, viewer):
    with ThreadPoolExecutor(1) as pool:
        post_waiting(client, pool, wait="started")
        viewer.room_sends(said(STORY, "I was never here"), VIEWER["id"])
        handled(client, viewer)

        assert "spoken_text" not in client.get(f"/utterances/{STORY}").get_json()
        assert [e for e in events(client) if e["type"] == "relay.said"] == []

        viewer.room_sends(said(STORY, "Once upon a time."))  # the face
        viewer.room_sends(started(STORY))
        handled(client, viewer)

    assert client.get(f"/utterances/{STORY}").get_json()["spoken_text"] == "Once upon a time."


def test_a_viewers_heartbeat_does_not_take_the_face_over(client, viewer):
    viewer.room_sends({"event_type": "system.replica_present", "properties": {"attempt": 1}}, VIEWER["id"])
    viewer.room_sends(started(STORY), VIEWER["id"])
    handled(client, viewer)

    health = client.get("/health").get_json()
    assert health["face"] == {"present": True, "signal": "user_id", "participant_id": REPLICA["id"]}
    assert health["replica_speaking"] is False
    assert [e["participant_id"] for e in events(client) if e["type"] == "relay.replica_joined"] == [REPLICA["id"]]


@pytest.fixture
def empty_room(fake_daily, make_app) -> Any:
    """A room the face has not joined yet, with a viewer in it."""
    fake_daily.replica_in_room = False
    fake_daily.others_in_room = [VIEWER]
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)
    room.join(timeout=2)
    yield make_app(Settings(replica_timeout_s=2.0, send_timeout_s=1.0), room).test_client(), fake_daily.client
    room.leave()


def test_a_face_known_by_its_heartbeat_is_replaced_by_one_tavus_named(empty_room):
    client, fake = empty_room
    heartbeat = {"event_type": "system.replica_present", "properties": {"attempt": 1}}
    fake.room_sends(heartbeat, "hb-1")  # a face known only by its heartbeat works as before
    fake.room_sends(started(STORY), "hb-1")
    handled(client, fake)
    health = client.get("/health").get_json()
    assert health["face"] == {"present": True, "signal": "system.replica_present", "participant_id": "hb-1"}
    assert health["replica_speaking"] is True

    fake.replica_joins()  # Tavus's own user id: the stronger signal holds from now on
    fake.room_sends(heartbeat, "hb-1")
    fake.room_sends(stopped(STORY, 0.1), "hb-1")
    handled(client, fake)

    health = client.get("/health").get_json()
    assert health["face"] == {"present": True, "signal": "user_id", "participant_id": REPLICA["id"]}
    assert health["replica_speaking"] is True
    joined = [e for e in events(client) if e["type"] == "relay.replica_joined"]
    assert [(e["participant_id"], e["signal"], e.get("replaced")) for e in joined] == [
        ("hb-1", "system.replica_present", None), (REPLICA["id"], "user_id", "hb-1")
    ]


def test_the_faces_last_stop_counts_though_it_left_before_the_relay_handled_it(client, viewer):
    client.post("/send_text_message", json={"text": "Goodbye.", "inference_id": STORY})
    viewer.room_sends(started(STORY, seq=1))
    handled(client, viewer, seq=2)
    viewer.room_sends(stopped(STORY, 0.8, seq=3))  # held a few milliseconds, to be put in seq order...
    viewer.replica_leaves()  # ...while Daily says the face left

    wait_until(lambda: client.get(f"/utterances/{STORY}").get_json()["state"] == "spoken", "the face's stop to count")
    assert client.get("/health").get_json()["replica_speaking"] is False


# --- 2. no participant speaks in the relay's name --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["relay.restarted", "relay.speaking", "relay.script", "RELAY.Said"])
def test_a_participants_message_under_a_relay_name_is_published_as_a_room_event(client, viewer, kind):
    forged = {"event_type": kind, "speaking": True, "state": "finished", "last_event_id": 0}
    viewer.room_sends(forged, VIEWER["id"])
    handled(client, viewer)

    listed = events(client)
    assert next(e["type"] for e in listed if e.get("sender") == VIEWER["id"]) == f"room.{kind}"
    assert [e["message"] for e in listed if e["type"] == f"room.{kind}"] == [forged]
    relays_own = [e["type"] for e in listed if e["type"].lower().startswith("relay.")]
    assert relays_own == ["relay.joined", "relay.replica_joined"]


# --- 3. reports out of order -----------------------------------------------------------------------------------


def test_a_late_start_after_its_stop_does_not_leave_the_face_speaking(client, viewer):
    with ThreadPoolExecutor(1) as pool:
        answer = post_waiting(client, pool)
        viewer.room_sends(stopped(STORY, 1.5, seq=11))
        assert answer.result(20).get_json()["spoken"]["duration_s"] == 1.5
        viewer.room_sends(started(STORY, seq=10))  # Tavus sent it first; it arrived long after the stop
        handled(client, viewer, seq=12)

    assert [e["message"]["seq"] for e in events(client) if e.get("sender") == REPLICA["id"]] == [11, 10]
    assert client.get("/health").get_json()["replica_speaking"] is False
    assert speaking_events(client) == []
    utterance = client.get(f"/utterances/{STORY}").get_json()
    assert utterance["state"] == "spoken" and utterance["started_speaking_at"] is None


def test_without_a_seq_reports_are_applied_as_they_arrive(client, viewer):
    viewer.room_sends(stopped(STORY, 1.5, seq=11))
    handled(client, viewer, seq=12)
    viewer.room_sends(started("next-1"))  # no seq: not older than anything, whatever came before it
    handled(client, viewer)
    assert client.get("/health").get_json()["replica_speaking"] is True

    viewer.room_sends(stopped("next-1", 0.5))
    handled(client, viewer)
    assert client.get("/health").get_json()["replica_speaking"] is False
