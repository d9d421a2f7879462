"""The relay as a user sees it: HTTP in, the exact app messages Daily is asked to send out."""

from __future__ import annotations

import base64
import functools
import io
import itertools
import json
import logging
import re
import threading
from typing import Any

import flask
import numpy as np
import pytest
import soundfile

import echo_messages
from config import Settings
from echo_messages import serialized_size
from relay import views
from relay.dry_run import DryRunRoom
from relay.room import Room
from tests.conftest import CONVERSATION_ID, CONVERSATION_URL, sent_messages, wait_until
from tests.conftest import DOCS_TEXT_BODY as DOCS_BODY

DOCS_TEXT_BODY = DOCS_BODY | {"conversation_id": CONVERSATION_ID}  # with the id filled in, as the docs say


@pytest.fixture
def make_app(make_app, fast_path):
    """conftest's make_app, with or without the fast path: every test here runs both ways."""
    return functools.partial(make_app, fast_path=fast_path)


def pcm_of(samples: int, value: int = 1000) -> bytes:
    return np.full(samples, value, dtype="<i2").tobytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- text echo ---------------------------------------------------------------


def test_docs_curl_body_sends_exactly_one_clean_text_echo(client, fake_call_client):
    response = client.post("/send_text_message", json=DOCS_TEXT_BODY)

    assert response.status_code == 200
    assert response.get_json() == {
        "status": "Message sent successfully",
        "inference_id": "inference-id-123",
        "messages_sent": 1,
        "mode": "room",
        "conversation_id": CONVERSATION_ID,
    }
    assert sent_messages(fake_call_client) == [
        {
            "message_type": "conversation",
            "event_type": "conversation.echo",
            "conversation_id": CONVERSATION_ID,
            "properties": {
                "modality": "text", "text": "Hello there!", "inference_id": "inference-id-123", "done": True
            },
        }
    ]


def test_text_echo_omits_absent_fields_and_defaults_done_and_conversation(client, fake_call_client):
    response = client.post("/send_text_message", json={"text": "Hi"})

    inference_id = response.get_json()["inference_id"]
    assert len(inference_id) == 32 and int(inference_id, 16) >= 0
    (message,) = sent_messages(fake_call_client)
    assert message == {
        "message_type": "conversation",
        "event_type": "conversation.echo",
        "conversation_id": CONVERSATION_ID,
        "properties": {"modality": "text", "text": "Hi", "inference_id": inference_id, "done": True},
    }


@pytest.mark.parametrize("done, expected", [(False, False), ("false", False), ("TRUE", True), (True, True)])
def test_done_is_always_sent_as_a_json_boolean(client, fake_call_client, done, expected):
    client.post("/send_text_message", json={"text": "Hi", "done": done})

    assert sent_messages(fake_call_client)[0]["properties"]["done"] is expected


