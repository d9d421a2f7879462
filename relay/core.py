"""The relay's core: what every route, the script runner and the console share.

The settings, the room, the sender, the events, the microphone, the recorder,
the open and tracked utterances, and the two ways to make the face speak
(`speak_text`, `speak_audio`, one shape: the parsed echo and the interrupt
ticket) that the HTTP routes and the script runner both go through, so a
script line is checked, split and confirmed exactly as a request is.

The class keeps the name `Relay` (the package's name too): renaming it would
touch every view and test for no change a user sees.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from pathlib import Path
from typing import Any

import echo_messages
from config import Settings
from echo_messages import AudioRequest, TextEcho, new_inference_id
from relay.audio import AudioEcho, AudioLimits, PcmStream, UtteranceRates, decode, resample_pcm
from relay.errors import Interrupted, MessageError, RelayError, SendError, SendTimeout
from relay.events import EventLog, RoomEventQueue
from relay.face_events import FaceSpeaking, ReportOrder, speaking_report, spoken_report
from relay.microphone import Microphone
from relay.recorder import Recorder
from relay.room import RelayRoom
from relay.script import ScriptRunner, Step, parse_script
from relay.sender import Sender
from relay.utterances import OpenUtterances, UtteranceTracker, WaitingRequests, spoken_fields

log = logging.getLogger("echo_relay")

IDLE_CHECK_MAX_S = 1.0  # an idle utterance is closed at most this late


class Relay:
    """What the routes share: settings, the room, the sender, the events, the utterances, the script runner."""

    def __init__(self, settings: Settings, room: RelayRoom, microphone_device: Any = None) -> None:
        self.settings = settings
        self.room = room
        self.started = time.monotonic()
        self.microphone = (
            Microphone(microphone_device, settings.sample_rate, max_queue_seconds=settings.max_microphone_queue_seconds)
            if microphone_device
            else None
        )
        self.recorder = Recorder(settings.record_file)
        self.events = EventLog(settings.event_buffer, settings.event_buffer_bytes)
        self.face_speaking = FaceSpeaking()
        self.report_order = ReportOrder()
        self.tracker = UtteranceTracker()
        self.waiting = WaitingRequests(settings.max_waiting_for_face)
        self.room_events = RoomEventQueue(self.events, self.recorder, self._heard)
        self.utterances = OpenUtterances()
        self.sender = Sender(
            room,
            replica_timeout_s=settings.replica_timeout_s,
            send_timeout_s=settings.send_timeout_s,
            connection_timeout_s=settings.connection_timeout_s,
            recorder=self.recorder,
        )
        self.script = ScriptRunner(self, line_timeout_s=settings.script_line_timeout_s)
        self._closing = threading.Event()
        self._idle_closer: threading.Thread | None = None

    def start(self) -> None:
        """Start listening to the room and the threads that work in the background; `close()` stops them."""
        self.room_events.start()
        self._publish_joined_state()
        self.room.add_listener(self.room_events)
        if self.microphone is not None:
            self.microphone.start()
        if self.settings.utterance_idle_close_s > 0:
            self._idle_closer = threading.Thread(
                target=self._close_idle_utterances, name="relay-idle-close", daemon=True
            )
            self._idle_closer.start()

    @property
    def ticket(self) -> int:
        """Taken by a request as it arrives: an interrupt after that drops the request (see Sender.ticket)."""
        return self.sender.ticket

    # --- speaking --------------------------------------------------------------------------

    def speak_text(self, echo: TextEcho, *, ticket: int | None = None, wait: str | None = None) -> dict[str, Any]:
        """One text utterance, split to fit and confirmed by Daily; the answer's fields.

        With `wait` ("spoken" or "started") the answer comes once the face
        reported it, with `spoken` (see `_waited`)."""
        with self.waiting.place(wait):
            return self._speak_text(echo, ticket=ticket, wait=wait)

    def _speak_text(self, echo: TextEcho, *, ticket: int | None, wait: str | None) -> dict[str, Any]:
        conversation_id = self.conversation_id_for(echo.conversation_id)
        inference_id = echo.inference_id or new_inference_id()
        self.tracker.arrived(inference_id)
        messages = echo_messages.text_echo_messages(  # split before the request takes its turn: a text that
            echo.text,  # cannot be split sends nothing
            conversation_id=conversation_id,
            inference_id=inference_id,
            done=echo.done,
            max_bytes=self.settings.max_message_bytes,
        )
        sent = self.send(
            messages,
            interrupt=echo.interrupt,
            conversation_id=conversation_id,
            inference_id=inference_id,
            ticket=ticket,
        )
        answer = {"inference_id": inference_id, "messages_sent": sent, "conversation_id": conversation_id}
        return self._waited(answer, wait, 0.0)

    def speak_audio(self, echo: AudioEcho, *, ticket: int | None = None, wait: str | None = None) -> dict[str, Any]:
        """One audio utterance (or part of one), decoded as it is sent; the answer's fields (`wait` as for text)."""
        with self.waiting.place(wait):
            return self._speak_audio(echo, ticket=ticket, wait=wait)

    def _speak_audio(self, echo: AudioEcho, *, ticket: int | None, wait: str | None) -> dict[str, Any]:
        request = echo.request
        conversation_id = self.conversation_id_for(request.conversation_id)
        inference_id = request.inference_id or new_inference_id()
        with self.utterances.sending(inference_id):
            self.tracker.arrived(inference_id)
            messages = echo_messages.audio_echo_messages(  # lazy: a file is decoded as it is sent
                echo.audio,
                sample_rate=echo.sample_rate,
                conversation_id=conversation_id,
                inference_id=inference_id,
                done=request.done,
                max_bytes=self.settings.max_message_bytes,
            )
            sent = self.send(
                messages, interrupt=request.interrupt, conversation_id=conversation_id, inference_id=inference_id,
                ticket=ticket,
            )
            rates = UtteranceRates(echo.input_rate or echo.sample_rate, echo.sample_rate)
            self.utterances.sent(inference_id, rates, done=request.done, ticket=self.sender.ticket)
        answer = {
            "inference_id": inference_id,
            "messages_sent": sent,
            "conversation_id": conversation_id,
            "audio_ms": echo.audio.audio_ms,
            "sample_rate": echo.sample_rate,
        }
        return self._waited(answer, wait, echo.audio.audio_ms / 1000)

    def speak_file(self, path: Path, *, inference_id: str | None = None) -> dict[str, Any]:
        """An audio file on this machine (a script's @audio line), as one whole utterance."""
        with path.open("rb") as source:
            request = AudioRequest(audio=source, inference_id=inference_id, done=True)
            return self.speak_audio(decode(request, self.audio_limits))

    def play_on_microphone(self, echo: AudioEcho) -> dict[str, Any]:
        """POST /microphone: the clip, at the microphone's rate, queued behind the others."""
        assert self.microphone is not None
        pcm = b"".join(echo.audio)
        if not pcm:
            raise MessageError(echo_messages.MICROPHONE_AUDIO_EMPTY)
        if echo.sample_rate != self.microphone.sample_rate:
            pcm = resample_pcm(pcm, echo.sample_rate, self.microphone.sample_rate)
        return self.microphone.enqueue(pcm)

    @property
    def audio_limits(self) -> AudioLimits:
        """What every request's audio is held to, from the settings."""
        settings = self.settings
        return AudioLimits(settings.sample_rate, settings.max_audio_seconds, settings.max_audio_samples)

    def utterance(self, inference_id: str) -> dict[str, Any] | None:
        """GET /utterances/<inference_id>: what became of it (see UtteranceTracker), None if not among the last."""
        return self.tracker.get(inference_id)

    def _waited(self, answer: dict[str, Any], wait: str | None, audio_s: float) -> dict[str, Any]:
        """`answer`, and with `wait`, what the face reported: `spoken` {started_after_ms, duration_s,
        interrupted}, or `spoken: null` and `spoken_timeout_s` when it did not report within
        RELAY_SPOKEN_TIMEOUT (plus the audio's own length): the messages were sent all the same."""
        if wait is None:
            return answer
        timeout = self.settings.spoken_timeout_s + audio_s
        utterance = self.tracker.wait(answer["inference_id"], wait, timeout, give_up=self._face_gone)
        if utterance is None:
            return {**answer, "spoken": None, "spoken_timeout_s": round(timeout, 3)}
        return {**answer, "spoken": spoken_fields(utterance)}

    def _face_gone(self) -> bool:
        return self.room.delivery_problem() is not None

    def conversation_id_for(self, requested: str | None) -> str:
        """The joined room's id (the dry run's is "dry-run"); a request naming another room is a mistake,
        in the dry run as in a room, not a redirect."""
        joined = self.room.conversation_id
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
        ticket: int | None,
    ) -> int:
        """Queue and wait; with `interrupt`, the face is cut off first and older requests dropped.

        `ticket` is the sender's ticket when the request arrived: an
        interrupt since then (while the request was being read and built)
        drops it too. The tracker follows the request: sending at its first
        message, sent once Daily confirmed all, interrupted or failed.
        """
        if interrupt:
            self.interrupted(reason="interrupt: true", keep=inference_id)
            messages = chain([echo_messages.interrupt_message(conversation_id)], messages)
        try:
            sent = self.sender.confirm(
                self.sender.submit(self._marked(messages, inference_id), ticket=ticket, drop_queued=interrupt)
            )
        except Interrupted as error:
            self.tracker.failed(inference_id, str(error), interrupted=True)
            raise
        except (SendError, SendTimeout) as error:
            self.tracker.failed(inference_id, str(error), interrupted=False)
            self.events.publish("relay.send_failed", inference_id=inference_id, error=str(error))
            raise
        except RelayError as error:
            self.tracker.failed(inference_id, str(error), interrupted=False)
            raise
        self.tracker.sent(inference_id)
        return sent

    def interrupt(self) -> dict[str, Any]:
        """POST /interrupt: cut the face off now, and everything the relay was about to say with it."""
        conversation_id = self.conversation_id_for(None)
        self.room.check_open()
        clips_dropped = self.interrupted(reason="POST /interrupt")
        dispatched, dropped = self.sender.interrupt(conversation_id)
        return {
            "messages_sent": self.sender.confirm(dispatched),
            "requests_dropped": dropped,
            "microphone_clips_dropped": clips_dropped,
            "conversation_id": conversation_id,
        }

    def interrupted(self, *, reason: str, keep: str | None = None) -> int:
        """Every interrupt, however it came (POST /interrupt, or `"interrupt": true` on the request `keep`), does
        this before it goes on the wire: a script run ends, the microphone's queue is emptied, every open
        utterance is cut off (none gets its `done`), every utterance sent and not yet spoken is marked
        interrupted (its waits answer at once), and listeners are told. How many microphone clips were dropped."""
        self.script.halt()
        clips_dropped = self.microphone.clear() if self.microphone is not None else 0
        self.utterances.forget()
        self.tracker.cut_off(keep=keep)
        report: dict[str, Any] = {"reason": reason, "microphone_clips_dropped": clips_dropped}
        if keep is not None:
            report["inference_id"] = keep
        self.events.publish("relay.interrupted", **report)
        return clips_dropped

    def _marked(self, messages: Iterable[Mapping[str, Any]], inference_id: str) -> Iterator[Mapping[str, Any]]:
        """`messages`, noting in the tracker when the first one goes on the wire."""
        first = True
        for message in messages:
            if first:
                self.tracker.sending(inference_id)
                first = False
            yield message

    def _heard(self, message: Any, sender: str) -> None:
        """Every app message from the room, on the events thread: the face's speaking reports move the
        tracker, and each change of whether it speaks is one `relay.speaking` event, however many duplicates;
        its final word on what it said of an utterance is kept there too, and told once as `relay.said`.

        Only the face's own: every participant sees every `inference_id` the relay sends, and one that
        reported the face stopped would end a wait, mark it spoken and start a script's next line. A report
        older (by `seq`) than one applied already is not applied either (see ReportOrder)."""
        if not self.room.is_face(sender):
            return
        said = spoken_report(message)
        if said is not None and (text := self.tracker.face_said(said)) is not None:
            self.events.publish("relay.said", inference_id=said.inference_id, text=text, interrupted=said.interrupted)
        report = speaking_report(message)
        if report is None or not self.report_order.fresh(sender, report):
            return
        self.tracker.face_reported(report)
        change = self.face_speaking.update(report)
        if change is not None:
            self.events.publish("relay.speaking", **change)

    # --- utterances left open ----------------------------------------------------------------

    def _close_idle_utterances(self) -> None:
        idle_s = self.settings.utterance_idle_close_s
        while not self._closing.wait(min(IDLE_CHECK_MAX_S, max(0.01, idle_s / 5))):
            for inference_id, rates, ticket, waited in self.utterances.idle(idle_s):
                self.close_utterance(inference_id, rates, ticket=ticket, idle_s=waited)

    def close_utterance(self, inference_id: str, rates: UtteranceRates, *, ticket: int | None, idle_s: float) -> None:
        """Close an utterance left open: its 40 ms of silence at its own rate with `done: true`, through the
        sender in its turn (an interrupt since its last chunk means it was cut off: nothing is sent)."""
        silence = PcmStream.of(echo_messages.silence(echo_messages.SILENCE_MS, rates.sent_rate), rates.sent_rate)
        conversation_id = self.room.conversation_id
        messages = echo_messages.audio_echo_messages(
            silence, sample_rate=rates.sent_rate, conversation_id=conversation_id, inference_id=inference_id,
            done=True, max_bytes=self.settings.max_message_bytes,
        )
        try:
            self.send(
                messages, interrupt=False, conversation_id=conversation_id, inference_id=inference_id, ticket=ticket
            )
        except Interrupted:
            return
        except RelayError as error:
            log.warning("could not close utterance %s left open: %s", inference_id[:80], error)
            return
        log.info("closed utterance %s: nothing arrived for it for %.1f s", inference_id[:80], idle_s)
        self.events.publish("relay.utterance_closed", inference_id=inference_id, idle_s=round(idle_s, 1))

    # --- scripts -------------------------------------------------------------------------------

    def load_script(self, text: str, name: str) -> dict[str, Any]:
        """POST /script: a script from a request, its @audio names only inside RELAY_AUDIO_DIR."""
        steps: list[Step] = parse_script(text, self.settings.audio_folder(), name=name, confined=True)
        return self.script.load(steps, name)

    # --- what the relay knows --------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """GET /health with the token: the room, the face, the wire, the latency, the streams, the microphone."""
        room = self.room
        return {
            "status": "ok",
            "mode": room.mode,
            "sample_rate": self.settings.sample_rate,
            "call_state": room.call_state,
            "left_reason": room.left_reason if room.call_state == "left" else None,
            "conversation_id": room.conversation_id,
            "replica_present": room.replica_present,
            "face": room.face,
            "connection": room.connection,
            "replica_speaking": self.face_speaking.speaking,
            "last_event_id": self.events.last_id,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "messages_sent": self.sender.messages_sent,
            "send_errors": self.sender.send_errors,
            "queue_depth": self.sender.queue_depth,
            "oldest_wait_s": self.sender.oldest_wait_s,
            "latency": self.tracker.latency(),
            "event_streams": self.events.listeners,
            "microphone": self.microphone.status() if self.microphone else {"enabled": False},
            "auth_required": self.settings.auth_token is not None,
        }

    # --- the rest ------------------------------------------------------------------------------

    def _publish_joined_state(self) -> None:
        """The room joined before this relay listened to it, so the relay says so first."""
        if self.room.call_state == "joined":
            self.events.publish("relay.joined", conversation_id=self.room.conversation_id)
            face = self.room.face
            if face["present"]:
                self.events.publish(
                    "relay.replica_joined", participant_id=face["participant_id"], signal=face["signal"]
                )

    def close(self) -> None:
        self._closing.set()
        self.script.stop()
        self.events.close()
        if self.microphone is not None:
            self.microphone.close()
        if self._idle_closer is not None:
            self._idle_closer.join(2)
        self.sender.close()
        self.room_events.close()
        self.recorder.close()
