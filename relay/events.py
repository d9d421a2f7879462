"""Events: what the room and the relay report, numbered, buffered, ordered and streamed."""

from __future__ import annotations

import heapq
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from echo_messages import ascii_int
from relay.errors import MessageError, TooManyListeners
from relay.face_events import message_seq
from relay.logs import escape_control
from relay.recorder import Recorder

log = logging.getLogger("echo_relay")

EVENT_KEEPALIVE_S = 3.0  # an SSE comment this often keeps proxies from cutting an idle stream, and finds a
# client that left within seconds (a write is the only way a server learns it), freeing its stream slot
EVENT_REORDER_WINDOW_S = 0.005  # room messages with a `seq` arriving this close together are put in seq order
MAX_EVENT_LISTENERS = 64  # each SSE stream holds a server thread; POSTs keep their own
MAX_ROOM_EVENTS_QUEUED = 10000  # room events not yet handled; past it they are dropped and counted, Daily never waits
STOP_TIMEOUT_S = 5.0  # how long closing waits for the events thread to hand on what it holds
MAX_EVENTS_LISTED = 1000  # GET /events?limit= at most this: one answer's size is bounded whatever the buffer holds
MAX_EVENT_NAME_CHARS = 200  # an SSE `event:` line longer than this is cut (a participant chooses the name)
RELAY_EVENT_PREFIX = "relay."  # the relay's own events' names: never a room message's
ROOM_EVENT_PREFIX = "room."  # a room message named like one of the relay's own is published under this prefix
# Any text an event carries (a script line, what a participant sent, what the face said): at most this much of it,
# its start and "…". Ten loads of a script with a 10 MB line kept 300 MB of events, and 64 streams replaying them
# took 2.5 GB. relay.said carries the end of what the face said instead, as long (relay/utterances.py).
MAX_EVENT_TEXT_CHARS = 500
MAX_EVENT_DEPTH = 32  # of lists and objects inside an event (what a participant sent); deeper is shown as "…"
ELLIPSIS = "…"


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    time: float
    fields: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "time": self.time, **self.fields}

    def sse(self) -> str:
        """Its SSE frame, made once however many streams send it (each of 50 listeners used to encode it anew)."""
        frame: str | None = self.__dict__.get("_frame")
        if frame is None:
            frame = _sse_frame(self.as_dict(), event_id=self.id)
            object.__setattr__(self, "_frame", frame)  # a cache on a frozen event: what it says cannot change
        return frame


def _sse_frame(event: Mapping[str, Any], *, event_id: int | None = None) -> str:
    """One SSE frame. Every field is one line whatever a participant put in it: the event name has what is not
    printable escaped (a newline there would start a forged frame), and the data is ASCII-only JSON, whose
    escapes leave no raw newline."""
    head = f"id: {int(event_id)}\n" if event_id is not None else ""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=True)
    return f"{head}event: {sse_event_name(event['type'])}\ndata: {data}\n\n"


def sse_event_name(name: Any) -> str:
    """`name` as one safe SSE line: what is not printable escaped (relay.logs.escape_control), cut to a bound."""
    return escape_control(str(name)[:MAX_EVENT_NAME_CHARS]) or "message"


def listing_limit(raw: str | None) -> int | None:
    """GET /events?limit=: at most this many events in the list (1 to MAX_EVENTS_LISTED); None when not given.

    An agent polling for what the face said wants a few events, not the whole
    buffer (RELAY_EVENT_BUFFER, 1000 by default) in every answer.
    """
    if raw is None:
        return None
    meaning = f"a whole number from 1 to {MAX_EVENTS_LISTED}"
    limit = ascii_int(raw, "limit", meaning=meaning)
    if not 1 <= limit <= MAX_EVENTS_LISTED:
        raise MessageError(f"limit must be {meaning}, got {limit}")
    return limit


def room_event_type(kind: Any) -> str:
    """The type a room message is published under: its `event_type`, but never one of the relay's own names.

    A participant can send any `event_type`; one that took the relay's name
    (`relay.restarted`, `relay.speaking`, in any case) would be taken by
    everything that reads /events for the relay's word. It is published as
    `room.<its event_type>` instead, the message itself as it was sent.
    """
    if not isinstance(kind, str) or not kind:
        return "app_message"
    return ROOM_EVENT_PREFIX + kind if kind.lower().startswith(RELAY_EVENT_PREFIX) else kind


def events_dropped(count: int) -> dict[str, Any]:
    """Told to a listener that asked for events older than the buffer holds (it has no id of its own)."""
    return {"type": "relay.events_dropped", "time": time.time(), "count": count}


