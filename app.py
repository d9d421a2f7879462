"""The echo relay: POST JSON or audio to localhost, the Tavus face says it.

One process, one daily-python CallClient (owned by `Room`), one sender thread
(`Sender`) that puts every request's messages on the wire in arrival order and
waits for Daily to confirm them. Flask routes only parse, build and wait.
Run `python app.py --help` for the modes.
"""

from __future__ import annotations

import argparse
import heapq
import hmac
import io
import json
import logging
import queue
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent import futures
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import IO, Any, BinaryIO
from urllib.parse import urlparse

import daily
import waitress
from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, UnsupportedMediaType

import echo_messages
from config import ConfigError, Settings
from echo_messages import MessageError
from tavus_client import TavusAPIError, TavusClient, persona_id_of

log = logging.getLogger("echo_relay")

JOIN_TIMEOUT_S = 60.0  # daily gives up on an unreachable room after ~19 s by itself
LEAVE_TIMEOUT_S = 5.0
REPLICA_POLL_S = 0.05  # how often a request waiting for the face re-checks interrupts and the call state
SERVER_THREADS = 16  # for requests; event streams get MAX_EVENT_LISTENERS more
JSON_MIMETYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain", "")
AUDIO_FILE_MIMETYPES = (
    "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/mpeg", "audio/mp3", "audio/flac",
    "audio/x-flac", "audio/ogg", "audio/opus", "application/ogg", "application/octet-stream",
)
TAVUS_REPLICA_USER_ID = "tavus-replica"
PUBLIC_PATHS = ("/health", "/openapi.json")  # no token needed: they carry nothing from the conversation
MICROPHONE_DEVICE_NAME = "echo-relay-microphone"
MICROPHONE_FRAME_MS = 10  # daily pads writes to 10 ms multiples; clips are padded so none is cut or padded mid-stream
MICROPHONE_WRITE_MS = 20  # per write: an interrupt silences the microphone within this
EVENT_KEEPALIVE_S = 15.0  # an SSE comment this often keeps proxies from cutting an idle stream
EVENT_REORDER_WINDOW_S = 0.005  # room messages with a `seq` arriving this close together are put in seq order
MAX_EVENT_LISTENERS = 64  # each SSE stream holds a server thread; POSTs keep SERVER_THREADS of their own
QUICKSTART_PERSONA_NAME = "Echo Assistant"
QUICKSTART_CONVERSATION_NAME = "Echo relay"


# --- errors a request can end in (status codes in one place: _error_response) --


class RelayError(Exception):
    """A request could not be delivered; `status` is the HTTP status the caller gets."""

    status = 500


class NotJoined(RelayError):
    status = 503


class ReplicaAbsent(RelayError):
    status = 503


class ConversationEnded(RelayError):
    status = 503


class SendError(RelayError):
    status = 502


class SendTimeout(RelayError):
    status = 504


class Interrupted(RelayError):
    status = 409


class ModeError(RelayError):
    status = 409


class TooManyListeners(RelayError):
    status = 503


class JoinError(Exception):
    """The room could not be joined; main() prints it and exits non-zero."""


# --- the room ------------------------------------------------------------------


def conversation_id_from_url(url: str) -> str:
    """`https://tavus.daily.co/c123` -> `c123`: Tavus names the room after the conversation."""
    segments = [segment for segment in urlparse(url).path.split("/") if segment]
    if not segments:
        raise JoinError(f"{url!r} is not a conversation URL: expected one like https://tavus.daily.co/c123")
    return segments[-1]


_daily_init_lock = threading.Lock()
_daily_initialized = False


def _init_daily() -> None:
    """Daily.init() once per process, before the first client or device."""
    global _daily_initialized
    with _daily_init_lock:
        if not _daily_initialized:
            daily.Daily.init(log_level=daily.LogLevel.Off)
            _daily_initialized = True


def daily_call_client(event_handler: daily.EventHandler) -> daily.CallClient:
    _init_daily()
    return daily.CallClient(event_handler=event_handler)


def daily_microphone_device(sample_rate: int) -> Any:
    """The process's one virtual microphone; blocking, so each write takes the audio's real time."""
    _init_daily()
    return daily.Daily.create_microphone_device(
        MICROPHONE_DEVICE_NAME, sample_rate=sample_rate, channels=1, non_blocking=False
    )


def microphone_client_settings() -> dict[str, Any]:
    """Join with the virtual microphone as input and the camera off."""
    return {
        "inputs": {
            "camera": False,
            "microphone": {"isEnabled": True, "settings": {"deviceId": MICROPHONE_DEVICE_NAME}},
        }
    }


