"""Keep native libraries' own log lines (Daily's, libmpg123's) off the user's terminal.

daily-python's native logger writes JSON lines (`{"timestamp":...,"target":"daily_core..."}`)
straight to file descriptor 2, even with `LogLevel.Off`, so Python's logging
cannot hold them back; libmpg123 (inside libsndfile) does the same for an MP3
frame it had to skip (`[src/libmpg123/layer3.c:...] error: part2_3_length ...
too large`) while the file still plays. The relay already says what went
wrong in one sentence; these lines are the libraries' internals. So stderr's
descriptor is routed, once per process, through a pipe that drops their lines
and passes everything else on, in order, to the real stderr. A filter for
the whole process, not a redirect around each call: fd 2 is shared by every
thread, so redirecting it while one request decodes would swallow the log
lines of the others. `--verbose` leaves stderr alone.

The filter passes lines on a moment after they were written, while stdout is
not filtered: `drain()` waits for everything written to stderr so far to be
passed on, so a line printed to stdout next shows below it, in the order the
two happened (the dry run's messages among the log lines of a script).
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import threading

NATIVE_LOG_LINE = re.compile(
    rb'^(?:\{"timestamp":"[^"]*","level":"[A-Z]+",'  # Daily's, whatever its target (daily_core, task_queue...)
    rb"|\[src/libmpg123/[^\]\n]*\] )"  # libmpg123's: [src/libmpg123/layer3.c:INT123_do_layer3():1774] error: ...
)
DRAIN_TIMEOUT_S = 2.0
# Written to fd 2 by drain(), followed by a number and a newline; the filter drops it when it gets there.
DRAIN_MARK = b"\x00echo-relay: passed on up to here #"

_installed = False
_pipe: os.stat_result | None = None  # the filter's pipe while fd 2 is routed through it
_marks: dict[bytes, threading.Event] = {}
_marks_lock = threading.Lock()
_mark_numbers = itertools.count()


def is_native_log_line(line: bytes) -> bool:
    return NATIVE_LOG_LINE.match(line) is not None


def hide_native_log_lines() -> None:
    """Route fd 2 through a filter thread; at exit, put fd 2 back and pass on what is left. Once per process."""
    global _installed
    if _installed:
        return
    _installed = True
    global _pipe
    real_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    _pipe = os.fstat(2)
    forwarder = threading.Thread(target=_forward, args=(read_end, real_stderr), name="native-log-filter", daemon=True)
    forwarder.start()

    def restore() -> None:
        global _pipe
        _pipe = None
        os.dup2(real_stderr, 2)  # closes the pipe's last write end: the forwarder reads to the end and stops
        forwarder.join(DRAIN_TIMEOUT_S)

    atexit.register(restore)


def drain(timeout: float = DRAIN_TIMEOUT_S) -> None:
    """Return once everything written to stderr before the call has been passed on (or `timeout` passed).

    A mark sent down the filter's pipe behind those lines says when: the filter
    drops it once it got there. Nothing to wait for when fd 2 is not the
    filter's pipe (not installed, put back at exit, or a test's capture in its place).
    """
    pipe = _pipe
    if pipe is None or not _same_file(os.fstat(2), pipe):
        return
    number = b"%d" % next(_mark_numbers)
    reached = threading.Event()
    with _marks_lock:
        _marks[number] = reached
    try:
        _write_all(2, DRAIN_MARK + number + b"\n")
        reached.wait(timeout)
    finally:
        with _marks_lock:
            _marks.pop(number, None)


def _same_file(one: os.stat_result, other: os.stat_result) -> bool:
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def _forward(read_end: int, real_stderr: int) -> None:
    with open(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            kept, marks = _kept_lines(lines)
            _write_all(real_stderr, kept)
            _marks_reached(marks)
        if not is_native_log_line(pending):
            _write_all(real_stderr, pending)


def _kept_lines(lines: list[bytes]) -> tuple[bytes, list[bytes]]:
    """The lines to pass on, newline-ended, and the numbers of drain()'s marks among them (dropped).

    A mark after part of a line (another thread's write cut by it) ends that part as a line of its own.
    """
    kept, marks = [], []
    for line in lines:
        at = line.find(DRAIN_MARK)
        if at >= 0:
            marks.append(line[at + len(DRAIN_MARK) :])
            line = line[:at]
            if not line:
                continue
        if not is_native_log_line(line):
            kept.append(line + b"\n")
    return b"".join(kept), marks


def _marks_reached(numbers: list[bytes]) -> None:
    with _marks_lock:
        for number in numbers:
            if reached := _marks.get(number):
                reached.set()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