def relay_restarted(last_id: int) -> dict[str, Any]:
    """Told to a listener whose last id is beyond the relay's: the relay restarted, so it gets every event anew."""
    return {"type": "relay.restarted", "time": time.time(), "last_event_id": last_id}


def excerpt(text: str, limit: int = MAX_EVENT_TEXT_CHARS) -> str:
    """At most `limit` characters of `text`: its start, and "…" where it was cut."""
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def bounded(value: Any, depth: int = 0) -> Any:
    """`value` (an event's field) with every text in it, keys too, cut to an excerpt, and nothing nested deeper than
    MAX_EVENT_DEPTH: its lists and objects copied (a tuple becomes a list, as JSON writes it), the rest as it is."""
    if isinstance(value, str):
        return excerpt(value)
    if depth >= MAX_EVENT_DEPTH and isinstance(value, (Mapping, list, tuple)):
        return ELLIPSIS
    if isinstance(value, Mapping):
        return {excerpt(key) if isinstance(key, str) else key: bounded(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [bounded(item, depth + 1) for item in value]
    return value


class EventLog:
    """Every event the relay reports, numbered from 1, in a buffer bounded in events and in bytes, read by id.

    Publishing only appends and wakes readers; a slow listener falls behind in
    the buffer (and is told how many it missed) instead of slowing anyone.
    Each event's texts are excerpts (`bounded`), and the buffer holds at most
    `capacity` events (RELAY_EVENT_BUFFER) whose frames, as streams send them,
    take at most `max_bytes` (RELAY_EVENT_BUFFER_BYTES): past either, the oldest
    go, and a listener that had not read them is told (`relay.events_dropped`).
    The newest event is always kept.
    """

    def __init__(self, capacity: int, max_bytes: int | None = None) -> None:
        self._events: deque[Event] = deque()
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._bytes = 0  # of the frames of the events held
        self._next_id = 1
        self._changed = threading.Condition()
        self._closed = False
        self._listeners = 0

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    @property
    def listeners(self) -> int:
        """Event streams open now (each holds a slot of MAX_EVENT_LISTENERS)."""
        return self._listeners

    @property
    def held_bytes(self) -> int:
        """What the events held take as frames (bounded by RELAY_EVENT_BUFFER_BYTES)."""
        return self._bytes

    def publish(self, event_type: str, **fields: Any) -> Event:
        bounded_fields = bounded(fields)
        with self._changed:
            event = Event(self._next_id, excerpt(event_type), time.time(), bounded_fields)
            size = len(event.sse())  # made here once, as every stream would: the bytes it costs to hold and send
            self._next_id += 1
            self._events.append(event)
            self._bytes += size
            self._drop_oldest()
            self._changed.notify_all()
        return event

    def _drop_oldest(self) -> None:
        """Past RELAY_EVENT_BUFFER events or RELAY_EVENT_BUFFER_BYTES, the oldest go (never the newest)."""
        while len(self._events) > 1 and (
            len(self._events) > self._capacity or (self._max_bytes is not None and self._bytes > self._max_bytes)
        ):
            self._bytes -= len(self._events.popleft().sse())

    def after(self, last_id: int, limit: int | None = None) -> tuple[list[Event], int]:
        """Events newer than `last_id` (the oldest `limit` of them), and how many newer ones the buffer no
        longer holds.

        An id beyond the last one is from an earlier run of the relay: callers
        start over (`restarted`, `listing` and `stream` do).
        """
        with self._changed:
            if last_id > self.last_id:
                last_id = 0
            if not self._events or last_id >= self._events[-1].id:
                return [], 0
            first = self._events[0].id
            start = max(0, last_id - first + 1)
            stop = None if limit is None else start + limit
            return list(islice(self._events, start, stop)), max(0, first - last_id - 1)

    def restarted(self, last_id: int) -> bool:
        """`last_id` is beyond every id this relay gave: it is from before a restart."""
        return last_id > self.last_id

    def listing(self, last_id: int, limit: int | None = None) -> list[dict[str, Any]]:
        """GET /events as JSON: what is newer than `last_id` (the oldest `limit` of it, so `after=<the last id
        listed>` goes on from there), led by a `relay.restarted` or `relay.events_dropped` marker (no id) when
        the caller must know it missed something."""
        restarted = self.restarted(last_id)
        newer, dropped = self.after(0 if restarted else last_id, limit)
        markers = [relay_restarted(last_id)] if restarted else []
        markers += [events_dropped(dropped)] if dropped else []
        return markers + [event.as_dict() for event in newer]

    def wait_after(self, last_id: int, timeout: float) -> bool:
        """Wait until there is an event newer than `last_id` (or the log closed); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._closed or self.last_id > last_id, timeout)

    def stream(self, last_id: int) -> EventStream:
        """Server-Sent Events from `last_id` on, with keep-alive comments, until the log closes.

        Takes a listener slot now (TooManyListeners past MAX_EVENT_LISTENERS),
        which the stream frees when its response ends: read to the end, closed
        by the server (a client that left, a HEAD request) or never started.
        """
        with self._changed:
            if self._listeners >= MAX_EVENT_LISTENERS:
                raise TooManyListeners(
                    f"{MAX_EVENT_LISTENERS} event streams are open already: close one, or poll GET /events?after=<id>"
                )
            self._listeners += 1
        return EventStream(self, last_id)

    def _release(self) -> None:
        with self._changed:
            self._listeners -= 1

    def _frames(self, cursor: int) -> Generator[str, None, None]:
        yield "retry: 2000\n\n"
        if self.restarted(cursor):
            yield _sse_frame(relay_restarted(cursor))
            cursor = 0
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

    def close(self) -> None:
        """End every stream, so stopping the server does not wait for listeners to hang up."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()


class EventStream:
    """One SSE response's frames; its listener slot is freed exactly once, on `close()` or at its end.

    A WSGI server calls `close()` on every response iterable, whether it was
    read, cut off by a client that left, or never read at all (HEAD): a
    generator's `finally` would run in none of the last cases.
    """

    def __init__(self, log: EventLog, last_id: int) -> None:
        self._log = log
        self._frames = log._frames(last_id)
        self._open = True
        self._lock = threading.Lock()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._frames)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
        self._frames.close()
        self._log._release()


class RoomEventQueue:
    """The room's events, taken off Daily's threads and handled on one thread of the relay's own.

    The Room calls this object on Daily's threads; it only queues (a bounded
    queue: past MAX_ROOM_EVENTS_QUEUED an event is dropped and counted, told
    as `relay.room_events_dropped`, so Daily's threads never wait). The thread
    holds app messages that carry a `seq` for EVENT_REORDER_WINDOW_S and
    releases them in seq order (Tavus's events can arrive out of order, and
    some twice, with unified and legacy role names: both are passed on), then
    publishes and records each (under `room_event_type`), and hands each app
    message with its sender to `on_message` (the face's speaking, relay/face_events.py).
    """

    def __init__(
        self,
        log: EventLog,
        recorder: Recorder,
        on_message: Callable[[Any, str], None] = lambda message, sender: None,
        *,
        capacity: int = MAX_ROOM_EVENTS_QUEUED,
    ) -> None:
        self._log = log
        self._recorder = recorder
        self._on_message = on_message
        # A SimpleQueue, its bound checked by hand: queue.Queue's Python-level locking cost the events'
        # delivery a few milliseconds at the 99th percentile (tests/bench/bench_events.py).
        self._inbox: queue.SimpleQueue[tuple[str, Mapping[str, Any]] | None] = queue.SimpleQueue()
        self._capacity = capacity
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._held: list[tuple[Any, int, Mapping[str, Any]]] = []
        self._held_since = 0.0
        self._arrivals = 0
        self._thread = threading.Thread(target=self._run, name="relay-events", daemon=True)

    def start(self) -> None:
        """Start handing the room's events on (on a thread of its own); until then they wait in the inbox."""
        self._thread.start()

    def __call__(self, event_type: str, data: Mapping[str, Any]) -> None:
        if self._inbox.qsize() < self._capacity:
            self._inbox.put((event_type, data))
            return
        with self._dropped_lock:
            self._dropped += 1

    def close(self) -> None:
        self._inbox.put(None)  # past the bound too: the thread must see it to stop
        if self._thread.ident is not None:
            self._thread.join(STOP_TIMEOUT_S)

    def _run(self) -> None:
        while True:
            timeout = None if not self._held else max(0.0, self._held_since + EVENT_REORDER_WINDOW_S - time.monotonic())
            try:
                item = self._inbox.get(timeout=timeout)
            except queue.Empty:
                self._release_held()
                continue
            self._tell_dropped()
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

    def _tell_dropped(self) -> None:
        with self._dropped_lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            log.warning("the room sent events faster than the relay could handle them: %d dropped", dropped)
            self._log.publish("relay.room_events_dropped", count=dropped)

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
        self._log.publish(room_event_type(kind), **data)
        self._recorder.record("in", message, sender=data["sender"])
        self._on_message(message, data["sender"])


def _seq_of(data: Mapping[str, Any]) -> Any:
    return message_seq(data.get("message"))
