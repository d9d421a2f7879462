"""The dry run's stand-in face: it reports speaking as a Tavus face would, marked simulated.

With no room there is no face, so nothing would ever say when an utterance
starts or ends, and a demo script or the console could not be tried without an
account. This face hears every message the dry run "sends" and reports what a
real one would: `conversation.replica.started_speaking` when an utterance
starts, `conversation.replica.stopped_speaking` when it would end (its audio's
length, or for text an estimate from its words), `interrupted: true` when an
interrupt cuts it off. Utterances are spoken one after another, as a face does.
For text it also says what it said, as Tavus does with
`conversation.utterance.streaming`: the words so far every second while it
speaks, then a final one with the words it got through before it finished or
was cut off (`is_interrupted`). It hears the same messages a room would and
reads each one's markup as a voice does, not as words; so a tag cut across
two messages would show in what it says.
"""

from __future__ import annotations

import base64
import binascii
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from echo_messages import BYTES_PER_SAMPLE, TAVUS_DEFAULT_SAMPLE_RATE
from relay.errors import QueueFull
from relay.face_events import LEGACY_STARTED, LEGACY_STOPPED, UTTERANCE_STREAMING
from relay.markup import without_markup

WORDS_PER_SECOND = 2.5  # a calm speaking pace: 150 words a minute
MIN_TEXT_SECONDS = 0.4
SIMULATED_FACE_ID = "simulated-face"
MAX_WAITING_UTTERANCES = 100  # utterances heard and not yet spoken; past it a new one is refused (429)
STREAMING_INTERVAL_S = 1.0  # how often it says the words spoken so far, while it speaks
MAX_HEARD_CHARS = 100_000  # of an utterance's text kept for saying what it said (about 2 hours of speech)


def spoken_seconds(properties: Mapping[str, Any]) -> float:
    """How long a face takes to say one echo message: its audio's length, or its words at a calm pace."""
    if properties.get("modality") == "audio":
        try:
            pcm_bytes = len(base64.b64decode(properties.get("audio") or ""))
        except (binascii.Error, ValueError):
            return 0.0
        return pcm_bytes / BYTES_PER_SAMPLE / (properties.get("sample_rate") or TAVUS_DEFAULT_SAMPLE_RATE)
    words = len(without_markup(str(properties.get("text") or "")).split())
    return max(MIN_TEXT_SECONDS, words / WORDS_PER_SECOND) if words else 0.0


@dataclass
class _Utterance:
    inference_id: str
    seconds: float = 0.0
    done: bool = False
    started: float | None = None
    heard: list[str] = field(default_factory=list)  # each message's text as said aloud (up to MAX_HEARD_CHARS)
    heard_chars: int = 0
    streamed: int = 0  # `conversation.utterance.streaming` reports sent

    def hear_text(self, text: str) -> None:
        """One message's text, its markup read as a voice reads it: each message on its own."""
        said = without_markup(text)[: MAX_HEARD_CHARS - self.heard_chars]
        self.heard.append(said)
        self.heard_chars += len(said)

    def words_by(self, now: float) -> str:
        """The words said by `now`, at a calm pace: all of them once its time is up."""
        words = "".join(self.heard).split()
        if self.started is not None and now < self.started + self.seconds:
            words = words[: math.floor((now - self.started) * WORDS_PER_SECOND)]
        return " ".join(words)


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
        if properties.get("modality") == "text":
            utterance.hear_text(str(properties.get("text") or ""))

    def _cut_off(self) -> None:
        """An interrupt stops the face now; what it had not started yet is dropped too."""
        if self._speaking is not None and self._speaking.started is not None:
            self._report_said(self._speaking, final=True, interrupted=True)
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
                    self._report(LEGACY_STARTED, self._speaking.inference_id, {})
                utterance = self._speaking
                if utterance is None or not utterance.done:
                    self._changed.wait()
                    continue
                left = utterance.started + utterance.seconds - time.monotonic()  # type: ignore[operator]
                if left > 0:
                    self._changed.wait(min(left, self._report_progress(utterance)))
                    continue
                self._report_said(utterance, final=True, interrupted=False)
                self._report_stopped(utterance, interrupted=False)
                self._by_id.pop(utterance.inference_id, None)
                self._speaking = None

    def _report_progress(self, utterance: _Utterance) -> float:
        """The words said so far, when a report is due; the seconds until the next one."""
        if not utterance.heard:  # audio has no words to report
            return math.inf
        due = utterance.started + (utterance.streamed + 1) * STREAMING_INTERVAL_S  # type: ignore[operator]
        now = time.monotonic()
        if now < due:
            return due - now
        self._report_said(utterance, final=False, interrupted=False)
        return STREAMING_INTERVAL_S

    def _report_said(self, utterance: _Utterance, *, final: bool, interrupted: bool) -> None:
        """`conversation.utterance.streaming`, as Tavus sends it: the words so far; the final one says where it
        stopped (`is_interrupted`). Only for text, as audio has no words."""
        if not utterance.heard:
            return
        properties: dict[str, Any] = {
            "speech": utterance.words_by(time.monotonic()), "content_index": utterance.streamed, "final": final
        }
        if final:
            properties["is_interrupted"] = interrupted
        utterance.streamed += 1
        self._report(UTTERANCE_STREAMING, utterance.inference_id, properties)

    def _report_stopped(self, utterance: _Utterance, *, interrupted: bool) -> None:
        spoken = time.monotonic() - (utterance.started or time.monotonic())
        duration = round(spoken if interrupted else utterance.seconds, 3)
        self._report(LEGACY_STOPPED, utterance.inference_id, {"duration": duration, "interrupted": interrupted})

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
