"""The relay's log: every line, in order, written by its own thread; the relay's own messages after it; nothing
from a request or the room can forge a line or drive the terminal; only the relay's own words unless --verbose."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import Settings
from relay.dry_run import DryRunRoom
from relay.logs import LOG_FORMAT, RelayLogHandler, escape_control, say, start_logging
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
FORGED = "abc\n2026-11-30 00:00:00,000 INFO POST /send_text_message 200 0.3ms inference_id=FORGED messages_sent=1"


class Terminal(io.StringIO):
    """A stream that counts its writes (a batch is one write) and can be held, like a terminal nobody reads."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.writing = threading.Event()
        self.may_write = threading.Event()
        self.may_write.set()

    def write(self, text: str) -> int:
        self.writing.set()
        self.may_write.wait(30)  # a hang guard: a test that holds the terminal releases it
        self.writes += 1
        return super().write(text)


def attach(stream: Terminal, **kwargs: int) -> RelayLogHandler:
    handler = RelayLogHandler(stream, fmt="%(levelname)s %(message)s", **kwargs)
    logging.getLogger().addHandler(handler)  # on the root, as start_logging puts it: say() flushes the root's handlers
    return handler


@pytest.fixture
def relay_logs_at_info() -> Iterator[None]:
    """The relay's loggers at INFO, as start_logging sets them, and as they were after the test."""
    logger = logging.getLogger("echo_relay")
    before = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(before)


