"""The face's speaking vocabulary: the one place that knows how Tavus says the face started or stopped speaking,
and what it said.

Tavus has said it two ways (its Echo Mode and event pages over the years): the legacy
`conversation.replica.started_speaking` / `stopped_speaking`, and the unified
`conversation.started_speaking` / `stopped_speaking` with a `role` of
"replica" or "pal", sometimes both roles for one change. Heartbeats such as
`system.replica_present` and the user's own speaking events say nothing about
the face speaking. What the face actually said comes as
`conversation.utterance.streaming` (section 10): the words spoken so far,
then a `final` one, with `is_interrupted` when it was cut off. Everything else
in the relay (the utterance tracker, the `relay.speaking` and `relay.said`
events the console shows, /health) reads `SpeakingReport`s, `SpokenReport`s and
`FaceSpeaking`, never the raw names, so a new name is taught here once.

Tavus numbers every event it sends (`seq`, one order for the conversation,
because data-channel messages can arrive out of order). `ReportOrder` keeps
a speaking report that arrives after a newer one from undoing it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LEGACY_STARTED = "conversation.replica.started_speaking"
LEGACY_STOPPED = "conversation.replica.stopped_speaking"
UNIFIED_STARTED = "conversation.started_speaking"
UNIFIED_STOPPED = "conversation.stopped_speaking"
UTTERANCE_STREAMING = "conversation.utterance.streaming"
FACE_ROLES = ("replica", "pal")  # a unified event with any other role (the user) is not the face


@dataclass(frozen=True)
class SpeakingReport:
    """One raw report from the face: it started or stopped speaking an utterance."""

    started: bool
    inference_id: str | None
    interrupted: bool = False  # only a stop says it
    duration_s: float | None = None  # only a stop says it
    seq: float | None = None  # Tavus's number for it, when it has one


def message_seq(message: Any) -> float | None:
    """Tavus's `seq` of a room message: a number (not a boolean), or None where there is none."""
    seq = message.get("seq") if isinstance(message, Mapping) else None
    return seq if isinstance(seq, (int, float)) and not isinstance(seq, bool) else None


def speaking_report(message: Any) -> SpeakingReport | None:
    """The face's started/stopped speaking in `message` (legacy or unified form); None for anything else."""
    if not isinstance(message, Mapping):
        return None
    kind = message.get("event_type")
    raw_properties = message.get("properties")
    properties: Mapping[str, Any] = raw_properties if isinstance(raw_properties, Mapping) else {}
    if kind in (UNIFIED_STARTED, UNIFIED_STOPPED):
        if properties.get("role") not in FACE_ROLES:
            return None
    elif kind not in (LEGACY_STARTED, LEGACY_STOPPED):
        return None
    started = kind in (LEGACY_STARTED, UNIFIED_STARTED)
    duration = properties.get("duration")
    return SpeakingReport(
        started=started,
        inference_id=_inference_id(message, properties),
        interrupted=not started and properties.get("interrupted") is True,
        duration_s=float(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) else None,
        seq=message_seq(message),
    )


@dataclass(frozen=True)
class SpokenReport:
    """The face's last word on what it said of an utterance: the final `conversation.utterance.streaming`."""

    inference_id: str | None
    speech: str  # the words actually spoken, up to where it was cut off
    interrupted: bool = False


def spoken_report(message: Any) -> SpokenReport | None:
    """What the face finally said in `message`; None for anything else, a report of the words so far included
    (only the final one says what was said: the ones before it are overtaken by it)."""
    if not isinstance(message, Mapping) or message.get("event_type") != UTTERANCE_STREAMING:
        return None
    raw_properties = message.get("properties")
    properties: Mapping[str, Any] = raw_properties if isinstance(raw_properties, Mapping) else {}
    speech = properties.get("speech")
    if properties.get("final") is not True or not isinstance(speech, str):
        return None
    role = properties.get("role")  # absent in the docs' example; "pal" and "replica" copies for a PAL's turn
    if role is not None and role not in FACE_ROLES:
        return None
    interrupted = properties.get("is_interrupted") is True
    return SpokenReport(_inference_id(message, properties), speech, interrupted=interrupted)


def _inference_id(message: Mapping[str, Any], properties: Mapping[str, Any]) -> str | None:
    """The utterance a report is about: at the top (the newest docs) or in its properties."""
    inference_id = message.get("inference_id") or properties.get("inference_id")
    return str(inference_id) if isinstance(inference_id, (str, int)) and inference_id != "" else None


class FaceSpeaking:
    """Whether the face is speaking now, and which utterance: changed once per change, however many duplicates.

    A start for the utterance already speaking, or a stop while silent, is a
    duplicate (the pal/replica pair, legacy beside unified). A stop that names
    another utterance than the one speaking is a late stop for an earlier one:
    the face is still speaking.
    """

    def __init__(self) -> None:
        self.speaking = False
        self.inference_id: str | None = None
        self._lock = threading.Lock()

    def update(self, report: SpeakingReport) -> dict[str, Any] | None:
        """The `relay.speaking` event's fields when `report` changes the state; None for a duplicate."""
        with self._lock:
            if report.started:
                if self.speaking and report.inference_id == self.inference_id:
                    return None
                self.speaking, self.inference_id = True, report.inference_id
                return {"speaking": True, "inference_id": report.inference_id}
            if not self.speaking:
                return None
            if None not in (report.inference_id, self.inference_id) and report.inference_id != self.inference_id:
                return None
            stopped = self.inference_id if report.inference_id is None else report.inference_id
            self.speaking, self.inference_id = False, None
            return {"speaking": False, "inference_id": stopped, "interrupted": report.interrupted}


class ReportOrder:
    """The `seq` of the last speaking report applied from the face: one older than it arrived late, and is not applied.

    The room's event queue puts messages that arrive within a few milliseconds
    of each other in `seq` order (relay/events.py), but one that arrives later
    still is handed on late: a `started_speaking` after its own
    `stopped_speaking` would leave the face "speaking" for good. A report
    without a `seq` is applied as it arrives, and applying it forgets nothing.
    A new face (another participant) starts afresh. Used on the events thread only.
    """

    def __init__(self) -> None:
        self._face: str | None = None
        self._seq: float | None = None

    def fresh(self, face: str, report: SpeakingReport) -> bool:
        """Whether to apply `report` from `face`: False when it is older than the last one applied from it."""
        if report.seq is None:
            return True
        if face == self._face and self._seq is not None and report.seq < self._seq:
            return False
        self._face, self._seq = face, report.seq
        return True