def test_form_encoded_curl_without_content_type_still_works(client, fake_call_client):
    response = client.post(
        "/send_text_message", data='{"text": "Hi"}', content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 200
    assert sent_messages(fake_call_client)[0]["properties"]["text"] == "Hi"


def test_long_text_is_split_into_fitting_messages_with_one_id_and_done_last(client, fake_call_client, settings):
    text = " ".join(f"Sentence number {i} is here." for i in range(400))

    response = client.post("/send_text_message", json={"text": text, "inference_id": "long"})

    messages = sent_messages(fake_call_client)
    assert response.status_code == 200 and response.get_json()["messages_sent"] == len(messages) > 1
    assert "".join(m["properties"]["text"] for m in messages) == text
    assert all(serialized_size(m) <= settings.max_message_bytes for m in messages)
    assert {m["properties"]["inference_id"] for m in messages} == {"long"}
    assert [m["properties"]["done"] for m in messages] == [False] * (len(messages) - 1) + [True]
    assert all(m["properties"]["text"].rstrip().endswith(".") for m in messages)


def test_interrupt_flag_sends_conversation_interrupt_before_the_utterance_and_counts_it(client, fake_call_client):
    response = client.post("/send_text_message", json={"text": "Stop, and say this.", "interrupt": True})

    messages = sent_messages(fake_call_client)
    assert response.get_json()["messages_sent"] == len(messages) == 2
    assert messages[0] == {
        "message_type": "conversation",
        "event_type": "conversation.interrupt",
        "conversation_id": CONVERSATION_ID,
    }
    assert messages[1]["properties"]["text"] == "Stop, and say this."


# --- audio echo (JSON) -----------------------------------------------------------


def test_audio_echo_sends_raw_pcm_untouched_with_true_rate_and_no_done_by_default(client, fake_call_client):
    pcm = pcm_of(480)

    response = client.post(
        "/send_audio_message", json={"audio": b64(pcm), "sample_rate": 24000, "inference_id": "a1"}
    )

    assert response.status_code == 200
    assert response.get_json()["audio_ms"] == 20 and response.get_json()["sample_rate"] == 24000
    assert sent_messages(fake_call_client) == [
        {
            "message_type": "conversation",
            "event_type": "conversation.echo",
            "conversation_id": CONVERSATION_ID,
            "properties": {
                "modality": "audio", "audio": b64(pcm), "sample_rate": 24000, "inference_id": "a1", "done": False
            },
        }
    ]


def test_docs_flat_audio_body_works_unchanged(client, fake_call_client):
    pcm = pcm_of(320)
    body = {"conversation_id": CONVERSATION_ID, "modality": "audio", "audio": b64(pcm),
            "sample_rate": 16000, "inference_id": "inference-id-123", "done": "true"}

    response = client.post("/send_audio_message", json=body)

    assert response.status_code == 200
    assert sent_messages(fake_call_client) == [
        {
            "message_type": "conversation",
            "event_type": "conversation.echo",
            "conversation_id": CONVERSATION_ID,
            "properties": {"modality": "audio", "audio": b64(pcm), "sample_rate": 16000,
                           "inference_id": "inference-id-123", "done": True},
        }
    ]


def test_audio_echo_defaults_to_16000_as_tavus_and_says_so(client, fake_call_client):
    client.post("/send_audio_message", json={"properties": {"audio": b64(pcm_of(160)), "done": "true"}})

    properties = sent_messages(fake_call_client)[0]["properties"]
    assert properties["sample_rate"] == 16000 and properties["done"] is True


def test_long_audio_is_split_on_whole_samples_in_order(client, fake_call_client, settings):
    pcm = np.arange(24000 * 3, dtype="<i2").tobytes()

    response = client.post("/send_audio_message", json={"audio": b64(pcm), "sample_rate": 24000, "done": True})

    messages = sent_messages(fake_call_client)
    assert response.get_json()["messages_sent"] == len(messages) > 1
    assert b"".join(base64.b64decode(m["properties"]["audio"]) for m in messages) == pcm
    assert all(len(base64.b64decode(m["properties"]["audio"])) % 2 == 0 for m in messages)
    assert all(serialized_size(m) <= settings.max_message_bytes for m in messages)
    assert [m["properties"]["done"] for m in messages][-2:] == [False, True]


def test_base64_wav_is_decoded_and_resampled_to_the_relay_rate(client, fake_call_client):
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros((8000, 2), dtype="float32"), 16000, format="WAV", subtype="PCM_16")

    response = client.post("/send_audio_message", json={"audio": b64(buffer.getvalue()), "done": True})

    body = response.get_json()
    assert response.status_code == 200 and body["sample_rate"] == 24000 and body["audio_ms"] == 500
    messages = sent_messages(fake_call_client)
    assert sum(len(base64.b64decode(m["properties"]["audio"])) for m in messages) == 12000 * 2
    assert {m["properties"]["sample_rate"] for m in messages} == {24000}


