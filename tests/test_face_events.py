"""Tavus's speaking vocabulary: reading both forms of its speaking reports and what the face said, telling each
change of speaking once, and keeping a late report from undoing a newer one."""

from __future__ import annotations

import pytest

from relay.face_events import (
    FaceSpeaking,
    ReportOrder,
    SpeakingReport,
    SpokenReport,
    message_seq,
    speaking_report,
    spoken_report,
)

LEGACY_STARTED = "conversation.replica.started_speaking"
LEGACY_STOPPED = "conversation.replica.stopped_speaking"
UNIFIED_STARTED = "conversation.started_speaking"
UNIFIED_STOPPED = "conversation.stopped_speaking"
STREAMING = "conversation.utterance.streaming"


# --- message_seq ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seq", [0, 41, 41.5, -3])
def test_a_messages_seq_is_its_number(seq):
    assert message_seq({"event_type": UNIFIED_STARTED, "seq": seq}) == seq


@pytest.mark.parametrize(
    "message",
    [{"seq": True}, {"seq": False}, {"seq": "41"}, {"seq": None}, {"seq": [41]}, {"event_type": UNIFIED_STARTED},
     "seq", None, [("seq", 41)]],
    ids=["true", "false", "text", "null", "list", "absent", "a-string", "none", "not-a-mapping"],
)
def test_a_seq_that_is_no_number_is_none(message):
    assert message_seq(message) is None


# --- speaking_report ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message, report",
    [
        ({"event_type": LEGACY_STARTED, "inference_id": "a"}, SpeakingReport(True, "a")),
        ({"event_type": LEGACY_STOPPED, "inference_id": "a",
          "properties": {"duration": 1.5, "interrupted": True}}, SpeakingReport(False, "a", True, 1.5)),
        ({"event_type": UNIFIED_STARTED, "properties": {"role": "pal", "inference_id": "b"}},
         SpeakingReport(True, "b")),
        ({"event_type": UNIFIED_STOPPED, "inference_id": "b", "properties": {"role": "replica"}},
         SpeakingReport(False, "b")),
        ({"event_type": UNIFIED_STARTED, "seq": 41, "turn_idx": 3, "properties": {"role": "pal"}},
         SpeakingReport(True, None, seq=41)),
        ({"event_type": LEGACY_STARTED, "seq": True}, SpeakingReport(True, None)),
        ({"event_type": UNIFIED_STARTED, "properties": {"role": "user"}}, None),
        ({"event_type": "conversation.user.started_speaking"}, None),
        ({"event_type": "system.replica_present", "properties": {"attempt": 3}}, None),
        ({"event_type": LEGACY_STOPPED, "properties": {"duration": "x", "interrupted": "yes"}},
         SpeakingReport(False, None)),
        ("not a message", None),
    ],
)
def test_one_place_reads_every_form_of_the_faces_speaking(message, report):
    assert speaking_report(message) == report


@pytest.mark.parametrize("role", ["replica", "pal"])
@pytest.mark.parametrize("kind, started", [(UNIFIED_STARTED, True), (UNIFIED_STOPPED, False)])
def test_a_unified_report_is_the_faces_for_either_of_its_roles(kind, started, role):
    report = speaking_report({"event_type": kind, "inference_id": "a", "properties": {"role": role}})

    assert report == SpeakingReport(started, "a")


@pytest.mark.parametrize(
    "properties",
    [{"role": "user"}, {"role": "REPLICA"}, {"role": ["replica"]}, {}, None, "replica"],
    ids=["user", "upper-case", "list", "no-role", "properties-null", "properties-not-a-mapping"],
)
def test_a_unified_report_without_a_face_role_is_nobodys(properties):
    assert speaking_report({"event_type": UNIFIED_STARTED, "inference_id": "a", "properties": properties}) is None


@pytest.mark.parametrize("properties", [None, "junk", ["a"]], ids=["null", "text", "list"])
def test_a_legacy_report_with_unreadable_properties_is_still_read(properties):
    report = speaking_report({"event_type": LEGACY_STOPPED, "inference_id": "a", "properties": properties})

    assert report == SpeakingReport(False, "a")


