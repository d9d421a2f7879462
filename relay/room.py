"""The room: the one daily-python CallClient, joined to one conversation's Daily room.

daily-python calls back on its own threads; everything here only records state
and hands events on, never calls back into the client from a callback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from concurrent.futures import Future
from typing import Any, Protocol

import daily

from relay.daily_logs import hide_native_log_lines
from relay.errors import ConversationEnded, JoinError, NotJoined, RelayError, ReplicaAbsent, SendError
from relay.face import FacePresence
from relay.room_urls import conversation_id_from_url, join_failure_sentence, split_meeting_token

log = logging.getLogger("echo_relay")

JOIN_TIMEOUT_S = 60.0  # daily gives up on an unreachable room after ~19 s by itself
LEAVE_TIMEOUT_S = 5.0
RELEASE_WAIT_S = 0.5  # release() waits behind a pending join (~19 s); stopping does not wait that long
SUBSCRIPTION_TIMEOUT_S = 5.0
SIGNAL_CHECK_S = 0.1  # the main thread waits in slices this long, so Ctrl-C is seen whichever thread got it
MICROPHONE_DEVICE_NAME = "echo-relay-microphone"
# The relay only sends: it never looks at or listens to anyone, so it downloads no one's camera or microphone.
SEND_ONLY_SUBSCRIPTIONS = {"base": {"camera": "unsubscribed", "microphone": "unsubscribed"}}
ENDING_STATES = ("leaving", "left")


def wait_for(future: Future[Any], timeout: float) -> Any:
    """`future.result(timeout)`, waited in short slices.

    A signal (Ctrl-C, SIGTERM) may be delivered to any thread of the process,
    Daily's own among them, and then it does not wake the main thread's
    blocked wait: Python would see it only when the wait ends (a join that
    cannot reach Daily: ~19 s). Slices let it be seen within SIGNAL_CHECK_S.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return future.result(min(SIGNAL_CHECK_S, max(0.0, deadline - time.monotonic())))
        except futures.TimeoutError:
            if time.monotonic() >= deadline:
                raise


_daily_init_lock = threading.Lock()
_daily_initialized = False
_show_daily_logs = False


def show_daily_logs(show: bool) -> None:
    """--verbose: let daily's own log lines through to stderr (they are hidden otherwise)."""
    global _show_daily_logs
    _show_daily_logs = show


def hide_native_logs_unless_shown() -> None:
    """Filter Daily's and libmpg123's own lines out of stderr, unless --verbose asked to see them."""
    if not _show_daily_logs:
        hide_native_log_lines()


def _init_daily() -> None:
    """Daily.init() once per process, before the first client or device; its log lines filtered out of stderr."""
    global _daily_initialized
    with _daily_init_lock:
        if not _daily_initialized:
            hide_native_logs_unless_shown()
            daily.Daily.init(log_level=daily.LogLevel.Warn if _show_daily_logs else daily.LogLevel.Off)
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


def join_client_settings(*, microphone: bool) -> dict[str, Any]:
    """Camera off always; the microphone off, or the relay's virtual microphone for microphone echo."""
    device = {"isEnabled": True, "settings": {"deviceId": MICROPHONE_DEVICE_NAME}} if microphone else False
    return {"inputs": {"camera": False, "microphone": device}}


class DailyCallError(Exception):
    """Daily's answer to a call the relay can carry on without (unsubscribing, leaving)."""


def completion_callback(
    future: Future[Any], error: Callable[[str], BaseException] = DailyCallError
) -> Callable[..., None]:
    """The `completion=` for any daily-python call: its answer settles `future` (on Daily's thread).

    Daily calls a completion with `(error)` or `(data, error)`, `error` None on
    success: the future gets `data` (or None), or `error(text)` as its exception.
    """

    def complete(*answer: Any) -> None:
        failure = answer[-1] if answer else None
        if future.done():
            return
        if failure:
            future.set_exception(error(str(failure)))
        else:
            future.set_result(answer[0] if len(answer) > 1 else None)

    return complete


Listener = Callable[[str, Mapping[str, Any]], None]


