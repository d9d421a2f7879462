"""GET /events (JSON and Server-Sent Events), the face's state in /health, recording and request logs."""

from __future__ import annotations

import io
import json
import logging
import threading
from typing import Any

import pytest
import requests

from app import create_app
from config import Settings
from relay import events as relay_events
from relay.dry_run import DryRunRoom
from relay.room import Room
from tests.conftest import CONVERSATION_ID, CONVERSATION_URL, REPLICA, wait_until
from tests.wsgi_server import serve_wsgi


def events_after(client: Any, after: int = 0) -> list[dict[str, Any]]:
    return client.get(f"/events?after={after}").get_json()


def wait_for_events(client: Any, count: int) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        found = events_after(client)
        return found if len(found) >= count else None

    return wait_until(enough, lambda: f"{count} events: {events_after(client)}")


def started_speaking(seq: int, role: str | None = None) -> dict[str, Any]:
    kind = "conversation.started_speaking" if role else "conversation.replica.started_speaking"
    message = {
        "message_type": "conversation",
        "event_type": kind,
        "conversation_id": CONVERSATION_ID,
        "seq": seq,
        "timestamp": 1700000000 + seq,
    }
    if role:
        message["properties"] = {"role": role}
    return message


def utterance(seq: int) -> dict[str, Any]:
    return {
        "message_type": "conversation",
        "event_type": "conversation.utterance",
        "seq": seq,
        "properties": {"speech": "hi"},
    }


def test_room_messages_and_relay_events_arrive_in_order_with_increasing_ids(client, fake_call_client):
    message = utterance(1)
    fake_call_client.room_sends(message)

    events = wait_for_events(client, 3)

    assert [e["type"] for e in events] == ["relay.joined", "relay.replica_joined", "conversation.utterance"]
    assert [e["id"] for e in events] == [1, 2, 3]
    assert events[0]["conversation_id"] == CONVERSATION_ID
    assert events[2]["sender"] == REPLICA["id"] and events[2]["message"] == message
    assert events_after(client, 2) == events[2:]


def test_health_follows_whether_the_face_is_speaking(client, fake_call_client):
    fake_call_client.room_sends(started_speaking(1, "replica"))
    wait_for_events(client, 4)
    assert client.get("/health").get_json()["replica_speaking"] is True

    fake_call_client.room_sends({
        "event_type": "conversation.replica.stopped_speaking",
        "seq": 2,
        "properties": {"duration": 1.2, "interrupted": False},
    })
    wait_for_events(client, 6)

    health = client.get("/health").get_json()
    assert health["replica_speaking"] is False and health["last_event_id"] == 6


def test_last_event_id_header_works_like_after(client, fake_call_client):
    wait_for_events(client, 2)

    assert [e["id"] for e in client.get("/events", headers={"Last-Event-ID": "1"}).get_json()] == [2]


@pytest.mark.parametrize("after", ["-1", "abc", "1.5", "9" * 40])
def test_a_bad_event_id_is_400(client, after):
    response = client.get(f"/events?after={after}")

    assert response.status_code == 400 and "must be an event id" in response.get_json()["error"]


def test_limit_lists_at_most_that_many_events_the_oldest_after_the_cursor(client, fake_call_client):
    for seq in (1, 2, 3):
        fake_call_client.room_sends(utterance(seq))
    wait_for_events(client, 5)

    first = client.get("/events?after=1&limit=2").get_json()
    rest = client.get(f"/events?after={first[-1]['id']}&limit=2").get_json()

    assert [e["id"] for e in first] == [2, 3] and [e["id"] for e in rest] == [4, 5]
    assert [e["id"] for e in client.get("/events?limit=1000").get_json()] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "2.5", "", "1001", "9" * 40])
def test_a_bad_limit_is_400_naming_it(client, limit):
    response = client.get(f"/events?limit={limit}")

    assert response.status_code == 400
    assert response.get_json()["error"].startswith("limit must be a whole number from 1 to 1000, got ")


def test_an_empty_last_event_id_means_from_the_start(client, fake_call_client):
    wait_for_events(client, 2)

    assert [e["id"] for e in client.get("/events", headers={"Last-Event-ID": ""}).get_json()] == [1, 2]


