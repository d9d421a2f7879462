"""Fixtures every test builds on: settings, a fake CallClient, a joined room, the app."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from app import create_app
from config import Settings
from relay.room import Room

CONVERSATION_URL = "https://tavus.daily.co/c123"
CONVERSATION_ID = "c123"
# Step 5 of Tavus's Echo Mode quickstart, verbatim (the docs tell you to replace <conversation_id>).
DOCS_TEXT_BODY = {
    "message_type": "conversation",
    "event_type": "conversation.echo",
    "conversation_id": "<conversation_id>",
    "properties": {
        "modality": "text",
        "text": "Hello there!",
        "audio": "base64-encoded-audio",
        "sample_rate": 24000,
        "inference_id": "inference-id-123",
        "done": "true",
    },
}
REPLICA = {"id": "replica-1", "info": {"userId": "tavus-replica-abc", "userName": "Echo Assistant", "isLocal": False}}


class FakeCallClient:
    """daily.CallClient's signatures; completions and events fire on another thread, as Daily's do.

    `send_error(index, message)` may return an error string for a send;
    `confirm_sends = False` makes completions never arrive.
    """

    def __init__(self, event_handler: Any = None, *, behaviour: FakeBehaviour) -> None:
        self.handler = event_handler
        self.behaviour = behaviour
        self.sent: list[dict[str, Any]] = []
        self.sent_at: list[float] = []
        self.joined_with: dict[str, Any] = {}
        self.released = False
        self.left = False
        self._lock = threading.Lock()
        self._callbacks: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run_callbacks, name="fake-daily", daemon=True)
        self._thread.start()

    # --- CallClient methods ---
    def join(self, meeting_url: str, meeting_token: str | None = None, client_settings: Any = None, completion: Any = None) -> None:
        self.joined_with = {"url": meeting_url, "meeting_token": meeting_token, "client_settings": client_settings}
        error = self.behaviour.join_error

        def finish() -> None:
            if not error:
                self.handler.on_call_state_updated("joined")
            if completion:
                completion(None if error else {"participants": self.participants()}, error)

        self._later(finish)

    def participants(self) -> dict[str, Any]:
        people: dict[str, Any] = {"local": {"id": "local-id", "info": {"isLocal": True}}}
        if self.behaviour.replica_in_room:
            people[REPLICA["id"]] = REPLICA
        return people

    def send_app_message(self, message: Any, participant_id: str | None = None, completion: Any = None) -> None:
        with self._lock:
            index = len(self.sent)
            self.sent.append(self.behaviour.keep(message))
            self.sent_at.append(time.monotonic())
        if not self.behaviour.confirm_sends:
            return
        error = self.behaviour.send_error(index, message) if self.behaviour.send_error else None
        if completion:
            self._later(lambda: completion(error))

    def update_inputs(self, input_settings: Any, completion: Any = None) -> None:
        if completion:
            self._later(lambda: completion(None, None))

    def leave(self, completion: Any = None) -> None:
        self.left = True

        def finish() -> None:
            self.handler.on_call_state_updated("left")
            if completion:
                completion(None)

        self._later(finish)

    def release(self) -> None:
        self.released = True
        self._callbacks.put(None)

    # --- what a test makes the room do ---
    def replica_joins(self) -> None:
        self.behaviour.replica_in_room = True
        self._later(lambda: self.handler.on_participant_joined(REPLICA))

    def replica_leaves(self) -> None:
        self.behaviour.replica_in_room = False
        self._later(lambda: self.handler.on_participant_left(REPLICA, "leftCall"))

    def room_sends(self, message: dict[str, Any], sender: str = REPLICA["id"]) -> None:
        self._later(lambda: self.handler.on_app_message(message, sender))

    def call_ends(self, reason: str = "meeting ended") -> None:
        def finish() -> None:
            self.handler.on_error(reason)
            self.handler.on_call_state_updated("left")

        self._later(finish)

    def settle(self, timeout: float = 2.0) -> None:
        """Wait until every completion queued so far has run."""
        done = threading.Event()
        self._later(done.set)
        assert done.wait(timeout), "fake Daily thread is stuck"

    def _later(self, callback: Callable[[], None]) -> None:
        self._callbacks.put(callback)

    def _run_callbacks(self) -> None:
        while (callback := self._callbacks.get()) is not None:
            callback()


class FakeBehaviour:
    def __init__(self) -> None:
        self.join_error: str | None = None
        self.replica_in_room = True
        self.confirm_sends = True
        self.send_error: Callable[[int, Any], str | None] | None = None
        self.keep: Callable[[Any], Any] = lambda message: message  # what the room's log keeps of each message
        self.clients: list[FakeCallClient] = []

    def factory(self, event_handler: Any = None) -> FakeCallClient:
        client = FakeCallClient(event_handler, behaviour=self)
        self.clients.append(client)
        return client

    @property
    def client(self) -> FakeCallClient:
        return self.clients[-1]


@pytest.fixture
def settings() -> Settings:
    return Settings(replica_timeout_s=2.0, send_timeout_s=1.0)


@pytest.fixture
def fake_daily() -> FakeBehaviour:
    return FakeBehaviour()


@pytest.fixture
def room(fake_daily: FakeBehaviour) -> Iterator[Room]:
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)
    room.join(timeout=2)
    yield room
    room.leave()


@pytest.fixture
def fake_call_client(room: Room, fake_daily: FakeBehaviour) -> FakeCallClient:
    return fake_daily.client


@pytest.fixture
def make_app() -> Iterator[Callable[..., Any]]:
    """`make_app(settings, room, **kwargs)`: create_app, with every app made closed after the test.

    Closing stops the relay's sender, event and microphone threads; an app left
    open would keep them running into later tests.
    """
    made: list[Any] = []

    def make(settings: Settings, room: Any, **kwargs: Any) -> Any:
        made.append(create_app(settings, room, **kwargs))
        return made[-1]

    yield make
    for app in made:
        app.extensions["relay"].close()


@pytest.fixture
def app(settings: Settings, room: Room, make_app: Callable[..., Any]) -> Any:
    return make_app(settings, room)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def sent_messages(call_client: FakeCallClient) -> list[dict[str, Any]]:
    call_client.settle()
    return list(call_client.sent)


@pytest.fixture
def fake_tavus() -> Iterator[Any]:
    from tests.fake_tavus import start_fake_tavus

    fake = start_fake_tavus()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def free_port() -> int:
    """A loopback port nothing listens on (for RELAY_PORT, or a refused connection)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_relay(port: int, timeout: float = 15.0) -> bool:
    """True once the relay on `port` answers /health; False if it never does (then do not signal it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return True
        except requests.ConnectionError:
            time.sleep(0.02)
    return False
