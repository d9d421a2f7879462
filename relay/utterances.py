"""Utterances: ids, the ones still open (for their rate and their idle close), and what became of each.

`OpenUtterances`: a caller streams one audio utterance as several requests
and closes it with `{"inference_id": ..., "done": true}`. That closing request
has no audio and often no `sample_rate`: its 40 ms of silence must still go at
the rate the utterance was sent at, not at Tavus's 16000 default. An
utterance nobody closes leaves the face waiting (without `done` its tail may
never be spoken), so one idle for RELAY_UTTERANCE_IDLE_CLOSE seconds is
closed by the relay; a later chunk for it is refused, naming it.

`WaitingRequests`: how many requests wait for the face at once (`wait`),
each holding a server thread meanwhile; past RELAY_MAX_WAITING_FOR_FACE, 429.

`UtteranceTracker`: one record per inference_id (queued, sending, sent,
speaking, spoken, interrupted, failed, with times, and the words the face
said where it reports them), for the last MAX_TRACKED_UTTERANCES. The script
runner, `wait`, /utterances, /health's latency and the console all read it:
one place knows what the face has said.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from relay.audio import UtteranceRates
from relay.errors import QueueFull, UtteranceClosed
from relay.face_events import SpeakingReport, SpokenReport

MAX_OPEN_UTTERANCES = 1024  # callers that never close their utterances cannot grow this without bound
MAX_TRACKED_UTTERANCES = 1000  # like the events buffer: the last ones, oldest forgotten first
LATENCY_WINDOW = 100  # /health's p50 and p95 are over the last this many utterances the face started
WAIT_POLL_S = 0.05  # how often a wait re-checks whether to give up (a stop, the face gone)
MAX_SPOKEN_TEXT_CHARS = 500  # of what the face said: its end, where an interrupted line stopped
ELLIPSIS = "…"
SENT_STATES = ("queued", "sending")  # what `sent` moves on from: never back from speaking
DONE_STATES = ("spoken", "interrupted", "failed")


# --- open utterances --------------------------------------------------------------------------


@dataclass
class _Open:
    rates: UtteranceRates
    ticket: int | None  # the sender's ticket when it was sent: an interrupt since then means no close
    last: float


class OpenUtterances:
    """inference_id -> UtteranceRates of utterances sent with `done: false`; safe across request threads."""

    def __init__(self, capacity: int = MAX_OPEN_UTTERANCES, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = capacity
        self._clock = clock
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._busy: dict[str, int] = {}  # requests of an utterance being sent now: never closed under them
        self._closed: OrderedDict[str, float] = OrderedDict()  # closed for idling: id -> seconds idle
        self._lock = threading.Lock()

    def get(self, inference_id: str) -> UtteranceRates | None:
        with self._lock:
            entry = self._open.get(inference_id)
            return entry.rates if entry else None

    @contextmanager
    def sending(self, inference_id: str) -> Iterator[None]:
        """Around a request of the utterance: refused if the relay closed it for idling; never closed meanwhile."""
        with self._lock:
            if inference_id in self._closed:
                raise UtteranceClosed(
                    f"utterance {inference_id[:80]!r} was closed after {self._closed[inference_id]:g} s with no audio "
                    "(RELAY_UTTERANCE_IDLE_CLOSE): send the rest under a new inference_id"
                )
            self._busy[inference_id] = self._busy.get(inference_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._busy[inference_id] -= 1
                if not self._busy[inference_id]:
                    del self._busy[inference_id]
                if inference_id in self._open:
                    self._open[inference_id].last = self._clock()

    def sent(self, inference_id: str, rates: UtteranceRates, *, done: bool, ticket: int | None = None) -> None:
        """Note a request of the utterance that went out: it stays open until one is `done`."""
        with self._lock:
            if done:
                self._open.pop(inference_id, None)
                return
            self._open[inference_id] = _Open(rates, ticket, self._clock())
            self._open.move_to_end(inference_id)
            while len(self._open) > self._capacity:
                self._open.popitem(last=False)

    def forget(self) -> None:
        """An interrupt cut every open utterance off: none of them gets a `done`."""
        with self._lock:
            self._open.clear()

    def idle(self, idle_s: float) -> list[tuple[str, UtteranceRates, int | None, float]]:
        """Take out the utterances that received nothing for `idle_s` (none being sent now): id, rates, ticket, idle."""
        now = self._clock()
        taken = []
        with self._lock:
            for inference_id, entry in list(self._open.items()):
                waited = now - entry.last
                if waited >= idle_s and inference_id not in self._busy:
                    del self._open[inference_id]
                    self._closed[inference_id] = round(waited, 1)
                    taken.append((inference_id, entry.rates, entry.ticket, waited))
            while len(self._closed) > self._capacity:
                self._closed.popitem(last=False)
        return taken


# --- requests that wait for the face --------------------------------------------------------


class WaitingRequests:
    """Requests answered only once the face spoke (`wait`), at most `limit` at once (RELAY_MAX_WAITING_FOR_FACE).

    Each holds a server thread for as long as the face takes, up to RELAY_SPOKEN_TIMEOUT: 80 of them behind one
    long text took every thread, so /health timed out and POST /interrupt was answered 50 s late. A request takes
    its place as it arrives, before anything is sent, so the one refused (429) sent nothing; the server gives
    these places threads of their own (relay/server.py).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._waiting = 0
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextmanager
    def place(self, wait: str | None) -> Iterator[None]:
        """Around a request that may wait (`wait` given; None takes no place): QueueFull when all are taken."""
        if wait is None:
            yield
            return
        with self._lock:
            if self._waiting >= self._limit:
                raise QueueFull(
                    f"{self._waiting} requests are waiting for the face already, as many as RELAY_MAX_WAITING_FOR_FACE "
                    'allows: send this one without "wait" and follow GET /utterances/<inference_id>, '
                    "or try again once one is answered"
                )
            self._waiting += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1