def test_done_without_audio_closes_the_utterance_with_silence_not_an_empty_string(client, fake_call_client):
    client.post("/send_audio_message", json={"inference_id": "a1", "done": True, "sample_rate": 24000})

    (message,) = sent_messages(fake_call_client)
    assert base64.b64decode(message["properties"]["audio"]) == bytes(24000 * 40 // 1000 * 2)
    assert message["properties"]["done"] is True


# --- the fast path: the plain text request skips Flask, and gets the answer Flask gives ----------
# Every test in this file runs twice (the `app` fixture above): with the fast path, and with Flask alone.


@pytest.fixture
def through_flask(app):
    """The requests Flask's own machinery handled (its request_started signal), as (path, content type)."""
    seen: list[tuple[str, str]] = []

    def note(sender: Any, **extra: Any) -> None:
        seen.append((flask.request.path, flask.request.mimetype))

    flask.request_started.connect(note, app)
    yield seen
    flask.request_started.disconnect(note, app)


def post_text(client: Any, body: Any, content_type: str = "application/json", **kwargs: Any) -> Any:
    return client.post("/send_text_message", data=json.dumps(body), content_type=content_type, **kwargs)


def without_time(line: str) -> str:
    return re.sub(r" [\d.]+ms ", " <ms> ", line)


def test_only_the_plain_json_request_skips_flask(client, fake_call_client, through_flask, fast_path):
    """text/plain is JSON too (what curl -d sends without a header), but only application/json takes the fast path."""
    post_text(client, DOCS_TEXT_BODY, "application/json; charset=utf-8")
    post_text(client, DOCS_TEXT_BODY, "text/plain")
    client.post("/send_text_message?inference_id=x", json={"text": "Hi"})

    fast = [] if fast_path else [("/send_text_message", "application/json")]
    assert through_flask == fast + [("/send_text_message", "text/plain"), ("/send_text_message", "application/json")]


def test_a_text_request_is_logged_in_one_line_with_its_id_and_count(client, caplog):
    caplog.set_level(logging.INFO, logger="echo_relay")

    post_text(client, DOCS_TEXT_BODY)
    post_text(client, DOCS_TEXT_BODY, "text/plain")

    logged = [without_time(r.getMessage()) for r in caplog.records if r.getMessage().startswith("POST ")]
    assert logged == ["POST /send_text_message 200 <ms> inference_id=inference-id-123 messages_sent=1"] * 2


@pytest.mark.parametrize(
    "body, status, error",
    [
        ({"text": "Hi", "conversation_id": "someone-else"}, 400,
         ("conversation_id 'someone-else' is not this relay's conversation ('c123'); leave it out or run one relay per "
         "conversation")),
        ({"text": "Hi"}, 502,
         "Daily reported a send error (0 of 1 messages confirmed): AppMessage(Signalling(ChannelNotOpen))"),
    ],
)
def test_an_error_after_the_body_is_read_has_its_status_and_exact_words(client, fake_daily, body, status, error):
    fake_daily.send_error = lambda index, message: "AppMessage(Signalling(ChannelNotOpen))"

    response = post_text(client, body)

    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.data == json.dumps({"error": error}).encode()


def test_a_bug_is_the_generic_500_with_the_details_only_in_the_log(app, client, caplog, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the details of a bug")

    monkeypatch.setattr(app.extensions["relay"], "speak_text", broken)

    response = post_text(client, {"text": "Hi"})

    assert response.status_code == 500
    assert response.data == b'{"error": "internal error in the relay; the details are in its log"}'
    (failure,) = [r for r in caplog.records if r.getMessage() == "unexpected error on POST /send_text_message"]
    assert "the details of a bug" in str(failure.exc_info[1])


# --- the bearer token -------------------------------------------------------------


@pytest.fixture
def guarded(room, make_app):
    return make_app(Settings(auth_token="s3cret-token"), room).test_client()


@pytest.mark.parametrize("header", [None, "Bearer wrong", "s3cret-token", "Basic s3cret-token"])
def test_missing_or_wrong_bearer_token_is_401_and_sends_nothing(guarded, fake_call_client, header):
    headers = {"Authorization": header} if header else {}

    response = guarded.post("/send_text_message", json={"text": "Hi"}, headers=headers)

    assert response.status_code == 401
    assert "Authorization: Bearer" in response.get_json()["error"]
    assert "s3cret-token" not in response.get_data(as_text=True)
    assert sent_messages(fake_call_client) == []


def test_right_bearer_token_passes_and_health_needs_none(guarded, fake_call_client):
    assert guarded.post(
        "/send_text_message", json={"text": "Hi"}, headers={"Authorization": "Bearer s3cret-token"}
    ).status_code == 200
    assert guarded.get("/health").status_code == 200


# --- delivery: confirmation, errors, timeouts, the face ---------------------------


def test_daily_send_error_is_502_naming_the_error(client, fake_daily, fake_call_client):
    fake_daily.send_error = lambda index, message: "AppMessage(Signalling(ChannelNotOpen))"

    response = client.post("/send_text_message", json={"text": "Hi"})

    assert response.status_code == 502
    assert "ChannelNotOpen" in response.get_json()["error"]
    fake_call_client.settle()  # Daily's on_error follows the failed completion
    health = client.get("/health").get_json()
    assert health["send_errors"] == 1
    assert health["call_state"] == "joined" and health["left_reason"] is None  # a send error is not the call ending
    assert client.post("/send_text_message", json={"text": "Hi"}).status_code == 502  # still open, still trying


def test_no_confirmation_within_send_timeout_is_504_and_the_next_request_still_works(app, client, fake_daily):
    fake_daily.confirm_sends = False

    response = client.post("/send_text_message", json={"text": "Hi"})

    assert response.status_code == 504
    assert response.get_json()["error"] == "Daily did not confirm 1 of 1 messages within 1 s (RELAY_SEND_TIMEOUT)"
    fake_daily.confirm_sends = True
    assert client.post("/send_text_message", json={"text": "Again"}).status_code == 200


def test_replica_never_joining_is_503_saying_the_face_has_not_joined(fake_daily, make_app):
    fake_daily.replica_in_room = False
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)
    room.join(timeout=2)
    app = make_app(Settings(replica_timeout_s=0.2), room)
    try:
        response = app.test_client().post("/send_text_message", json={"text": "Hi"})
    finally:
        room.leave()

    assert response.status_code == 503
    assert "has not joined" in response.get_json()["error"]
    assert fake_daily.client.sent == []


@pytest.mark.parametrize("arrival", ["participant", "app_message"])
def test_messages_wait_for_the_face_then_go_out(fake_daily, make_app, arrival):
    fake_daily.replica_in_room = False
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)
    room.join(timeout=2)
    app = make_app(Settings(replica_timeout_s=5), room)
    fake = fake_daily.client
    try:
        threading.Timer(
            0.2,
            (
                fake.replica_joins
                if arrival == "participant"
                else lambda: fake.room_sends({"event_type": "system.replica_joined"})
            ),
        ).start()
        response = app.test_client().post("/send_text_message", json={"text": "Hi"})
    finally:
        room.leave()

    assert response.status_code == 200
    assert len(fake.sent) == 1


