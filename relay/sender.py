"""The sender: one thread puts every request's messages on the wire, in order, and they are confirmed together."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import echo_messages
from echo_messages import MessageError
from relay.errors import Interrupted, NotJoined, RelayError, ReplicaAbsent, SendError, SendTimeout
from relay.recorder import Recorder
from relay.room import LEAVE_TIMEOUT_S

log = logging.getLogger("echo_relay")

REPLICA_POLL_S = 0.05  # how often a request waiting for the face re-checks interrupts and the call state


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

    @property
    def generation(self) -> int:
        """A ticket: an interrupt after it was taken drops the request that took it."""
        return self._generation

    def submit(
        self, messages: Iterable[Mapping[str, Any]], *, ticket: int | None = None, drop_queued: bool = False
    ) -> Future[Dispatch]:
        """Queue one request's messages; the future resolves once they are all handed to Daily.

        `ticket` is the generation when the request arrived: if an interrupt
        came since, the request is dropped (it was still being read or built).
        `drop_queued` is for a request that starts with its own interrupt: what
        was queued before it would only be cut off by it.
        """
        self._room.check_open()
        with self._wakeup:
            if ticket is not None and ticket != self._generation:
                raise Interrupted("interrupted before any of it was sent (an interrupt came while it was being read)")
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
