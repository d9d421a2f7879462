"""The relay's core: what every route, the script runner and the console share.

The settings, the room, the sender, the events, the microphone, the recorder
and the open utterances, and the two ways to make the face speak
(`speak_text`, `speak_audio`) that the HTTP routes and the script runner both
go through, so a script line is checked, split and confirmed exactly as a
request is.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from itertools import chain
from pathlib import Path
from typing import Any

import echo_messages
from config import Settings
from echo_messages import AudioRequest, new_inference_id
from relay.audio import AudioEcho, AudioLimits, UtteranceRates, decode
from relay.errors import MessageError, SendError, SendTimeout
from relay.events import EventLog, RoomEvents
from relay.microphone import Microphone
from relay.recorder import Recorder
from relay.script import ScriptRunner
from relay.sender import Sender
from relay.utterances import OpenUtterances


class Relay:
    """What the routes share: settings, the room, the sender, the events, the script runner."""

    def __init__(self, settings: Settings, room: Any, microphone_device: Any = None) -> None:
        self.settings = settings
        self.room = room
        self.started = time.monotonic()
        self.microphone = (
            Microphone(microphone_device, settings.sample_rate, max_queue_seconds=settings.max_microphone_queue_seconds)
            if microphone_device
            else None
        )
        self.recorder = Recorder(settings.record_file)
        self.events = EventLog(settings.event_buffer)
        self.room_events = RoomEvents(self.events, self.recorder)
        self.utterances = OpenUtterances()
        self._publish_joined_state()
        room.add_listener(self.room_events)
        self.sender = Sender(
            room,
            replica_timeout_s=settings.replica_timeout_s,
            send_timeout_s=settings.send_timeout_s,
            recorder=self.recorder,
        )
        self.script = ScriptRunner(self, line_timeout_s=settings.script_line_timeout_s)

    def speak_text(
        self,
        text: str,
        *,
        inference_id: str | None = None,
        conversation_id: str | None = None,
        done: bool = True,
        interrupt: bool = False,
        ticket: int | None = None,
    ) -> dict[str, Any]:
        """One text utterance, split to fit and confirmed by Daily; the answer's fields."""
        conversation_id = self.conversation_id_for(conversation_id)
        inference_id = inference_id or new_inference_id()
        messages = list(
            echo_messages.text_echo_messages(
                text,
                conversation_id=conversation_id,
                inference_id=inference_id,
                done=done,
                max_bytes=self.settings.max_message_bytes,
            )
        )
        sent = self.send(
            messages, interrupt=interrupt, conversation_id=conversation_id, inference_id=inference_id, ticket=ticket
        )
        return {"inference_id": inference_id, "messages_sent": sent, "conversation_id": conversation_id}

    def speak_audio(self, echo: AudioEcho, *, ticket: int | None = None) -> dict[str, Any]:
        """One audio utterance (or part of one), decoded as it is sent; the answer's fields."""
        request = echo.request
        conversation_id = self.conversation_id_for(request.conversation_id)
        inference_id = request.inference_id or new_inference_id()
        messages = echo_messages.audio_echo_messages(  # lazy: a file is decoded as it is sent
            echo.audio,
            sample_rate=echo.sample_rate,
            conversation_id=conversation_id,
            inference_id=inference_id,
            done=request.done,
            max_bytes=self.settings.max_message_bytes,
        )
        sent = self.send(
            messages, interrupt=request.interrupt, conversation_id=conversation_id, inference_id=inference_id, ticket=ticket
        )
        self.utterances.sent(
            inference_id, UtteranceRates(echo.input_rate or echo.sample_rate, echo.sample_rate), done=request.done
        )
        return {
            "inference_id": inference_id,
            "messages_sent": sent,
            "conversation_id": conversation_id,
            "audio_ms": echo.audio.audio_ms,
            "sample_rate": echo.sample_rate,
        }

    def speak_file(self, path: Path, *, inference_id: str | None = None) -> dict[str, Any]:
        """An audio file on this machine (a script's @audio line), as one whole utterance."""
        with path.open("rb") as source:
            request = AudioRequest(audio=source, inference_id=inference_id, done=True)
            return self.speak_audio(decode(request, self.audio_limits))

    @property
    def audio_limits(self) -> AudioLimits:
        """What every request's audio is held to, from the settings."""
        settings = self.settings
        return AudioLimits(settings.sample_rate, settings.max_audio_seconds, settings.max_audio_samples)

    def conversation_id_for(self, requested: str | None) -> str:
        """The joined room's id; a request naming another room is a mistake, not a redirect."""
        joined = self.room.conversation_id
        if self.room.mode == "dry-run":
            return requested or joined
        if requested is not None and requested != joined:
            raise MessageError(
                f"conversation_id {requested!r} is not this relay's conversation ({joined!r}); "
                "leave it out or run one relay per conversation"
            )
        return joined

    def send(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        interrupt: bool,
        conversation_id: str,
        inference_id: str,
        ticket: int,
    ) -> int:
        """Queue and wait; with `interrupt`, the face is cut off first and older requests dropped.

        `ticket` is the sender's generation when the request arrived: an
        interrupt since then (while the request was being read and built)
        drops it too.
        """
        if interrupt:
            messages = chain([echo_messages.interrupt_message(conversation_id)], messages)
            self.events.publish("relay.interrupted", reason="interrupt: true", inference_id=inference_id)
        try:
            return self.sender.confirm(self.sender.submit(messages, ticket=ticket, drop_queued=interrupt))
        except (SendError, SendTimeout) as error:
            self.events.publish("relay.send_failed", inference_id=inference_id, error=str(error))
            raise

    def _publish_joined_state(self) -> None:
        """The room joined before this relay listened to it, so the relay says so first."""
        if self.room.call_state == "joined":
            self.events.publish("relay.joined", conversation_id=self.room.conversation_id)
            if self.room.replica_present:
                self.events.publish("relay.replica_joined")

    def close(self) -> None:
        self.script.stop()
        self.events.close()
        if self.microphone is not None:
            self.microphone.close()
        self.sender.close()
        self.room_events.close()
        self.recorder.close()
