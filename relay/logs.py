"""The relay's log: formatted on the caller's thread, written by a thread of its own; and what reaches the terminal.

Every request logs one line. Written on the request's own thread, that line
was a write to the terminal made while holding the logging handler's lock: the
write lets go of the GIL, the other request threads queue on the lock, and at 8
connections the relay spent more time switching threads than working. So a
request only formats its line and puts it on a queue (the standard library's
`QueueHandler`); a `QueueListener` writes it. The queue is bounded: a terminal
(or pipe) that stops being read costs lines, never memory.

Values from a request or the room (an inference_id, a URL path, a participant's
event type) reach log lines as arguments; one formatter escapes their control
characters, so none can forge a log line or drive the terminal. The relay's
own format strings, and its own words through `say`, are left as written.

The relay's own messages to the terminal (`say`) flush the log first, so what
the user reads is in the order it happened.
"""

from __future__ import annotations

import atexit
import copy
import logging
import numbers
import queue
import sys
import threading
from collections.abc import Mapping
from logging.handlers import QueueHandler, QueueListener
from typing import Any, TextIO

from relay import daily_logs

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
MAX_WAITING_LINES = 10_000  # lines the writer may be behind by; past it lines are dropped and counted
BATCH_LINES = 500  # lines waiting are written together, up to this many per write
FLUSH_TIMEOUT_S = 5.0  # how long `say` waits for the log to be written: a terminal that is not read must not hang it
LOG_BATCH_S = 0.05  # how late a log line may appear: the writer looks for lines this often

_PLAIN = (int, float, bool)  # the common arguments that need no look: a type check, not an ABC's


def escape_control(text: str) -> str:
    r"""`text` with every character that is not printable written as its Python escape: one line, inert.

    The one rule for whatever reaches a log line, the terminal or an event
    stream from a request or the room. Not printable, in Python's sense: the
    control characters (C0, DEL, C1: `\n`, `\x1b`), the line and paragraph
    separators (`\u2028`), and the format characters, among them the bidi
    overrides and isolates (U+202E, U+2066-2069) and the invisible ones
    (U+200B-200F, U+FEFF) that would make a line read as something it is not.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    return char.encode("unicode_escape", errors="backslashreplace").decode("ascii")


class _Escaped:
    """An argument that is neither text nor a number: its str() and repr() escaped as they are formatted."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return escape_control(str(self.value))

    def __repr__(self) -> str:
        return escape_control(repr(self.value))


def _escaped(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, str):
        return escape_control(value)
    if value is None or isinstance(value, numbers.Number):
        return value  # %d and %.1f need the number itself; no number has a control character
    return _Escaped(value)


class EscapingFormatter(logging.Formatter):
    """A Formatter that escapes control characters in the message's arguments, never in its format string.

    The arguments are where outside values go (`log.info("POST %s", path)`); the
    format string is the relay's own, multi-line banners included.
    """

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if args:
            record = copy.copy(record)  # other handlers (pytest's caplog) see the record as it was logged
            if isinstance(args, Mapping):
                record.args = {key: _escaped(value) for key, value in args.items()}
            else:
                record.args = tuple(_escaped(value) for value in args)
        return super().format(record)


def escaped_message(record: logging.LogRecord) -> str:
    """The record's message with its arguments' control characters escaped (its format string left as written)."""
    message, args = str(record.msg), record.args
    if not args:
        return message
    if isinstance(args, Mapping):
        return message % {key: _escaped(value) for key, value in args.items()}
    return message % tuple(_escaped(value) for value in args)


class _Line:
    """A log line on its way to the writer: what the Formatter reads of a LogRecord, message already merged.

    Made on the caller's thread instead of QueueHandler.prepare's two record
    copies and a formatting pass, which doubled a request's logging cost
    (tests/bench/bench_text_echo.py); the writer adds the time and the level.
    """

    __slots__ = ("asctime", "created", "levelname", "message", "msecs")
    exc_info = exc_text = stack_info = None

    def __init__(self, record: logging.LogRecord, message: str) -> None:
        self.created, self.msecs, self.levelname, self.message = record.created, record.msecs, record.levelname, message

    def getMessage(self) -> str:
        return self.message

    @property
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]  # what "%(asctime)s %(message)s" formats read
        return {"asctime": getattr(self, "asctime", ""), "levelname": self.levelname, "message": self.message}


class _FlushMark:
    """Put on the queue by `flush()`: the writer sets `written` once every line queued before it is written."""

    def __init__(self) -> None:
        self.written = threading.Event()


