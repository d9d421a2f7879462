"""The open utterances (rates, idle close) and the tracker of what became of each, on a clock the test turns."""

from __future__ import annotations

import threading

import pytest

from relay.audio import UtteranceRates
from relay.errors import QueueFull, UtteranceClosed, status_of
from relay.face_events import SpeakingReport, SpokenReport
from relay.utterances import MAX_SPOKEN_TEXT_CHARS, OpenUtterances, UtteranceTracker, WaitingRequests


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def tracker(clock):
    return UtteranceTracker(capacity=3, clock=clock, wall_clock=lambda: 1700000000.0 + clock.now)


# --- the tracker ---------------------------------------------------------------------------------


def test_an_utterance_moves_from_queued_to_spoken_with_its_times(tracker, clock):
    tracker.arrived("u1")
    assert tracker.get("u1")["state"] == "queued"
    tracker.sending("u1")
    assert tracker.get("u1")["state"] == "sending"
    clock.now += 0.25
    tracker.sent("u1")
    clock.now += 0.5
    tracker.face_reported(SpeakingReport(True, "u1"))
    tracker.face_reported(SpeakingReport(True, "u1"))  # a duplicate changes nothing
    assert tracker.get("u1")["state"] == "speaking"
    clock.now += 2
    tracker.face_reported(SpeakingReport(False, "u1", duration_s=2.0))

    assert tracker.get("u1") == {
        "inference_id": "u1",
        "state": "spoken",
        "arrived_at": 1700000100.0,
        "sent_at": 1700000100.25,
        "started_speaking_at": 1700000100.75,
        "stopped_speaking_at": 1700000102.75,
        "started_after_ms": 750,
        "duration_s": 2.0,
        "interrupted": False,
    }


def test_what_the_face_said_is_kept_once_where_it_reports_it(tracker):
    tracker.arrived("u1")
    tracker.arrived("u2")
    tracker.face_reported(SpeakingReport(False, "u1", interrupted=True))

    assert tracker.face_said(SpokenReport("u1", "Welcome, every", interrupted=True)) == "Welcome, every"
    assert tracker.face_said(SpokenReport("u1", "Welcome, every", interrupted=True)) is None  # pal/replica duplicate
    assert tracker.face_said(SpokenReport("someone-elses", "Hi")) is None
    assert tracker.get("u1")["spoken_text"] == "Welcome, every"
    assert list(tracker.get("u1"))[-2:] == ["interrupted", "spoken_text"]
    assert "spoken_text" not in tracker.get("u2")  # no report: the answer is as it always was


def test_a_long_spoken_text_is_kept_as_its_end(tracker):
    tracker.arrived("u1")
    speech = " ".join(f"word{n}" for n in range(1000))

    kept = tracker.face_said(SpokenReport("u1", speech))

    assert len(kept) == MAX_SPOKEN_TEXT_CHARS and kept.startswith("…") and speech.endswith(kept[1:])


def test_a_face_that_starts_before_the_confirmation_is_not_moved_back(tracker):
    tracker.arrived("u1")
    tracker.face_reported(SpeakingReport(True, "u1"))
    tracker.sent("u1")

    assert tracker.get("u1")["state"] == "speaking"


def test_interrupted_and_failed_sends_say_so(tracker):
    tracker.arrived("cut")
    tracker.failed("cut", "interrupted before any of it was sent", interrupted=True)
    tracker.arrived("refused")
    tracker.failed("refused", "Daily refused", interrupted=False)

    assert tracker.get("cut")["state"] == "interrupted" and tracker.get("cut")["interrupted"] is True
    assert tracker.get("refused")["state"] == "failed" and tracker.get("refused")["error"] == "Daily refused"


def test_an_interrupt_cuts_off_what_the_face_was_sent_and_had_not_finished(tracker, clock):
    """Found by a user: such an utterance stayed "sent" for good, and its id's next request was timed from it."""
    for name in ("story", "speaking", "carrier"):
        tracker.arrived(name)
        tracker.sending(name)
        tracker.sent(name)
    tracker.face_reported(SpeakingReport(True, "speaking"))

    tracker.cut_off(keep="carrier")

    assert tracker.get("story")["state"] == "interrupted" and tracker.get("story")["interrupted"] is True
    assert tracker.get("speaking")["state"] == "interrupted"  # its waits end now, not at the face's report
    assert tracker.get("carrier")["state"] == "sent"
    tracker.face_reported(SpeakingReport(False, "speaking", interrupted=True, duration_s=0.7))
    assert tracker.get("speaking")["duration_s"] == 0.7  # the face's own report still says how long it spoke
    clock.now += 8
    tracker.arrived("story")
    tracker.sent("story")
    tracker.face_reported(SpeakingReport(True, "story"))
    assert tracker.get("story")["started_after_ms"] == 0  # a new utterance under the old id, timed from now


