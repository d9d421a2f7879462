"""The command line of `python app.py`: the mode decided once, and every contradiction one line naming the fix."""

from __future__ import annotations

import pytest

from config import Settings
from relay.options import CONVERSATION_NAME, Mode, UsageError, parse_args

URL = "https://tavus.daily.co/c123"


def test_no_url_is_the_dry_run():
    assert parse_args([], Settings()).mode is Mode.DRY_RUN


def test_a_url_joins_that_room_with_its_meeting_token_from_the_flag_or_the_setting():
    by_flag = parse_args([URL, "--meeting-token", "t1"], Settings(tavus_meeting_token="t2"))
    by_setting = parse_args([URL], Settings(tavus_meeting_token="t2"))

    assert (by_flag.mode, by_flag.conversation_url, by_flag.meeting_token) == (Mode.ROOM, URL, "t1")
    assert by_setting.meeting_token == "t2"


def test_tavus_conversation_url_joins_unless_dry_run_says_otherwise():
    settings = Settings(tavus_conversation_url=URL)

    assert parse_args([], settings).mode is Mode.ROOM
    assert parse_args(["--dry-run"], settings).mode is Mode.DRY_RUN


def test_the_quickstart_takes_its_own_options_with_their_defaults():
    options = parse_args(["--quickstart", "--pal", "--face-id", "f1", "--private", "--test-mode"], Settings())

    assert options.mode is Mode.QUICKSTART and options.conversation_url is None and options.meeting_token is None
    assert (options.pal, options.face_id, options.private, options.test_mode) == (True, "f1", True, True)
    assert options.name == CONVERSATION_NAME and options.max_call_seconds is None


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--quickstart", URL], "--quickstart creates its own conversation: give no URL and no --dry-run"),
        (["--dry-run", URL], "--dry-run joins no room: give no URL"),
        (["--exit-after-script"], "--exit-after-script goes with --script FILE"),
        (["--quickstart", "--meeting-token", "t"], "--meeting-token is for joining a room by URL"),
        (["--quickstart", "--max-call-duration", "59"], "--max-call-duration must be at least 60, got 59"),
        (["--pal"], "--pal goes with --quickstart"),
        (["--private", "--test-mode"], "--private, --test-mode go with --quickstart"),
        (["--bogus"], "unrecognized arguments: --bogus (see: python app.py --help)"),
    ],
)
def test_a_contradiction_is_one_usage_error_naming_the_fix(argv, words):
    with pytest.raises(UsageError) as raised:
        parse_args(argv, Settings())

    assert words in str(raised.value) and "\n" not in str(raised.value)
