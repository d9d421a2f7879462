"""The Room: joining (and failing to, in one sentence), what Daily's errors mean, leaving, tokens."""

from __future__ import annotations

import logging
import threading

import pytest

from relay.errors import ConversationEnded, JoinError, SendError
from relay.room import (
    SEND_ONLY_SUBSCRIPTIONS,
    Room,
    daily_call_client,
    join_client_settings,
)
from tests.conftest import CONVERSATION_URL
from tests.fake_daily import FACE, NAMED_FACE, PAL, PERSONA_NAME, REPLICA, VIEWER, participant
from tests.test_fake_daily import UNPARSABLE_URL


def joined_room(fake_daily) -> Room:
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)
    room.join(timeout=2)
    return room


@pytest.mark.parametrize(
    "failure, sentence",
    [
        (
            "unreachable",
            "could not reach Daily to look up https://tavus.daily.co/c123: check your network connection and the URL",
        ),
        ("bad_url", "https://tavus.daily.co/c123 is not a valid room URL: check it (it looks like https://tavus.daily.co/c123)"),
    ],
)
def test_a_failed_join_is_one_sentence_without_dailys_internals(fake_daily, failure, sentence):
    fake_daily.join_failure = failure
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)

    with pytest.raises(JoinError) as raised:
        room.join(timeout=2)

    assert str(raised.value) == sentence
    room.leave()


@pytest.mark.parametrize("microphone", [False, True])
def test_the_real_daily_accepts_the_join_settings_and_the_failure_is_one_sentence(real_daily, microphone):
    """Daily checks join settings before the URL: failing on the URL proves the settings are valid."""
    room = Room(
        UNPARSABLE_URL, client_factory=daily_call_client, client_settings=join_client_settings(microphone=microphone)
    )

    with pytest.raises(JoinError) as raised:
        room.join(timeout=5)

    assert str(raised.value).startswith(f"{UNPARSABLE_URL} is not a valid room URL")
    room.leave()


def test_the_real_daily_takes_the_send_only_subscription_profile(real_daily, caplog):
    room = Room(UNPARSABLE_URL, client_factory=daily_call_client)

    with caplog.at_level(logging.WARNING, logger="echo_relay"), pytest.raises(JoinError):
        room.join(timeout=5)

    assert "could not unsubscribe" not in caplog.text
    room.leave()


def test_the_relay_joins_send_only_camera_and_microphone_off_and_subscribed_to_nobody(fake_daily):
    room = joined_room(fake_daily)

    assert fake_daily.client.subscription_profiles == SEND_ONLY_SUBSCRIPTIONS == {
        "base": {"camera": "unsubscribed", "microphone": "unsubscribed"}
    }
    assert fake_daily.client.joined_with["client_settings"] == {"inputs": {"camera": False, "microphone": False}}
    room.leave()


def test_a_failed_send_is_not_the_call_ending(fake_daily, caplog):
    room = joined_room(fake_daily)
    fake_daily.send_error = lambda index, message: "AppMessage(Signalling(SendFailed))"

    with caplog.at_level(logging.DEBUG, logger="echo_relay"), pytest.raises(SendError, match="SendFailed"):
        room.send({"a": 1}).result(2)
    fake_daily.client.settle()

    assert room.call_state == "joined" and room.left_reason is None
    assert (
        "Daily reported an error: Error handling sendAppMessage: AppMessage(Signalling(SendFailed))" in caplog.messages
    )
    fake_daily.client.call_ends("meeting ended")
    fake_daily.client.settle()
    assert room.left_reason == "meeting ended"  # the send's error was not kept as the reason the call ended
    room.leave()


def test_a_failed_send_leaves_the_room_open(fake_daily):
    room = joined_room(fake_daily)
    fake_daily.send_error = lambda index, message: "AppMessage(Signalling(SendFailed))"

    with pytest.raises(SendError):
        room.send({"a": 1}).result(2)
    fake_daily.client.settle()

    room.check_open()  # still open
    room.leave()


