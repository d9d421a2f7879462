"""Native libraries' own log lines are kept off the terminal; the relay's own lines are not."""

from __future__ import annotations

import pytest

from relay.daily_logs import DRAIN_MARK, _kept_lines, is_native_log_line

DAILY_LINES = [
    b'{"timestamp":"2026-11-30T22:00:00.000Z","level":"ERROR","fields":{"message":"x"},"target":"daily_core::call"}',
    # seen leaking into the test output: Daily's task queue logs under a target of its own
    (b'{"timestamp":"2026-11-30T22:00:00.000Z","level":"ERROR","fields":{"message":"ResponseCanceled"},'
    b'"target":"task_queue"}'),
    b"[src/libmpg123/layer3.c:INT123_do_layer3():1774] error: part2_3_length (736) too large for available bit count",
]
RELAY_LINES = [
    b"2026-11-30 22:00:00,000 INFO POST /send_text_message 200 1.2ms inference_id=x messages_sent=1",
    b"error: could not reach Daily to look up https://tavus.daily.co/c123: check your network connection and the URL",
    b'{"message_type": "conversation", "event_type": "conversation.echo"}',  # the dry run's printed message
]


@pytest.mark.parametrize("line", DAILY_LINES)
def test_a_native_librarys_own_line_is_dropped(line):
    assert is_native_log_line(line)


@pytest.mark.parametrize("line", RELAY_LINES)
def test_the_relays_own_lines_pass(line):
    assert not is_native_log_line(line)


def test_a_drain_mark_is_dropped_and_said_to_have_passed():
    assert _kept_lines([b"before", DRAIN_MARK + b"7", b"after"]) == (b"before\nafter\n", [b"7"])


def test_a_drain_mark_that_cut_another_threads_line_leaves_that_part_a_line_of_its_own():
    assert _kept_lines([b"partial" + DRAIN_MARK + b"8"]) == (b"partial\n", [b"8"])