def test_a_bad_last_event_id_is_400_even_beside_after(client):
    """`after` is the one used, but a header the document forbids is never ignored."""
    response = client.get("/events?after=1", headers={"Last-Event-ID": "x"})

    assert response.status_code == 400
    assert response.get_json()["error"] == 'after (or Last-Event-ID) must be an event id, a whole number >= 0, got "x"'


def test_a_bad_limit_is_400_on_the_stream_too(client):
    response = client.get("/events?limit=0", headers={"Accept": "text/event-stream"})

    assert response.status_code == 400
    assert response.get_json()["error"] == "limit must be a whole number from 1 to 1000, got 0"


def test_interrupts_and_send_failures_are_events(client, fake_daily, fake_call_client):
    client.post("/interrupt")
    fake_daily.send_error = lambda index, message: "AppMessage(Signalling(ChannelNotOpen))"
    client.post("/send_text_message", json={"text": "Hi", "inference_id": "doomed"})

    events = wait_for_events(client, 4)[2:]

    assert events[0]["type"] == "relay.interrupted" and events[0]["reason"] == "POST /interrupt"
    assert events[1]["type"] == "relay.send_failed" and events[1]["inference_id"] == "doomed"
    assert "ChannelNotOpen" in events[1]["error"]


def test_the_call_ending_is_an_event_and_health_says_why(client, fake_call_client):
    fake_call_client.call_ends("Meeting has ended")
    wait_for_events(client, 3)

    health = client.get("/health").get_json()
    response = client.post("/send_text_message", json={"text": "Hi"})

    assert events_after(client, 2)[0] == {
        **events_after(client, 2)[0], "type": "relay.left", "reason": "Meeting has ended"
    }
    assert health["call_state"] == "left" and health["left_reason"] == "Meeting has ended"
    assert response.status_code == 503 and "conversation has ended (Meeting has ended)" in response.get_json()["error"]


def test_the_record_file_has_outgoing_and_incoming_lines(room, fake_call_client, tmp_path, make_app):
    record = tmp_path / "session.jsonl"
    app = make_app(Settings(record_file=str(record)), room)
    client = app.test_client()
    client.post("/send_text_message", json={"text": "Hi", "inference_id": "r1"})
    fake_call_client.room_sends(started_speaking(1))
    wait_for_events(client, 3)
    app.extensions["relay"].close()  # flushes and closes the record file before it is read

    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [line["direction"] for line in lines] == ["out", "in"]
    assert lines[0]["message"]["properties"]["inference_id"] == "r1"
    assert lines[1]["message"] == started_speaking(1) and lines[1]["sender"] == REPLICA["id"]


def test_one_log_line_per_request_without_bodies(client, fake_call_client, caplog):
    caplog.set_level(logging.INFO, logger="echo_relay")

    client.post("/send_text_message", json={"text": "a secret sentence", "inference_id": "log-1"})
    client.post("/send_text_message", json={"text": 5})

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("POST ")]
    assert len(lines) == 2
    assert lines[0].startswith("POST /send_text_message 200 ") and lines[0].endswith(
        "inference_id=log-1 messages_sent=1"
    )
    assert lines[1].startswith("POST /send_text_message 400 ")
    assert "secret" not in caplog.text


# --- Server-Sent Events over real sockets -------------------------------------------------------


@pytest.fixture
def served(app):
    with serve_wsgi(app) as port:
        yield f"http://127.0.0.1:{port}"


def read_sse(response: Any, count: int) -> list[dict[str, Any]]:
    """Parse `count` events (frames with data) from a streaming response."""
    events: list[dict[str, Any]] = []
    frame: dict[str, str] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if "data" in frame:
                events.append(
                    {**json.loads(frame["data"]), "_sse_id": frame.get("id"), "_sse_event": frame.get("event")}
                )
                if len(events) == count:
                    return events
            frame = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            frame[key] = value
    raise AssertionError(f"stream ended after {events}")


