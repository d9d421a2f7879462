"""Microphone echo: clips played through the relay's virtual microphone in real time."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import echo_messages
from relay.errors import QueueFull

log = logging.getLogger("echo_relay")

MICROPHONE_FRAME_MS = 10  # daily pads writes to 10 ms multiples; clips are padded so none is cut or padded mid-stream
MICROPHONE_WRITE_MS = 20  # per write: an interrupt silences the microphone within this
STOP_TIMEOUT_S = 5.0  # how long closing waits for the playing thread (a blocking write takes <= 20 ms)


class CountingMicrophoneDevice:
    """The dry run's microphone: counts the frames written, plays nothing."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate

    def write_frames(self, frames: bytes) -> int:
        return len(frames) // echo_messages.BYTES_PER_SAMPLE


@dataclass
class _Clip:
    clip_id: str
    pcm: bytes
    offset: int = 0

    @property
    def remaining(self) -> int:
        return len(self.pcm) - self.offset


@dataclass
class MicrophoneUtterance:
    """Clips played back to back, with no gap between them: what the face hears as one stretch of speech.

    Hold to talk sends a 100 ms clip at a time, so a line per clip would be ten
    lines a second; the terminal gets one line when the utterance ends (each
    clip's own line only with --verbose).
    """

    played_ms: int = 0
    clips: int = 0
    cut_short: bool = False

    def add(self, played_ms: int, clip_ms: int) -> None:
        self.played_ms += played_ms
        self.clips += 1
        self.cut_short = self.cut_short or played_ms < clip_ms

    def line(self) -> str:
        clips = "1 clip" if self.clips == 1 else f"{self.clips} clips back to back"
        cut = ", cut short by an interrupt" if self.cut_short else ""
        return f"microphone: played an utterance of {self.played_ms} ms ({clips}){cut}"


class Microphone:
    """Plays queued clips through the relay's microphone in real time, one background thread.

    Clips are padded to whole 10 ms frames and played back to back, so the
    track stays continuous between clips; clips with no gap between them are
    one utterance, one line on the terminal when it ends. The thread also paces itself by the
    clock, so a device that does not block (or the dry run's) keeps real time.
    """

    def __init__(self, device: Any, sample_rate: int, *, max_queue_seconds: float | None = None) -> None:
        self.sample_rate = sample_rate
        self.max_queue_seconds = max_queue_seconds  # RELAY_MAX_MICROPHONE_QUEUE_SECONDS; None: no bound (tests)
        self.frames_played = 0  # what the device took (write_frames' answer), not what was offered
        self.frames_refused = 0
        self.taking_audio = True  # False once a write was refused: outside a call daily takes nothing
        self._device = device
        self._write_bytes = sample_rate * MICROPHONE_WRITE_MS // 1000 * echo_messages.BYTES_PER_SAMPLE
        self._frame_bytes = sample_rate * MICROPHONE_FRAME_MS // 1000 * echo_messages.BYTES_PER_SAMPLE
        self._clips: deque[_Clip] = deque()
        self._playing: _Clip | None = None
        self._wakeup = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="relay-microphone", daemon=True)

    def start(self) -> None:
        """Start playing queued clips (on a thread of its own)."""
        self._thread.start()

    def enqueue(self, pcm: bytes) -> dict[str, Any]:
        """Queue a clip behind the others; a clip that would take the queue past its bound is refused whole."""
        pcm += bytes(-len(pcm) % self._frame_bytes)
        clip = _Clip(echo_messages.new_inference_id(), pcm)  # a clip's id has an inference id's form
        with self._wakeup:
            self._check_room(len(pcm))
            self._clips.append(clip)
            queued = self._queued_bytes()
            self._wakeup.notify()
        return {"clip_id": clip.clip_id, "audio_ms": self._ms(len(pcm)), "queued_ms": self._ms(queued)}

    def clear(self) -> int:
        """Drop every queued clip and stop the one playing after its current write (<= 20 ms)."""
        with self._wakeup:
            dropped = len(self._clips) + (1 if self._playing else 0)
            self._clips.clear()
            if self._playing is not None:
                self._playing.offset = len(self._playing.pcm)
        return dropped

    def status(self) -> dict[str, Any]:
        with self._wakeup:
            playing = self._playing.clip_id if self._playing else None
            return {
                "enabled": True,
                "playing_clip": playing,
                "queued_ms": self._ms(self._queued_bytes()),
                "frames_played": self.frames_played,
                "frames_refused": self.frames_refused,
                "taking_audio": self.taking_audio,
            }

    def close(self) -> None:
        self.clear()
        with self._wakeup:
            self._closed = True
            self._wakeup.notify_all()
        if self._thread.ident is not None:
            self._thread.join(STOP_TIMEOUT_S)

    def _check_room(self, clip_bytes: int) -> None:
        queued = self._queued_bytes()
        bound = self.max_queue_seconds
        if bound is not None and (queued + clip_bytes) / echo_messages.BYTES_PER_SAMPLE / self.sample_rate > bound:
            raise QueueFull(
                f"the microphone queue holds {self._ms(queued) / 1000:.1f} s of audio and this clip is "
                f"{self._ms(clip_bytes) / 1000:.1f} s, over RELAY_MAX_MICROPHONE_QUEUE_SECONDS ({bound:g} s): "
                "wait for it to play, or POST /interrupt to empty it"
            )

    def _queued_bytes(self) -> int:
        return sum(clip.remaining for clip in self._clips) + (self._playing.remaining if self._playing else 0)

    def _ms(self, pcm_bytes: int) -> int:
        return echo_messages.pcm_duration_ms(pcm_bytes, self.sample_rate)

    def _run(self) -> None:
        utterance = MicrophoneUtterance()
        while True:
            with self._wakeup:
                while not self._clips and not self._closed:
                    self._wakeup.wait()
                if self._closed:
                    return
                clip = self._playing = self._clips.popleft()
            played_ms, clip_ms = self._ms(self._play(clip)), self._ms(len(clip.pcm))
            log.debug("microphone: clip %s played %d of %d ms", clip.clip_id, played_ms, clip_ms)
            utterance.add(played_ms, clip_ms)
            with self._wakeup:
                self._playing = None
                gap = not self._clips  # nothing queued to follow at once: the utterance ends here
            if gap:
                log.info("%s", utterance.line())
                utterance = MicrophoneUtterance()

    def _count(self, offered: int, taken: int) -> None:
        """Count what daily took; say once when it stops taking audio (it takes nothing outside a call)."""
        self.frames_played += taken
        self.frames_refused += offered - taken
        taking = taken == offered
        if self.taking_audio and not taking:
            log.warning(
                "microphone: Daily took %d of %d frames: the relay's microphone is not in the call", taken, offered
            )
        self.taking_audio = taking

    def _play(self, clip: _Clip) -> int:
        started = time.monotonic()
        played = 0
        while True:
            with self._wakeup:
                chunk = clip.pcm[clip.offset : clip.offset + self._write_bytes]
                clip.offset += len(chunk)
            if not chunk:
                return played
            self._count(len(chunk) // echo_messages.BYTES_PER_SAMPLE, self._device.write_frames(chunk))
            played += len(chunk)
            ahead = started + played / echo_messages.BYTES_PER_SAMPLE / self.sample_rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
