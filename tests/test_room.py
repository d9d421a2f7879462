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
from relay.room_urls import redact_url, split_meeting_token
from tests.conftest import CONVERSATION_URL
from tests.test_fake_daily import UNPARSABLE_URL


def joined_room(fake_daily) -> Room:
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)
    room.join(timeout=2)
    return room


@pytest.mark.parametrize(
    "failure, sentence",
    [
        ("unreachable", "could not reach Daily to look up https://tavus.daily.co/c123: check your network connection and the URL"),
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
    room = Room(UNPARSABLE_URL, client_factory=daily_call_client, client_settings=join_client_settings(microphone=microphone))

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
    assert "Daily reported an error: Error handling sendAppMessage: AppMessage(Signalling(SendFailed))" in caplog.messages
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


def test_urls_are_split_and_redacted():
    assert split_meeting_token("https://tavus.daily.co/c1?t=abc&x=1") == ("https://tavus.daily.co/c1?x=1", "abc")
    assert split_meeting_token("https://tavus.daily.co/c1") == ("https://tavus.daily.co/c1", None)
    assert redact_url("https://tavus.daily.co/c1?t=abc") == "https://tavus.daily.co/c1?t=<token>"


def test_dailys_error_text_never_carries_the_token_into_the_log(fake_daily, caplog):
    fake_daily.join_failure = "bad_url"
    room = Room("https://tavus.daily.co/c123?t=SECRET-TOKEN", client_factory=fake_daily.factory)

    with caplog.at_level(logging.DEBUG, logger="echo_relay"), pytest.raises(JoinError) as raised:
        room.join(timeout=2)
    fake_daily.client.settle()

    assert "Daily reported an error: Error handling join" in caplog.text  # Daily's own text did reach the log
    assert "SECRET-TOKEN" not in caplog.text + str(raised.value) + str(room.left_reason)
    room.leave()
