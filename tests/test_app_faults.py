"""Faults in the room: failed and missing confirmations, the face leaving, the call ending, SIGTERM mid-send."""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import requests

import app as relay_app
import echo_messages
from config import Settings
from relay.room import Room
from tests.conftest import CONVERSATION_URL, FakeCallClient, free_port, sent_messages, wait_for_relay, wait_until
from tests.fake_daily import FACE, VIEWER


def long_audio(seconds: float = 20.0) -> str:
    return base64.b64encode(np.zeros(int(24000 * seconds), dtype="<i2").tobytes()).decode()


def slow_sends(fake: FakeCallClient, delay_s: float) -> None:
    """Each send takes `delay_s` (a slow network), so a test can act mid-utterance."""
    original = fake.send_app_message

    def send(message: Any, participant_id: Any = None, completion: Any = None) -> None:
        time.sleep(delay_s)
        original(message, participant_id, completion)

    fake.send_app_message = send  # type: ignore[method-assign]


def event_of_type(client: Any, event_type: str) -> dict[str, Any]:
    """Events reach /events through the relay's event thread, a moment after the fact they report."""
    found = wait_until(
        lambda: [e for e in client.get("/events").get_json() if e["type"] == event_type], f"a {event_type} event"
    )
    return found[0]


def test_every_nth_failed_completion_fails_exactly_its_request(client, fake_daily, fake_call_client):
    failed_ids: set[str] = set()

    def every_seventh(index: int, message: Any) -> str | None:
        if index % 7 == 3:
            failed_ids.add(message["properties"]["inference_id"])
            return "AppMessage(Signalling(SendFailed))"
        return None

    fake_daily.send_error = every_seventh

    def post(i: int) -> tuple[str, int]:
        return f"r{i}", client.post(
            "/send_text_message", json={"text": f"Number {i}", "inference_id": f"r{i}"}
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = dict(pool.map(post, range(70)))

    assert len(failed_ids) == 10
    assert {i for i, status in statuses.items() if status == 502} == failed_ids
    assert {status for i, status in statuses.items() if i not in failed_ids} == {200}
    assert client.get("/health").get_json()["send_errors"] == 10


def test_a_missing_confirmation_does_not_hold_up_other_requests(room, fake_daily, fake_call_client, make_app):
    """The first request's confirmation is held back; the second is confirmed while the first still waits."""
    client = make_app(Settings(send_timeout_s=30), room).test_client()
    original = fake_call_client.send_app_message
    held: list[Any] = []

    def hold_the_first(message: Any, participant_id: Any = None, completion: Any = None) -> None:
        lost = message.get("properties", {}).get("inference_id") == "lost"
        if lost:
            held.append(completion)
        original(message, participant_id, None if lost else completion)

    fake_call_client.send_app_message = hold_the_first

    def post(inference_id: str) -> int:
        return client.post("/send_text_message", json={"text": "Hi", "inference_id": inference_id}).status_code

    with ThreadPoolExecutor(2) as pool:
        lost = pool.submit(post, "lost")
        wait_until(lambda: held, "the first request's send", interval=0.001)
        assert post("fine") == 200
        assert not lost.done()  # still waiting for Daily
        held[0](None)
        assert lost.result(10) == 200


def after_messages(fake: FakeCallClient, count: int, event: Any) -> None:
    """Make `event()` happen in the room, as Daily reports it, right after the relay sent `count` messages."""
    original = fake.send_app_message

    def send(message: Any, participant_id: Any = None, completion: Any = None) -> None:
        original(message, participant_id, completion)
        if len(fake.sent) == count:
            event()
            fake.settle()

    fake.send_app_message = send  # type: ignore[method-assign]


def test_the_face_leaving_mid_utterance_fails_fast_with_503_and_an_event(client, fake_call_client):
    after_messages(fake_call_client, 5, fake_call_client.replica_leaves)

    response = client.post("/send_audio_message", json={"audio": long_audio(), "sample_rate": 24000, "done": True})

    assert response.status_code == 503 and "left the room mid-utterance" in response.get_json()["error"]
    assert "(after 5 message(s) were sent)" in response.get_json()["error"]
    assert len(sent_messages(fake_call_client)) == 5  # not the whole utterance
    assert event_of_type(client, "relay.replica_left")["participant_id"] == "replica-1"


def test_the_call_ending_mid_utterance_fails_fast_with_503_and_relay_left(client, fake_call_client):
    after_messages(fake_call_client, 5, lambda: fake_call_client.call_ends("ejected"))

    response = client.post("/send_audio_message", json={"audio": long_audio(), "sample_rate": 24000, "done": True})

    assert response.status_code == 503 and "conversation ended mid-utterance (ejected)" in response.get_json()["error"]
    assert len(sent_messages(fake_call_client)) == 5
    assert event_of_type(client, "relay.left")["reason"] == "ejected"
    assert client.post("/send_text_message", json={"text": "Hi"}).status_code == 503


def test_sigterm_during_a_long_audio_send_finishes_cleanly_then_leaves(monkeypatch, tmp_path, fake_daily):
    monkeypatch.chdir(tmp_path)
    port = free_port()
    monkeypatch.setenv("RELAY_PORT", str(port))
    outcome: dict[str, Any] = {}

    def user() -> None:
        base = f"http://127.0.0.1:{port}"
        if not wait_for_relay(port):
            return
        slow_sends(fake_daily.client, 0.001)
        threading.Timer(0.15, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
        response = requests.post(
            f"{base}/send_audio_message",
            json={"audio": long_audio(10), "sample_rate": 24000, "done": True},
            timeout=20,
        )
        outcome["status"], outcome["body"] = response.status_code, response.json()

    thread = threading.Thread(target=user)
    thread.start()
    code = relay_app.main([CONVERSATION_URL], client_factory=fake_daily.factory)
    thread.join(20)

    assert code == 0
    assert outcome["status"] == 200, outcome  # the in-flight request completed before the relay stopped
    assert outcome["body"]["messages_sent"] == len(
        [m for m in fake_daily.client.sent if m.get("event_type") == "conversation.echo"]
    )
    assert fake_daily.client.left and fake_daily.client.released


def test_a_connection_that_drops_mid_utterance_and_comes_back_loses_and_repeats_nothing(client, fake_call_client):
    after_messages(fake_call_client, 5, lambda: fake_call_client.connection_changes("signalling", "interrupted"))
    sending = ThreadPoolExecutor(1).submit(
        client.post,
        "/send_audio_message",
        json={"audio": long_audio(1), "sample_rate": 24000, "inference_id": "u1", "done": True},
    )
    dropped = event_of_type(client, "relay.connection")
    assert (dropped["connection"], dropped["event"]) == ("signalling", "interrupted")
    assert len(sent_messages(fake_call_client)) == 5  # nothing handed to Daily while it is down

    fake_call_client.connection_changes("signalling", "connected")
    response = sending.result(10)

    assert response.status_code == 200, response.get_json()
    chunks = [m["properties"]["audio"] for m in sent_messages(fake_call_client)]
    expected = [m["properties"]["audio"] for m in echo_messages.audio_echo_messages(
        base64.b64decode(long_audio(1)), sample_rate=24000, conversation_id="c123", inference_id="u1", done=True
    )]
    assert chunks == expected and response.get_json()["messages_sent"] == len(expected)


def test_a_connection_down_past_its_timeout_is_a_503_saying_how_many_went_out(room, fake_call_client, make_app):
    client = make_app(Settings(send_timeout_s=1.0, connection_timeout_s=0.2), room).test_client()
    after_messages(fake_call_client, 3, lambda: fake_call_client.connection_changes("signalling", "interrupted"))

    response = client.post("/send_audio_message", json={"audio": long_audio(1), "sample_rate": 24000, "done": True})

    assert response.status_code == 503
    assert response.get_json()["error"] == (
        "the connection to the room is down: Daily did not reconnect within 0.2 s (RELAY_CONNECTION_TIMEOUT) "
        "(after 3 message(s) were sent)"
    )
    assert len(sent_messages(fake_call_client)) == 3


def test_a_face_under_tavuss_new_name_already_in_the_room_is_spoken_to_at_once(fake_daily, make_app):
    """Before: only `tavus-replica` counted, so a `tavus-face-…` face made every request wait out its timeout."""
    fake_daily.replica_in_room = False
    fake_daily.others_in_room = [VIEWER, FACE]
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)
    room.join(timeout=2)
    client = make_app(Settings(replica_timeout_s=0.2), room).test_client()

    response = client.post("/send_text_message", json={"text": "Hi"})

    assert response.status_code == 200, response.get_json()
    joined = event_of_type(client, "relay.replica_joined")
    assert (joined["participant_id"], joined["signal"]) == ("face-1", "user_id")
    room.leave()
