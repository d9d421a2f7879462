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
"""

from __future__ import annotations

import atexit
import os
import re
import threading

NATIVE_LOG_LINE = re.compile(
    rb'^(?:\{"timestamp":"[^"]*","level":"[A-Z]+",'  # Daily's, whatever its target (daily_core, task_queue...)
    rb"|\[src/libmpg123/[^\]\n]*\] )"  # libmpg123's: [src/libmpg123/layer3.c:INT123_do_layer3():1774] error: ...
)
DRAIN_TIMEOUT_S = 2.0

_installed = False


def is_native_log_line(line: bytes) -> bool:
    return NATIVE_LOG_LINE.match(line) is not None


def hide_native_log_lines() -> None:
    """Route fd 2 through a filter thread; at exit, put fd 2 back and pass on what is left. Once per process."""
    global _installed
    if _installed:
        return
    _installed = True
    real_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    forwarder = threading.Thread(target=_forward, args=(read_end, real_stderr), name="native-log-filter", daemon=True)
    forwarder.start()

    def restore() -> None:
        os.dup2(real_stderr, 2)  # closes the pipe's last write end: the forwarder reads to the end and stops
        forwarder.join(DRAIN_TIMEOUT_S)

    atexit.register(restore)


def _forward(read_end: int, real_stderr: int) -> None:
    with open(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_native_log_line(line))
            _write_all(real_stderr, kept)
        if not is_native_log_line(pending):
            _write_all(real_stderr, pending)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
