"""The sender: each request puts its messages on the wire itself, in its turn, and awaits their confirmations.

Turns are first come, first served (a fair lock): a request's messages go out
back to back, never interleaved with another's, in the order the requests
arrived. The request's own thread sends (no hand-off to a sender thread and
back: two thread switches a request), then releases the wire and awaits
Daily's confirmations together (`confirm`), so the next request sends while
this one waits. Waiting for each confirmation before the next send would cap
an utterance at one message per round trip.

An interrupt takes the next turn, ahead of every request waiting, and drops
them (409); the request on the wire stops at its next message. Each request
carries the ticket it arrived with: an interrupt issues a new ticket, and a
request holding an older one is dropped.

The request on the wire holds it while the face is absent (messages sent
before it is in the room are lost) and while Daily's signalling connection is
down (app messages cannot be sent then): nothing is handed to Daily meanwhile,
so the requests keep their order and nothing is lost or sent twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import echo_messages
from relay.errors import (
    ConnectionDown,
    Interrupted,
    NotJoined,
    QueueFull,
    RelayError,
    ReplicaAbsent,
    SendError,
    SendTimeout,
)
from relay.recorder import Recorder
from relay.room import RelayRoom

log = logging.getLogger("echo_relay")

POLL_S = 0.05  # how often a request held on the wire re-checks interrupts, the call state and its deadline
ANNOUNCE_EVERY_S = 15.0  # while a request waits for the face, the terminal says so this often
# Each waiting request holds one of the server's threads. While the line is stalled (the request on the
# wire waits for the face or the connection, possibly minutes), past this many waiting a request is refused
# (429) rather than taking the threads /health and the console need. A line that moves (each request in it
# waits milliseconds) is bounded by the server's threads.
MAX_WAITING_REQUESTS = 8


@dataclass
class Dispatch:
    """What one request put on the wire: a future per message, in order."""

    sent: list[Future[None]]
    cut_short: bool  # an interrupt or a send error stopped it before its last message
    error: RelayError | None = None  # bad audio halfway, the face left, the call ended


@dataclass
class _Turn:
    """A request waiting for the wire; `go` is set when the wire is its own, or when it was dropped."""

    ticket: int
    is_interrupt: bool
    go: threading.Event | None = None  # made only for a request that has to wait (most find the wire free)
    dropped: RelayError | None = None
    shared: Future[Dispatch] | None = None  # an interrupt's dispatch, which a second interrupt may share
    arrived: float = 0.0  # time.monotonic() when it arrived


class Sender:
    """The wire: one request's messages at a time, requests in arrival order, interrupts first."""

    def __init__(
        self,
        room: RelayRoom,
        *,
        replica_timeout_s: float,
        send_timeout_s: float,
        recorder: Recorder,
        connection_timeout_s: float = 30.0,
        max_waiting: int = MAX_WAITING_REQUESTS,
        announce_every_s: float = ANNOUNCE_EVERY_S,
    ) -> None:
        self._room = room
        self._replica_timeout_s = replica_timeout_s
        self._send_timeout_s = send_timeout_s
        self._connection_timeout_s = connection_timeout_s
        self._max_waiting = max_waiting
        self._announce_every_s = announce_every_s
        self._recorder = recorder
        self._lock = threading.Lock()
        self._waiting: deque[_Turn] = deque()
        self._held: _Turn | None = None  # the request on the wire while it waits for the face or the connection
        self._busy = False
        self._ticket = 0
        self._closed = False
        self._counts_lock = threading.Lock()
        self.messages_sent = 0
        self.send_errors = 0

    @property
    def queue_depth(self) -> int:
        """Requests waiting: for the wire, and the one on it while it still waits for the face or the connection."""
        return len(self._waiting) + (self._held is not None)

    @property
    def oldest_wait_s(self) -> float:
        """How long the oldest waiting request (see queue_depth) has waited; 0 when none waits."""
        with self._lock:
            arrivals = [turn.arrived for turn in self._waiting]
            if self._held is not None:
                arrivals.append(self._held.arrived)
        return round(time.monotonic() - min(arrivals), 3) if arrivals else 0.0

    @property
    def ticket(self) -> int:
        """Taken when a request arrives: an interrupt after it was taken drops the request that took it."""
        return self._ticket

    def submit(
        self, messages: Iterable[Mapping[str, Any]], *, ticket: int | None = None, drop_queued: bool = False
    ) -> Dispatch:
        """Wait for this request's turn, then hand all its messages to Daily (on the caller's thread).

        `ticket` is `self.ticket` when the request arrived: if an interrupt
        came since, the request is dropped (it was still being read or built).
        `drop_queued` is for a request that starts with its own interrupt: what
        waits before it would only be cut off by it, so it goes next (after
        any interrupt already waiting).
        """
        self._room.check_open()
        replica_deadline = time.monotonic() + self._replica_timeout_s
        with self._lock:
            if ticket is not None and ticket != self._ticket:
                raise Interrupted("interrupted before any of it was sent (an interrupt came while it was being read)")
            if drop_queued:
                self._drop_waiting()  # only interrupts wait now: this request goes right after them
            elif self._held is not None and len(self._waiting) >= self._max_waiting:
                raise QueueFull(
                    f"{len(self._waiting)} requests are waiting already while the face is not in the room or the "
                    "connection to it is down; try again once it is (see /health)"
                )
            turn = _Turn(self._ticket, is_interrupt=False, arrived=time.monotonic())
            self._take_turn(turn, first=False)
        self._await(turn)
        try:
            self._await_replica(turn, replica_deadline)
            return self._deliver(messages, turn)
        finally:
            self._release()

    def interrupt(self, conversation_id: str) -> tuple[Dispatch, int]:
        """Drop the waiting requests, stop the one on the wire, send `conversation.interrupt` next.

        An interrupt still waiting for the wire is shared, not repeated: a
        second one right after it would cut off nothing more.
        """
        self._room.check_open()
        with self._lock:
            dropped = self._drop_waiting()
            if self._waiting and self._waiting[0].shared is not None:
                shared = self._waiting[0].shared
            else:
                shared = None
                turn = _Turn(self._ticket, is_interrupt=True, shared=Future(), arrived=time.monotonic())
                self._take_turn(turn, first=True)
        if shared is not None:
            return shared.result(), dropped
        assert turn.shared is not None
        try:
            self._await(turn)
            try:
                dispatch = self._deliver([echo_messages.interrupt_message(conversation_id)], turn)
            finally:
                self._release()
        except BaseException as error:
            turn.shared.set_exception(error)
            raise
        turn.shared.set_result(dispatch)
        return dispatch, dropped

    def close(self) -> None:
        """Refuse new requests and drop the waiting ones; the one on the wire finishes its message."""
        with self._lock:
            self._closed = True
            self._drop_waiting(NotJoined("the relay is shutting down"))

    # --- turns ---

    def _take_turn(self, turn: _Turn, *, first: bool) -> None:
        """Under the lock: the wire now, or a place in the line (an interrupt's place is first)."""
        if self._closed:
            raise NotJoined("the relay is shutting down")
        if not self._busy:
            self._busy = True
            return
        turn.go = threading.Event()
        if first:
            self._waiting.appendleft(turn)
        else:
            self._waiting.append(turn)

    def _await(self, turn: _Turn) -> None:
        if turn.go is not None:
            turn.go.wait()
        if turn.dropped is not None:
            raise turn.dropped

    def _release(self) -> None:
        """Hand the wire to the next in line, or free it."""
        with self._lock:
            if self._waiting:
                self._waiting.popleft().go.set()  # type: ignore[union-attr]  # every waiting turn has one
            else:
                self._busy = False

    def _drop_waiting(self, reason: RelayError | None = None) -> int:
        """Under the lock: a new ticket; every waiting request fails (waiting interrupts stay). How many."""
        self._ticket += 1
        kept: deque[_Turn] = deque()
        dropped = 0
        for turn in self._waiting:
            if turn.is_interrupt and reason is None:
                kept.append(turn)
                continue
            turn.dropped = reason or Interrupted("interrupted before any of it was sent")
            turn.go.set()  # type: ignore[union-attr]
            dropped += 1
        self._waiting = kept
        return dropped

    # --- on the wire ---

    def _deliver(self, messages: Iterable[Mapping[str, Any]], turn: _Turn) -> Dispatch:
        """Every message back to back; stop at an interrupt, a send error, the face leaving or the call ending."""
        sent: list[Future[None]] = []
        failed: list[bool] = []  # a send error stops the rest of the request (set on Daily's thread)

        def count(future: Future[None]) -> None:
            if self._count(future):
                failed.append(True)

        try:
            for message in messages:
                if self._cut_off(turn) or failed:
                    return Dispatch(sent, cut_short=True)
                problem = self._await_connection(turn)
                if self._cut_off(turn):
                    return Dispatch(sent, cut_short=True)
                problem = problem or self._room.delivery_problem()
                if problem is not None:
                    return Dispatch(sent, cut_short=True, error=problem)
                future = self._room.send(message)
                future.add_done_callback(count)
                sent.append(future)
                self._recorder.record("out", message)
        except RelayError as error:  # a file that decodes badly halfway: say so after confirming what went
            return Dispatch(sent, cut_short=True, error=error)
        return Dispatch(sent, cut_short=False)

    def _cut_off(self, turn: _Turn) -> bool:
        """An interrupt came after this request took its ticket (an interrupt itself is never cut off)."""
        return turn.ticket != self._ticket and not turn.is_interrupt

    def _await_replica(self, turn: _Turn, deadline: float) -> None:
        """Messages sent before the face is in the room are lost: the request waits for it (holding the wire)."""
        if turn.is_interrupt or self._room.wait_for_replica(0):
            return  # an interrupt with no face to hear it is harmless; a message would be lost
        log.info(
            "a request waits for the face (Tavus replica) to join the room (up to %g s, RELAY_REPLICA_TIMEOUT)",
            self._replica_timeout_s,
        )
        self._held = turn
        try:
            next_line = time.monotonic() + self._announce_every_s
            while not self._room.wait_for_replica(POLL_S):
                self._room.check_open()
                if self._cut_off(turn):
                    raise Interrupted("interrupted while waiting for the face to join; nothing was sent")
                now = time.monotonic()
                if now >= deadline:
                    raise ReplicaAbsent(
                        f"the face (Tavus replica) has not joined the room after {self._replica_timeout_s:g} s "
                        "(RELAY_REPLICA_TIMEOUT); nothing was sent. A cold start can take minutes: try again"
                    )
                if now >= next_line:
                    log.info("still waiting for the face to join: %.0f s so far", now - turn.arrived)
                    next_line = now + self._announce_every_s
        finally:
            self._held = None

    def _await_connection(self, turn: _Turn) -> RelayError | None:
        """While Daily's signalling is down nothing is handed to it; ConnectionDown once it stayed down too long.

        The deadline counts from when the connection went down, not from when
        this request started waiting: the requests behind one that gave up
        give up at once too, instead of each waiting the whole time again.
        """
        if self._room.connection == "connected":  # the common case, without taking the event's lock
            return None
        self._held = turn
        try:
            while not self._room.wait_for_connection(POLL_S):
                if self._cut_off(turn):
                    return None
                problem = self._room.delivery_problem()
                if problem is not None:
                    return problem
                down = self._room.connection_down_s
                if down is not None and down >= self._connection_timeout_s:
                    return ConnectionDown(
                        f"the connection to the room is down: Daily did not reconnect within "
                        f"{self._connection_timeout_s:g} s (RELAY_CONNECTION_TIMEOUT)"
                    )
            return None
        finally:
            self._held = None

    def _count(self, future: Future[None]) -> bool:
        """Counted as Daily answers (on its thread); True for a send error."""
        failed = future.exception() is not None
        with self._counts_lock:
            if failed:
                self.send_errors += 1
            else:
                self.messages_sent += 1
        return failed

    def confirm(self, dispatch: Dispatch) -> int:
        """Wait (on the caller's thread) until Daily confirmed every message; how many it confirmed.

        Waiting on each future in turn, against one deadline, costs a fraction
        of `futures.wait` (no waiter installed on every future) for the same answer.
        """
        sent = dispatch.sent
        deadline = time.monotonic() + self._send_timeout_s
        errors: list[BaseException] = []
        pending = 0
        for future in sent:
            try:
                error = future.exception(max(0.0, deadline - time.monotonic()))
            except futures.TimeoutError:
                pending += 1
                continue
            if error is not None:
                errors.append(error)
        confirmed = len(sent) - pending - len(errors)
        if dispatch.error is not None:
            raise dispatch.error.with_detail(f"(after {confirmed} message(s) were sent)")
        if errors:
            raise SendError(f"Daily reported a send error ({confirmed} of {len(sent)} messages confirmed): {errors[0]}")
        if pending:
            raise SendTimeout(
                f"Daily did not confirm {pending} of {len(sent)} messages within "
                f"{self._send_timeout_s:g} s (RELAY_SEND_TIMEOUT)"
            )
        if dispatch.cut_short:
            raise Interrupted(f"interrupted after {confirmed} message(s) were sent; the rest were dropped")
        return confirmed