class Listeners:
    """Who hears a room's events: `listener(event_type, data)`, called in order on the emitting thread."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event_type: str, data: Mapping[str, Any]) -> None:
        for listener in list(self._listeners):
            listener(event_type, data)


class RelayRoom(Protocol):
    """What the relay needs of a room: the Daily room (`Room`) and the dry run's (`relay.dry_run.DryRunRoom`)."""

    @property
    def mode(self) -> str: ...  # "room" or "dry-run"
    @property
    def conversation_id(self) -> str: ...
    @property
    def conversation_url(self) -> str | None: ...  # None in the dry run; never a meeting token
    @property
    def private(self) -> bool: ...
    @property
    def call_state(self) -> str: ...
    @property
    def left_reason(self) -> str | None: ...
    @property
    def replica_present(self) -> bool: ...
    @property
    def face(self) -> dict[str, Any]: ...  # {"present", "signal", "participant_id"}
    @property
    def connection(self) -> str: ...  # signalling: "connected" or "interrupted"
    @property
    def connection_down_s(self) -> float | None: ...  # how long signalling has been down; None while connected

    def add_listener(self, listener: Listener) -> None: ...
    def join(self, timeout: float = ...) -> None: ...
    def check_open(self) -> None: ...
    def is_face(self, participant_id: str) -> bool: ...  # whose reports count as the face's (relay/face.py)
    def wait_for_replica(self, timeout: float) -> bool: ...
    def wait_for_connection(self, timeout: float) -> bool: ...
    def delivery_problem(self) -> RelayError | None: ...
    def send(self, message: Mapping[str, Any]) -> Future[None]: ...
    def leave(self, timeout: float = ...) -> None: ...


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
        meeting_token: str | None = None,
        client_factory: Callable[..., Any] = daily_call_client,
        client_settings: Mapping[str, Any] | None = None,
        face_names: Iterable[str] = (),
    ) -> None:
        room_url, url_token = split_meeting_token(conversation_url)
        self.conversation_url = room_url  # never the token: this one is safe to log
        self.conversation_id = conversation_id_from_url(room_url)
        self.call_state = "new"
        self.left_reason: str | None = None
        self._meeting_token = url_token or meeting_token
        self._client_settings = dict(client_settings) if client_settings else join_client_settings(microphone=False)
        self._call_error: str | None = None
        self._join_pending = False
        self._released = False
        self._face = FacePresence(face_names)
        self._signalling_up = threading.Event()
        self._signalling_up.set()
        self._signalling_down_since: float | None = None
        self._listeners = Listeners()
        self._client = client_factory(event_handler=_DailyCallbacks(self))

    @property
    def replica_present(self) -> bool:
        return self._face.present

    @property
    def face(self) -> dict[str, Any]:
        return self._face.state

    @property
    def connection(self) -> str:
        return "connected" if self._signalling_up.is_set() else "interrupted"

    @property
    def connection_down_s(self) -> float | None:
        since = self._signalling_down_since
        return None if since is None or self._signalling_up.is_set() else time.monotonic() - since

    @property
    def private(self) -> bool:
        return self._meeting_token is not None

    def add_listener(self, listener: Listener) -> None:
        """`listener(event_type, data)` for the relay's own events and the room's app messages."""
        self._listeners.add(listener)

    def join(self, timeout: float = JOIN_TIMEOUT_S) -> None:
        """Join and wait for Daily to say so; JoinError is one sentence saying what to check."""
        self._unsubscribe_from_media()
        joined: Future[Any] = Future()
        self.call_state = "joining"
        self._join_pending = True
        self._client.join(
            self.conversation_url,
            meeting_token=self._meeting_token,
            client_settings=self._client_settings,
            completion=completion_callback(joined, JoinError),
        )
        try:
            wait_for(joined, timeout)
        except futures.TimeoutError:
            raise JoinError(
                f"Daily did not finish joining {self.conversation_url} within {timeout:g} s: check your network"
            ) from None
        except JoinError as error:
            self._join_pending = False
            log.debug("Daily's join error: %s", self._scrub(str(error)))
            raise JoinError(join_failure_sentence(str(error), self.conversation_url)) from None
        self._join_pending = False  # only once Daily answered: after Ctrl-C mid-wait the join is still pending
        self.call_state = "joined"
        for participant in self._client.participants().values():  # the face may have joined before the relay
            self._see_participant(participant)

    def _unsubscribe_from_media(self) -> None:
        """Send-only: the relay never plays anyone's camera or microphone, so it does not download them."""
        done: Future[None] = Future()
        self._client.update_subscription_profiles(SEND_ONLY_SUBSCRIPTIONS, completion=completion_callback(done))
        try:
            wait_for(done, SUBSCRIPTION_TIMEOUT_S)
        except (futures.TimeoutError, DailyCallError) as error:
            log.warning("could not unsubscribe from other participants' media (%s); continuing", error or "no answer")

    def send(self, message: Mapping[str, Any]) -> Future[None]:
        sent: Future[None] = Future()
        self._client.send_app_message(dict(message), completion=completion_callback(sent, SendError))
        return sent

    def check_open(self) -> None:
        """Raise what a request sent now would run into."""
        if self.call_state == "leaving":
            raise ConversationEnded("the conversation is ending: the relay is leaving the room")
        if self.call_state == "left":
            raise ConversationEnded(
                f"the conversation has ended{self._why_left()}; start the relay with a new conversation"
            )
        if self.call_state != "joined":
            raise NotJoined(f"the relay has not joined the room yet (call state: {self.call_state})")

    def wait_for_replica(self, timeout: float) -> bool:
        return self._face.wait(timeout)

    def is_face(self, participant_id: str) -> bool:
        """Whether an app message from `participant_id` speaks for the face (see FacePresence.is_face)."""
        return self._face.is_face(participant_id)

    def wait_for_connection(self, timeout: float) -> bool:
        """True once Daily's signalling connection (which carries app messages) is up."""
        return self._signalling_up.wait(timeout)

    def delivery_problem(self) -> RelayError | None:
        """Why a request being sent right now should stop: the call is ending or ended, or the face left."""
        if self.call_state in ENDING_STATES:
            return ConversationEnded(f"the conversation ended mid-utterance{self._why_left()}")
        if not self.replica_present:
            return ReplicaAbsent("the face (Tavus replica) left the room mid-utterance")
        return None

    def leave(self, timeout: float = LEAVE_TIMEOUT_S) -> None:
        """Leave the call if in it, then release the client; safe to call twice.

        With a join still pending (Ctrl-C while joining), Daily answers neither
        the leave nor the release until the join gives up (~19 s), so neither
        is waited for: the process can exit at once.
        """
        if self._released:
            return
        self._released = True
        pending = self._join_pending
        if self.call_state in ("joined", "joining"):
            self.left_reason = self.left_reason or "the relay stopped"
            left: Future[None] = Future()
            self._client.leave(completion=completion_callback(left))
            try:
                wait_for(left, 0 if pending else timeout)
            except futures.TimeoutError:
                if not pending:
                    log.warning("Daily did not confirm leaving within %g s", timeout)
            except DailyCallError as error:
                log.debug("Daily's leave error: %s", self._scrub(str(error)))
        releasing = threading.Thread(target=self._client.release, name="relay-release", daemon=True)
        releasing.start()
        releasing.join(RELEASE_WAIT_S if pending else timeout)
        self.call_state = "released"

    def _scrub(self, text: str) -> str:
        return text.replace(self._meeting_token, "<token>") if self._meeting_token else text

    def _why_left(self) -> str:
        return f" ({self.left_reason})" if self.left_reason else ""

    # --- Daily's callbacks (on Daily's threads): record and hand on ---

    def _see_participant(self, participant: Mapping[str, Any]) -> None:
        joined = self._face.see_participant(participant)
        if joined is not None:
            self._emit("relay.replica_joined", joined)

    def _participant_left(self, participant: Mapping[str, Any], reason: Any) -> None:
        participant_id = str(participant.get("id"))
        if self._face.participant_left(participant_id):
            self._emit("relay.replica_left", {"participant_id": participant_id, "reason": reason})

    def _call_state_changed(self, state: str) -> None:
        if self.call_state == "released":
            return
        self.call_state = state
        if state == "left":
            self.left_reason = self.left_reason or self._call_error or "Daily ended the call"
            self._face.clear()
            self._emit("relay.left", {"reason": self.left_reason})

    def _connection_changed(self, status: Mapping[str, Any]) -> None:
        """Signalling carries app messages: while it is interrupted the sender hands nothing to Daily."""
        name, event = str(status.get("connection")), str(status.get("event"))
        if name == "signalling" and event == "interrupted" and self._signalling_up.is_set():
            self._signalling_down_since = time.monotonic()
            self._signalling_up.clear()
        elif name == "signalling" and event == "connected":
            self._signalling_up.set()
        log.log(
            logging.WARNING if event == "interrupted" else logging.INFO,
            "the connection to the room (%s) is %s%s",
            name,
            event,
            "; requests wait for it" if name == "signalling" and event == "interrupted" else "",
        )
        self._emit("relay.connection", {"connection": name, "event": event})

    def _error(self, message: str) -> None:
        """Daily's on_error: an answer to one call ("Error handling sendAppMessage: ...") or about the call itself.

        Neither means the call ended (only `left` does): a failed send is that
        request's 502. A call-level error is kept as the reason should the call end.
        """
        message = self._scrub(message)
        if not message.startswith("Error handling "):
            self._call_error = message
        log.debug("Daily reported an error: %s", message)

    def _app_message(self, message: Any, sender: str) -> None:
        joined = self._face.hear(message, sender)
        if joined is not None:
            self._emit("relay.replica_joined", joined)
        self._emit("app_message", {"sender": sender, "message": message})

    def _emit(self, event_type: str, data: Mapping[str, Any]) -> None:
        self._listeners.emit(event_type, data)


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

    def on_network_connection_status_updated(self, status: Mapping[str, Any]) -> None:
        self._room._connection_changed(status)

    def on_error(self, message: str) -> None:
        self._room._error(message)
