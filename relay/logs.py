"""The relay's log: lines are written by a thread of their own, a batch at a time.

Every request logs one line. Written on the request's own thread, that line
was a write to the terminal (or a pipe) made while holding the logging
handler's lock: the write lets go of the GIL, the other request threads then
queue on the lock, and at 8 connections the relay spent more time switching
threads than working (tests/bench/bench_text_echo.py measured it at less than
half its speed without the line). Now a request only formats its line and
appends it; a writer wakes once per batch and writes every line waiting, in
order, at most LOG_BATCH_S after the first of them.

The relay's own messages to the terminal (`say`) flush the log first, so what
the user reads is in the order it happened.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_BATCH_S = 0.05  # how late a log line may appear: lines logged within it go out in one write


class BatchedStreamHandler(logging.Handler):
    """A StreamHandler whose writes happen on its own thread, in batches; `flush()` writes what waits, now."""

    def __init__(self, stream: TextIO, *, batch_s: float = LOG_BATCH_S) -> None:
        super().__init__()
        self.stream = stream
        self._batch_s = batch_s
        self._lines: deque[str] = deque()
        self._waiting = threading.Event()
        self._write_lock = threading.Lock()
        threading.Thread(target=self._write_batches, name="relay-log", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record))
        except Exception:  # noqa: BLE001 (logging's contract: a record that cannot be formatted is reported, not raised)
            self.handleError(record)
            return
        if not self._waiting.is_set():
            self._waiting.set()

    def flush(self) -> None:
        with self._write_lock:
            batch = [self._lines.popleft() for _ in range(len(self._lines))]
            if not batch:
                return
            try:
                self.stream.write("\n".join(batch) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # the terminal is gone (or closed at exit): nowhere left to write

    def _write_batches(self) -> None:
        while True:
            self._waiting.wait()
            time.sleep(self._batch_s)  # let the lines logged meanwhile join this write
            self._waiting.clear()
            self.flush()


def start_logging(verbose: bool, stream: TextIO | None = None) -> None:
    """INFO (DEBUG with --verbose) to stderr, batched; as logging.basicConfig, a program's own handlers are kept."""
    root = logging.getLogger()
    if not root.handlers:
        handler = BatchedStreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    logging.getLogger("echo_relay").setLevel(logging.DEBUG if verbose else logging.INFO)


def flush_log() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


def say(message: str, *, file: TextIO | None = None, flush: bool = False) -> None:
    """Print a message for the user (stderr unless told), after every log line logged before it."""
    flush_log()
    print(message, file=file or sys.stderr, flush=flush)
