"""The sender (relay/sender.py) against a small fake room: order, turns, interrupts, confirmations, holds.

The fake room confirms nothing by itself: a test settles each message's future
when and how it wants (in order, out of order, with an error, never), and can
hold a send, take the face away, or drop Daily's signalling connection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import pytest

from relay.errors import ConnectionDown, Interrupted, QueueFull, RelayError, ReplicaAbsent, SendError, SendTimeout
from relay.recorder import Recorder
from relay.sender import Dispatch, Sender
from tests.conftest import wait_until

CONVERSATION_ID = "c123"


class FakeRoom:
    """What the sender needs of a room (relay.room.RelayRoom); every send is recorded with its future."""

    mode = "room"
    conversation_id = CONVERSATION_ID
    conversation_url = "https://tavus.daily.co/c123"
    private = False
    call_state = "joined"
    left_reason: str | None = None

    def __init__(self, *, confirm: bool = True) -> None:
        self.confirm = confirm  # settle each future at once (True) or leave it to the test
        self.sent: list[Mapping[str, Any]] = []
        self.futures: list[Future[None]] = []
        self.on_send: Callable[[Mapping[str, Any]], None] = lambda message: None
        self.problem: RelayError | None = None
        self.face_here = threading.Event()
        self.face_here.set()
        self.signalling_up = threading.Event()
        self.signalling_up.set()
        self.down_since: float | None = None

    @property
    def replica_present(self) -> bool:
        return self.face_here.is_set()

    @property
    def face(self) -> dict[str, Any]:
        return {"present": self.replica_present, "signal": "user_id", "participant_id": "face-1"}

    @property
    def connection(self) -> str:
        return "connected" if self.signalling_up.is_set() else "interrupted"

    @property
    def connection_down_s(self) -> float | None:
        return None if self.down_since is None else time.monotonic() - self.down_since

    def drop_signalling(self) -> None:
        self.down_since = time.monotonic()
        self.signalling_up.clear()

    def restore_signalling(self) -> None:
        self.down_since = None
        self.signalling_up.set()

    def add_listener(self, listener: Any) -> None: ...
    def join(self, timeout: float = 0) -> None: ...
    def leave(self, timeout: float = 0) -> None: ...

    def is_face(self, participant_id: str) -> bool:
        return False  # the wire never asks: only the relay's events thread does

    def check_open(self) -> None:
        """Always open."""

    def wait_for_replica(self, timeout: float) -> bool:
        return self.face_here.wait(timeout)

    def wait_for_connection(self, timeout: float) -> bool:
        return self.signalling_up.wait(timeout)

    def delivery_problem(self) -> RelayError | None:
        return self.problem

    def send(self, message: Mapping[str, Any]) -> Future[None]:
        assert self.signalling_up.is_set(), "a message was handed to Daily while signalling was down"
        self.sent.append(message)
        future: Future[None] = Future()
        self.futures.append(future)
        self.on_send(message)
        if self.confirm:
            future.set_result(None)
        return future


def messages(name: str, count: int) -> list[dict[str, Any]]:
    return [{"event_type": "conversation.echo", "properties": {"text": f"{name}{i}"}} for i in range(1, count + 1)]


def texts(room: FakeRoom) -> list[str]:
    return [m["properties"]["text"] if m["event_type"] == "conversation.echo" else "INTERRUPT" for m in room.sent]


def make_sender(room: FakeRoom, **options: Any) -> Sender:
    options = {"replica_timeout_s": 5.0, "send_timeout_s": 5.0, "recorder": Recorder(None), **options}
    return Sender(room, **options)


class Request:
    """One request on its own thread, as waitress runs it: submit, then confirm; its answer or its error."""

    def __init__(self, sender: Sender, batch: list[dict[str, Any]], **submit: Any) -> None:
        self.result: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(sender, batch, submit), daemon=True)
        self._thread.start()

    def _run(self, sender: Sender, batch: list[dict[str, Any]], submit: dict[str, Any]) -> None:
        try:
            self.result = sender.confirm(sender.submit(batch, **submit))
        except RelayError as error:
            self.error = error

    def answer(self) -> int | BaseException | None:
        self._thread.join(10)
        assert not self._thread.is_alive(), "the request never ended"
        return self.error if self.error is not None else self.result


def until(condition: Callable[[], bool]) -> None:
    """Wait for state another thread changes (a request queued, a send made)."""
    wait_until(condition, "the state the test waits for", interval=0.001)


class HeldSend:
    """Holds the room's first send of `text` until `release()`: the request holding the wire stays on it."""

    def __init__(self, room: FakeRoom, text: str) -> None:
        self.reached = threading.Event()
        self._go = threading.Event()

        def hold(message: Mapping[str, Any]) -> None:
            if message.get("properties", {}).get("text") == text and not self.reached.is_set():
                self.reached.set()
                assert self._go.wait(10)

        room.on_send = hold

    def release(self) -> None:
        self._go.set()