def test_post_before_join_is_503(fake_daily, make_app):
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)
    app = make_app(Settings(), room)
    response = app.test_client().post("/send_text_message", json={"text": "Hi"})

    assert response.status_code == 503 and "has not joined the room" in response.get_json()["error"]


def test_a_request_while_the_relay_is_leaving_is_503_the_conversation_is_ending(client, room):
    room._call_state_changed("leaving")

    response = client.post("/send_text_message", json={"text": "Hi"})

    assert response.status_code == 503
    assert response.get_json()["error"] == "the conversation is ending: the relay is leaving the room"


def test_the_call_leaving_mid_utterance_fails_the_request_fast(client, room, fake_call_client):
    original = fake_call_client.send_app_message

    def leave_after_the_first(message, participant_id=None, completion=None):
        original(message, participant_id, completion)
        room._call_state_changed("leaving")  # as Daily's callback would, between two sends

    fake_call_client.send_app_message = leave_after_the_first
    response = client.post("/send_text_message", json={"text": "Go on. " * 2000})

    assert response.status_code == 503 and "ended mid-utterance" in response.get_json()["error"]
    assert len(sent_messages(fake_call_client)) == 1


def test_post_after_the_call_ended_is_503_at_once(client, fake_call_client):
    fake_call_client.call_ends("meeting ended")
    fake_call_client.settle()

    response = client.post("/send_text_message", json={"text": "Hi"})

    assert response.status_code == 503
    assert "conversation has ended" in response.get_json()["error"]