def test_leaving_counts_as_ending(fake_daily):
    room = joined_room(fake_daily)
    room._call_state_changed("leaving")

    with pytest.raises(ConversationEnded, match="the conversation is ending"):
        room.check_open()
    assert isinstance(room.delivery_problem(), ConversationEnded)
    room.leave()


def test_the_call_ending_keeps_dailys_call_level_error_as_the_reason(fake_daily):
    room = joined_room(fake_daily)
    fake_daily.client.call_ends("ejected")
    fake_daily.client.settle()

    assert room.call_state == "left" and room.left_reason == "ejected"
    room.leave()


def test_leave_leaves_then_releases_once(fake_daily):
    room = joined_room(fake_daily)

    room.leave()
    room.leave()

    assert fake_daily.client.left and fake_daily.client.released


def test_leaving_while_the_join_is_pending_does_not_wait_for_daily(fake_daily):
    """Daily answers neither leave nor release until a pending join gives up (~19 s): the relay must not wait."""
    fake_daily.join_failure, fake_daily.join_delay_s = "unreachable", 60
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)
    joining = threading.Thread(target=lambda: pytest.raises(JoinError, room.join), daemon=True)
    joining.start()
    while not fake_daily.client.joined_with:
        threading.Event().wait(0.001)

    room.leave()

    assert not fake_daily.network_answers.is_set()  # the join is still pending: leave did not wait for it
    assert fake_daily.client.left and fake_daily.client.released
    fake_daily.network_answers.set()
    joining.join(5)


def test_a_token_on_the_url_is_taken_off_it_and_passed_to_join(fake_daily):
    room = Room("https://tavus.daily.co/c123?t=SECRET-TOKEN", client_factory=fake_daily.factory)
    room.join(timeout=2)

    assert fake_daily.client.joined_with["url"] == "https://tavus.daily.co/c123"
    assert fake_daily.client.joined_with["meeting_token"] == "SECRET-TOKEN"
    assert room.conversation_url == "https://tavus.daily.co/c123" and room.conversation_id == "c123"
    room.leave()


def test_a_meeting_token_argument_is_passed_to_join(fake_daily):
    room = Room(CONVERSATION_URL, meeting_token="TOKEN-2", client_factory=fake_daily.factory)
    room.join(timeout=2)

    assert fake_daily.client.joined_with["meeting_token"] == "TOKEN-2" and room.private
    room.leave()


def test_dailys_error_text_never_carries_the_token_into_the_log(fake_daily, caplog):
    fake_daily.join_failure = "bad_url"
    room = Room("https://tavus.daily.co/c123?t=SECRET-TOKEN", client_factory=fake_daily.factory)

    with caplog.at_level(logging.DEBUG, logger="echo_relay"), pytest.raises(JoinError) as raised:
        room.join(timeout=2)
    fake_daily.client.settle()

    assert "Daily reported an error: Error handling join" in caplog.text  # Daily's own text did reach the log
    assert "SECRET-TOKEN" not in caplog.text + str(raised.value) + str(room.left_reason)
    room.leave()


# --- the face, however Tavus names it ------------------------------------------------------


