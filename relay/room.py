"""The room: the one daily-python CallClient, joined to one conversation's Daily room.

daily-python calls back on its own threads; everything here only records state
and hands events on, never calls back into the client from a callback.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from concurrent.futures import Future
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import daily

from config import ConfigError
from relay.daily_logs import hide_native_log_lines
from relay.dry_face import SimulatedFace
from relay.errors import ConversationEnded, JoinError, NotJoined, RelayError, ReplicaAbsent, SendError

log = logging.getLogger("echo_relay")

JOIN_TIMEOUT_S = 60.0  # daily gives up on an unreachable room after ~19 s by itself
LEAVE_TIMEOUT_S = 5.0
RELEASE_WAIT_S = 0.5  # release() waits behind a pending join (~19 s); stopping does not wait that long
SUBSCRIPTION_TIMEOUT_S = 5.0
SIGNAL_CHECK_S = 0.1  # the main thread waits in slices this long, so Ctrl-C is seen whichever thread got it
TAVUS_REPLICA_USER_ID = "tavus-replica"
MICROPHONE_DEVICE_NAME = "echo-relay-microphone"
# The relay only sends: it never looks at or listens to anyone, so it downloads no one's camera or microphone.
SEND_ONLY_SUBSCRIPTIONS = {"base": {"camera": "unsubscribed", "microphone": "unsubscribed"}}
ENDING_STATES = ("leaving", "left")
DRY_RUN_CONVERSATION_ID = "dry-run"


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


def conversation_id_from_url(url: str) -> str:
    """`https://tavus.daily.co/c123` -> `c123`: Tavus names the room after the conversation."""
    segments = [segment for segment in urlparse(url).path.split("/") if segment]
    if urlparse(url).scheme not in ("http", "https") or not segments:
        raise ConfigError(
            f"{redact_url(url)!r} is not a conversation URL: expected one like https://tavus.daily.co/c123"
        )
    return segments[-1]


def split_meeting_token(url: str) -> tuple[str, str | None]:
    """A private room's URL as a browser opens it (`...?t=<token>`) -> the room URL and the token."""
    parsed = urlparse(url)
    query = parse_qsl(parsed.query, keep_blank_values=True)
    tokens = [value for key, value in query if key == "t" and value]
    if not tokens:
        return url, None
    rest = urlencode([(key, value) for key, value in query if key != "t"])
    return urlunparse(parsed._replace(query=rest)), tokens[-1]


def redact_url(url: str) -> str:
    """The URL with any `t=` token replaced, for logs and errors."""
    room_url, token = split_meeting_token(url)
    return room_url if token is None else f"{room_url}{'&' if '?' in room_url else '?'}t=<token>"


