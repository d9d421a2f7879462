"""The event log, its SSE frames, and the room's event queue, without HTTP."""

from __future__ import annotations

import json
import threading
from itertools import islice
from typing import Any

import pytest

from relay import events as relay_events
from relay.events import EventLog, RoomEventQueue, room_event_type, sse_event_name
from relay.recorder import Recorder


def queue_for(log: EventLog, on_message: Any = lambda message, sender: None, **kwargs: Any) -> RoomEventQueue:
    queue = RoomEventQueue(log, Recorder(None), on_message, **kwargs)
    queue.start()
    return queue


def app_message(kind: str, seq: int | None = None, **properties: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"event_type": kind, "properties": properties}
    if seq is not None:
        message["seq"] = seq
    return {"sender": "face", "message": message}


def published(log: EventLog, count: int) -> list[dict[str, Any]]:
    while log.last_id < count:
        log.wait_after(log.last_id, 3)
    return [event.as_dict() for event in log.after(0)[0]]


def test_messages_with_a_seq_are_ordered_by_it_and_duplicates_pass_through():
    log = EventLog(100)
    room_events = queue_for(log)
    for seq, kind in ((7, "conversation.started_speaking"), (5, "conversation.replica.started_speaking"), (6, "conversation.started_speaking")):
        room_events("app_message", app_message(kind, seq))

    events = published(log, 3)
    room_events.close()

    assert [e["message"]["seq"] for e in events] == [5, 6, 7]
    assert [e["type"] for e in events] == [
        "conversation.replica.started_speaking", "conversation.started_speaking", "conversation.started_speaking"
    ]


def test_a_listener_behind_the_buffer_is_told_how_many_it_missed():
    log = EventLog(3)
    for number in range(7):
        log.publish("conversation.utterance", n=number)

    events = log.listing(0)

    assert events[0]["type"] == "relay.events_dropped" and events[0]["count"] == 4 and "id" not in events[0]
    assert [e["id"] for e in events[1:]] == [5, 6, 7]


def test_an_id_from_before_a_restart_starts_the_listing_over_and_says_so():
    log = EventLog(10)
    log.publish("relay.joined")

    events = log.listing(4)

    assert [e["type"] for e in events] == ["relay.restarted", "relay.joined"]
    assert events[0]["last_event_id"] == 4 and "id" not in events[0]


def test_a_stream_from_before_a_restart_on_a_relay_with_no_events_gets_the_first_event():
    log = EventLog(10)
    stream = log.stream(4)
    frames: list[str] = []
    reader = threading.Thread(target=lambda: frames.extend(islice(stream, 3)))
    reader.start()
    log.publish("relay.interrupted", reason="POST /interrupt")
    reader.join(5)
    stream.close()

    assert frames[0] == "retry: 2000\n\n"
    assert "event: relay.restarted\n" in frames[1]
    assert frames[2].startswith("id: 1\nevent: relay.interrupted\n")


def test_a_stream_frees_its_slot_when_closed_even_if_never_read():
    log = EventLog(10)
    streams = [log.stream(0) for _ in range(relay_events.MAX_EVENT_LISTENERS)]
    assert log.listeners == relay_events.MAX_EVENT_LISTENERS

    for stream in streams:
        stream.close()
        stream.close()  # a second close frees nothing more

    assert log.listeners == 0


def test_an_event_name_cannot_break_the_frame():
    assert sse_event_name("x\nid: 999999\r\ndata: {}") == "x\\nid: 999999\\r\\ndata: {}"
    assert sse_event_name("a\u2028b\x00\u202e") == "a\\u2028b\\x00\\u202e"
    assert sse_event_name("") == "message"
    assert len(sse_event_name("y" * 5000)) == relay_events.MAX_EVENT_NAME_CHARS


def test_every_frame_is_one_line_per_field_whatever_the_event_holds():
    log = EventLog(10)
    event = log.publish("evil\nid: 9\n\ndata: x", message={"text": "line\nbreak\u2028", "k\n": "\r"})

    frame = event.sse()

    lines = frame.rstrip("\n").split("\n")
    assert [line.partition(":")[0] for line in lines] == ["id", "event", "data"]
    assert json.loads(lines[2][len("data: "):])["message"] == {"text": "line\nbreak\u2028", "k\n": "\r"}


def test_a_flooded_queue_drops_and_counts_instead_of_blocking_daily():
    log = EventLog(100)
    release, busy = threading.Event(), threading.Event()

    def slow(message: Any, sender: str) -> None:
        busy.set()
        release.wait(5)

    room_events = queue_for(log, slow, capacity=2)
    room_events("app_message", app_message("first"))
    busy.wait(5)  # the queue's thread is held by the first message: the next two fill the queue
    for number in range(5):
        room_events("app_message", app_message(f"more-{number}"))  # returns at once, queue full or not
    release.set()

    events = published(log, 4)
    room_events.close()

    assert [e["type"] for e in events] == ["first", "relay.room_events_dropped", "more-0", "more-1"]
    assert events[1]["count"] == 3


@pytest.mark.parametrize(
    "kind, published_as",
    [
        ("relay.restarted", "room.relay.restarted"),  # a participant's message under the relay's own name
        ("Relay.Speaking", "room.Relay.Speaking"),
        ("conversation.replica.stopped_speaking", "conversation.replica.stopped_speaking"),
        ("relayed.note", "relayed.note"),
        ("room.relay.restarted", "room.relay.restarted"),
        ("", "app_message"),
        (7, "app_message"),
        (None, "app_message"),
    ],
)
def test_room_messages_are_published_under_their_own_type_but_never_a_relay_name(kind, published_as):
    assert room_event_type(kind) == published_as


def test_each_room_message_is_handed_on_with_its_sender():
    log = EventLog(100)
    heard: list[tuple[Any, str]] = []
    room_events = queue_for(log, lambda message, sender: heard.append((message, sender)))
    room_events("app_message", {"sender": "viewer-1", "message": {"event_type": "relay.speaking", "speaking": True}})

    events = published(log, 1)
    room_events.close()

    assert [(e["type"], e["sender"]) for e in events] == [("room.relay.speaking", "viewer-1")]
    assert heard == [({"event_type": "relay.speaking", "speaking": True}, "viewer-1")]