class Heard:
    """The room's events as its listeners get them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def __call__(self, event_type: str, data) -> None:
        self.events.append((event_type, dict(data)))

    def of(self, event_type: str) -> list[dict]:
        return [data for kind, data in self.events if kind == event_type]


def room_with(fake_daily, *already_there, face_names=(), replica=False) -> tuple[Room, Heard]:
    fake_daily.replica_in_room = replica
    fake_daily.others_in_room = list(already_there)
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory, face_names=face_names)
    heard = Heard()
    room.add_listener(heard)
    room.join(timeout=2)
    return room, heard


@pytest.mark.parametrize(
    "face, names, signal",
    [
        (REPLICA, (), "user_id"),
        (FACE, (), "user_id"),
        (PAL, (), "user_id"),  # any case
        (NAMED_FACE, (PERSONA_NAME,), "user_name"),
    ],
)
def test_a_face_already_in_the_room_at_join_is_present_with_its_signal(fake_daily, face, names, signal):
    room, heard = room_with(fake_daily, VIEWER, face, face_names=names)

    assert room.replica_present
    assert room.face == {"present": True, "signal": signal, "participant_id": face["id"]}
    assert [(e["participant_id"], e["signal"]) for e in heard.of("relay.replica_joined")] == [(face["id"], signal)]
    room.leave()


@pytest.mark.parametrize("names", [(), ("Someone Else",)])
def test_a_watcher_or_a_name_nobody_gave_the_relay_is_never_the_face(fake_daily, names):
    room, heard = room_with(fake_daily, VIEWER, NAMED_FACE, face_names=names)
    fake_daily.client.participant_joins(participant("viewer-2", "tavus-viewer", "Guest"))
    fake_daily.client.settle()

    assert not room.replica_present and heard.of("relay.replica_joined") == []
    assert room.face == {"present": False, "signal": None, "participant_id": None}
    room.leave()


def test_a_face_joining_later_under_its_new_name_is_present_until_it_leaves(fake_daily):
    room, heard = room_with(fake_daily)
    fake_daily.client.participant_joins(FACE)
    fake_daily.client.settle()
    assert room.face == {"present": True, "signal": "user_id", "participant_id": "face-1"}

    fake_daily.client.participant_leaves(FACE)
    fake_daily.client.settle()

    assert not room.replica_present
    assert heard.of("relay.replica_left") == [{"participant_id": "face-1", "reason": "leftCall"}]
    room.leave()


@pytest.mark.parametrize(
    "message",
    [
        {"event_type": "system.replica_joined"},
        {"event_type": "system.replica_present", "properties": {"attempt": 3}},
        {"event_type": "system.pal_present"},
    ],
)
def test_tavuss_readiness_messages_make_their_sender_the_face_until_it_leaves(fake_daily, message):
    room, heard = room_with(fake_daily)
    sender = participant("p-9", "u-unknown")
    fake_daily.client.participant_joins(sender)
    fake_daily.client.room_sends(message, sender["id"])
    fake_daily.client.settle()

    assert room.face == {"present": True, "signal": message["event_type"], "participant_id": "p-9"}
    assert heard.of("relay.replica_joined") == [{"participant_id": "p-9", "signal": message["event_type"]}]

    fake_daily.client.participant_leaves(sender)
    fake_daily.client.settle()
    assert not room.replica_present
    room.leave()


def test_a_heartbeat_repeated_reports_the_face_joining_once(fake_daily):
    room, heard = room_with(fake_daily)
    for attempt in (1, 2, 3):
        fake_daily.client.room_sends(
            {"event_type": "system.replica_present", "properties": {"attempt": attempt}}, "p-9"
        )
    fake_daily.client.settle()

    assert len(heard.of("relay.replica_joined")) == 1
    room.leave()


HEARTBEAT = {"event_type": "system.replica_present", "properties": {"attempt": 1}}


def test_a_stronger_signal_replaces_the_face_and_a_weaker_one_never_does(fake_daily):
    room, heard = room_with(fake_daily, VIEWER, face_names=(PERSONA_NAME,))
    client = fake_daily.client
    client.room_sends(HEARTBEAT, VIEWER["id"])  # anyone can send it: believed only while nothing better is known
    client.participant_joins(NAMED_FACE)  # the persona's name: anyone can take it, but not send as Tavus names
    client.participant_joins(FACE)  # Tavus's own user id
    client.room_sends(HEARTBEAT, VIEWER["id"])
    client.room_sends(HEARTBEAT, NAMED_FACE["id"])
    client.participant_joins(participant("guest-2", "browser-tab-9", PERSONA_NAME))
    client.settle()

    assert room.face == {"present": True, "signal": "user_id", "participant_id": FACE["id"]}
    assert [(e["participant_id"], e["signal"], e.get("replaced")) for e in heard.of("relay.replica_joined")] == [
        (VIEWER["id"], "system.replica_present", None),
        (NAMED_FACE["id"], "user_name", VIEWER["id"]),
        (FACE["id"], "user_id", NAMED_FACE["id"]),
    ]
    client.participant_leaves(NAMED_FACE)  # a face replaced is no face: its leaving changes nothing
    client.settle()
    assert room.face["participant_id"] == FACE["id"] and heard.of("relay.replica_left") == []
    room.leave()


def test_a_second_participant_sending_heartbeats_does_not_take_over_a_face_known_by_its_own(fake_daily):
    room, heard = room_with(fake_daily)
    fake_daily.client.room_sends(HEARTBEAT, "p-9")
    fake_daily.client.room_sends(HEARTBEAT, "p-10")
    fake_daily.client.settle()

    assert room.face == {"present": True, "signal": "system.replica_present", "participant_id": "p-9"}
    assert [e["participant_id"] for e in heard.of("relay.replica_joined")] == ["p-9"]
    room.leave()


def test_a_face_known_by_its_heartbeat_keeps_its_place_when_tavuss_user_id_shows_it_is_the_face(fake_daily):
    room, heard = room_with(fake_daily)
    fake_daily.client.room_sends(HEARTBEAT, "p-9")
    fake_daily.client.participant_joins(participant("p-9", "tavus-face-9"))  # the same participant, by its user id
    fake_daily.client.settle()

    assert room.face == {"present": True, "signal": "user_id", "participant_id": "p-9"}
    assert len(heard.of("relay.replica_joined")) == 1  # it was there already
    room.leave()


def test_the_faces_reports_count_until_another_participant_is_the_face_even_after_it_left(fake_daily):
    room, _ = room_with(fake_daily, VIEWER, replica=True)
    assert room.is_face(REPLICA["id"]) and not room.is_face(VIEWER["id"])

    fake_daily.client.replica_leaves()  # its last reports may still be on their way through the relay's queue
    fake_daily.client.settle()
    assert not room.replica_present and room.is_face(REPLICA["id"]) and not room.is_face(VIEWER["id"])

    fake_daily.client.participant_joins(FACE)
    fake_daily.client.settle()
    assert room.is_face(FACE["id"]) and not room.is_face(REPLICA["id"])
    room.leave()


# --- a connection that drops and comes back ------------------------------------------------


def test_the_connection_state_follows_signalling_with_an_event_and_a_line_for_each_change(fake_daily, caplog):
    room, heard = room_with(fake_daily, replica=True)

    with caplog.at_level(logging.INFO, logger="echo_relay"):
        fake_daily.client.connection_changes("signalling", "interrupted")
        fake_daily.client.settle()
        assert room.connection == "interrupted" and not room.wait_for_connection(0)
        assert room.connection_down_s is not None
        fake_daily.client.connection_changes("sendTransport", "interrupted")
        fake_daily.client.connection_changes("signalling", "connected")
        fake_daily.client.settle()

    assert room.connection == "connected" and room.wait_for_connection(0) and room.connection_down_s is None
    assert heard.of("relay.connection") == [
        {"connection": "signalling", "event": "interrupted"},
        {"connection": "sendTransport", "event": "interrupted"},
        {"connection": "signalling", "event": "connected"},
    ]
    assert caplog.messages == [
        "the connection to the room (signalling) is interrupted; requests wait for it",
        "the connection to the room (sendTransport) is interrupted",
        "the connection to the room (signalling) is connected",
    ]
    room.leave()


def test_a_send_while_signalling_is_down_fails_in_its_completion_as_the_real_client_does(fake_daily):
    room, _ = room_with(fake_daily, replica=True)
    fake_daily.client.connection_changes("signalling", "interrupted")
    fake_daily.client.settle()

    with pytest.raises(SendError, match="ChannelNotOpen"):
        room.send({"a": 1}).result(2)
    room.leave()
