"""Which participant is the face: the signals that say so, their ranks, and who takes over when the face leaves.

The room's tests (tests/test_room.py) drive these rules through Daily's callbacks; here each rule is checked on
FacePresence itself, with participants written as daily-python gives them.
"""

from __future__ import annotations

from typing import Any

import pytest

from relay.face import FACE_APP_MESSAGES, FacePresence, face_signal, signal_rank

PERSONA = "Echo Assistant"
ABSENT = {"present": False, "signal": None, "participant_id": None}


def participant(participant_id: str, user_id: str = "", user_name: str | None = None, **info: Any) -> dict[str, Any]:
    """A remote participant as daily-python's participants() and on_participant_joined give it."""
    fields: dict[str, Any] = {"userId": user_id, "isLocal": False, **info}
    if user_name is not None:
        fields["userName"] = user_name
    return {"id": participant_id, "info": fields}


FACE = participant("face-1", "tavus-face-7f3a")
REPLICA = participant("replica-1", "tavus-replica-abc")
NAMED = participant("named-1", "u-93c1", PERSONA)  # only its user name says it is the face
VIEWER = participant("viewer-1", "browser-tab-5", "Presenter")
PRESENT = {"event_type": "system.replica_present", "properties": {"attempt": 3}}


def presence() -> FacePresence:
    return FacePresence([PERSONA])


# --- face_signal: what makes a participant the face -----------------------------------------------------------


@pytest.mark.parametrize("user_id", ["tavus-replica-abc", "tavus-face-7f3a", "tavus-pal-22", "TAVUS-PAL-22"])
def test_a_user_id_only_tavus_gives_its_faces_is_the_strongest_signal_in_any_case(user_id):
    assert face_signal(participant("p", user_id), frozenset()) == "user_id"


def test_the_personas_name_is_a_signal_even_with_spaces_around_it():
    assert face_signal(participant("p", "u-1", f"  {PERSONA} "), frozenset({PERSONA})) == "user_name"


def test_a_tavus_user_id_wins_over_the_name():
    assert face_signal(participant("p", "tavus-face-1", PERSONA), frozenset({PERSONA})) == "user_id"


@pytest.mark.parametrize(
    "someone",
    [
        VIEWER,
        participant("p", "u-1", PERSONA),  # the persona's name, but the relay was given no names
        participant("p", "u-1", ""),
        {"id": "p"},
        {"id": "p", "info": None},
        {"id": "p", "info": "tavus-face-1"},
    ],
    ids=["viewer", "name-nobody-gave", "blank-name", "no-info", "info-none", "info-not-a-mapping"],
)
def test_anyone_else_in_the_room_is_never_the_face(someone):
    assert face_signal(someone, frozenset({"Someone Else"})) is None


def test_the_relay_itself_is_never_the_face_whatever_its_user_id_and_name():
    local = participant("me", "tavus-face-1", PERSONA, isLocal=True)

    assert face_signal(local, frozenset({PERSONA})) is None


def test_signals_rank_user_id_over_user_name_over_any_message_anyone_can_send():
    assert signal_rank("user_id") > signal_rank("user_name") > signal_rank("system.replica_present") > 0
    assert {signal_rank(kind) for kind in FACE_APP_MESSAGES} == {1}
    assert signal_rank("simulated") == 0


# --- FacePresence: the face arriving ---------------------------------------------------------------------------


def test_nobody_is_the_face_before_any_signal():
    face = presence()

    assert face.state == ABSENT and not face.present and not face.wait(0)
    assert not face.is_face("face-1")


def test_a_face_seen_is_present_and_reported_once_with_its_signal():
    face = presence()

    assert face.see_participant(FACE) == {"participant_id": "face-1", "signal": "user_id"}
    assert face.see_participant(FACE) is None  # updated, or seen again at join: nothing new

    assert face.state == {"present": True, "signal": "user_id", "participant_id": "face-1"}
    assert face.present and face.wait(0) and face.is_face("face-1")


def test_the_joined_report_carries_the_faces_name_when_it_has_one():
    assert presence().see_participant(NAMED) == {"participant_id": "named-1", "signal": "user_name", "name": PERSONA}


def test_names_are_taken_without_spaces_and_a_blank_one_matches_nobody():
    face = FacePresence([f" {PERSONA} ", "", "   "])

    assert face.see_participant(participant("blank", "u-2", "")) is None
    assert face.see_participant(participant("named", "u-1", PERSONA)) == {
        "participant_id": "named", "signal": "user_name", "name": PERSONA,
    }


def test_a_watcher_changes_nothing():
    face = presence()

    assert face.see_participant(VIEWER) is None
    assert face.state == ABSENT and not face.is_face("viewer-1")


