"""Which participant in the room is the face, and what said so.

Tavus has named the face's Daily participant in several ways over time, and a
relay that joins after the face never sees the one-off `system.replica_joined`
(app messages are not stored). So the face counts as present on any signal
Tavus's own clients trust (its CLI and pipecat's Tavus transport), and everyone else in the
room (the presenter's browser tab, viewers) is never taken for it.

Each signal is also a claim a participant can make: anyone can send
`system.replica_present` or take the persona's name as theirs, but only Tavus
gives its faces their user ids. So the signals are ranked (SIGNAL_RANKS): a
participant recognised by a stronger one replaces one recognised by a weaker
one, never the reverse, and only the participant that holds (the face) may
change what the relay believes about the face (relay/core.py `Relay._heard`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

FACE_USER_ID_MARKS = ("tavus-replica", "tavus-face", "tavus-pal")  # legacy and current Daily user ids
FACE_APP_MESSAGES = ("system.replica_joined", "system.replica_present", "system.pal_present")
USER_ID_SIGNAL = "user_id"
USER_NAME_SIGNAL = "user_name"
# Strongest first: a user id only Tavus gives; a name any participant can take; a message any participant can send.
SIGNAL_RANKS = {USER_ID_SIGNAL: 3, USER_NAME_SIGNAL: 2, **{kind: 1 for kind in FACE_APP_MESSAGES}}


def signal_rank(signal: str) -> int:
    """How far a signal is believed: a participant holding the face by a higher one is never replaced by a lower."""
    return SIGNAL_RANKS.get(signal, 0)


def face_signal(participant: Mapping[str, Any], names: frozenset[str]) -> str | None:
    """Why this participant is the face (`user_id`, `user_name`), or None: it only watches (or it is the relay)."""
    info = participant.get("info") or {}
    if not isinstance(info, Mapping) or info.get("isLocal"):
        return None
    user_id = str(info.get("userId") or "").lower()
    if any(mark in user_id for mark in FACE_USER_ID_MARKS):
        return USER_ID_SIGNAL
    if str(info.get("userName") or "").strip() in names:
        return USER_NAME_SIGNAL
    return None


class FacePresence:
    """The participants that are the face, each with the signal that made it so; thread-safe.

    All of them hold by signals of one rank, the strongest seen: the first of
    them is the face (/health's `participant_id`); the others, in the order
    seen, take over if it leaves. A stronger signal replaces them
    all; a weaker one, or a second participant sending Tavus's messages, changes
    nothing. `is_face` says whose reports count. Daily calls back on its own threads, so every change happens under
    one lock and reports (as a dict for `relay.replica_joined`/`relay.replica_left`)
    only the change that made the face present or absent, or another participant the face.
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._names = frozenset(name.strip() for name in names if name and name.strip())
        self._lock = threading.Lock()
        self._faces: dict[str, str] = {}  # participant id -> signal, the first one seen first
        self._gone: str | None = None  # the face that left last, while no other is the face
        self._here = threading.Event()

    @property
    def present(self) -> bool:
        return self._here.is_set()

    def is_face(self, participant_id: str) -> bool:
        """Whether `participant_id`'s reports are the face's: it is the face, or it was, and none has taken its place.

        The room's events are handled on the relay's own thread a moment after
        Daily delivered them (up to 5 ms later, to put them in `seq` order), so
        the face's last report may be handled after Daily said it left: it
        still counts. A participant that left sends nothing more.
        """
        with self._lock:
            face = next(iter(self._faces), None)
            return participant_id == (face if face is not None else self._gone)

    @property
    def state(self) -> dict[str, Any]:
        """`{"present", "signal", "participant_id"}`: what /health shows about the face."""
        with self._lock:
            for participant_id, signal in self._faces.items():
                return {"present": True, "signal": signal, "participant_id": participant_id}
        return {"present": False, "signal": None, "participant_id": None}

    def wait(self, timeout: float) -> bool:
        return self._here.wait(timeout)

    def see_participant(self, participant: Mapping[str, Any]) -> dict[str, Any] | None:
        """A participant joined, was updated or was in the room at join: the joined event's data if it made the
        face present.
        """
        signal = face_signal(participant, self._names)
        if signal is None:
            return None
        info = participant.get("info") or {}
        return self._add(str(participant.get("id")), signal, name=info.get("userName"))

    def hear(self, message: Any, sender: str) -> dict[str, Any] | None:
        """An app message: Tavus's readiness messages come from the face itself, so they make their sender the
        face, but only while no participant holds it (they are the weakest claim: anyone can send one)."""
        kind = message.get("event_type") if isinstance(message, Mapping) else None
        if kind not in FACE_APP_MESSAGES:
            return None
        return self._add(str(sender), str(kind))

    def participant_left(self, participant_id: str) -> bool:
        """True if this participant was (one of) the face; the face is absent once none is left."""
        with self._lock:
            face = next(iter(self._faces), None)
            if self._faces.pop(participant_id, None) is None:
                return False
            if participant_id == face:
                self._gone = participant_id
            if not self._faces:
                self._here.clear()
            return True

    def clear(self) -> None:
        """The call ended: nobody is in the room any more."""
        with self._lock:
            self._gone = next(iter(self._faces), self._gone)
            self._faces.clear()
            self._here.clear()

    def _add(self, participant_id: str, signal: str, **extra: Any) -> dict[str, Any] | None:
        """Take a participant's claim by its rank: the `relay.replica_joined` event's data when it made the face
        present or replaced the face, None when it changed nothing that is told."""
        with self._lock:
            face = next(iter(self._faces), None)
            held = signal_rank(self._faces[face]) if face is not None else 0
            rank = signal_rank(signal)
            if rank < held or (rank == held and (participant_id in self._faces or signal in FACE_APP_MESSAGES)):
                return None  # weaker, known already, or a second participant claiming by a message anyone can send
            if rank > held:
                self._faces.clear()  # every participant held by a weaker signal is replaced
            self._faces[participant_id] = signal
            self._here.set()
            if face == participant_id or (face is not None and rank == held):
                return None  # the face, by a stronger signal now; or one more of its rank, to take over if it leaves
        data: dict[str, Any] = {"participant_id": participant_id, "signal": signal}
        data.update({key: value for key, value in extra.items() if value is not None})
        if face is not None and face != participant_id:
            data["replaced"] = face
        return data