# --- order ---------------------------------------------------------------------------------


def test_one_requests_messages_go_out_in_order_and_back_to_back():
    room = FakeRoom()
    sender = make_sender(room)

    assert sender.confirm(sender.submit(messages("a", 5))) == 5
    assert texts(room) == ["a1", "a2", "a3", "a4", "a5"]


def test_requests_go_out_whole_in_the_order_they_arrived():
    room = FakeRoom()
    sender = make_sender(room)
    held = HeldSend(room, "a1")
    first = Request(sender, messages("a", 3))
    assert held.reached.wait(5)
    second = Request(sender, messages("b", 2))
    until(lambda: sender.queue_depth == 1)
    third = Request(sender, messages("c", 2))
    until(lambda: sender.queue_depth == 2)

    held.release()

    assert (first.answer(), second.answer(), third.answer()) == (3, 2, 2)
    assert texts(room) == ["a1", "a2", "a3", "b1", "b2", "c1", "c2"]


def test_confirmations_arriving_out_of_order_confirm_the_whole_request():
    room = FakeRoom(confirm=False)
    sender = make_sender(room)
    dispatch = sender.submit(messages("a", 4))

    for future in reversed(room.futures):
        future.set_result(None)

    assert sender.confirm(dispatch) == 4
    assert sender.messages_sent == 4


def test_the_next_request_sends_while_the_last_one_awaits_its_confirmations():
    room = FakeRoom(confirm=False)
    sender = make_sender(room)

    sender.submit(messages("a", 2))  # unconfirmed: the wire is free anyway
    sender.submit(messages("b", 1))

    assert texts(room) == ["a1", "a2", "b1"]


# --- interrupts ----------------------------------------------------------------------------


def test_an_interrupt_goes_first_drops_the_waiting_and_stops_the_one_on_the_wire():
    room = FakeRoom()
    sender = make_sender(room)
    held = HeldSend(room, "a1")
    on_the_wire = Request(sender, messages("a", 3))
    assert held.reached.wait(5)
    waiting = Request(sender, messages("b", 2))
    until(lambda: sender.queue_depth == 1)
    interrupting: dict[str, Any] = {}
    interrupt = threading.Thread(target=lambda: interrupting.update(answer=sender.interrupt(CONVERSATION_ID)))
    interrupt.start()

    assert str(waiting.answer()) == "interrupted before any of it was sent"
    held.release()
    interrupt.join(10)

    assert str(on_the_wire.answer()) == "interrupted after 1 message(s) were sent; the rest were dropped"
    dispatch, dropped = interrupting["answer"]
    assert dropped == 1 and sender.confirm(dispatch) == 1
    assert texts(room) == ["a1", "INTERRUPT"]


