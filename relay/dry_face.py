"""The dry run's stand-in face: it reports speaking as a Tavus face would, marked simulated.

With no room there is no face, so nothing would ever say when an utterance
starts or ends, and a demo script or the console could not be tried without an
account. This face hears every message the dry run "sends" and reports what a
real one would: `conversation.replica.started_speaking` when an utterance
starts, `conversation.replica.stopped_speaking` when it would end (its audio's
length, or for text an estimate from its words), `interrupted: true` when an
interrupt cuts it off. Utterances are spoken one after another, as a face does.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from echo_messages import BYTES_PER_SAMPLE, TAVUS_DEFAULT_SAMPLE_RATE
from relay.errors import QueueFull

WORDS_PER_SECOND = 2.5  # a calm speaking pace: 150 words a minute
MIN_TEXT_SECONDS = 0.4
SIMULATED_FACE_ID = "simulated-face"
MAX_WAITING_UTTERANCES = 100  # utterances heard and not yet spoken; past it a new one is refused (429)


def spoken_seconds(properties: Mapping[str, Any]) -> float:
    """How long a face takes to say one echo message: its audio's length, or its words at a calm pace."""
    if properties.get("modality") == "audio":
        try:
            pcm_bytes = len(base64.b64decode(properties.get("audio") or ""))
        except (binascii.Error, ValueError):
            return 0.0
        return pcm_bytes / BYTES_PER_SAMPLE / (properties.get("sample_rate") or TAVUS_DEFAULT_SAMPLE_RATE)
    words = len(str(properties.get("text") or "").split())
    return max(MIN_TEXT_SECONDS, words / WORDS_PER_SECOND) if words else 0.0


@dataclass
class _Utterance:
    inference_id: str
    seconds: float = 0.0
    done: bool = False
    started: float | None = None


class SimulatedFace:
    """Hears the dry run's messages and reports speaking through `emit(event_type, data)`, as the Room does."""

    def __init__(
        self,
        emit: Callable[[str, Mapping[str, Any]], None],
        conversation_id: str,
        *,
        max_waiting: int = MAX_WAITING_UTTERANCES,
    ) -> None:
        self._emit = emit
        self._max_waiting = max_waiting
        self._conversation_id = conversation_id
        self._waiting: deque[_Utterance] = deque()
        self._by_id: dict[str, _Utterance] = {}
        self._speaking: _Utterance | None = None
        self._seq = 0
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="relay-simulated-face", daemon=True)
        self._thread.start()

    def hear(self, message: Mapping[str, Any]) -> None:
        """Take a message in; QueueFull (nothing taken) for a new utterance past the bound."""
        kind = message.get("event_type")
        with self._changed:
            if kind == "conversation.interrupt":
                self._cut_off()
            elif kind == "conversation.echo":
                self._add(message.get("properties") or {})
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(2)

    def _add(self, properties: Mapping[str, Any]) -> None:
        inference_id = str(properties.get("inference_id") or "")
        utterance = self._by_id.get(inference_id)
        if utterance is None:
            if len(self._waiting) >= self._max_waiting:
                raise QueueFull(
                    f"the simulated face has {len(self._waiting)} utterances waiting to be spoken already; "
                    "wait for it to speak them, or interrupt it"
                )
            utterance = self._by_id[inference_id] = _Utterance(inference_id)
            self._waiting.append(utterance)
        utterance.seconds += spoken_seconds(properties)
        utterance.done = utterance.done or bool(properties.get("done"))

    def _cut_off(self) -> None:
        """An interrupt stops the face now; what it had not started yet is dropped too."""
        if self._speaking is not None and self._speaking.started is not None:
            self._report_stopped(self._speaking, interrupted=True)
        self._speaking = None
        self._waiting.clear()
        self._by_id.clear()

    def _run(self) -> None:
        with self._changed:
            while not self._closed:
                if self._speaking is None and self._waiting:
                    self._speaking = self._waiting.popleft()
                    self._speaking.started = time.monotonic()
                    self._report("conversation.replica.started_speaking", self._speaking.inference_id, {})
                utterance = self._speaking
                if utterance is None or not utterance.done:
                    self._changed.wait()
                    continue
                left = utterance.started + utterance.seconds - time.monotonic()  # type: ignore[operator]
                if left > 0:
                    self._changed.wait(left)
                    continue
                self._report_stopped(utterance, interrupted=False)
                self._by_id.pop(utterance.inference_id, None)
                self._speaking = None

    def _report_stopped(self, utterance: _Utterance, *, interrupted: bool) -> None:
        spoken = time.monotonic() - (utterance.started or time.monotonic())
        duration = round(spoken if interrupted else utterance.seconds, 3)
        self._report(
            "conversation.replica.stopped_speaking",
            utterance.inference_id,
            {"duration": duration, "interrupted": interrupted},
        )

    def _report(self, event_type: str, inference_id: str, properties: Mapping[str, Any]) -> None:
        self._seq += 1
        message = {
            "message_type": "conversation",
            "event_type": event_type,
            "conversation_id": self._conversation_id,
            "inference_id": inference_id,
            "seq": self._seq,
            "timestamp": time.time(),
            "simulated": True,
            "properties": dict(properties),
        }
        self._emit("app_message", {"sender": SIMULATED_FACE_ID, "message": message})