@pytest.fixture
def terminal(relay_logs_at_info: None) -> Iterator[Terminal]:
    """A terminal behind the relay's log handler (`terminal.handler`)."""
    stream = Terminal()
    stream.handler = attach(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        stream.may_write.set()
        logging.getLogger().removeHandler(stream.handler)  # type: ignore[attr-defined]
        stream.handler.close()  # type: ignore[attr-defined]


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


def test_a_line_is_written_by_the_log_thread_with_no_flush(terminal):
    logging.getLogger("echo_relay.test_logs").info("on its own")

    wait_until(terminal.getvalue, "the log thread to write")  # the writer writes what it has when nothing waits
    assert terminal.getvalue() == "INFO on its own\n"


def test_lines_waiting_while_the_terminal_was_busy_go_out_in_one_write(terminal):
    logger = logging.getLogger("echo_relay.test_logs")
    terminal.may_write.clear()
    logger.info("first")
    assert terminal.writing.wait(10)  # the writer is inside the write of "first"
    for n in range(50):
        logger.info("line %d", n)
    terminal.may_write.set()
    terminal.handler.flush()

    assert terminal.writes == 2
    assert terminal.getvalue() == "INFO first\n" + "".join(f"INFO line {n}\n" for n in range(50))


def test_what_the_relay_says_comes_after_the_lines_logged_before_it(terminal):
    logging.getLogger("echo_relay.test_logs").info("joining the room ...")
    say("error: the room cannot be joined", file=terminal)

    assert terminal.getvalue() == "INFO joining the room ...\nerror: the room cannot be joined\n"


def test_a_terminal_that_is_not_read_costs_lines_not_memory_and_says_how_many(relay_logs_at_info):
    stream = Terminal()
    handler = attach(stream, max_waiting=10)
    logger = logging.getLogger("echo_relay.test_logs")
    try:
        stream.may_write.clear()
        logger.info("first")
        assert stream.writing.wait(10)
        for n in range(30):
            logger.info("line %d", n)
        stream.may_write.set()
        handler.flush()
    finally:
        stream.may_write.set()
        logging.getLogger().removeHandler(handler)
        handler.close()

    assert stream.getvalue().splitlines() == [
        "INFO first", "WARNING 20 log line(s) dropped: the terminal was not reading them",
        *(f"INFO line {n}" for n in range(10)),
    ]


def test_every_line_is_written_before_the_program_exits():
    script = (
        "import logging; from relay.logs import start_logging\n"
        "start_logging(verbose=False)\n"
        "for n in range(2000): logging.getLogger('echo_relay').info('line %d', n)\n"
        "logging.getLogger('echo_relay').info('stopped')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )

    lines = [line.split(" ", 2)[2] for line in result.stderr.splitlines()]
    assert lines == [f"INFO line {n}" for n in range(2000)] + ["INFO stopped"]


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


# --- nothing from a request or the room forges a line or drives the terminal -------------------


@pytest.mark.parametrize(
    "text, escaped",
    [
        ("a\nb", r"a\nb"), ("a\rb", r"a\rb"), ("\x1b[2J", r"\x1b[2J"), ("\x00\t\x7f", r"\x00\t\x7f"),
        ("\x85\x9b", r"\x85\x9b"), ("a\u2028b\u2029c", r"a\u2028b\u2029c"),
        ("plain é 日本 -_/", "plain é 日本 -_/"),
        ("\u202eevil", r"\u202eevil"), ("\u2066a\u2067b\u2068c\u2069", r"\u2066a\u2067b\u2068c\u2069"),
        ("\u200b\u200c\u200d\u200e\u200f", r"\u200b\u200c\u200d\u200e\u200f"), ("\ufeffx", r"\ufeffx"),
    ],
)
def test_escape_control_writes_control_bidi_and_format_characters_as_escapes_and_keeps_the_rest(text, escaped):
    assert escape_control(text) == escaped


def test_a_bidi_override_in_an_inference_id_reaches_the_terminal_escaped(terminal, client):
    client.post("/send_text_message", json={"text": "hi", "inference_id": "gnp.\u202eexe"})
    terminal.handler.flush()

    assert r"inference_id=gnp.\u202eexe" in terminal.getvalue() and "\u202e" not in terminal.getvalue()


def test_format_characters_in_a_script_line_reach_the_terminal_escaped(terminal, make_app):
    relay = make_app(Settings(), DryRunRoom(io.StringIO())).extensions["relay"]
    relay.load_script("Hi \u2066there\u2069 \ufeff", "demo")
    relay.script.next()
    relay.script.wait_until_over(20)
    terminal.handler.flush()

    assert r"Hi \u2066there\u2069 \ufeff" in terminal.getvalue()
    assert not {"\u2066", "\u2069", "\ufeff"} & set(terminal.getvalue())


def test_a_forged_inference_id_stays_on_its_own_log_line(terminal, client):
    response = client.post("/send_text_message", json={"text": "hi", "inference_id": FORGED + "\x1b[2J"})
    terminal.handler.flush()

    (line,) = terminal.getvalue().splitlines()
    assert line.startswith(f"INFO POST /send_text_message {response.status_code} ")
    assert r"abc\n2026-11-30 00:00:00,000 INFO POST" in line and r"inference_id=FORGED messages_sent=1\x1b[2J" in line
    assert "\x1b" not in terminal.getvalue()


def test_a_forged_url_path_stays_on_its_own_log_line(terminal, client):
    client.get("/x%0a2026-11-30%2000:00:00,000%20INFO%20GET%20/health%20200%1b[2J")
    terminal.handler.flush()

    assert terminal.getvalue() == "INFO GET /x\\n2026-11-30 00:00:00,000 INFO GET /health 200\\x1b[2J 404 " + (
        terminal.getvalue().split(" 404 ", 1)[1]
    )
    assert len(terminal.getvalue().splitlines()) == 1


def test_the_relays_own_multi_line_text_is_kept_and_only_its_arguments_are_escaped(terminal):
    logging.getLogger("echo_relay.test_logs").info("Make it speak:\n    %s", "curl\n-d")
    terminal.handler.flush()

    assert terminal.getvalue() == "INFO Make it speak:\n    curl\\n-d\n"


def test_arguments_that_are_not_text_are_escaped_too_and_numbers_kept(terminal):
    logging.getLogger("echo_relay.test_logs").info("%s %r %d %.1f", ValueError("a\nb"), ["x\ny"], 3, 0.25)
    terminal.handler.flush()

    assert terminal.getvalue() == "INFO a\\nb ['x\\ny'] 3 0.2\n"


# --- only the relay's own words reach the terminal, the libraries' with --verbose ---------------


LIBRARY_LINES = (
    "import logging; from relay.logs import start_logging\n"
    "start_logging(verbose={verbose})\n"
    "logging.getLogger('urllib3.connectionpool')"
    ".warning(\"Retrying (Retry(total=2)) after connection broken by 'X'\")\n"
    "logging.getLogger('waitress').info('Client disconnected while serving /events')\n"
    "logging.getLogger('echo_relay').info('the relay says this')\n"
)


@pytest.mark.parametrize("verbose, shown", [
    (False, ["INFO the relay says this"]),
    (True, ["WARNING Retrying (Retry(total=2)) after connection broken by 'X'",
            "INFO Client disconnected while serving /events", "INFO the relay says this"]),
])
def test_urllib3_retries_and_waitress_disconnects_reach_the_terminal_only_with_verbose(verbose, shown):
    result = subprocess.run(
        [sys.executable, "-c", LIBRARY_LINES.format(verbose=verbose)], cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=True,
    )

    assert [line.split(" ", 2)[2] for line in result.stderr.splitlines()] == shown
