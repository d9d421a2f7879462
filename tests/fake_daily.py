"""A stand-in for daily-python's CallClient and virtual microphone, held to the real module.

Every method the relay calls has the real signature (tests/test_fake_daily.py
compares them with `inspect.signature` on the installed `daily`), and behaves
as the real daily-python 0.36 was observed to do offline: completions and
events on another thread, `ChannelNotOpen` before a join, `on_error` after a
failed send or join, `leaving` before `left`, the leave completion before
`left`, release twice raises, `write_frames` takes nothing outside a call.
Participants have the real `participants()` shape (`{"local": ..., id: {"id",
"info": {"userId", "userName", "isLocal"}}}`); the face can be named as Tavus
has named it (`tavus-replica-…`, `tavus-face-…`, `tavus-pal-…`, or only by the
persona's name). While signalling is interrupted
(`on_network_connection_status_updated`), sends fail in their completion as
they do before a join.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

PERSONA_NAME = "Echo Assistant"


def participant(participant_id: str, user_id: str, user_name: str = "") -> dict[str, Any]:
    """A remote participant as daily's participants() and on_participant_joined give it."""
    return {"id": participant_id, "info": {"userId": user_id, "userName": user_name, "isLocal": False}}


REPLICA = participant("replica-1", "tavus-replica-abc", PERSONA_NAME)
FACE = participant("face-1", "tavus-face-7f3a")  # Tavus's current name for the face's Daily user id
PAL = participant("pal-1", "TAVUS-PAL-22")
NAMED_FACE = participant("named-1", "u-93c1", PERSONA_NAME)  # only its user name says it is the face
VIEWER = participant("viewer-1", "browser-tab-5", "Presenter")  # the presenter's browser tab: never the face
CHANNEL_NOT_OPEN = "AppMessage(Signalling(ChannelNotOpen))"
ROOM_UNREACHABLE = "Failed to fetch room information: GET failed: client error (Connect)"
JOIN_UNREACHABLE = (
    "Connection(Api(RoomLookup(RoomInfoFetchFailed(Get(hyper_util::client::legacy::Error(Connect, Custom { kind: "
    'Uncategorized, error: "failed to lookup address information: Name or service not known" }))))))'
)
RELEASED = "this object has already been released"
SUBSCRIPTION_STATES = ("subscribed", "unsubscribed", "staged")


def join_bad_url(url: str) -> str:
    return f'Failed to parse url: InvalidUrl("{url}", InvalidPort)'


class FakeBehaviour:
    """What the fake room does; a test changes it before (or while) the relay runs.

    join_failure: None (joins), "unreachable" (Daily's order for a host it cannot
      reach) or "bad_url" (fails at once, no state events).
    join_delay_s: how long the join takes, like the real ~19 s DNS failure;
      `network_answers.set()` ends the wait early. The fake's one callback
      thread waits meanwhile, so leave() and release() wait behind the join, as
      the real ones do.
    send_error(index, message): an error string for that send, or None.
    confirm_sends: False and completions never arrive.
    reverse_completions: completions of sends arrive in pairs, swapped (Daily
      gives no order).
    """

    __slots__ = (  # a misspelt setting is an AttributeError, not a test that silently does something else
        "check_messages",
        "clients",
        "clock",
        "confirm_sends",
        "join_delay_s",
        "join_failure",
        "keep",
        "microphones",
        "network_answers",
        "others_in_room",
        "replica_in_room",
        "reverse_completions",
        "send_error",
        "signalling_up",
    )

    def __init__(self) -> None:
        self.join_failure: str | None = None
        self.join_delay_s = 0.0
        self.network_answers = threading.Event()
        self.replica_in_room = True
        self.others_in_room: list[dict[str, Any]] = []  # other remote participants already there at join
        self.signalling_up = True
        self.confirm_sends = True
        self.reverse_completions = False
        self.send_error: Callable[[int, Any], str | None] | None = None
        self.keep: Callable[[Any], Any] = lambda message: message  # what the room's log keeps of each message
        # Raise at once for what daily cannot encode (benchmarks turn it off: native in daily).
        self.check_messages = True
        self.clients: list[FakeCallClient] = []
        self.microphones: list[FakeMicrophoneDevice] = []

    def factory(self, event_handler: Any = None) -> FakeCallClient:
        client = FakeCallClient(event_handler, behaviour=self)
        self.clients.append(client)
        return client

    def microphone_factory(self, sample_rate: int, *, blocking: bool = False) -> FakeMicrophoneDevice:
        device = FakeMicrophoneDevice(self, sample_rate, blocking=blocking)
        self.microphones.append(device)
        return device

    @property
    def client(self) -> FakeCallClient:
        return self.clients[-1]

    def microphone_in_call(self, device_name: str) -> bool:
        """A virtual microphone plays only while a joined client has it selected as its microphone."""
        for client in self.clients:
            inputs = (client.joined_with.get("client_settings") or {}).get("inputs") or {}
            microphone = inputs.get("microphone")
            selected = (
                isinstance(microphone, dict) and (microphone.get("settings") or {}).get("deviceId") == device_name
            )
            if client.call_state == "joined" and selected:
                return True
        return False