# --- interrupt and ordering --------------------------------------------------------


def test_interrupt_drops_queued_messages_and_goes_out_first(app, client, fake_daily, fake_call_client):
    sender = app.extensions["relay"].sender
    before = sender.ticket
    original_send = fake_call_client.send_app_message
    second_chunk_held = threading.Event()

    def slow_send(message: Any, participant_id: Any = None, completion: Any = None) -> None:
        long_chunks_sent = sum(
            1 for m in fake_call_client.sent if m.get("properties", {}).get("inference_id") == "long"
        )
        if message.get("properties", {}).get("inference_id") == "long" and long_chunks_sent == 1:
            second_chunk_held.set()  # the second chunk waits, mid-utterance, until the interrupt lands
            wait_until(lambda: sender.ticket != before, "the interrupt", interval=0.001)
        original_send(message, participant_id, completion)

    fake_call_client.send_app_message = slow_send
    pcm = pcm_of(24000 * 30)
    results: dict[str, Any] = {}

    def post(name: str, body: dict) -> None:
        results[name] = client.post("/send_audio_message", json=body)

    long_request = threading.Thread(
        target=post, args=("long", {"audio": b64(pcm), "sample_rate": 24000, "inference_id": "long", "done": True})
    )
    long_request.start()
    wait_until(
        lambda: any(
            m["properties"].get("inference_id") == "long" for m in list(fake_call_client.sent) if "properties" in m
        ),
        "the long utterance's first message", interval=0.001,
    )
    queued = threading.Thread(
        target=post, args=("queued", {"audio": b64(pcm_of(480)), "sample_rate": 24000, "inference_id": "queued"})
    )
    queued.start()
    wait_until(
        lambda: client.get("/health").get_json()["queue_depth"] >= 1, "the second request to queue", interval=0.001
    )
    wait_until(second_chunk_held.is_set, "the second chunk to be on its way to Daily")  # a busy machine may lag there

    response = client.post("/interrupt")
    long_request.join(10)
    queued.join(10)

    assert response.status_code == 200 and response.get_json()["requests_dropped"] == 1
    assert results["long"].status_code == 409 and "interrupted" in results["long"].get_json()["error"]
    assert results["queued"].status_code == 409
    messages = sent_messages(fake_call_client)
    kinds = [m["event_type"] for m in messages]
    assert kinds.count("conversation.interrupt") == 1 and kinds[-1] == "conversation.interrupt"
    long_chunks = [m for m in messages if m.get("properties", {}).get("inference_id") == "long"]
    assert len(long_chunks) == 2  # the one sent, and the one already being sent when the interrupt came
    assert all(m["properties"]["done"] is False for m in long_chunks)
    assert not any(m.get("properties", {}).get("inference_id") == "queued" for m in messages)


