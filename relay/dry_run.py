"""The dry run's room: no Daily room, each message "sent" is printed, and a stand-in face hears it.

It is the same kind of room as the Daily one (relay.room.RelayRoom), so the
routes, the sender and the script runner cannot tell them apart: every message
is validated, built and split exactly as for a real room.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import IO, Any

from echo_messages import BYTES_PER_SAMPLE, TAVUS_DEFAULT_SAMPLE_RATE, serialized_size
from relay.dry_face import SIMULATED_FACE_ID, SimulatedFace
from relay.errors import RelayError
from relay.logs import flush_log
from relay.room import JOIN_TIMEOUT_S, LEAVE_TIMEOUT_S, Listener, Listeners

DRY_RUN_CONVERSATION_ID = "dry-run"


def audio_summary(message: Mapping[str, Any]) -> str | None:
    """One short line for an audio echo (its ~4 KB of base64 is no use on a terminal); None for anything else.

    Its size is the message's as sent (compact JSON, `serialized_size`): the
    number RELAY_MAX_MESSAGE_BYTES limits, not the spaced JSON printed for text.
    """
    properties = message.get("properties")
    if message.get("event_type") != "conversation.echo" or not isinstance(properties, Mapping):
        return None
    if properties.get("modality") != "audio":
        return None
    rate = properties.get("sample_rate") or TAVUS_DEFAULT_SAMPLE_RATE
    audio = str(properties.get("audio") or "")
    pcm_bytes = len(audio) * 3 // 4 - audio[-2:].count("=")
    milliseconds = round(pcm_bytes / BYTES_PER_SAMPLE / rate * 1000)
    done = " done" if properties.get("done") else ""
    inference_id = json.dumps(properties.get("inference_id"))  # quoted and escaped: it came from a request
    return f"audio {milliseconds} ms at {rate} Hz, inference_id {inference_id}{done}, {serialized_size(message)} bytes"


class DryRunRoom:
    """No Daily room: each message "sent" is one line on stdout, confirmed at once.

    Text and interrupts are printed as their JSON; audio as one short line
    (length, rate, inference_id, size), unless `verbose` (--verbose) asks for
    the full JSON, which RELAY_RECORD_FILE always keeps. A stand-in face
    (relay/dry_face.py) hears every message and reports speaking as a real
    face would, marked simulated, so the console and scripts work here too.
    """

    mode = "dry-run"
    conversation_id = DRY_RUN_CONVERSATION_ID
    conversation_url: str | None = None
    call_state = "dry-run"
    left_reason: str | None = None
    replica_present = True
    private = False
    connection = "connected"
    connection_down_s: float | None = None

    def __init__(self, out: IO[str] | None = None, *, face: bool = True, verbose: bool = False) -> None:
        self._out = out or sys.stdout
        self._verbose = verbose
        self._lock = threading.Lock()
        self._listeners = Listeners()
        self._face = SimulatedFace(self._listeners.emit, DRY_RUN_CONVERSATION_ID) if face else None

    @property
    def face(self) -> dict[str, Any]:
        return {"present": True, "signal": "simulated", "participant_id": SIMULATED_FACE_ID}

    def add_listener(self, listener: Listener) -> None:
        """The simulated face's reports arrive here, as a room's app messages do."""
        self._listeners.add(listener)

    def join(self, timeout: float = JOIN_TIMEOUT_S) -> None:
        """Nothing to join."""

    def check_open(self) -> None:
        """Always open."""

    def wait_for_replica(self, timeout: float) -> bool:
        return True

    def is_face(self, participant_id: str) -> bool:
        """Only the stand-in face speaks for the face, as in a room."""
        return participant_id == SIMULATED_FACE_ID

    def wait_for_connection(self, timeout: float) -> bool:
        return True

    def delivery_problem(self) -> RelayError | None:
        """Nothing can go wrong mid-utterance without a room."""
        return None

    def send(self, message: Mapping[str, Any]) -> Future[None]:
        line = json.dumps(message)
        shown = line if self._verbose else (audio_summary(message) or line)
        if self._face is not None:
            self._face.hear(message)  # first: a message the face refuses (QueueFull) was not sent
        with self._lock:
            flush_log()  # what was logged before it was sent (a script's "playing line N") is shown before it
            print(shown, file=self._out, flush=True)
        sent: Future[None] = Future()
        sent.set_result(None)
        return sent

    def leave(self, timeout: float = LEAVE_TIMEOUT_S) -> None:
        """Nothing to leave; the simulated face stops."""
        if self._face is not None:
            self._face.close()