def test_a_request_whose_ticket_an_interrupt_replaced_is_dropped_before_sending():
    room = FakeRoom()
    sender = make_sender(room)
    ticket = sender.ticket
    sender.confirm(sender.interrupt(CONVERSATION_ID)[0])

    with pytest.raises(Interrupted, match="an interrupt came while it was being read"):
        sender.submit(messages("a", 1), ticket=ticket)
    assert texts(room) == ["INTERRUPT"]


# --- what Daily answers --------------------------------------------------------------------


def test_a_confirmation_that_never_comes_is_a_send_timeout():
    room = FakeRoom(confirm=False)
    sender = make_sender(room, send_timeout_s=0.05)
    dispatch = sender.submit(messages("a", 3))
    room.futures[0].set_result(None)

    with pytest.raises(SendTimeout) as raised:
        sender.confirm(dispatch)
    assert str(raised.value) == "Daily did not confirm 2 of 3 messages within 0.05 s (RELAY_SEND_TIMEOUT)"


def test_a_send_error_stops_the_rest_of_the_request_and_says_how_many_were_confirmed():
    room = FakeRoom(confirm=False)
    room.on_send = lambda message: (
        room.futures[-1].set_exception(SendError("SendFailed"))
        if len(room.sent) == 2
        else room.futures[-1].set_result(None)
    )
    sender = make_sender(room)

    with pytest.raises(SendError) as raised:
        sender.confirm(sender.submit(messages("a", 4)))
    assert str(raised.value) == "Daily reported a send error (1 of 2 messages confirmed): SendFailed"
    assert texts(room) == ["a1", "a2"] and sender.send_errors == 1


# --- the face ------------------------------------------------------------------------------


def test_the_face_leaving_mid_utterance_stops_the_request_and_says_how_many_went_out():
    room = FakeRoom()

    def face_leaves(message: Mapping[str, Any]) -> None:
        if len(room.sent) == 2:
            room.problem = ReplicaAbsent("the face (Tavus replica) left the room mid-utterance")

    room.on_send = face_leaves
    sender = make_sender(room)

    with pytest.raises(ReplicaAbsent) as raised:
        sender.confirm(sender.submit(messages("a", 5)))
    assert str(raised.value) == "the face (Tavus replica) left the room mid-utterance (after 2 message(s) were sent)"
    assert texts(room) == ["a1", "a2"]


def test_a_face_that_never_joins_is_a_503_with_nothing_sent():
    room = FakeRoom()
    room.face_here.clear()
    sender = make_sender(room, replica_timeout_s=0.05)

    with pytest.raises(
        ReplicaAbsent, match=r"has not joined the room after 0.05 s \(RELAY_REPLICA_TIMEOUT\); nothing was sent"
    ):
        sender.submit(messages("a", 1))
    assert room.sent == []


def test_the_request_waiting_for_the_face_counts_in_queue_depth_and_its_wait_is_shown():
    room = FakeRoom()
    room.face_here.clear()
    sender = make_sender(room)
    waiting = Request(sender, messages("a", 1))

    until(lambda: sender.queue_depth == 1)
    until(lambda: sender.oldest_wait_s > 0)
    room.face_here.set()

    assert waiting.answer() == 1
    assert sender.queue_depth == 0 and sender.oldest_wait_s == 0


