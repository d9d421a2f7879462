"""Which participant in the room is the face, and what said so.

Tavus has named the face's Daily participant in several ways over time, and a
relay that joins after the face never sees the one-off `system.replica_joined`
(app messages are not stored). So the face counts as present on any signal
Tavus's own clients trust (its CLI and pipecat's Tavus transport), and everyone else in the
room (the presenter's browser tab, viewers) is never taken for it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

FACE_USER_ID_MARKS = ("tavus-replica", "tavus-face", "tavus-pal")  # legacy and current Daily user ids
FACE_APP_MESSAGES = ("system.replica_joined", "system.replica_present", "system.pal_present")
USER_ID_SIGNAL = "user_id"
USER_NAME_SIGNAL = "user_name"


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

    Daily calls back on its own threads, so every change happens under one
    lock and reports (as a dict for `relay.replica_joined`/`relay.replica_left`)
    only the change that made the face present or absent.
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._names = frozenset(name.strip() for name in names if name and name.strip())
        self._lock = threading.Lock()
        self._faces: dict[str, str] = {}  # participant id -> signal, the first one seen first
        self._here = threading.Event()

    @property
    def present(self) -> bool:
        return self._here.is_set()

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
        """A participant joined, was updated or was in the room at join: the joined event's data if it made the face present."""
        signal = face_signal(participant, self._names)
        if signal is None:
            return None
        info = participant.get("info") or {}
        return self._add(str(participant.get("id")), signal, name=info.get("userName"))

    def hear(self, message: Any, sender: str) -> dict[str, Any] | None:
        """An app message: Tavus's readiness messages come from the face itself."""
        kind = message.get("event_type") if isinstance(message, Mapping) else None
        if kind not in FACE_APP_MESSAGES:
            return None
        return self._add(str(sender), str(kind))

    def participant_left(self, participant_id: str) -> bool:
        """True if this participant was (one of) the face; the face is absent once none is left."""
        with self._lock:
            if self._faces.pop(participant_id, None) is None:
                return False
            if not self._faces:
                self._here.clear()
            return True

    def clear(self) -> None:
        """The call ended: nobody is in the room any more."""
        with self._lock:
            self._faces.clear()
            self._here.clear()

    def _add(self, participant_id: str, signal: str, **extra: Any) -> dict[str, Any] | None:
        with self._lock:
            if participant_id in self._faces:
                return None
            self._faces[participant_id] = signal
            if self._here.is_set():
                return None
            self._here.set()
        data = {"participant_id": participant_id, "signal": signal}
        data.update({key: value for key, value in extra.items() if value is not None})
        return data
