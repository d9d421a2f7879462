"""Conversation URLs: the id in them, a private room's token on them (never shown), Daily's join errors as sentences."""

from __future__ import annotations

import pytest

from relay.room_urls import conversation_id_from_url, join_failure_sentence, redact_url, split_meeting_token
from tests.fake_daily import JOIN_UNREACHABLE, join_bad_url

URL = "https://tavus.daily.co/c123"


@pytest.mark.parametrize("url", [URL, URL + "/", URL + "?t=abc"])
def test_the_conversation_id_is_the_rooms_name(url):
    assert conversation_id_from_url(url) == "c123"


def test_a_token_is_taken_off_the_url_and_the_rest_of_the_query_kept():
    assert split_meeting_token(URL + "?t=abc&x=1") == (URL + "?x=1", "abc")
    assert split_meeting_token(URL) == (URL, None)


def test_a_url_is_shown_with_its_token_replaced():
    assert redact_url(URL + "?t=abc") == URL + "?t=<token>"
    assert redact_url(URL + "?x=1&t=abc") == URL + "?x=1&t=<token>"
    assert redact_url(URL) == URL


@pytest.mark.parametrize(
    "daily_says, sentence",
    [
        (join_bad_url(URL), f"{URL} is not a valid room URL: check it (it looks like https://tavus.daily.co/c123)"),
        (JOIN_UNREACHABLE, f"could not reach Daily to look up {URL}: check your network connection and the URL"),
        ("Forbidden: meeting token required", f"Daily refused to let the relay into {URL}: the room is private"),
        ("Room not found", f"Daily says there is no room at {URL}: check the URL and whether conversation c123"),
        ("Something(Else)", f"could not join {URL}: check the URL, your network, and whether conversation c123"),
    ],
)
def test_dailys_join_errors_become_one_sentence_naming_what_to_check(daily_says, sentence):
    said = join_failure_sentence(daily_says, URL)

    assert said.startswith(sentence)
    assert "RoomLookup" not in said and "\n" not in said