class Lines(logging.Handler):
    """The relay's log lines as they are written; `wait_for(text)` until one holds `text`."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.lines.append(record.getMessage())
            self.changed.notify_all()

    def wait_for(self, text: str) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: any(text in line for line in self.lines), 10), self.lines


@pytest.fixture
def log_lines():
    lines = Lines()
    logger = logging.getLogger("echo_relay")
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(lines)
    logger.setLevel(level)


def test_a_request_waiting_for_the_face_says_so_once_then_again_every_interval(log_lines):
    room = FakeRoom()
    room.face_here.clear()
    sender = make_sender(room, replica_timeout_s=300, announce_every_s=0.01)
    waiting = Request(sender, messages("a", 1))

    log_lines.wait_for("still waiting for the face to join: ")
    room.face_here.set()

    assert waiting.answer() == 1
    assert [line for line in log_lines.lines if "waits for the face" in line] == [
        "a request waits for the face (Tavus replica) to join the room (up to 300 s, RELAY_REPLICA_TIMEOUT)"
    ]


# --- Daily's signalling connection ---------------------------------------------------------


def test_while_signalling_is_down_nothing_is_sent_and_the_request_continues_when_it_is_back():
    room = FakeRoom()

    def drop_after_the_second(message: Mapping[str, Any]) -> None:
        if len(room.sent) == 2:
            room.drop_signalling()

    room.on_send = drop_after_the_second
    sender = make_sender(room)
    on_the_wire = Request(sender, messages("a", 4))
    until(lambda: sender.queue_depth == 1)  # held on the wire, waiting for the connection
    behind = Request(sender, messages("b", 2))
    until(lambda: sender.queue_depth == 2)
    assert texts(room) == ["a1", "a2"]

    room.restore_signalling()

    assert (on_the_wire.answer(), behind.answer()) == (4, 2)
    assert texts(room) == ["a1", "a2", "a3", "a4", "b1", "b2"]  # in order, nothing lost, nothing twice


def test_signalling_down_too_long_is_a_503_saying_how_many_went_out_and_the_waiting_get_it_too():
    room = FakeRoom()

    def drop_after_the_first(message: Mapping[str, Any]) -> None:
        if len(room.sent) == 1:
            room.drop_signalling()

    room.on_send = drop_after_the_first
    sender = make_sender(room, connection_timeout_s=0.2)
    on_the_wire = Request(sender, messages("a", 3))
    until(lambda: sender.queue_depth == 1)
    behind = Request(sender, messages("b", 2))

    cut, dropped = on_the_wire.answer(), behind.answer()

    down = "the connection to the room is down: Daily did not reconnect within 0.2 s (RELAY_CONNECTION_TIMEOUT)"
    assert isinstance(cut, ConnectionDown) and str(cut) == f"{down} (after 1 message(s) were sent)"
    assert isinstance(dropped, ConnectionDown) and str(dropped) == f"{down} (after 0 message(s) were sent)"
    assert texts(room) == ["a1"]


# --- bounds --------------------------------------------------------------------------------


def test_while_the_line_is_stalled_past_its_bound_a_request_is_refused_with_429_and_nothing_sent():
    room = FakeRoom()
    room.face_here.clear()
    sender = make_sender(room, max_waiting=2)
    stalled = Request(sender, messages("a", 1))
    until(lambda: sender.queue_depth == 1)  # on the wire, waiting for the face
    waiting = [Request(sender, messages(name, 1)) for name in ("b", "c")]
    until(lambda: sender.queue_depth == 3)

    with pytest.raises(QueueFull) as raised:
        sender.submit(messages("d", 1))
    room.face_here.set()

    assert str(raised.value) == (
        "2 requests are waiting already while the face is not in the room or the connection to it is down; "
        "try again once it is (see /health)"
    )
    assert [stalled.answer(), *(request.answer() for request in waiting)] == [1, 1, 1]
    assert texts(room) == ["a1", "b1", "c1"]


def test_a_line_that_moves_is_not_refused_past_the_bound():
    room = FakeRoom()
    sender = make_sender(room, max_waiting=1)
    held = HeldSend(room, "a1")  # the wire is busy sending, not waiting for the face
    on_the_wire = Request(sender, messages("a", 1))
    assert held.reached.wait(5)
    waiting = [Request(sender, messages(name, 1)) for name in ("b", "c", "d")]
    until(lambda: sender.queue_depth == 3)

    held.release()

    assert [on_the_wire.answer(), *(request.answer() for request in waiting)] == [1, 1, 1, 1]


def test_an_empty_dispatch_confirms_nothing():
    assert make_sender(FakeRoom()).confirm(Dispatch([], cut_short=False)) == 0