class Room:
    """The one CallClient, joined to one conversation's Daily room.

    daily-python calls back on its own threads; the callbacks here only record
    state and hand events on, never call back into the client (that can deadlock).
    """

    mode = "room"

    def __init__(
        self,
        conversation_url: str,
        *,
        client_factory: Callable[..., Any] = daily_call_client,
        client_settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.conversation_url = conversation_url
        self.conversation_id = conversation_id_from_url(conversation_url)
        self.call_state = "new"
        self.left_reason: str | None = None
        self._client_settings = dict(client_settings) if client_settings else None
        self._replica_ids: set[str] = set()
        self._replica_here = threading.Event()
        self._listeners: list[Callable[[str, Mapping[str, Any]], None]] = []
        self._client = client_factory(event_handler=_RoomEvents(self))

    @property
    def replica_present(self) -> bool:
        return self._replica_here.is_set()

    def add_listener(self, listener: Callable[[str, Mapping[str, Any]], None]) -> None:
        """`listener(event_type, data)` for the relay's own events and the room's app messages."""
        self._listeners.append(listener)

    def join(self, timeout: float = JOIN_TIMEOUT_S) -> None:
        joined: Future[Any] = Future()

        def on_joined(data: Any, error: str | None) -> None:  # runs on a Daily thread
            if error:
                joined.set_exception(JoinError(str(error)))
            else:
                joined.set_result(data)

        self.call_state = "joining"
        self._client.join(self.conversation_url, client_settings=self._client_settings, completion=on_joined)
        try:
            joined.result(timeout)
        except futures.TimeoutError:
            raise JoinError(f"Daily did not finish joining within {timeout:g} s") from None
        self.call_state = "joined"
        for participant in self._client.participants().values():
            self._see_participant(participant)
        self._emit("relay.joined", {"conversation_id": self.conversation_id})

    def send(self, message: Mapping[str, Any]) -> Future[None]:
        sent: Future[None] = Future()

        def on_sent(error: str | None) -> None:  # runs on a Daily thread
            if error:
                sent.set_exception(SendError(str(error)))
            else:
                sent.set_result(None)

        self._client.send_app_message(dict(message), completion=on_sent)
        return sent

    def check_open(self) -> None:
        """Raise what a request sent now would run into."""
        if self.call_state == "left":
            reason = f" ({self.left_reason})" if self.left_reason else ""
            raise ConversationEnded(f"the conversation has ended{reason}; start the relay with a new conversation")
        if self.call_state != "joined":
            raise NotJoined(f"the relay has not joined the room yet (call state: {self.call_state})")

    def wait_for_replica(self, timeout: float) -> bool:
        return self._replica_here.wait(timeout)

    def delivery_problem(self) -> RelayError | None:
        """Why a request being sent right now should stop: the call ended or the face left."""
        if self.call_state == "left":
            reason = f" ({self.left_reason})" if self.left_reason else ""
            return ConversationEnded(f"the conversation ended mid-utterance{reason}")
        if not self.replica_present:
            return ReplicaAbsent("the face (Tavus replica) left the room mid-utterance")
        return None

    def leave(self, timeout: float = LEAVE_TIMEOUT_S) -> None:
        """Leave the call if in it, then release the client; safe to call twice."""
        if self.call_state in ("joined", "joining"):
            self.left_reason = self.left_reason or "the relay stopped"
            left: Future[None] = Future()
            self._client.leave(completion=lambda error: left.set_result(None))
            try:
                left.result(timeout)
            except futures.TimeoutError:
                log.warning("Daily did not confirm leaving within %g s", timeout)
        if self.call_state != "released":
            self.call_state = "released"
            self._client.release()

    def _see_participant(self, participant: Mapping[str, Any]) -> None:
        info = participant.get("info") or {}
        if TAVUS_REPLICA_USER_ID in str(info.get("userId") or "") and not info.get("isLocal"):
            self._replica_ids.add(str(participant.get("id")))
            self._mark_replica_here({"participant_id": participant.get("id"), "name": info.get("userName")})

    def _mark_replica_here(self, data: Mapping[str, Any]) -> None:
        if not self._replica_here.is_set():
            self._replica_here.set()
            self._emit("relay.replica_joined", data)

    def _participant_left(self, participant: Mapping[str, Any], reason: Any) -> None:
        participant_id = str(participant.get("id"))
        if participant_id in self._replica_ids:
            self._replica_ids.discard(participant_id)
            if not self._replica_ids:
                self._replica_here.clear()
            self._emit("relay.replica_left", {"participant_id": participant_id, "reason": reason})

    def _call_state_changed(self, state: str) -> None:
        if self.call_state == "released":
            return
        self.call_state = state
        if state == "left":
            self._replica_here.clear()
            self._emit("relay.left", {"reason": self.left_reason})

    def _app_message(self, message: Any, sender: str) -> None:
        if isinstance(message, Mapping) and message.get("event_type") == "system.replica_joined":
            self._mark_replica_here({"participant_id": sender})
        self._emit("app_message", {"sender": sender, "message": message})

    def _emit(self, event_type: str, data: Mapping[str, Any]) -> None:
        for listener in list(self._listeners):
            listener(event_type, data)


class _RoomEvents(daily.EventHandler):
    """daily-python's callbacks, forwarded to the Room (on Daily's threads)."""

    def __init__(self, room: Room) -> None:
        super().__init__()
        self._room = room

    def on_participant_joined(self, participant: Mapping[str, Any]) -> None:
        self._room._see_participant(participant)

    def on_participant_updated(self, participant: Mapping[str, Any]) -> None:
        self._room._see_participant(participant)

    def on_participant_left(self, participant: Mapping[str, Any], reason: Any) -> None:
        self._room._participant_left(participant, reason)

    def on_call_state_updated(self, state: str) -> None:
        self._room._call_state_changed(state)

    def on_app_message(self, message: Any, sender: str) -> None:
        self._room._app_message(message, sender)

    def on_error(self, message: str) -> None:
        self._room.left_reason = str(message)
        log.warning("Daily reported an error: %s", message)


class DryRunRoom:
    """No Daily room: each message "sent" is one JSON line on stdout, confirmed at once."""

    mode = "dry-run"
    conversation_id: str | None = None
    call_state = "dry-run"
    replica_present = True

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out or sys.stdout
        self._lock = threading.Lock()

    def add_listener(self, listener: Callable[[str, Mapping[str, Any]], None]) -> None:
        """A dry run has no room, so nothing ever arrives."""

    def join(self, timeout: float = JOIN_TIMEOUT_S) -> None:
        """Nothing to join."""

    def check_open(self) -> None:
        """Always open."""

    def wait_for_replica(self, timeout: float) -> bool:
        return True

    def delivery_problem(self) -> None:
        """Nothing can go wrong mid-utterance without a room."""

    def send(self, message: Mapping[str, Any]) -> Future[None]:
        line = json.dumps(message)
        with self._lock:
            print(line, file=self._out, flush=True)
        sent: Future[None] = Future()
        sent.set_result(None)
        return sent

    def leave(self, timeout: float = LEAVE_TIMEOUT_S) -> None:
        """Nothing to leave."""


# --- microphone echo ---------------------------------------------------------------


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


class Microphone:
    """Plays queued clips through the relay's microphone in real time, one background thread.

    Clips are padded to whole 10 ms frames and played back to back, so the
    track stays continuous between clips. The thread also paces itself by the
    clock, so a device that does not block (or the dry run's) keeps real time.
    """

    def __init__(self, device: Any, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.frames_played = 0
        self._device = device
        self._write_bytes = sample_rate * MICROPHONE_WRITE_MS // 1000 * echo_messages.BYTES_PER_SAMPLE
        self._frame_bytes = sample_rate * MICROPHONE_FRAME_MS // 1000 * echo_messages.BYTES_PER_SAMPLE
        self._clips: deque[_Clip] = deque()
        self._playing: _Clip | None = None
        self._wakeup = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="relay-microphone", daemon=True)
        self._thread.start()

    def enqueue(self, pcm: bytes) -> dict[str, Any]:
        pcm += bytes(-len(pcm) % self._frame_bytes)
        clip = _Clip(uuid.uuid4().hex, pcm)
        with self._wakeup:
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
            }

    def close(self) -> None:
        self.clear()
        with self._wakeup:
            self._closed = True
            self._wakeup.notify_all()
        self._thread.join(LEAVE_TIMEOUT_S)

    def _queued_bytes(self) -> int:
        return sum(clip.remaining for clip in self._clips) + (self._playing.remaining if self._playing else 0)

    def _ms(self, pcm_bytes: int) -> int:
        return echo_messages.pcm_duration_ms(pcm_bytes, self.sample_rate)

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._clips and not self._closed:
                    self._wakeup.wait()
                if self._closed:
                    return
                clip = self._playing = self._clips.popleft()
            played = self._play(clip)
            log.info("microphone: clip %s played %d of %d ms", clip.clip_id, self._ms(played), self._ms(len(clip.pcm)))
            with self._wakeup:
                self._playing = None

    def _play(self, clip: _Clip) -> int:
        started = time.monotonic()
        played = 0
        while True:
            with self._wakeup:
                chunk = clip.pcm[clip.offset : clip.offset + self._write_bytes]
                clip.offset += len(chunk)
            if not chunk:
                return played
            self._device.write_frames(chunk)
            played += len(chunk)
            self.frames_played += len(chunk) // echo_messages.BYTES_PER_SAMPLE
            ahead = started + played / echo_messages.BYTES_PER_SAMPLE / self.sample_rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)


# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    time: float
    fields: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "time": self.time, **self.fields}

    def sse(self) -> str:
        return _sse_frame(self.as_dict(), event_id=self.id)


def _sse_frame(event: Mapping[str, Any], *, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


def events_dropped(count: int) -> dict[str, Any]:
    """Told to a listener that asked for events older than the buffer holds (it has no id of its own)."""
    return {"type": "relay.events_dropped", "time": time.time(), "count": count}


class EventLog:
    """Every event the relay reports, numbered from 1, in a bounded buffer that listeners read by id.

    Publishing only appends and wakes readers; a slow listener falls behind in
    the buffer (and is told how many it missed) instead of slowing anyone.
    """

    def __init__(self, capacity: int) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self._next_id = 1
        self._changed = threading.Condition()
        self._closed = False
        self._listeners = 0

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    def publish(self, event_type: str, **fields: Any) -> Event:
        with self._changed:
            event = Event(self._next_id, event_type, time.time(), fields)
            self._next_id += 1
            self._events.append(event)
            self._changed.notify_all()
        return event

    def after(self, last_id: int) -> tuple[list[Event], int]:
        """Events newer than `last_id`, and how many newer ones the buffer no longer holds."""
        with self._changed:
            if last_id > self.last_id:  # an id from an earlier run of the relay: start over
                last_id = 0
            if not self._events or last_id >= self._events[-1].id:
                return [], 0
            first = self._events[0].id
            start = max(0, last_id - first + 1)
            return list(islice(self._events, start, None)), max(0, first - last_id - 1)

    def wait_after(self, last_id: int, timeout: float) -> bool:
        """Wait until there is an event newer than `last_id` (or the log closed); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._closed or self.last_id > last_id, timeout)

    def stream(self, last_id: int) -> Iterator[str]:
        """Server-Sent Events from `last_id` on, with keep-alive comments, until the log closes."""
        with self._changed:
            if self._listeners >= MAX_EVENT_LISTENERS:
                raise TooManyListeners(
                    f"{MAX_EVENT_LISTENERS} event streams are open already: close one, or poll GET /events?after=<id>"
                )
            self._listeners += 1
        return self._frames(last_id)

    def _frames(self, cursor: int) -> Iterator[str]:
        try:
            yield "retry: 2000\n\n"
            while True:
                events, dropped = self.after(cursor)
                if dropped:
                    yield _sse_frame(events_dropped(dropped))
                for event in events:
                    yield event.sse()
                    cursor = event.id
                if self._closed:
                    return
                if not self.wait_after(cursor, EVENT_KEEPALIVE_S):
                    yield ": keep-alive\n\n"
        finally:
            with self._changed:
                self._listeners -= 1

    def close(self) -> None:
        """End every stream, so stopping the server does not wait for listeners to hang up."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()


class RoomEvents:
    """The room's events, off Daily's threads: ordered by `seq`, published, recorded, and read for speaking.

    The Room calls this object on Daily's threads; it only queues. One thread
    holds app messages that carry a `seq` for EVENT_REORDER_WINDOW_S and
    releases them in seq order (Tavus's events can arrive out of order, and
    some twice, with unified and legacy role names: both are passed on).
    """

    def __init__(self, log: EventLog, recorder: Recorder) -> None:
        self.replica_speaking = False
        self._log = log
        self._recorder = recorder
        self._inbox: queue.SimpleQueue[tuple[str, Mapping[str, Any]] | None] = queue.SimpleQueue()
        self._held: list[tuple[Any, int, Mapping[str, Any]]] = []
        self._held_since = 0.0
        self._arrivals = 0
        self._thread = threading.Thread(target=self._run, name="relay-events", daemon=True)
        self._thread.start()

    def __call__(self, event_type: str, data: Mapping[str, Any]) -> None:
        self._inbox.put((event_type, data))

    def close(self) -> None:
        self._inbox.put(None)
        self._thread.join(LEAVE_TIMEOUT_S)

    def _run(self) -> None:
        while True:
            timeout = None if not self._held else max(0.0, self._held_since + EVENT_REORDER_WINDOW_S - time.monotonic())
            try:
                item = self._inbox.get(timeout=timeout)
            except queue.Empty:
                self._release_held()
                continue
            if item is None:
                self._release_held()
                return
            event_type, data = item
            seq = _seq_of(data)
            if event_type == "app_message" and seq is not None:
                if not self._held:
                    self._held_since = time.monotonic()
                self._arrivals += 1
                heapq.heappush(self._held, (seq, self._arrivals, data))
            else:
                self._publish(event_type, data)

    def _release_held(self) -> None:
        while self._held:
            _, _, data = heapq.heappop(self._held)
            self._publish("app_message", data)

    def _publish(self, event_type: str, data: Mapping[str, Any]) -> None:
        if event_type != "app_message":
            self._log.publish(event_type, **data)
            return
        message = data["message"]
        kind = message.get("event_type") if isinstance(message, Mapping) else None
        self._log.publish(kind if isinstance(kind, str) and kind else "app_message", **data)
        self._recorder.record("in", message, sender=data["sender"])
        speaking = _replica_speaking_after(message)
        if speaking is not None:
            self.replica_speaking = speaking


def _seq_of(data: Mapping[str, Any]) -> Any:
    message = data.get("message")
    seq = message.get("seq") if isinstance(message, Mapping) else None
    return seq if isinstance(seq, (int, float)) and not isinstance(seq, bool) else None


def _replica_speaking_after(message: Any) -> bool | None:
    """True/False when `message` says the face started/stopped speaking; None when it says neither."""
    if not isinstance(message, Mapping):
        return None
    kind = message.get("event_type")
    if kind in ("conversation.replica.started_speaking", "conversation.replica.stopped_speaking"):
        return kind.endswith("started_speaking")
    properties = message.get("properties")
    role = properties.get("role") if isinstance(properties, Mapping) else None
    if kind in ("conversation.started_speaking", "conversation.stopped_speaking") and role in ("replica", "pal"):
        return kind.endswith("started_speaking")
    return None


# --- recording -------------------------------------------------------------------


class Recorder:
    """Appends every outgoing message to RELAY_RECORD_FILE as one JSON line."""

    def __init__(self, path: str | None) -> None:
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 (closed in close())
        self._lock = threading.Lock()

    def record(self, direction: str, message: Any, **extra: Any) -> None:
        if self._file is None:
            return
        line = json.dumps({"time": time.time(), "direction": direction, **extra, "message": message}, ensure_ascii=False)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            with self._lock:
                self._file.close()
                self._file = None


# --- the sender -------------------------------------------------------------------


@dataclass
class Dispatch:
    """What the sender put on the wire for one request: a future per message, in order."""

    sent: list[Future[None]]
    cut_short: bool  # an interrupt or a send error stopped it before its last message
    error: MessageError | RelayError | None = None  # bad audio halfway, the face left, the call ended


@dataclass
class _Job:
    messages: Iterable[Mapping[str, Any]]
    generation: int
    is_interrupt: bool
    replica_deadline: float
    result: Future[Dispatch] = field(default_factory=Future)


class Sender:
    """One thread sends every request's messages, contiguous and in arrival order.

    A job's messages go out back to back; the request's own thread then awaits
    their confirmations together (`confirm`), so the sender moves on to the
    next request at once. Waiting for each confirmation before the next send
    would cap an utterance at one message per round trip. An interrupt bumps
    the generation; every job of an older generation stops at its next message.
    """

    def __init__(self, room: Any, *, replica_timeout_s: float, send_timeout_s: float, recorder: Recorder) -> None:
        self._room = room
        self._replica_timeout_s = replica_timeout_s
        self._send_timeout_s = send_timeout_s
        self._recorder = recorder
        self._jobs: deque[_Job] = deque()
        self._wakeup = threading.Condition()
        self._generation = 0
        self._closed = False
        self._counts_lock = threading.Lock()
        self.messages_sent = 0
        self.send_errors = 0
        self._thread = threading.Thread(target=self._run, name="relay-sender", daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        return len(self._jobs)

    def submit(self, messages: Iterable[Mapping[str, Any]], *, drop_queued: bool = False) -> Future[Dispatch]:
        """Queue one request's messages; the future resolves once they are all handed to Daily.

        `drop_queued` is for a request that starts with its own interrupt: what
        was queued before it would only be cut off by it.
        """
        self._room.check_open()
        with self._wakeup:
            if drop_queued:
                self._drop_queued()
            job = _Job(messages, self._generation, False, time.monotonic() + self._replica_timeout_s)
            self._enqueue(job)
        return job.result

    def interrupt(self, conversation_id: str) -> tuple[Future[Dispatch], int]:
        """Drop queued requests, stop the one being sent, send `conversation.interrupt` next.

        An interrupt already waiting at the front is shared, not repeated: a
        second one sent right after it would cut off nothing more.
        """
        self._room.check_open()
        with self._wakeup:
            dropped = self._drop_queued()
            if self._jobs and self._jobs[0].is_interrupt:
                return self._jobs[0].result, dropped
            job = _Job([echo_messages.interrupt_message(conversation_id)], self._generation, True, 0.0)
            self._enqueue(job, first=True)
        return job.result, dropped

    def close(self, timeout: float = LEAVE_TIMEOUT_S) -> None:
        with self._wakeup:
            self._closed = True
            self._drop_queued()
            self._wakeup.notify_all()
        self._thread.join(timeout)

    def _enqueue(self, job: _Job, *, first: bool = False) -> None:
        if self._closed:
            job.result.set_exception(NotJoined("the relay is shutting down"))
            return
        if first:
            self._jobs.appendleft(job)
        else:
            self._jobs.append(job)
        self._wakeup.notify()

    def _drop_queued(self) -> int:
        """Fail every queued utterance and stop the one in flight; queued interrupts stay. Callers hold _wakeup."""
        self._generation += 1
        kept = deque(job for job in self._jobs if job.is_interrupt)
        for job in self._jobs:
            if not job.is_interrupt:
                job.result.set_exception(Interrupted("interrupted before any of it was sent"))
        dropped = len(self._jobs) - len(kept)
        self._jobs = kept
        return dropped

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._jobs and not self._closed:
                    self._wakeup.wait()
                if self._closed and not self._jobs:
                    return
                job = self._jobs.popleft()
            try:
                job.result.set_result(self._deliver(job))
            except (RelayError, MessageError) as error:
                job.result.set_exception(error)
            except Exception as error:  # a bug must fail this request, never kill the sender thread
                log.exception("sender failed on a request")
                job.result.set_exception(error)

    def _deliver(self, job: _Job) -> Dispatch:
        if not job.is_interrupt:  # an interrupt with no face to hear it is harmless; a message would be lost
            self._await_replica(job)
        sent: list[Future[None]] = []
        failed = threading.Event()
        try:
            for message in job.messages:
                if (job.generation != self._generation and not job.is_interrupt) or failed.is_set():
                    return Dispatch(sent, cut_short=True)
                problem = self._room.delivery_problem()
                if problem is not None:
                    return Dispatch(sent, cut_short=True, error=problem)
                future = self._room.send(message)
                future.add_done_callback(self._count)
                future.add_done_callback(lambda done: done.exception() and failed.set())
                sent.append(future)
                self._recorder.record("out", message)
        except MessageError as error:  # a file that decodes badly halfway: say so after confirming what went
            return Dispatch(sent, cut_short=True, error=error)
        return Dispatch(sent, cut_short=False)

    def _await_replica(self, job: _Job) -> None:
        while not self._room.wait_for_replica(REPLICA_POLL_S):
            self._room.check_open()
            if job.generation != self._generation:
                raise Interrupted("interrupted while waiting for the face to join; nothing was sent")
            if time.monotonic() >= job.replica_deadline:
                raise ReplicaAbsent(
                    f"the face (Tavus replica) has not joined the room after {self._replica_timeout_s:g} s "
                    "(RELAY_REPLICA_TIMEOUT); nothing was sent. A cold start can take minutes: try again"
                )

    def _count(self, future: Future[None]) -> None:
        """Counted as Daily answers (on its thread), so a dispatch two callers wait for counts once."""
        with self._counts_lock:
            if future.exception():
                self.send_errors += 1
            else:
                self.messages_sent += 1

    def confirm(self, dispatch: Dispatch) -> int:
        """Wait (on the caller's thread) until Daily confirmed every message; how many it confirmed."""
        sent = dispatch.sent
        done, pending = futures.wait(sent, timeout=self._send_timeout_s)
        errors = [future.exception() for future in sent if future in done and future.exception()]
        confirmed = len(done) - len(errors)
        if dispatch.error is not None:
            raise type(dispatch.error)(f"{dispatch.error} (after {confirmed} message(s) were sent)")
        if errors:
            raise SendError(f"Daily reported a send error ({confirmed} of {len(sent)} messages confirmed): {errors[0]}")
        if pending:
            raise SendTimeout(
                f"Daily did not confirm {len(pending)} of {len(sent)} messages within "
                f"{self._send_timeout_s:g} s (RELAY_SEND_TIMEOUT)"
            )
        if dispatch.cut_short:
            raise Interrupted(f"interrupted after {confirmed} message(s) were sent; the rest were dropped")
        return confirmed


# --- the HTTP app -----------------------------------------------------------------


class Relay:
    """What the routes share: settings, the room, the sender."""

    def __init__(self, settings: Settings, room: Any, microphone_device: Any = None) -> None:
        self.settings = settings
        self.room = room
        self.started = time.monotonic()
        self.microphone = Microphone(microphone_device, settings.sample_rate) if microphone_device else None
        self.recorder = Recorder(settings.record_file)
        self.events = EventLog(settings.event_buffer)
        self.room_events = RoomEvents(self.events, self.recorder)
        self._publish_joined_state()
        room.add_listener(self.room_events)
        self.sender = Sender(
            room,
            replica_timeout_s=settings.replica_timeout_s,
            send_timeout_s=settings.send_timeout_s,
            recorder=self.recorder,
        )

    def conversation_id_for(self, requested: str | None) -> str:
        """The joined room's id; a request naming another room is a mistake, not a redirect."""
        joined = self.room.conversation_id
        if joined is None:
            return requested or "dry-run"
        if requested is not None and requested != joined:
            raise MessageError(
                f"conversation_id {requested!r} is not this relay's conversation ({joined!r}); "
                "leave it out or run one relay per conversation"
            )
        return joined

    def send(
        self, messages: Iterable[Mapping[str, Any]], *, interrupt: bool, conversation_id: str, inference_id: str
    ) -> int:
        """Queue and wait; with `interrupt`, the face is cut off first and older requests dropped."""
        if interrupt:
            messages = chain([echo_messages.interrupt_message(conversation_id)], messages)
            self.events.publish("relay.interrupted", reason="interrupt: true", inference_id=inference_id)
        try:
            return self.sender.confirm(self.sender.submit(messages, drop_queued=interrupt).result())
        except (SendError, SendTimeout) as error:
            self.events.publish("relay.send_failed", inference_id=inference_id, error=str(error))
            raise

    def _publish_joined_state(self) -> None:
        """The room joined before this relay listened to it: say so first."""
        if self.room.call_state == "joined":
            self.events.publish("relay.joined", conversation_id=self.room.conversation_id)
            if self.room.replica_present:
                self.events.publish("relay.replica_joined")

    def close(self) -> None:
        self.events.close()
        if self.microphone is not None:
            self.microphone.close()
        self.sender.close()
        self.room_events.close()
        self.recorder.close()


def create_app(settings: Settings, room: Any, *, microphone_device: Any = None) -> Flask:
    """The Flask app for one room; `room` is a Room, a DryRunRoom, or a test's stand-in.

    With a `microphone_device` (anything with `write_frames(bytes)`), POST /microphone plays audio through it.
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    relay = Relay(settings, room, microphone_device)
    app.extensions["relay"] = relay

    app.before_request(_start_request_clock)
    app.before_request(_check_bearer_token)
    app.after_request(_log_request)
    app.register_error_handler(Exception, _error_response)

    @app.post("/send_text_message")
    def send_text_message() -> Response:
        echo = echo_messages.parse_text_request(_json_body())
        conversation_id = relay.conversation_id_for(echo.conversation_id)
        inference_id = echo.inference_id or new_inference_id()
        messages = list(
            echo_messages.text_echo_messages(
                echo.text,
                conversation_id=conversation_id,
                inference_id=inference_id,
                done=echo.done,
                max_bytes=settings.max_message_bytes,
            )
        )
        sent = relay.send(messages, interrupt=echo.interrupt, conversation_id=conversation_id, inference_id=inference_id)
        return _sent(relay, inference_id=inference_id, messages_sent=sent, conversation_id=conversation_id)

    @app.post("/send_audio_message")
    def send_audio_message() -> Response:
        echo = _audio_request(settings)
        conversation_id = relay.conversation_id_for(echo.conversation_id)
        inference_id = echo.inference_id or new_inference_id()
        messages = echo_messages.audio_echo_messages(  # lazy: the file is decoded as it is sent
            echo.audio,
            sample_rate=echo.sample_rate,
            conversation_id=conversation_id,
            inference_id=inference_id,
            done=echo.done,
            max_bytes=settings.max_message_bytes,
        )
        sent = relay.send(messages, interrupt=echo.interrupt, conversation_id=conversation_id, inference_id=inference_id)
        return _sent(
            relay,
            inference_id=inference_id,
            messages_sent=sent,
            conversation_id=conversation_id,
            audio_ms=echo.audio.audio_ms,
            sample_rate=echo.sample_rate,
        )

    @app.post("/microphone")
    def microphone_clip() -> tuple[Response, int]:
        microphone = relay.microphone
        if microphone is None:
            raise ModeError(
                "microphone echo is off: start the relay with --microphone "
                "(python app.py <conversation_url> --microphone)"
            )
        room.check_open()
        echo = _audio_request(settings)
        pcm = b"".join(echo.audio)
        if not pcm:
            raise MessageError("audio is empty: send an audio file or base64 PCM to play")
        if echo.sample_rate != microphone.sample_rate:
            pcm = echo_messages.resample_pcm(pcm, echo.sample_rate, microphone.sample_rate)
        return jsonify(status="Queued", mode=room.mode, **microphone.enqueue(pcm)), 202

    @app.post("/interrupt")
    def interrupt() -> Response:
        conversation_id = relay.conversation_id_for(None)
        clips_dropped = relay.microphone.clear() if relay.microphone else 0
        dispatched, dropped = relay.sender.interrupt(conversation_id)
        relay.events.publish(
            "relay.interrupted", reason="POST /interrupt", requests_dropped=dropped, microphone_clips_dropped=clips_dropped
        )
        sent = relay.sender.confirm(dispatched.result())
        g.messages_sent = sent
        return jsonify(
            status="Interrupted",
            messages_sent=sent,
            requests_dropped=dropped,
            microphone_clips_dropped=clips_dropped,
            conversation_id=conversation_id,
            mode=room.mode,
        )

    @app.get("/events")
    def events() -> Response:
        last_id = _event_cursor()
        if "text/event-stream" in request.headers.get("Accept", ""):
            return Response(
                relay.events.stream(last_id),
                mimetype="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        newer, dropped = relay.events.after(last_id)
        return jsonify(([events_dropped(dropped)] if dropped else []) + [event.as_dict() for event in newer])

    @app.get("/openapi.json")
    def openapi() -> Response:
        return app.send_static_file("openapi.json")

    @app.get("/health")
    def health() -> Response:
        return jsonify(
            status="ok",
            mode=room.mode,
            call_state=room.call_state,
            left_reason=getattr(room, "left_reason", None) if room.call_state == "left" else None,
            conversation_id=room.conversation_id,
            replica_present=room.replica_present,
            replica_speaking=relay.room_events.replica_speaking,
            last_event_id=relay.events.last_id,
            uptime_s=round(time.monotonic() - relay.started, 3),
            messages_sent=relay.sender.messages_sent,
            send_errors=relay.sender.send_errors,
            queue_depth=relay.sender.queue_depth,
            microphone=relay.microphone.status() if relay.microphone else {"enabled": False},
        )

    return app


def new_inference_id() -> str:
    return uuid.uuid4().hex


def _sent(relay: Relay, **fields: Any) -> Response:
    g.inference_id, g.messages_sent = fields["inference_id"], fields["messages_sent"]
    return jsonify(status="Message sent successfully", mode=relay.room.mode, **fields)


def _event_cursor() -> int:
    """The last event id the caller has: `?after=` or the `Last-Event-ID` an EventSource sends on reconnect."""
    raw = request.args.get("after", request.headers.get("Last-Event-ID", "0")).strip() or "0"
    if not raw.isdigit() or len(raw) > 18:
        raise MessageError(f"after (or Last-Event-ID) must be an event id, a whole number >= 0, got {raw[:40]!r}")
    return int(raw)


def _start_request_clock() -> None:
    g.started = time.perf_counter()


def _log_request(response: Response) -> Response:
    """One line per request: never a body, audio or token."""
    elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    log.info(
        "%s %s %d %.1fms inference_id=%s messages_sent=%s",
        request.method,
        request.path,
        response.status_code,
        elapsed_ms,
        g.get("inference_id", "-"),
        g.get("messages_sent", "-"),
    )
    return response


def _audio_request(settings: Settings) -> echo_messages.AudioEcho:
    """The three forms of /send_audio_message: JSON, a raw audio file body, or multipart field `file`."""
    limits = {"target_rate": settings.sample_rate, "max_seconds": settings.max_audio_seconds}
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise MessageError("a multipart upload needs the audio in a field named file (curl -F file=@speech.wav)")
        return echo_messages.parse_audio_file(upload.stream, request.values, **limits)  # type: ignore[arg-type]
    if mimetype in AUDIO_FILE_MIMETYPES:
        return echo_messages.parse_audio_file(_body_file(), request.args, **limits)
    if mimetype.startswith("audio/"):
        raise UnsupportedMediaType(
            f"Content-Type {mimetype!r} is not supported: send WAV, MP3, FLAC or OGG "
            "(or application/octet-stream and the relay recognises the format)"
        )
    return echo_messages.parse_audio_request(_json_body(), **limits)


def _body_file() -> BinaryIO:
    """The raw body as a seekable file for soundfile, without copying it when the server has one.

    waitress spools large bodies to a seekable temp file (`wsgi.input`); reading
    that directly (PEP 3333 allows it, within CONTENT_LENGTH) is an order of
    magnitude faster than werkzeug's chunked get_data() for a 10 MB file, and
    holds no second copy. Other servers get the plain, copying path.
    """
    length = request.content_length
    if length is not None and request.max_content_length is not None and length > request.max_content_length:
        raise RequestEntityTooLarge()
    if length == 0:
        raise MessageError("audio is empty: the request body has no bytes")
    stream = request.environ.get("wsgi.input")
    if length is not None and stream is not None and _seekable(stream):
        return stream  # type: ignore[no-any-return]
    body = request.get_data(cache=False)
    if not body:
        raise MessageError("audio is empty: the request body has no bytes")
    return io.BytesIO(body)


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable()) and stream.tell() == 0
    except (AttributeError, OSError, ValueError):
        return False


def _json_body() -> Any:
    """The body as JSON whatever the Content-Type a curl -d sends, but not another media type."""
    if request.mimetype not in JSON_MIMETYPES and not request.mimetype.endswith("+json"):
        raise UnsupportedMediaType(
            f"Content-Type {request.mimetype!r} is not supported here: send JSON with Content-Type: application/json"
        )
    data = request.get_data(cache=False)
    if not data.strip():
        raise MessageError('the body is empty: send a JSON object, such as {"text": "Hello there!"}')
    try:
        return json.loads(data)
    except json.JSONDecodeError as error:
        raise MessageError(
            f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MessageError("the body is not valid JSON (UTF-8 expected)") from None


def _check_bearer_token() -> Response | None:
    from flask import current_app

    token = current_app.extensions["relay"].settings.auth_token
    if token is None or request.path in PUBLIC_PATHS:
        return None
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    response = jsonify(error="missing or wrong bearer token: send the header 'Authorization: Bearer <RELAY_AUTH_TOKEN>'")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _error_response(error: Exception) -> tuple[Response, int]:
    """Every error becomes {"error": "..."} with the status DESIGN.md gives it."""
    if isinstance(error, (MessageError, RelayError)):
        return jsonify(error=str(error)), error.status
    if isinstance(error, RequestEntityTooLarge):
        limit = request.max_content_length
        return jsonify(error=f"the body is over RELAY_MAX_BODY_BYTES ({limit} bytes): send less or raise the limit"), 413
    if isinstance(error, HTTPException):
        return jsonify(error=_http_error_text(error)), error.code or 500
    log.exception("unexpected error on %s %s", request.method, request.path)
    return jsonify(error="internal error in the relay; the details are in its log"), 500


def _http_error_text(error: HTTPException) -> str:
    if error.code == 404:
        return f"no endpoint {request.path}: see GET /health and the README for the endpoints"
    if error.code == 405:
        allowed = ", ".join(sorted(set(error.valid_methods or []) - {"HEAD", "OPTIONS"}))  # type: ignore[attr-defined]
        return f"{request.method} is not allowed on {request.path}: use {allowed}"
    return str(error.description)


# --- command line -----------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python app.py",
        description=(
            "Relay POSTed text and audio to a Tavus face in Echo Mode. With no URL (and no "
            "TAVUS_CONVERSATION_URL) it runs a dry run: messages are printed, not sent."
        ),
    )
    parser.add_argument("conversation_url", nargs="?", help="the conversation_url Tavus returned; joins that room")
    parser.add_argument("--dry-run", action="store_true", help="print messages instead of joining a room")
    parser.add_argument(
        "--quickstart",
        action="store_true",
        help="with TAVUS_API_KEY: create an echo persona (or reuse TAVUS_PERSONA_ID) and a conversation, "
        "join it and serve; the conversation is ended when the relay stops",
    )
    parser.add_argument(
        "--microphone",
        action="store_true",
        help="join with a virtual microphone for microphone echo (POST /microphone plays audio through it)",
    )
    parser.add_argument("--pal", action="store_true", help="with --quickstart: create a PAL (POST /pals), not a persona")
    parser.add_argument("--replica-id", help="with --quickstart: the replica (face) to use (default: TAVUS_REPLICA_ID)")
    parser.add_argument(
        "--name", default=QUICKSTART_CONVERSATION_NAME, help="with --quickstart: the conversation's name"
    )
    args = parser.parse_args(argv)
    if args.quickstart and (args.conversation_url or args.dry_run):
        parser.error("--quickstart creates its own conversation: give no URL and no --dry-run")
    if not args.quickstart and (args.pal or args.replica_id):
        parser.error("--pal and --replica-id go with --quickstart")
    return args


def main(
    argv: list[str] | None = None,
    *,
    client_factory: Callable[..., Any] = daily_call_client,
    microphone_factory: Callable[[int], Any] = daily_microphone_device,
) -> int:
    """The command line; the factories let tests stand in for daily's CallClient and microphone."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    previous_handler = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        settings = Settings.from_env()
        joining = RoomOptions(args.microphone, client_factory, microphone_factory)
        if args.quickstart:
            return quickstart(settings, args, joining)
        url = None if args.dry_run else (args.conversation_url or settings.tavus_conversation_url)
        if not url:
            return run(settings, DryRunRoom(), microphone_device=CountingMicrophoneDevice(settings.sample_rate))
        return run(settings, *joining.room(url, settings))
    except (ConfigError, JoinError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


@dataclass(frozen=True)
class RoomOptions:
    """How to join: with or without the virtual microphone, and through which factories."""

    microphone: bool
    client_factory: Callable[..., Any]
    microphone_factory: Callable[[int], Any]

    def room(self, url: str, settings: Settings) -> tuple[Room, Any]:
        """The Room and its microphone device (None without --microphone); the device exists before the join."""
        device = self.microphone_factory(settings.sample_rate) if self.microphone else None
        client_settings = microphone_client_settings() if self.microphone else None
        return Room(url, client_factory=self.client_factory, client_settings=client_settings), device


def quickstart(settings: Settings, args: argparse.Namespace, joining: RoomOptions) -> int:
    """Tavus's Echo Mode quickstart in one command; never leaves the conversation it created running."""
    if not settings.tavus_api_key:
        print("error: --quickstart needs TAVUS_API_KEY (in the environment or .env)", file=sys.stderr)
        return 2
    tavus = TavusClient(settings.tavus_api_key, base_url=settings.tavus_api_base_url)
    conversation: dict[str, Any] | None = None
    try:
        conversation = start_conversation(tavus, settings, args)
        room, microphone_device = joining.room(conversation["conversation_url"], settings)
        return run(
            settings,
            room,
            microphone_device,
            on_listening=lambda port: print_quickstart_banner(conversation, settings, port),
        )
    except (TavusAPIError, JoinError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if conversation is not None:
            end_created_conversation(tavus, conversation["conversation_id"])
        tavus.close()


def start_conversation(tavus: TavusClient, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    owner_key = "pal_id" if args.pal else "persona_id"
    persona_id = settings.tavus_persona_id
    if persona_id:
        log.info("reusing %s %s (TAVUS_PERSONA_ID)", owner_key, persona_id)
    else:
        create = tavus.create_pal if args.pal else tavus.create_persona
        persona_id = persona_id_of(create(QUICKSTART_PERSONA_NAME))
        log.info("created echo %s %s", "PAL" if args.pal else "persona", persona_id)
    conversation = tavus.create_conversation(
        **{owner_key: persona_id},
        replica_id=args.replica_id or settings.tavus_replica_id,
        conversation_name=args.name,
    )
    log.info("created conversation %s", conversation["conversation_id"])
    return conversation


def end_created_conversation(tavus: TavusClient, conversation_id: str) -> None:
    try:
        tavus.end_conversation(conversation_id)
    except TavusAPIError as error:
        print(
            f"warning: could not end conversation {conversation_id}: {error}. End it with: "
            f"python tavus_client.py end-conversation {conversation_id}",
            file=sys.stderr,
        )
        return
    print(f"ended conversation {conversation_id}: it no longer bills", file=sys.stderr)


def print_quickstart_banner(conversation: Mapping[str, Any], settings: Settings, port: int) -> None:
    auth = ' -H "Authorization: Bearer $RELAY_AUTH_TOKEN"' if settings.auth_token else ""
    conversation_id = conversation["conversation_id"]
    print(
        f"Conversation {conversation_id} is live. Open it in a browser to see and hear the face:\n"
        f"    {conversation['conversation_url']}\n"
        "Make it speak:\n"
        f"    curl -s -X POST http://{settings.host}:{port}/send_text_message{auth} "
        f"-H \"Content-Type: application/json\" -d '{{\"text\": \"Hello there!\"}}'\n"
        f"Press Ctrl-C to stop: the relay then ends conversation {conversation_id} so it stops billing.",
        flush=True,
    )


def run(
    settings: Settings,
    room: Any,
    microphone_device: Any = None,
    *,
    on_listening: Callable[[int], None] | None = None,
) -> int:
    """Join, serve until SIGINT/SIGTERM, then leave and release. Returns the exit code."""
    app = None
    try:
        if isinstance(room, Room):
            log.info("joining %s ...", room.conversation_url)
            try:
                room.join()
            except JoinError as error:
                print(f"error: could not join {room.conversation_url}: {error}", file=sys.stderr)
                return 1
            log.info("joined conversation %s", room.conversation_id)
        app = create_app(settings, room, microphone_device=microphone_device)
        with _stopping_closes(app.extensions["relay"].events):
            serve(app, settings, on_listening)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if app is not None:
            app.extensions["relay"].close()
        room.leave()
        log.info("stopped")


def serve(app: Flask, settings: Settings, on_listening: Callable[[int], None] | None = None) -> None:
    server = waitress.create_server(
        app, host=settings.host, port=settings.port, threads=SERVER_THREADS + MAX_EVENT_LISTENERS
    )
    port = server.effective_port  # type: ignore[union-attr]
    log.info("echo relay (%s) listening on http://%s:%s", app.extensions["relay"].room.mode, settings.host, port)
    if on_listening:
        on_listening(port)
    server.run()


@contextmanager
def _stopping_closes(events: EventLog) -> Iterator[None]:
    """While serving, Ctrl-C and SIGTERM first end the event streams, then stop the server."""

    def stop(signum: int, frame: Any) -> None:
        events.close()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops the relay the way Ctrl-C does: waitress finishes in-flight requests and returns."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
