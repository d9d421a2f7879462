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
    for seq, kind in (
        (7, "conversation.started_speaking"),
        (5, "conversation.replica.started_speaking"),
        (6, "conversation.started_speaking"),
    ):
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


# --- bounds: what one event carries, what the buffer holds ------------------------------------------


def test_an_events_text_is_an_excerpt_of_its_start_keys_and_nested_texts_too():
    log = EventLog(10)
    long_text = "a" * 20_000

    event = log.publish("conversation.utterance", message={"properties": {"speech": long_text, "k" * 600: [long_text]}})

    speech = event.as_dict()["message"]["properties"]["speech"]
    assert speech == "a" * (relay_events.MAX_EVENT_TEXT_CHARS - 1) + "…"
    (key,) = [name for name in event.as_dict()["message"]["properties"] if name.startswith("k")]
    assert key == "k" * (relay_events.MAX_EVENT_TEXT_CHARS - 1) + "…"
    assert event.as_dict()["message"]["properties"][key] == [speech]
    assert len(event.sse()) < 4 * relay_events.MAX_EVENT_TEXT_CHARS  # 40,600 characters were published


def test_a_text_within_the_bound_and_everything_but_text_are_kept_as_published():
    log = EventLog(10)
    fields = {"text": "b" * relay_events.MAX_EVENT_TEXT_CHARS, "n": 3, "ok": True, "none": None, "list": [1.5, "x"]}

    assert {key: value for key, value in log.publish("relay.said", **fields).as_dict().items()
            if key in fields} == fields


def test_an_event_nested_past_the_bound_is_cut_there():
    log = EventLog(10)
    nested: Any = "deep"
    for _ in range(5000):  # deeper than JSON's encoder could write
        nested = [nested]

    frame = log.publish("app_message", message=nested).sse()

    data = json.loads(frame.split("data: ", 1)[1])
    depth = 0
    value = data["message"]
    while isinstance(value, list):
        value, depth = value[0], depth + 1
    assert value == "…" and depth == relay_events.MAX_EVENT_DEPTH - 1


def ten_events_of_about_400_bytes(log: EventLog) -> None:
    """Ten events whose frames are 390 to 433 bytes long: three fit in 1300 bytes, four do not."""
    frames = [log.publish("relay.script", state="playing", text=f"{number} " + "x" * 300).sse() for number in range(10)]
    assert all(390 <= len(frame) <= 433 for frame in frames)


def test_the_buffer_drops_its_oldest_events_past_its_bytes_and_tells_a_listener():
    log = EventLog(1000, max_bytes=1300)
    ten_events_of_about_400_bytes(log)

    listing = log.listing(0)

    assert listing[0]["type"] == "relay.events_dropped" and listing[0]["count"] == 7
    assert [event["id"] for event in listing[1:]] == [8, 9, 10]
    assert log.held_bytes <= 1300


def test_a_stream_behind_the_byte_bound_is_told_how_many_it_missed():
    log = EventLog(1000, max_bytes=1300)
    ten_events_of_about_400_bytes(log)
    stream = log.stream(0)

    frames = list(islice(stream, 5))
    stream.close()

    assert frames[1].startswith("event: relay.events_dropped\n") and '"count":7' in frames[1]
    assert [frame.split("\n", 1)[0] for frame in frames[2:]] == ["id: 8", "id: 9", "id: 10"]


def test_an_event_larger_than_the_byte_bound_is_still_kept_until_the_next():
    log = EventLog(1000, max_bytes=100)
    log.publish("relay.joined", conversation_id="c123")
    log.publish("relay.script", state="playing", text="x" * 400)

    assert [event["id"] for event in log.listing(0)[1:]] == [2]
