"""Events: what the room and the relay report, numbered, buffered, ordered and streamed."""

from __future__ import annotations

import heapq
import json
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from relay.errors import TooManyListeners
from relay.recorder import Recorder
from relay.room import LEAVE_TIMEOUT_S

EVENT_KEEPALIVE_S = 15.0  # an SSE comment this often keeps proxies from cutting an idle stream
EVENT_REORDER_WINDOW_S = 0.005  # room messages with a `seq` arriving this close together are put in seq order
MAX_EVENT_LISTENERS = 64  # each SSE stream holds a server thread; POSTs keep their own


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