def test_only_the_last_utterances_are_kept_and_unknown_ones_are_none(tracker):
    for name in "abcd":
        tracker.arrived(name)
    tracker.face_reported(SpeakingReport(True, "someone-elses"))

    assert tracker.get("a") is None and tracker.get("d")["state"] == "queued"
    assert tracker.get("someone-elses") is None


def test_a_wait_wakes_when_the_face_reports(tracker):
    tracker.arrived("u1")
    tracker.sent("u1")
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(tracker.wait("u1", "spoken", 30)))
    waiter.start()
    tracker.face_reported(SpeakingReport(True, "u1"))
    tracker.face_reported(SpeakingReport(False, "u1", interrupted=True, duration_s=0.4))
    waiter.join(5)

    assert got[0]["state"] == "interrupted" and got[0]["duration_s"] == 0.4


def test_a_wait_gives_up_when_told(tracker):
    tracker.arrived("u1")

    assert tracker.wait("u1", "started", 30, give_up=lambda: True) is None


def test_latency_is_p50_and_p95_of_the_last_utterances(tracker, clock):
    assert tracker.latency() == {"p50_ms": None, "p95_ms": None, "utterances": 0}
    for number, delay in enumerate([0.3, 0.1, 0.2, 0.9]):
        tracker.arrived(f"u{number}")
        clock.now += delay
        tracker.face_reported(SpeakingReport(True, f"u{number}"))

    assert tracker.latency() == {"p50_ms": 200, "p95_ms": 900, "utterances": 4}


# --- open utterances and their idle close ---------------------------------------------------------


def test_an_utterance_idle_for_the_setting_is_taken_out_once(clock):
    open_utterances = OpenUtterances(clock=clock)
    rates = UtteranceRates(16000, 16000)
    open_utterances.sent("idle", rates, done=False, ticket=4)
    clock.now += 3
    open_utterances.sent("busy", rates, done=False, ticket=4)
    clock.now += 2.5

    assert open_utterances.idle(5.0) == [("idle", rates, 4, 5.5)]
    assert open_utterances.idle(5.0) == []
    assert open_utterances.get("idle") is None and open_utterances.get("busy") == rates


def test_an_utterance_being_sent_is_never_closed_under_it(clock):
    open_utterances = OpenUtterances(clock=clock)
    open_utterances.sent("u1", UtteranceRates(24000, 24000), done=False)
    clock.now += 10
    with open_utterances.sending("u1"):
        assert open_utterances.idle(5.0) == []
    assert open_utterances.idle(5.0) == []  # the request just ended: it is not idle


def test_a_chunk_for_a_closed_utterance_is_a_409_naming_it(clock):
    open_utterances = OpenUtterances(clock=clock)
    open_utterances.sent("u1", UtteranceRates(24000, 24000), done=False)
    clock.now += 6
    open_utterances.idle(5.0)

    with pytest.raises(UtteranceClosed) as raised, open_utterances.sending("u1"):
        pass

    assert status_of(raised.value) == 409
    assert str(raised.value) == (
        "utterance 'u1' was closed after 6 s with no audio (RELAY_UTTERANCE_IDLE_CLOSE): "
        "send the rest under a new inference_id"
    )


# --- requests that wait for the face -----------------------------------------------------------


def test_requests_that_wait_take_a_place_each_and_past_the_bound_are_refused_saying_how_many_wait():
    waiting = WaitingRequests(2)

    with waiting.place("spoken"), waiting.place("started"), waiting.place(None):  # None waits for nothing
        assert waiting.waiting == 2
        with pytest.raises(QueueFull) as refused, waiting.place("spoken"):
            pass

    assert str(refused.value) == (
        '2 requests are waiting for the face already, as many as RELAY_MAX_WAITING_FOR_FACE allows: send this one '
        'without "wait" and follow GET /utterances/<inference_id>, or try again once one is answered'
    )
    assert waiting.waiting == 0


def test_a_request_that_fails_while_it_waits_gives_its_place_back():
    waiting = WaitingRequests(1)

    with pytest.raises(RuntimeError), waiting.place("spoken"):
        raise RuntimeError("Daily refused the send")

    with waiting.place("spoken"):
        assert waiting.waiting == 1