def test_concurrent_requests_never_interleave_their_messages(client, fake_call_client):
    text = " ".join(["word"] * 3000)

    def post(i: int) -> None:
        assert client.post("/send_text_message", json={"text": text, "inference_id": f"r{i}"}).status_code == 200

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    ids = [m["properties"]["inference_id"] for m in sent_messages(fake_call_client)]
    runs = [ids[0]] + [b for a, b in itertools.pairwise(ids) if a != b]
    assert sorted(runs) == sorted(f"r{i}" for i in range(8))
    assert [m["properties"]["done"] for m in sent_messages(fake_call_client)].count(True) == 8


def test_sends_are_pipelined_not_one_round_trip_each(room, fake_call_client, make_app):
    """Daily's confirmations are held back until every chunk was sent: a relay that awaited each one would stall
    (504).
    """
    pcm = pcm_of(24000 * 2)
    expected = len(list(echo_messages.audio_echo_messages(
        pcm, sample_rate=24000, conversation_id=CONVERSATION_ID, inference_id="i", done=True
    )))
    held: list[Any] = []
    original = fake_call_client.send_app_message

    def hold_confirmations(message: Any, participant_id: Any = None, completion: Any = None) -> None:
        held.append(completion)
        original(message, participant_id, None)
        if len(held) == expected:
            for confirm in held:
                confirm(None)

    fake_call_client.send_app_message = hold_confirmations
    client = make_app(Settings(send_timeout_s=5), room).test_client()

    response = client.post(
        "/send_audio_message", json={"audio": b64(pcm), "sample_rate": 24000, "inference_id": "i", "done": True}
    )

    assert response.status_code == 200
    assert response.get_json()["messages_sent"] == expected > 30


# --- health and the dry run ----------------------------------------------------------


def test_health_reports_room_and_counters(client, fake_call_client):
    client.post("/send_text_message", json={"text": "Hi"})

    health = client.get("/health").get_json()
    assert 0 <= health.pop("uptime_s") < 60
    assert health == {
        "status": "ok",
        "mode": "room",
        "sample_rate": 24000,
        "call_state": "joined",
        "left_reason": None,
        "conversation_id": CONVERSATION_ID,
        "replica_present": True,
        "face": {"present": True, "signal": "user_id", "participant_id": "replica-1"},
        "connection": "connected",
        "replica_speaking": False,
        "last_event_id": 2,  # relay.joined, relay.replica_joined
        "messages_sent": 1,
        "send_errors": 0,
        "queue_depth": 0,
        "oldest_wait_s": 0.0,
        "latency": {"p50_ms": None, "p95_ms": None, "utterances": 0},
        "event_streams": 0,
        "microphone": {"enabled": False},
        "auth_required": False,
    }


def test_dry_run_prints_each_message_as_a_json_line_and_records_it(tmp_path, make_app):
    out = io.StringIO()
    record = tmp_path / "messages.jsonl"
    app = make_app(Settings(record_file=str(record)), DryRunRoom(out))
    response = app.test_client().post("/send_text_message", json=DOCS_BODY | {"conversation_id": "dry-run"})

    assert response.status_code == 200 and response.get_json()["mode"] == "dry-run"
    (line,) = out.getvalue().splitlines()
    expected = {
        "message_type": "conversation",
        "event_type": "conversation.echo",
        "conversation_id": "dry-run",
        "properties": {"modality": "text", "text": "Hello there!", "inference_id": "inference-id-123", "done": True},
    }
    assert json.loads(line) == expected
    recorded = [json.loads(line) for line in record.read_text().splitlines()]
    # "in" lines are the stand-in face reporting it spoke; they may or may not have arrived yet
    assert [r["message"] for r in recorded if r["direction"] == "out"] == [expected]


def test_dry_run_without_a_conversation_id_uses_a_placeholder(make_app):
    out = io.StringIO()
    app = make_app(Settings(), DryRunRoom(out))
    app.test_client().post("/send_text_message", json={"text": "Hi"})

    assert json.loads(out.getvalue())["conversation_id"] == "dry-run"