def join_failure_sentence(error: str, room_url: str) -> str:
    """Daily's Rust debug text (`Connection(Api(RoomLookup(...` ) as one sentence saying what to check."""
    conversation_id = conversation_id_from_url(room_url)
    ended_hint = f"whether conversation {conversation_id} has ended (python tavus_client.py get-conversation {conversation_id})"
    if "Failed to parse url" in error or "InvalidUrl" in error:
        return f"{room_url} is not a valid room URL: check it (it looks like https://tavus.daily.co/c123)"
    if "Invalid client settings" in error:
        return f"Daily refused the relay's join settings (a bug in the relay; run with --verbose and report it): {room_url}"
    if "RoomInfoFetchFailed" in error or "Connect" in error or "lookup address" in error:
        return f"could not reach Daily to look up {room_url}: check your network connection and the URL"
    lowered = error.lower()
    if "token" in lowered or "unauthori" in lowered or "not allowed" in lowered or "forbidden" in lowered:
        return (
            f"Daily refused to let the relay into {room_url}: the room is private or the meeting token is wrong "
            "(pass it as ?t=<token> on the URL, --meeting-token or TAVUS_MEETING_TOKEN)"
        )
    if "not found" in lowered or "notfound" in lowered or "no such room" in lowered or "expired" in lowered:
        return f"Daily says there is no room at {room_url}: check the URL and {ended_hint}"
    return f"could not join {room_url}: check the URL, your network, and {ended_hint}"


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
    ) -> None:
        room_url, url_token = split_meeting_token(conversation_url)
        self.conversation_url = room_url  # never the token: this one is safe to log
        self.conversation_id = conversation_id_from_url(room_url)
        self.call_state = "new"
        self.left_reason: str | None = None
        self.last_error: str | None = None
        self._meeting_token = url_token or meeting_token
        self._client_settings = dict(client_settings) if client_settings else join_client_settings(microphone=False)
        self._call_error: str | None = None
        self._join_pending = False
        self._released = False
        self._replica_ids: set[str] = set()
        self._replica_here = threading.Event()
        self._listeners: list[Callable[[str, Mapping[str, Any]], None]] = []
        self._client = client_factory(event_handler=_DailyCallbacks(self))

    @property
    def replica_present(self) -> bool:
        return self._replica_here.is_set()

    @property
    def private(self) -> bool:
        return self._meeting_token is not None

    def add_listener(self, listener: Callable[[str, Mapping[str, Any]], None]) -> None:
        """`listener(event_type, data)` for the relay's own events and the room's app messages."""
        self._listeners.append(listener)

    def join(self, timeout: float = JOIN_TIMEOUT_S) -> None:
        """Join and wait for Daily to say so; JoinError is one sentence saying what to check."""
        self._unsubscribe_from_media()
        joined: Future[Any] = Future()

        def on_joined(data: Any, error: str | None) -> None:  # runs on a Daily thread
            if error:
                joined.set_exception(JoinError(str(error)))
            else:
                joined.set_result(data)

        self.call_state = "joining"
        self._join_pending = True
        self._client.join(
            self.conversation_url,
            meeting_token=self._meeting_token,
            client_settings=self._client_settings,
            completion=on_joined,
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
        for participant in self._client.participants().values():
            self._see_participant(participant)

    def _unsubscribe_from_media(self) -> None:
        """Send-only: the relay never plays anyone's camera or microphone, so it does not download them."""
        done: Future[None] = Future()
        self._client.update_subscription_profiles(SEND_ONLY_SUBSCRIPTIONS, completion=done.set_result)
        try:
            error = wait_for(done, SUBSCRIPTION_TIMEOUT_S)
        except futures.TimeoutError:
            error = "no answer"
        if error:
            log.warning("could not unsubscribe from other participants' media (%s); continuing", error)

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
        if self.call_state == "leaving":
            raise ConversationEnded("the conversation is ending: the relay is leaving the room")
        if self.call_state == "left":
            raise ConversationEnded(
                f"the conversation has ended{self._why_left()}; start the relay with a new conversation"
            )
        if self.call_state != "joined":
            raise NotJoined(f"the relay has not joined the room yet (call state: {self.call_state})")

    def wait_for_replica(self, timeout: float) -> bool:
        return self._replica_here.wait(timeout)

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
            self._client.leave(completion=lambda error: left.set_result(None))
            try:
                wait_for(left, 0 if pending else timeout)
            except futures.TimeoutError:
                if not pending:
                    log.warning("Daily did not confirm leaving within %g s", timeout)
        releasing = threading.Thread(target=self._client.release, name="relay-release", daemon=True)
        releasing.start()
        releasing.join(RELEASE_WAIT_S if pending else timeout)
        self.call_state = "released"

    def _scrub(self, text: str) -> str:
        return text.replace(self._meeting_token, "<token>") if self._meeting_token else text

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
            self.left_reason = self.left_reason or self._call_error or "Daily ended the call"
            self._replica_here.clear()
            self._emit("relay.left", {"reason": self.left_reason})

    def _error(self, message: str) -> None:
        """Daily's on_error: an answer to one call ("Error handling sendAppMessage: ...") or about the call itself.

        Neither means the call ended (only `left` does): a failed send is that
        request's 502. A call-level error is kept as the reason should the call end.
        """
        message = self._scrub(message)
        self.last_error = message
        if not message.startswith("Error handling "):
            self._call_error = message
        log.debug("Daily reported an error: %s", message)

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
        self._room._error(message)


class DryRunRoom:
    """No Daily room: each message "sent" is one JSON line on stdout, confirmed at once.

    A stand-in face (relay/dry_face.py) hears them and reports speaking as a
    real face would, marked simulated, so the console and scripts work here too.
    """

    mode = "dry-run"
    conversation_id = DRY_RUN_CONVERSATION_ID
    call_state = "dry-run"
    left_reason: str | None = None
    replica_present = True
    private = False

    def __init__(self, out: IO[str] | None = None, *, face: bool = True) -> None:
        self._out = out or sys.stdout
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str, Mapping[str, Any]], None]] = []
        self._face = SimulatedFace(self._emit, DRY_RUN_CONVERSATION_ID) if face else None

    def add_listener(self, listener: Callable[[str, Mapping[str, Any]], None]) -> None:
        """The simulated face's reports arrive here, as a room's app messages do."""
        self._listeners.append(listener)

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
        if self._face is not None:
            self._face.hear(message)
        sent: Future[None] = Future()
        sent.set_result(None)
        return sent

    def leave(self, timeout: float = LEAVE_TIMEOUT_S) -> None:
        """Nothing to leave; the simulated face stops."""
        if self._face is not None:
            self._face.close()

    def _emit(self, event_type: str, data: Mapping[str, Any]) -> None:
        for listener in list(self._listeners):
            listener(event_type, data)