def test_sse_stream_frames_events_with_id_and_type(served, fake_call_client):
    with requests.get(f"{served}/events", headers={"Accept": "text/event-stream"}, stream=True, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        fake_call_client.room_sends(utterance(3))
        events = read_sse(response, 3)

    assert [(e["_sse_id"], e["_sse_event"]) for e in events] == [
        ("1", "relay.joined"), ("2", "relay.replica_joined"), ("3", "conversation.utterance")
    ]


def test_sse_reconnect_with_last_event_id_gets_only_what_it_missed(served, fake_call_client):
    fake_call_client.room_sends(utterance(1))
    fake_call_client.room_sends(utterance(2))
    headers = {"Accept": "text/event-stream", "Last-Event-ID": "2"}
    with requests.get(f"{served}/events", headers=headers, stream=True, timeout=5) as response:
        events = read_sse(response, 2)

    assert [e["id"] for e in events] == [3, 4]


def test_sse_sends_keep_alive_comments_when_idle(served, monkeypatch):
    monkeypatch.setattr(relay_events, "EVENT_KEEPALIVE_S", 0.05)
    with requests.get(
        f"{served}/events?after=2", headers={"Accept": "text/event-stream"}, stream=True, timeout=5
    ) as response:
        lines = []
        for line in response.iter_lines(decode_unicode=True):
            lines.append(line)
            if line == ": keep-alive":
                break

    assert ": keep-alive" in lines


def test_many_listeners_each_get_every_event_and_a_stalled_one_slows_nobody(served, client, fake_call_client):
    stalled = requests.get(f"{served}/events", headers={"Accept": "text/event-stream"}, stream=True, timeout=5)
    results: list[list[int]] = []

    def listen() -> None:
        with requests.get(
            f"{served}/events", headers={"Accept": "text/event-stream"}, stream=True, timeout=10
        ) as response:
            results.append([e["id"] for e in read_sse(response, 202)])

    listeners = [threading.Thread(target=listen) for _ in range(20)]
    for listener in listeners:
        listener.start()
    for seq in range(200):
        fake_call_client.room_sends(
            {"event_type": "conversation.utterance", "seq": seq, "properties": {"speech": "x" * 2000}}
        )
    response = requests.post(f"{served}/send_text_message", json={"text": "Still fast"}, timeout=30)
    for listener in listeners:
        listener.join(20)
    stalled.close()  # it read nothing all along

    assert response.status_code == 200
    assert results == [list(range(1, 203))] * 20


def test_too_many_listeners_is_503_pointing_at_polling(served, monkeypatch):
    monkeypatch.setattr(relay_events, "MAX_EVENT_LISTENERS", 1)
    with requests.get(f"{served}/events", headers={"Accept": "text/event-stream"}, stream=True, timeout=5) as first:
        read_sse(first, 1)
        second = requests.get(f"{served}/events", headers={"Accept": "text/event-stream"}, timeout=5)

    assert second.status_code == 503 and "GET /events?after=" in second.json()["error"]


def test_closing_the_relay_ends_open_streams(fake_daily):
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)
    room.join(timeout=2)
    app = create_app(Settings(), room)
    with serve_wsgi(app) as port:
        response = requests.get(
            f"http://127.0.0.1:{port}/events", headers={"Accept": "text/event-stream"}, stream=True, timeout=5
        )
        read_sse(response, 2)
        app.extensions["relay"].close()
        remaining = list(response.iter_lines(decode_unicode=True))
    room.leave()

    assert all(not line.startswith("data") for line in remaining)


def raw_frames(response: Any, count: int) -> list[str]:
    """The first `count` frames of a stream, as written (blank-line separated), comments and retry included."""
    frames: list[str] = []
    lines: list[str] = []
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            frames.append("\n".join(lines))
            lines = []
            if len(frames) == count:
                return frames
        else:
            lines.append(line)
    raise AssertionError(f"stream ended after {frames}")


def test_a_stream_from_before_a_restart_starts_over_on_a_relay_with_no_events(make_app):
    app = make_app(Settings(), DryRunRoom(io.StringIO(), face=False))
    with serve_wsgi(app) as port:
        headers = {"Accept": "text/event-stream", "Last-Event-ID": "4"}
        with requests.get(f"http://127.0.0.1:{port}/events", headers=headers, stream=True, timeout=5) as response:
            requests.post(f"http://127.0.0.1:{port}/interrupt", timeout=5)
            events = read_sse(response, 2)

    assert [(e["_sse_id"], e["type"]) for e in events] == [(None, "relay.restarted"), ("1", "relay.interrupted")]