class FakeCallClient:
    """daily.CallClient's signatures and observed behaviour; callbacks run on one fake Daily thread."""

    def __init__(self, event_handler: Any = None, *, behaviour: FakeBehaviour) -> None:
        self.handler = event_handler
        self.behaviour = behaviour
        self.call_state = "initialized"
        self.sent: list[Any] = []
        self.sent_at: list[float] = []
        self.joined_with: dict[str, Any] = {}
        self.subscription_profiles: dict[str, Any] = {}
        self.released = False
        self.left = False
        self._lock = threading.Lock()
        self._held_completion: Callable[[], None] | None = None
        self._callbacks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run_callbacks, name="fake-daily", daemon=True)
        self._thread.start()

    # --- CallClient methods, with the real signatures ---

    def join(self, /, meeting_url, meeting_token=None, client_settings=None, completion=None):
        self._check_not_released()
        self.joined_with = {"url": meeting_url, "meeting_token": meeting_token, "client_settings": client_settings}
        failure = self.behaviour.join_failure
        if failure == "bad_url":
            error = join_bad_url(meeting_url)
            self._later(lambda: self._complete(completion, None, error))
            self._later(lambda: self.handler.on_error(f"Error handling join: {error}"))
            return
        self._later(self._network_delay)  # no "joining" event: the real client was not seen to send one
        if failure == "unreachable":
            self._later(lambda: self.handler.on_error(ROOM_UNREACHABLE))
            self._set_state("leaving")
            self._set_state("left")
            self._later(lambda: self._complete(completion, None, JOIN_UNREACHABLE))
            self._later(lambda: self.handler.on_error(f"Error handling join: {JOIN_UNREACHABLE}"))
            return
        self._set_state("joined")
        self._later(lambda: self._complete(completion, {"participants": self.participants()}, None))

    def participants(self, /):
        self._check_not_released()
        people: dict[str, Any] = {"local": {"id": "local-id", "info": {"isLocal": True, "isOwner": False}}}
        if self.call_state != "joined":
            return people  # the real client knows no one else before it joined
        if self.behaviour.replica_in_room:
            people[REPLICA["id"]] = REPLICA
        for other in self.behaviour.others_in_room:
            people[other["id"]] = other
        return people

    def send_app_message(self, /, message, participant_id=None, completion=None):
        self._check_not_released()
        if self.behaviour.check_messages:
            _check_app_message(message)
        with self._lock:
            index = len(self.sent)
            self.sent.append(self.behaviour.keep(message))
            self.sent_at.append(time.monotonic())
        if self.call_state != "joined" or not self.behaviour.signalling_up:
            error: str | None = CHANNEL_NOT_OPEN
        elif not self.behaviour.confirm_sends:
            return
        else:
            error = self.behaviour.send_error(index, message) if self.behaviour.send_error else None
        self._confirm_send(completion, error)

    def update_subscription_profiles(self, /, profile_settings, completion=None):
        self._check_not_released()
        bad = [
            state
            for profile in profile_settings.values()
            for state in profile.values()
            if state not in SUBSCRIPTION_STATES
        ]
        if bad:
            error = (
                "Profile subscription settings were not valid JsonApiError "
                f'{{ message: "Invalid subscription state: {bad[0]}" }}'
            )
            self._later(lambda: self._complete(completion, error))
            self._later(lambda: self.handler.on_error(f"Error handling updateSubscriptionProfiles: {error}"))
            return
        self.subscription_profiles = profile_settings
        self._later(lambda: self._complete(completion, None))

    def leave(self, /, completion=None):
        self._check_not_released()
        self.left = True
        if self.call_state == "left":
            self._later(lambda: self._complete(completion, None))
            return
        self._set_state("leaving")
        self._later(lambda: self._complete(completion, None))  # the completion can come before "left"
        self._set_state("left")

    def release(self, /):
        self._check_not_released()
        self.released = True
        done = threading.Event()
        self._later(done.set)
        self._callbacks.put(None)
        done.wait(60)  # the real release() waits for what the client is still doing (a join, ~19 s)

    # --- what a test makes the room do ---

    def replica_joins(self) -> None:
        self.behaviour.replica_in_room = True
        self._later(lambda: self.handler.on_participant_joined(REPLICA))

    def replica_leaves(self) -> None:
        self.behaviour.replica_in_room = False
        self._later(lambda: self.handler.on_participant_left(REPLICA, "leftCall"))

    def participant_joins(self, who: dict[str, Any]) -> None:
        self.behaviour.others_in_room.append(who)
        self._later(lambda: self.handler.on_participant_joined(who))

    def participant_leaves(self, who: dict[str, Any]) -> None:
        self.behaviour.others_in_room.remove(who)
        self._later(lambda: self.handler.on_participant_left(who, "leftCall"))

    def connection_changes(self, connection: str, event: str) -> None:
        """daily-core lost or regained one of its connections (it reconnects by itself)."""

        def change() -> None:
            if connection == "signalling":
                self.behaviour.signalling_up = event == "connected"
            self.handler.on_network_connection_status_updated({"connection": connection, "event": event})

        self._later(change)

    def room_sends(self, message: dict[str, Any], sender: str = REPLICA["id"]) -> None:
        self._later(lambda: self.handler.on_app_message(message, sender))

    def call_ends(self, reason: str = "meeting ended") -> None:
        """Daily reports a call-level error, then the call goes through leaving to left."""
        self._later(lambda: self.handler.on_error(reason))
        self._set_state("leaving")
        self._set_state("left")

    def settle(self, timeout: float = 2.0) -> None:
        """Wait until every completion queued so far has run."""
        done = threading.Event()
        self._later(done.set)
        assert done.wait(timeout), "fake Daily thread is stuck"

    # --- inside ---

    def _confirm_send(self, completion: Any, error: str | None) -> None:
        def confirm() -> None:
            self._complete(completion, error)
            if error:
                self.handler.on_error(f"Error handling sendAppMessage: {error}")

        if not self.behaviour.reverse_completions:
            self._later(confirm)
            return
        with self._lock:  # hold every other completion back and let the next one overtake it
            held, self._held_completion = self._held_completion, None if self._held_completion else confirm
        if held is not None:
            self._later(confirm)
            self._later(held)

    def _set_state(self, state: str) -> None:
        def change() -> None:
            self.call_state = state
            self.handler.on_call_state_updated(state)

        self._later(change)

    def _network_delay(self) -> None:
        self.behaviour.network_answers.wait(self.behaviour.join_delay_s)

    @staticmethod
    def _complete(completion: Any, *args: Any) -> None:
        if completion is not None:
            completion(*args)

    def _check_not_released(self) -> None:
        if self.released:
            raise RuntimeError(RELEASED)

    def _later(self, callback: Callable[[], None]) -> None:
        self._callbacks.put(callback)

    def _run_callbacks(self) -> None:
        while (callback := self._callbacks.get()) is not None:
            callback()