# --- what became of each utterance -----------------------------------------------------------


@dataclass
class _Utterance:
    inference_id: str
    arrived_mono: float
    arrived_at: float
    state: str = "queued"
    sent_at: float | None = None
    started_speaking_at: float | None = None
    stopped_speaking_at: float | None = None
    started_after_ms: int | None = None
    duration_s: float | None = None
    interrupted: bool | None = None
    spoken_text: str | None = None  # only once the face reported it: where it does not, the answer is as before
    error: str | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        answer = {
            "inference_id": self.inference_id,
            "state": self.state,
            "arrived_at": self.arrived_at,
            "sent_at": self.sent_at,
            "started_speaking_at": self.started_speaking_at,
            "stopped_speaking_at": self.stopped_speaking_at,
            "started_after_ms": self.started_after_ms,
            "duration_s": self.duration_s,
            "interrupted": self.interrupted,
        }
        if self.spoken_text is not None:
            answer["spoken_text"] = self.spoken_text
        if self.error is not None:
            answer["error"] = self.error
        return answer


def spoken_fields(utterance: dict[str, Any]) -> dict[str, Any]:
    """The `spoken` object of an answer that waited: what the face reported (null where it has not yet)."""
    return {key: utterance[key] for key in ("started_after_ms", "duration_s", "interrupted")}