@pytest.mark.parametrize(
    "message, inference_id",
    [
        ({"inference_id": "top", "properties": {"inference_id": "inner"}}, "top"),
        ({"properties": {"inference_id": "inner"}}, "inner"),
        ({"inference_id": "", "properties": {"inference_id": "inner"}}, "inner"),
        ({"inference_id": 7}, "7"),
        ({"inference_id": ""}, None),
        ({"inference_id": "", "properties": {"inference_id": ""}}, None),
        ({"inference_id": ["a"]}, None),
        ({"inference_id": {"id": "a"}}, None),
        ({"inference_id": 1.5}, None),
        ({}, None),
    ],
    ids=["top-first", "in-properties", "empty-top", "number", "empty", "empty-in-both", "list", "object", "fraction",
         "absent"],
)
def test_the_utterance_a_report_is_about_is_read_at_the_top_first_then_in_its_properties(message, inference_id):
    report = speaking_report({"event_type": LEGACY_STARTED, **message})

    assert report is not None and report.inference_id == inference_id


def test_only_a_stop_says_it_was_interrupted():
    properties = {"interrupted": True, "duration": 2}

    started = speaking_report({"event_type": LEGACY_STARTED, "properties": properties})
    stopped = speaking_report({"event_type": LEGACY_STOPPED, "properties": properties})

    assert started == SpeakingReport(True, None, interrupted=False, duration_s=2.0)
    assert stopped == SpeakingReport(False, None, interrupted=True, duration_s=2.0)


@pytest.mark.parametrize("interrupted", ["true", 1, "yes", None])
def test_a_stop_is_interrupted_only_when_it_says_true(interrupted):
    report = speaking_report({"event_type": LEGACY_STOPPED, "properties": {"interrupted": interrupted}})

    assert report is not None and report.interrupted is False


@pytest.mark.parametrize("duration, seconds", [(3, 3.0), (1.25, 1.25), (True, None), ("1.5", None), (None, None)])
def test_a_stops_duration_is_a_number_of_seconds_or_none(duration, seconds):
    report = speaking_report({"event_type": LEGACY_STOPPED, "properties": {"duration": duration}})

    assert report is not None and report.duration_s == seconds


# --- spoken_report --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message, report",
    [
        ({"event_type": STREAMING, "inference_id": "a", "properties": {"speech": "Hello th", "final": True,
          "is_interrupted": True, "content_index": 3}}, SpokenReport("a", "Hello th", interrupted=True)),
        ({"event_type": STREAMING, "inference_id": "a", "properties": {"speech": "Hello there", "final": True}},
         SpokenReport("a", "Hello there")),
        ({"event_type": STREAMING, "properties": {"inference_id": "b", "speech": "Hi", "final": True, "role": "pal"}},
         SpokenReport("b", "Hi")),
        ({"event_type": STREAMING, "inference_id": "a", "properties": {"speech": "Hello", "final": False}}, None),
        ({"event_type": STREAMING, "inference_id": "a", "properties": {"speech": "Hi", "final": True, "role": "user"}},
         None),
        ({"event_type": STREAMING, "inference_id": "a", "properties": {"speech": ["not", "text"], "final": True}},
         None),
        ({"event_type": STREAMING, "inference_id": "a", "properties": "junk"}, None),
        ({"event_type": "conversation.utterance", "properties": {"speech": "Hi", "role": "replica"}}, None),
        ("not a message", None),
    ],
    ids=["interrupted", "finished", "pal-role-id-in-properties", "words-so-far", "user", "speech-not-text",
         "no-properties", "utterance", "not-a-message"],
)
def test_one_place_reads_what_the_face_finally_said(message, report):
    assert spoken_report(message) == report


@pytest.mark.parametrize("final", ["true", 1, None])
def test_only_a_report_that_says_final_true_is_what_the_face_said(final):
    message = {"event_type": STREAMING, "inference_id": "a", "properties": {"speech": "Hi", "final": final}}

    assert spoken_report(message) is None


def test_the_face_finally_saying_nothing_is_an_empty_speech():
    message = {"event_type": STREAMING, "inference_id": "a", "properties": {"speech": "", "final": True}}

    assert spoken_report(message) == SpokenReport("a", "")


@pytest.mark.parametrize("is_interrupted", ["true", 1, False])
def test_what_was_said_is_cut_off_only_when_the_report_says_true(is_interrupted):
    properties = {"speech": "Hi", "final": True, "is_interrupted": is_interrupted}

    assert spoken_report({"event_type": STREAMING, "inference_id": "a", "properties": properties}) == SpokenReport(
        "a", "Hi", interrupted=False,
    )