@pytest.mark.parametrize("conversation_id", ["c999", "<conversation_id>"])
def test_dry_run_refuses_another_conversations_id_as_a_room_does(make_app, conversation_id):
    out = io.StringIO()
    app = make_app(Settings(), DryRunRoom(out, face=False))

    response = app.test_client().post("/send_text_message", json={"text": "hi", "conversation_id": conversation_id})

    assert response.status_code == 400 and response.get_json()["error"] == (
        f"conversation_id {conversation_id!r} is not this relay's conversation ('dry-run'); "
        "leave it out or run one relay per conversation"
    )
    assert out.getvalue() == ""


# --- an utterance keeps its rate to the end ---------------------------------------------------


def test_closing_an_utterance_sends_its_silence_at_the_utterances_own_rate(client, fake_call_client):
    client.post("/send_audio_message", json={"audio": b64(pcm_of(480)), "sample_rate": 24000, "inference_id": "u1"})

    response = client.post("/send_audio_message", json={"inference_id": "u1", "done": True})

    closing = sent_messages(fake_call_client)[-1]["properties"]
    assert closing["sample_rate"] == 24000 and closing["done"] is True
    assert base64.b64decode(closing["audio"]) == bytes(24000 * 40 // 1000 * 2)
    assert response.get_json()["audio_ms"] == 40 and response.get_json()["sample_rate"] == 24000


@pytest.mark.parametrize("interrupt", ["POST /interrupt", '"interrupt": true'])
def test_an_interrupt_cuts_every_open_utterance_off_whichever_way_it_comes(client, fake_call_client, interrupt):
    """POST /interrupt left open utterances open, where "interrupt": true forgot them: one place now does both."""
    client.post("/send_audio_message", json={"audio": b64(pcm_of(480)), "sample_rate": 24000, "inference_id": "cut"})
    if interrupt == "POST /interrupt":
        client.post("/interrupt")
    else:
        client.post("/send_text_message", json={"text": "Urgent.", "interrupt": True})

    response = client.post("/send_audio_message", json={"inference_id": "cut", "done": True})

    assert response.get_json()["sample_rate"] == 16000  # a new utterance under that id, at Tavus's default rate
    assert client.get("/utterances/cut").get_json()["state"] == "sent"  # the new one, not the cut one


def test_a_chunk_without_a_rate_takes_its_utterances_rate(client, fake_call_client):
    client.post("/send_audio_message", json={"audio": b64(pcm_of(480)), "sample_rate": 24000, "inference_id": "u2"})
    client.post("/send_audio_message", json={"audio": b64(pcm_of(480)), "inference_id": "u2", "done": True})

    assert [m["properties"]["sample_rate"] for m in sent_messages(fake_call_client)] == [24000, 24000]


def test_a_closed_utterance_is_forgotten(client, fake_call_client):
    client.post(
        "/send_audio_message",
        json={"audio": b64(pcm_of(480)), "sample_rate": 24000, "inference_id": "u3", "done": True},
    )
    client.post("/send_audio_message", json={"inference_id": "u3", "done": True})

    assert sent_messages(fake_call_client)[-1]["properties"]["sample_rate"] == 16000  # Tavus's default again


# --- audio files inside JSON ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, subtype", [("MP3", "MPEG_LAYER_III"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("AIFF", "PCM_16")]
)
def test_a_base64_audio_file_of_any_container_in_json_is_decoded_not_played_as_noise(
    client, fake_call_client, fmt, subtype
):
    buffer = io.BytesIO()
    rate = 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    soundfile.write(buffer, tone.astype("float32"), rate, format=fmt, subtype=subtype)

    response = client.post("/send_audio_message", json={"audio": b64(buffer.getvalue()), "done": True})

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["sample_rate"] == 24000
    assert 950 <= response.get_json()["audio_ms"] <= 1100  # about the second it holds, not its size as 16 kHz PCM
    samples = np.frombuffer(
        b"".join(base64.b64decode(m["properties"]["audio"]) for m in sent_messages(fake_call_client)), "<i2"
    )
    spectrum = np.abs(np.fft.rfft(samples.astype(float)))
    assert abs(np.argmax(spectrum) * 24000 / len(samples) - 440) < 5  # the tone, not noise