def _check_app_message(message: Any) -> None:
    """What the real send_app_message raises at once, before anything is sent."""
    if message is None:
        raise ValueError("invalid app message 'None'")
    if isinstance(message, (bytes, bytearray)):
        raise Exception("invalid type: byte array, expected any valid JSON value")  # noqa: TRY002, TRY004 (the type daily raises)

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TypeError(f"unexpected type: '{type(key).__name__}' object is not an instance of 'str'")
                walk(key)
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            value.encode("utf-8")  # UnicodeEncodeError for an unpaired surrogate, as daily raises

    walk(message)
    json.dumps(message)


class FakeMicrophoneDevice:
    """daily's VirtualMicrophoneDevice: takes frames only while a client in a call has it as its microphone.

    Outside a call `write_frames` returns 0 at once, as the real one does. In a
    call it returns the frames taken; a `blocking` device also takes the
    audio's real duration, and pads a write that is not whole 10 ms frames.
    """

    def __init__(self, behaviour: FakeBehaviour, sample_rate: int, *, blocking: bool) -> None:
        self.behaviour = behaviour
        self.sample_rate = sample_rate
        self.channels = 1
        self.name = "echo-relay-microphone"
        self.blocking = blocking
        self.gate = threading.Event()  # a test clears it to hold every write until it is set again
        self.gate.set()
        self.writes: list[tuple[float, bytes]] = []

    def write_frames(self, /, frames, completion=None):
        self.gate.wait(30)
        if not self.behaviour.microphone_in_call(self.name):
            return 0
        self.writes.append((time.monotonic(), bytes(frames)))
        if self.blocking:
            time.sleep(len(frames) / 2 / self.sample_rate)
        return len(frames) // 2

    @property
    def played(self) -> bytes:
        return b"".join(frames for _, frames in self.writes)