# --- FaceSpeaking ---------------------------------------------------------------------------------------------


def test_each_change_of_speaking_is_told_once_however_many_duplicates():
    face = FaceSpeaking()
    reports = [
        SpeakingReport(True, "a"), SpeakingReport(True, "a"), SpeakingReport(True, "a"),  # pal, replica, legacy
        SpeakingReport(False, "earlier"),  # a late stop for another utterance: still speaking "a"
        SpeakingReport(False, "a", interrupted=True), SpeakingReport(False, "a"), SpeakingReport(False, None),
        SpeakingReport(True, None), SpeakingReport(False, None),
    ]

    changes = [change for report in reports if (change := face.update(report))]

    assert changes == [
        {"speaking": True, "inference_id": "a"},
        {"speaking": False, "inference_id": "a", "interrupted": True},
        {"speaking": True, "inference_id": None},
        {"speaking": False, "inference_id": None, "interrupted": False},
    ]


def test_the_face_is_silent_until_it_starts():
    face = FaceSpeaking()

    assert (face.speaking, face.inference_id) == (False, None)
    assert face.update(SpeakingReport(False, "a")) is None


def test_a_start_of_another_utterance_while_speaking_is_told_as_that_utterance():
    face = FaceSpeaking()
    face.update(SpeakingReport(True, "a"))

    assert face.update(SpeakingReport(True, "b")) == {"speaking": True, "inference_id": "b"}
    assert face.update(SpeakingReport(False, "a")) is None  # the earlier one's late stop

    assert (face.speaking, face.inference_id) == (True, "b")


def test_a_stop_that_names_no_utterance_stops_the_one_speaking():
    face = FaceSpeaking()
    face.update(SpeakingReport(True, "a"))

    assert face.update(SpeakingReport(False, None)) == {"speaking": False, "inference_id": "a", "interrupted": False}
    assert (face.speaking, face.inference_id) == (False, None)


def test_a_stop_naming_an_utterance_after_a_start_that_named_none_is_told_with_its_name():
    face = FaceSpeaking()
    face.update(SpeakingReport(True, None))

    assert face.update(SpeakingReport(False, "a", interrupted=True)) == {
        "speaking": False, "inference_id": "a", "interrupted": True,
    }


# --- ReportOrder ----------------------------------------------------------------------------------------------


def test_a_report_older_than_one_applied_from_the_face_is_not_applied():
    order = ReportOrder()

    applied = [
        order.fresh(face, SpeakingReport(started, "a", seq=seq))
        for face, started, seq in [
            ("face-1", True, 10), ("face-1", False, 12),
            ("face-1", True, 11),  # its start, arriving after its stop: not applied
            ("face-1", False, 12),  # the same seq again: a duplicate, applied (FaceSpeaking drops it)
            ("face-1", True, None),  # no seq: applied as it arrives
            ("face-1", False, 13),
            ("face-2", True, 3),  # another participant took over as the face: its own numbers
        ]
    ]

    assert applied == [True, True, False, True, True, True, True]


def test_a_report_with_the_same_seq_as_the_last_applied_is_applied():
    order = ReportOrder()
    order.fresh("face-1", SpeakingReport(True, "a", seq=5))

    assert order.fresh("face-1", SpeakingReport(True, "a", seq=5))


def test_a_report_without_a_seq_forgets_nothing():
    order = ReportOrder()
    order.fresh("face-1", SpeakingReport(False, "a", seq=12))

    assert order.fresh("face-1", SpeakingReport(True, "b"))
    assert not order.fresh("face-1", SpeakingReport(True, "a", seq=11))


def test_the_first_report_is_applied_whatever_its_seq():
    assert ReportOrder().fresh("face-1", SpeakingReport(True, "a", seq=-1))


def test_a_new_face_starts_afresh_and_so_does_the_old_one_when_it_comes_back():
    order = ReportOrder()
    order.fresh("face-1", SpeakingReport(True, "a", seq=100))

    assert order.fresh("face-2", SpeakingReport(True, "b", seq=3))
    assert order.fresh("face-1", SpeakingReport(True, "c", seq=50))