# --- an interrupt while a request is still being built drops it ---------------------------------


def test_an_interrupt_while_a_request_is_being_built_drops_it(client, fake_call_client, monkeypatch):
    import echo_messages

    building, release = threading.Event(), threading.Event()
    real_split = echo_messages.text_echo_messages

    def slow_split(*args, **kwargs):
        building.set()
        release.wait(5)  # a 10 MB text takes a while to split
        return real_split(*args, **kwargs)

    monkeypatch.setattr(echo_messages, "text_echo_messages", slow_split)
    answers: dict[str, Any] = {}
    long_request = threading.Thread(
        target=lambda: answers.update(text=client.post("/send_text_message", json={"text": "Long."}))
    )
    long_request.start()
    assert building.wait(5)

    answers["interrupt"] = client.post("/interrupt")
    release.set()
    long_request.join(5)

    assert answers["interrupt"].status_code == 200
    assert (
        answers["text"].status_code == 409
        and "interrupted before any of it was sent" in answers["text"].get_json()["error"]
    )
    assert [m["event_type"] for m in sent_messages(fake_call_client)] == ["conversation.interrupt"]


def test_health_says_dry_run_for_the_conversation_in_the_dry_run(make_app):
    assert (
        make_app(Settings(), DryRunRoom(io.StringIO())).test_client().get("/health").get_json()["conversation_id"]
        == "dry-run"
    )


# --- the console's page and room ------------------------------------------------------------------------


def test_the_console_is_served_with_a_strict_policy_framing_only_the_room(client):
    response = client.get("/")

    assert response.status_code == 200 and b"Echo relay" in response.data
    assert response.headers["Content-Security-Policy"] == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-src https://tavus.daily.co; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@pytest.mark.parametrize("path", ["/static/console.html", "/static/console.js", "/static/openapi.json"])
def test_the_consoles_files_carry_its_policy_so_no_page_frames_the_console_by_its_file(client, path):
    """/static/console.html is the whole console: found framed by another site's page when it lacked the policy."""
    response = client.get(path)

    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == client.get("/").headers["Content-Security-Policy"]
    assert response.headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")


def test_room_gives_the_console_the_url_without_a_token(fake_daily, make_app):
    room = Room("https://tavus.daily.co/c123?t=SECRET-TOKEN", client_factory=fake_daily.factory)
    room.join(timeout=2)
    answer = make_app(Settings(), room).test_client().get("/room").get_json()
    room.leave()

    assert answer == {
        "mode": "room", "conversation_id": "c123", "conversation_url": "https://tavus.daily.co/c123", "private": True
    }


def test_the_console_page_needs_no_token_but_the_room_does(guarded):
    assert guarded.get("/").status_code == 200
    assert guarded.get("/static/console.js").status_code == 200
    assert guarded.get("/room").status_code == 401
    assert guarded.get("/health").get_json()["auth_required"] is True


class Trickle(io.RawIOBase):
    """A body that comes 7 bytes a read, as a socket may give it."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        piece = self._data.read(min(7, len(buffer)))
        buffer[: len(piece)] = piece
        return len(piece)


@pytest.mark.parametrize("stream", [Trickle, io.BytesIO, lambda data: io.BufferedReader(Trickle(data))])
def test_a_body_is_read_whole_however_its_stream_gives_it(stream):
    data = b'{"text": "Hello there!"}' * 10

    assert views.read_body(stream(data), len(data)) == data
    assert views.read_body(stream(data), len(data) + 50) == data  # a body shorter than its length said