@pytest.mark.parametrize("kind", FACE_APP_MESSAGES)
def test_tavuss_readiness_messages_make_their_sender_the_face(kind):
    face = presence()

    assert face.hear({"event_type": kind}, "p-9") == {"participant_id": "p-9", "signal": kind}
    assert face.hear({"event_type": kind}, "p-9") is None  # a heartbeat repeated: told once

    assert face.state == {"present": True, "signal": kind, "participant_id": "p-9"}


@pytest.mark.parametrize(
    "message",
    [
        {"event_type": "conversation.replica.started_speaking"},
        {"event_type": "conversation.echo", "properties": {"text": "system.replica_present"}},
        {"properties": {"event_type": "system.replica_present"}},
        "system.replica_present",
        None,
    ],
)
def test_any_other_message_makes_nobody_the_face(message):
    face = presence()

    assert face.hear(message, "p-9") is None
    assert face.state == ABSENT


# --- FacePresence: ranks ---------------------------------------------------------------------------------------


def test_a_stronger_signal_replaces_the_face_and_says_whom_it_replaced():
    face = presence()
    face.hear(PRESENT, "p-9")

    assert face.see_participant(NAMED) == {
        "participant_id": "named-1", "signal": "user_name", "name": PERSONA, "replaced": "p-9",
    }
    assert face.see_participant(FACE) == {"participant_id": "face-1", "signal": "user_id", "replaced": "named-1"}

    assert face.state == {"present": True, "signal": "user_id", "participant_id": "face-1"}
    assert not face.is_face("named-1") and not face.is_face("p-9")


def test_a_weaker_signal_never_replaces_the_face():
    face = presence()
    face.see_participant(FACE)

    assert face.see_participant(NAMED) is None
    assert face.hear(PRESENT, "p-9") is None

    assert face.state == {"present": True, "signal": "user_id", "participant_id": "face-1"}
    assert not face.is_face("named-1") and not face.is_face("p-9")


def test_a_second_participant_sending_heartbeats_does_not_take_the_faces_place():
    face = presence()
    face.hear(PRESENT, "p-9")

    assert face.hear(PRESENT, "p-10") is None
    assert face.participant_left("p-9")

    assert face.state == ABSENT  # p-10 was never taken for the face, so nobody is left to take over


def test_the_face_seen_by_a_stronger_signal_keeps_its_place_and_is_not_told_again():
    face = presence()
    face.hear(PRESENT, "face-1")

    assert face.see_participant(FACE) is None

    assert face.state == {"present": True, "signal": "user_id", "participant_id": "face-1"}


def test_a_participant_held_by_a_weaker_signal_is_dropped_when_a_stronger_one_arrives():
    face = presence()
    face.see_participant(NAMED)
    face.see_participant(participant("named-2", "u-2", PERSONA))
    face.see_participant(FACE)

    assert not face.participant_left("named-2")  # replaced: its leaving is no face leaving
    assert face.participant_left("face-1")
    assert face.state == ABSENT


# --- FacePresence: the face leaving ----------------------------------------------------------------------------


def test_the_face_leaving_makes_it_absent():
    face = presence()
    face.see_participant(FACE)

    assert face.participant_left("face-1")

    assert face.state == ABSENT and not face.present and not face.wait(0)


def test_someone_else_leaving_is_no_face_leaving():
    face = presence()
    face.see_participant(FACE)
    face.see_participant(VIEWER)

    assert not face.participant_left("viewer-1")
    assert not face.participant_left("never-here")

    assert face.state["participant_id"] == "face-1"


def test_a_second_face_of_the_same_rank_is_told_nothing_and_takes_over_when_the_first_leaves():
    face = presence()
    face.see_participant(FACE)

    assert face.see_participant(REPLICA) is None
    assert face.state["participant_id"] == "face-1" and not face.is_face("replica-1")

    assert face.participant_left("face-1")
    assert face.state == {"present": True, "signal": "user_id", "participant_id": "replica-1"}
    assert face.is_face("replica-1") and not face.is_face("face-1")


def test_the_faces_last_reports_still_count_after_it_left_until_another_is_the_face():
    face = presence()
    face.see_participant(FACE)
    face.participant_left("face-1")

    assert face.is_face("face-1") and not face.is_face("viewer-1")

    assert face.see_participant(REPLICA) == {"participant_id": "replica-1", "signal": "user_id"}
    assert face.is_face("replica-1") and not face.is_face("face-1")


def test_when_the_call_ends_the_face_is_absent_and_its_last_reports_still_count():
    face = presence()
    face.see_participant(FACE)
    face.see_participant(REPLICA)

    face.clear()

    assert face.state == ABSENT and not face.present
    assert face.is_face("face-1") and not face.is_face("replica-1")


def test_after_the_call_ended_a_face_is_told_as_joining_not_as_replacing():
    face = presence()
    face.hear(PRESENT, "p-9")
    face.clear()

    assert face.hear(PRESENT, "p-10") == {"participant_id": "p-10", "signal": "system.replica_present"}
