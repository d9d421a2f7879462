"""The relay's log: every line, in order, written by its own thread; the relay's own messages after it."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator

import pytest

from relay.logs import LOG_BATCH_S, LOG_FORMAT, BatchedStreamHandler, say, start_logging


class Terminal(io.StringIO):
    """A stream that counts its writes: a batch is one write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def terminal(request: pytest.FixtureRequest) -> Iterator[Terminal]:
    """A terminal behind the relay's log handler; `@pytest.mark.parametrize("terminal", [seconds], indirect=True)` sets its batch time."""
    stream = Terminal()
    handler = BatchedStreamHandler(stream, batch_s=getattr(request, "param", LOG_BATCH_S))
    stream.handler = handler  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.getLogger("echo_relay.test_logs").setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)  # on the root, as start_logging puts it: say() flushes the root's handlers
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)


def log_from_threads(threads: int, lines_each: int) -> None:
    logger = logging.getLogger("echo_relay.test_logs")

    def log_lines(thread: int) -> None:
        for n in range(lines_each):
            logger.info("thread %d line %d", thread, n)

    workers = [threading.Thread(target=log_lines, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_every_line_is_written_once_and_each_threads_lines_in_order(terminal):
    log_from_threads(threads=8, lines_each=200)
    terminal.handler.flush()

    lines = terminal.getvalue().splitlines()
    assert len(lines) == 8 * 200
    for thread in range(8):
        assert [line for line in lines if line.startswith(f"INFO thread {thread} ")] == [
            f"INFO thread {thread} line {n}" for n in range(200)
        ]


@pytest.mark.parametrize("terminal", [3600], indirect=True)  # the writer sleeps through the test: only flush() writes
def test_lines_logged_together_go_out_in_one_write(terminal):
    logger = logging.getLogger("echo_relay.test_logs")
    for n in range(50):
        logger.info("line %d", n)
    terminal.handler.flush()

    assert terminal.writes == 1
    assert terminal.getvalue() == "".join(f"INFO line {n}\n" for n in range(50))


def test_a_line_is_written_by_the_log_thread_with_no_flush(terminal):
    logging.getLogger("echo_relay.test_logs").info("on its own")

    deadline = time.monotonic() + 10  # a hang guard, not a speed: the writer wakes for the first line waiting
    while terminal.getvalue() == "" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert terminal.getvalue() == "INFO on its own\n"


def test_what_the_relay_says_comes_after_the_lines_logged_before_it(terminal):
    logging.getLogger("echo_relay.test_logs").info("joining the room ...")
    say("error: the room cannot be joined", file=terminal)

    assert terminal.getvalue() == "INFO joining the room ...\nerror: the room cannot be joined\n"


def test_a_programs_own_log_handlers_are_kept_as_logging_basicconfig_keeps_them():
    root = logging.getLogger()
    before = list(root.handlers)  # pytest's own capture handlers, here
    assert before

    start_logging(verbose=True)

    assert root.handlers == before
    assert logging.getLogger("echo_relay").level == logging.DEBUG
    start_logging(verbose=False)
    assert logging.getLogger("echo_relay").level == logging.INFO


def test_the_format_has_the_time_and_level_before_the_message():
    record = logging.LogRecord("echo_relay", logging.INFO, __file__, 1, "joined conversation %s", ("c123",), None)

    line = logging.Formatter(LOG_FORMAT).format(record)

    assert line.endswith(" INFO joined conversation c123") and line[:4].isdigit()