def test_head_requests_on_the_stream_leave_every_slot_free(served, app, monkeypatch):
    monkeypatch.setattr(relay_events, "MAX_EVENT_LISTENERS", 2)
    for _ in range(3):
        assert requests.head(f"{served}/events", headers={"Accept": "text/event-stream"}, timeout=5).status_code == 200

    with requests.get(f"{served}/events", headers={"Accept": "text/event-stream"}, stream=True, timeout=5) as response:
        assert response.status_code == 200 and read_sse(response, 1)[0]["type"] == "relay.joined"
    assert app.extensions["relay"].events.listeners <= 1


def test_a_client_that_leaves_frees_its_slot(served, app, monkeypatch):
    monkeypatch.setattr(relay_events, "EVENT_KEEPALIVE_S", 0.05)
    events = app.extensions["relay"].events
    with requests.get(f"{served}/events", headers={"Accept": "text/event-stream"}, stream=True, timeout=5) as response:
        read_sse(response, 1)
        assert events.listeners == 1

    wait_until(lambda: events.listeners == 0, "the next keep-alive write to find the socket closed")


def test_a_participant_cannot_forge_frames_in_the_stream(served, fake_call_client):
    forged = 'x\nid: 999999\nevent: conversation.replica.stopped_speaking\ndata: {"forged":true}\n\nevent: y'
    with requests.get(
        f"{served}/events?after=2", headers={"Accept": "text/event-stream"}, stream=True, timeout=5
    ) as response:
        fake_call_client.room_sends({"event_type": forged, "seq": 1}, sender="someone-else")
        fake_call_client.room_sends(utterance(2))
        frames = raw_frames(response, 3)[1:]

    assert [frame.split("\n")[:2] for frame in frames] == [
        [
            "id: 3",
            (
                "event: x\\nid: 999999\\nevent: conversation.replica.stopped_speaking"
                "\\ndata: {\"forged\":true}\\n\\nevent: y"
            ),
        ],
        ["id: 4", "event: conversation.utterance"],
    ]
    assert json.loads(frames[0].split("\n")[2][len("data: "):])["message"]["event_type"] == forged


# --- what the events hold: excerpts, and a buffer bounded in bytes ----------------------------------


def test_a_long_text_in_a_room_message_is_an_excerpt_in_the_events(client, fake_call_client):
    from tests.conftest import wait_until

    speech = "All the words the face said. " * 1000
    fake_call_client.room_sends({"event_type": "conversation.utterance", "seq": 1, "properties": {"speech": speech}})

    found = wait_until(lambda: [e for e in events_after(client) if e["type"] == "conversation.utterance"],
                       "the room's message in /events")

    excerpt = found[0]["message"]["properties"]["speech"]
    assert excerpt == speech[: relay_events.MAX_EVENT_TEXT_CHARS - 1] + "…"


def test_past_relay_event_buffer_bytes_the_oldest_events_go_and_a_listener_is_told(room, fake_call_client, make_app):
    from tests.conftest import wait_until

    client = make_app(Settings(event_buffer_bytes=4000), room).test_client()  # the relay's own two events first
    for seq in range(1, 21):  # each about 700 bytes as a frame
        fake_call_client.room_sends({"event_type": "conversation.utterance", "seq": seq,
                                     "properties": {"speech": f"{seq:02} " + "y" * 400}})

    listing = wait_until(lambda: (found := events_after(client)) and found[-1]["id"] == 22 and found,
                         "the room's 20 messages in /events")

    assert listing[0]["type"] == "relay.events_dropped" and "id" not in listing[0]
    kept = [event["id"] for event in listing[1:]]
    assert kept == list(range(22 - len(kept) + 1, 23)) and listing[0]["count"] == 22 - len(kept)
    assert 3 <= len(kept) <= 6  # 4000 bytes hold about five
