"""The room: the one daily-python CallClient, joined to one conversation's Daily room.

daily-python calls back on its own threads; everything here only records state
and hands events on, never calls back into the client from a callback.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent import futures
from concurrent.futures import Future
from typing import IO, Any
from urllib.parse import urlparse

import daily

from relay.errors import ConversationEnded, JoinError, NotJoined, RelayError, ReplicaAbsent, SendError

log = logging.getLogger("echo_relay")

JOIN_TIMEOUT_S = 60.0  # daily gives up on an unreachable room after ~19 s by itself
LEAVE_TIMEOUT_S = 5.0
TAVUS_REPLICA_USER_ID = "tavus-replica"
MICROPHONE_DEVICE_NAME = "echo-relay-microphone"


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
        self._client = client_factory(event_handler=_DailyCallbacks(self))

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
            raise ConversationEnded(
                f"the conversation has ended{self._why_left()}; start the relay with a new conversation"
            )
        if self.call_state != "joined":
            raise NotJoined(f"the relay has not joined the room yet (call state: {self.call_state})")

    def wait_for_replica(self, timeout: float) -> bool:
        return self._replica_here.wait(timeout)

    def delivery_problem(self) -> RelayError | None:
        """Why a request being sent right now should stop: the call ended or the face left."""
        if self.call_state == "left":
            return ConversationEnded(f"the conversation ended mid-utterance{self._why_left()}")
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

    def _why_left(self) -> str:
        return f" ({self.left_reason})" if self.left_reason else ""

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


class _DailyCallbacks(daily.EventHandler):
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
    left_reason: str | None = None
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