class UtteranceTracker:
    """One record per inference_id, moved on by the sender's steps and the face's reports; waits wake on change."""

    def __init__(
        self,
        capacity: int = MAX_TRACKED_UTTERANCES,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._capacity = capacity
        self._clock = clock
        self._wall = wall_clock
        self._records: OrderedDict[str, _Utterance] = OrderedDict()
        self._latencies: deque[int] = deque(maxlen=LATENCY_WINDOW)
        self._changed = threading.Condition()

    def arrived(self, inference_id: str) -> None:
        """A request for the utterance arrived: a new record, or the same one for its next chunk."""
        with self._changed:
            record = self._records.get(inference_id)
            if record is None or record.state in DONE_STATES:
                self._records[inference_id] = _Utterance(inference_id, self._clock(), self._now())
                self._records.move_to_end(inference_id)
                while len(self._records) > self._capacity:
                    self._records.popitem(last=False)
            self._changed.notify_all()

    def sending(self, inference_id: str) -> None:
        self._move(inference_id, "sending", ("queued",))

    def sent(self, inference_id: str) -> None:
        with self._changed:
            record = self._records.get(inference_id)
            if record is not None:
                record.sent_at = self._now()
            self._move_locked(record, "sent", SENT_STATES)

    def failed(self, inference_id: str, error: str, *, interrupted: bool) -> None:
        """The send ended early: dropped by an interrupt ("interrupted") or refused by Daily ("failed")."""
        with self._changed:
            record = self._records.get(inference_id)
            if record is not None and record.state in (*SENT_STATES, "sent"):
                record.error = error
                if interrupted:
                    record.interrupted = True
            self._move_locked(record, "interrupted" if interrupted else "failed", (*SENT_STATES, "sent"))

    def cut_off(self, *, keep: str | None = None) -> None:
        """An interrupt went out: what the face was sent and had not finished will never be spoken (whole).

        Without this an utterance not yet started stayed "sent" for good (a
        later request under its id was timed from the old one's arrival), and
        every wait on it waited its whole timeout. `keep` is the utterance that
        carried the interrupt itself. The face's own report, when it comes,
        still adds how long it spoke.
        """
        with self._changed:
            for record in self._records.values():
                if record.inference_id == keep:
                    continue
                if record.state == "sent":
                    record.error = "an interrupt cut it off before the face started it"
                elif record.state != "speaking":
                    continue
                record.state, record.interrupted = "interrupted", True
            self._changed.notify_all()

    def face_reported(self, report: SpeakingReport) -> None:
        """The face started or stopped an utterance; one this relay did not send is not tracked."""
        if report.inference_id is None:
            return
        with self._changed:
            record = self._records.get(report.inference_id)
            if record is None:
                return
            if report.started:
                if record.started_speaking_at is None:
                    record.started_speaking_at = self._now()
                    record.started_after_ms = round((self._clock() - record.arrived_mono) * 1000)
                    self._latencies.append(record.started_after_ms)
                self._move_locked(record, "speaking", (*SENT_STATES, "sent"))
            elif record.stopped_speaking_at is None:
                record.stopped_speaking_at = self._now()
                record.duration_s = report.duration_s
                record.interrupted = report.interrupted
                record.state = "interrupted" if report.interrupted else "spoken"
            self._changed.notify_all()

    def face_said(self, report: SpokenReport) -> str | None:
        """The face's final word on what it said of an utterance this relay sent: kept as a bounded excerpt,
        and returned; None when it is not tracked or already has one (the pal/replica duplicate, a late copy)."""
        if report.inference_id is None:
            return None
        with self._changed:
            record = self._records.get(report.inference_id)
            if record is None or record.spoken_text is not None:
                return None
            record.spoken_text = excerpt(report.speech)
            self._changed.notify_all()
            return record.spoken_text

    def get(self, inference_id: str) -> dict[str, Any] | None:
        with self._changed:
            record = self._records.get(inference_id)
            return record.as_dict() if record else None

    def wait(
        self, inference_id: str, until: str, timeout: float, give_up: Callable[[], bool] | None = None
    ) -> dict[str, Any] | None:
        """The record once the face started ("started") or stopped ("spoken") it; None after `timeout`
        or once `give_up()` is true (checked every WAIT_POLL_S)."""
        deadline = self._clock() + timeout
        with self._changed:
            while True:
                record = self._records.get(inference_id)
                if record is not None and _reached(record, until):
                    return record.as_dict()
                left = deadline - self._clock()
                if left <= 0 or (give_up is not None and give_up()):
                    return None
                self._changed.wait(min(left, WAIT_POLL_S))

    def latency(self) -> dict[str, Any]:
        """From a request's arrival to the face starting it: p50 and p95 (ms) over the last LATENCY_WINDOW."""
        with self._changed:
            ordered = sorted(self._latencies)
        return {"p50_ms": _rank(ordered, 0.50), "p95_ms": _rank(ordered, 0.95), "utterances": len(ordered)}

    def _move(self, inference_id: str, state: str, from_states: tuple[str, ...]) -> None:
        with self._changed:
            self._move_locked(self._records.get(inference_id), state, from_states)

    def _move_locked(self, record: _Utterance | None, state: str, from_states: tuple[str, ...]) -> None:
        if record is not None and record.state in from_states:
            record.state = state
            self._changed.notify_all()

    def _now(self) -> float:
        return round(self._wall(), 3)


def excerpt(speech: str) -> str:
    """At most MAX_SPOKEN_TEXT_CHARS of what the face said: its end, where a line cut off stopped, led by "…"."""
    if len(speech) <= MAX_SPOKEN_TEXT_CHARS:
        return speech
    return ELLIPSIS + speech[len(speech) - MAX_SPOKEN_TEXT_CHARS + len(ELLIPSIS) :]


def _reached(record: _Utterance, until: str) -> bool:
    """Whether a wait `until` "started" or "spoken" is over: also when the utterance was cut off or failed, which
    no report from the face will follow (an interrupt ends every wait on what it cut off, at once)."""
    if record.state in ("interrupted", "failed"):
        return True
    if until == "started":
        return record.started_speaking_at is not None or record.stopped_speaking_at is not None
    return record.stopped_speaking_at is not None


def _rank(ordered: list[int], share: float) -> int | None:
    """The nearest-rank percentile: a value that was measured, never an interpolation."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else None