class LogWriter(QueueListener):
    """The thread that writes queued lines to the stream, with a `flush()` that waits for the lines before it."""

    def __init__(self, log_queue: queue.SimpleQueue[Any], stream: TextIO, fmt: str) -> None:
        super().__init__(log_queue)
        self._queue = log_queue
        self.stream = stream
        self._formatter = logging.Formatter(fmt)
        self._lines: list[str] = []
        self.dropped = 0  # counted by RelayLogHandler.enqueue, reported here before the next line
        self._reported = 0
        self._wake = threading.Event()  # set by flush() and stop(), which must not wait out a batch

    def dequeue(self, block: bool) -> Any:
        """The next record; when there is none, look again every LOG_BATCH_S instead of blocking in get().

        A thread blocked in get() is woken by every put: a thread switch for
        each request's log line, which cost the text route a tenth of its
        throughput at 8 connections (tests/bench/bench_text_echo.py). Looking
        every LOG_BATCH_S lets a request's put wake no one; lines appear at
        most LOG_BATCH_S late, in order, and a flush or stop wakes the writer at once.
        """
        while True:
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                if not block:
                    raise
            self._wake.wait(LOG_BATCH_S)
            self._wake.clear()

    def enqueue_sentinel(self) -> None:
        super().enqueue_sentinel()
        self._wake.set()

    def handle(self, record: Any) -> None:
        """Format the record; write every line waiting in one write once the queue is empty (or a batch is full)."""
        if isinstance(record, _FlushMark):
            self._write()
            record.written.set()
            return
        if self.dropped > self._reported:
            missed, self._reported = self.dropped - self._reported, self.dropped
            self._lines.append(self._formatter.format(logging.makeLogRecord({
                "levelno": logging.WARNING, "levelname": "WARNING",
                "msg": f"{missed} log line(s) dropped: the terminal was not reading them",
            })))
        self._lines.append(self._formatter.format(record))
        if len(self._lines) >= BATCH_LINES or self._queue.empty():
            self._write()

    def _write(self) -> None:
        if not self._lines:
            return
        text, self._lines = "\n".join(self._lines) + "\n", []
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # the terminal is gone (or closed at exit): nowhere left to write

    def stop(self) -> None:
        """Write every line still queued, then end the thread; a second call does nothing."""
        if self._thread is not None:
            super().stop()
            self._write()  # the lines handled just before the stop signal, still waiting for an empty queue

    def flush(self) -> None:
        """Return once every line queued before this call is written (or FLUSH_TIMEOUT_S passed)."""
        if self._thread is None or threading.current_thread() is self._thread:
            return
        mark = _FlushMark()
        self._queue.put(mark)
        self._wake.set()
        mark.written.wait(FLUSH_TIMEOUT_S)


class RelayLogHandler(QueueHandler):
    """The relay's handler: escapes and formats a record on the caller's thread, queues it for its LogWriter."""

    def __init__(self, stream: TextIO, *, fmt: str = LOG_FORMAT, max_waiting: int = MAX_WAITING_LINES) -> None:
        log_queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        super().__init__(log_queue)
        self._queue = log_queue
        self._max_waiting = max_waiting
        self.setFormatter(EscapingFormatter())
        self.writer = LogWriter(log_queue, stream, fmt)
        self.writer.start()
        self._count_lock = threading.Lock()

    def prepare(self, record: logging.LogRecord) -> Any:
        """Only what cannot wait, on the caller's thread: the message, its arguments escaped and merged (they
        may change once the call returns). A record with a traceback takes QueueHandler's full path."""
        if record.exc_info or record.stack_info:
            return super().prepare(record)
        return _Line(record, escaped_message(record))

    def enqueue(self, record: Any) -> None:
        if self._queue.qsize() < self._max_waiting:
            self._queue.put_nowait(record)
            return
        with self._count_lock:
            self.writer.dropped += 1

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        """Write every line still queued, then stop the writer (at exit, too: its thread is a daemon)."""
        self.writer.stop()
        super().close()


def start_logging(verbose: bool, stream: TextIO | None = None) -> None:
    """INFO (DEBUG with --verbose) to stderr; as logging.basicConfig, a program's own handlers are kept."""
    root = logging.getLogger()
    if not root.handlers:
        handler = RelayLogHandler(stream or sys.stderr)
        atexit.register(handler.close)
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    logging.getLogger("echo_relay").setLevel(logging.DEBUG if verbose else logging.INFO)
    quiet_other_loggers(verbose)


def quiet_other_loggers(verbose: bool) -> None:
    """Only the relay's own words reach the terminal; the libraries' too with --verbose.

    urllib3 warns of each retry (`Retrying (Retry(total=2, ...)) after connection
    broken by ...`) before the relay's own one line says what failed; waitress
    says `Client disconnected while serving /events` long after the client left.
    """
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbose else logging.ERROR)
    logging.getLogger("waitress").setLevel(logging.DEBUG if verbose else logging.WARNING)


def flush_log() -> None:
    """Return once every line logged so far is on stderr, past the filter of native lines (relay/daily_logs.py)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    daily_logs.drain()


def say(message: str, *, file: TextIO | None = None, flush: bool = False) -> None:
    """Print the relay's own message for the user (stderr unless told), after every log line logged before it."""
    flush_log()
    print(message, file=file or sys.stderr, flush=flush)


def exit_with_error(message: str, code: int) -> int:
    """Both command lines' one way out on an error: one line on stderr; the exit code for main() to return."""
    say(f"error: {message}")
    return code
