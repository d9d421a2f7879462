"""Fixtures every test builds on: settings, a fake CallClient, a joined room, the app.

And a guard every test is under: a test whose output holds a key or a token fails
(`a secret was printed or logged: [...]`), even when everything it asserts holds.
The relay promises never to print one, and a test is the place a leak shows.
Searched for `SECRETS`: each test's captured stdout, stderr and log (the
`pytest_runtest_makereport` hook); what a test reads itself with
`capsys.readouterr()`, which pytest would no longer report (this file's `capsys`
overrides pytest's own fixture of that name for this); and what the relay and
the CLI print as subprocesses (tests call `assert_no_secret` on it). A test that
shows a token on purpose (the quickstart banner) is marked `shows_token_once`
and checks its output itself.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager, nullcontext
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
import requests

from app import create_app
from config import Settings
from relay import daily_logs
from relay.room import Room
from tests.fake_daily import REPLICA, FakeBehaviour, FakeCallClient, FakeMicrophoneDevice

__all__ = ["REPLICA", "FakeBehaviour", "FakeCallClient", "FakeMicrophoneDevice"]

T = TypeVar("T")

CONVERSATION_URL = "https://tavus.daily.co/c123"
CONVERSATION_ID = "c123"
# Step 5 of Tavus's Echo Mode quickstart, verbatim (the docs tell you to replace <conversation_id>).
DOCS_TEXT_BODY: dict[str, Any] = {
    "message_type": "conversation",
    "event_type": "conversation.echo",
    "conversation_id": "<conversation_id>",
    "properties": {
        "modality": "text",
        "text": "Hello there!",
        "audio": "base64-encoded-audio",
        "sample_rate": 24000,
        "inference_id": "inference-id-123",
        "done": "true",
    },
}
# --- no secret is ever printed -----------------------------------------------------------------

# Every key and token the tests give the relay or the CLI. Whatever they print or log, in any test,
# is searched for these: the captured output of every test (the hook below), what a test reads
# with capsys, and what the relay and the CLI print as subprocesses (see assert_no_secret).
SECRETS = ("tk-test-key-0123456789", "mt-c123-SECRET", "SECRET-TOKEN", "SECRET-MEETING-TOKEN", "s3cret-token")
# The report of a test's call, for its fixtures' teardown: `request.node.stash.get(CALL_REPORT)` (None while it runs).
CALL_REPORT = pytest.StashKey[Any]()


def assert_no_secret(printed: str) -> None:
    leaked = [secret for secret in SECRETS if secret in printed]
    assert not leaked, f"a secret was printed or logged: {leaked}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Generator[None, Any, None]:
    """Fail any test whose captured stdout, stderr or log holds a key or a token; keep its call's report
    (CALL_REPORT).
    """
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    if report.when != "call" or report.failed or item.get_closest_marker("shows_token_once"):
        return
    printed = "\n".join(content for _, content in report.sections)
    leaked = [secret for secret in SECRETS if secret in printed]
    if leaked:
        report.outcome = "failed"
        report.longrepr = f"a secret was printed or logged: {leaked}"


@pytest.fixture
def capsys(capsys: Any, request: Any) -> Any:
    """pytest's capsys, overridden: what a test reads with readouterr() is searched for secrets too.

    Output a test has read is gone from the report the hook above searches, so
    without this a test could read a leaked token and never be failed for it.
    """
    read = capsys.readouterr

    def readouterr() -> Any:
        captured = read()
        if not request.node.get_closest_marker("shows_token_once"):
            assert_no_secret(captured.out + captured.err)
        return captured

    capsys.readouterr = readouterr
    return capsys


@pytest.fixture(scope="session")
def real_daily() -> Any:
    """The installed daily module, initialised once for the test process (a second Daily.init() aborts it).

    The JSON lines Daily writes to stderr are kept out of pytest's output by
    the hooks below, around each phase of every test that uses this module.
    """
    import daily

    from relay import room

    room.show_daily_logs(True)  # not the relay's once-per-process filter: the hooks below filter each test
    with _daily_log_lines_dropped():
        room._init_daily()
    return daily


@contextmanager
def _daily_log_lines_dropped() -> Iterator[None]:
    """Route file descriptor 2 through relay.daily_logs' filter while inside, to whatever it was before.

    Daily writes its lines to fd 2 from its own threads, and pytest points fd 2
    at a different file inside a test than between tests, so the filter the
    relay installs once per process cannot serve here: this one is installed
    and removed around each test.
    """
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    forwarder = threading.Thread(
        target=daily_logs._forward, args=(read_end, saved), name="daily-log-filter", daemon=True
    )
    forwarder.start()
    try:
        yield
    finally:
        os.dup2(saved, 2)  # closes the pipe's write end: the forwarder passes on what is left and stops
        forwarder.join(daily_logs.DRAIN_TIMEOUT_S)
        os.close(saved)


def _hide_daily_log_lines_of(item: Any) -> Any:
    """Inside pytest's capture of one phase of a test that uses the real daily module: its lines dropped."""
    return _daily_log_lines_dropped() if "real_daily" in getattr(item, "fixturenames", ()) else nullcontext()


# trylast: these wrappers run inside pytest's own capture of each phase, which points fd 2 at its file first.
@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_setup(item: Any) -> Iterator[None]:
    with _hide_daily_log_lines_of(item):
        yield


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_call(item: Any) -> Iterator[None]:
    with _hide_daily_log_lines_of(item):
        yield


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_teardown(item: Any) -> Iterator[None]:
    with _hide_daily_log_lines_of(item):
        yield


@pytest.fixture
def settings() -> Settings:
    return Settings(replica_timeout_s=2.0, send_timeout_s=1.0)


@pytest.fixture
def fake_daily() -> FakeBehaviour:
    return FakeBehaviour()


@pytest.fixture
def room(fake_daily: FakeBehaviour) -> Iterator[Room]:
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)
    room.join(timeout=2)
    yield room
    room.leave()


@pytest.fixture
def fake_call_client(room: Room, fake_daily: FakeBehaviour) -> FakeCallClient:
    return fake_daily.client


@pytest.fixture
def make_app() -> Iterator[Callable[..., Any]]:
    """`make_app(settings, room, **kwargs)`: create_app, with every app made closed after the test.

    Closing stops the relay's sender, event and microphone threads; an app left
    open would keep them running into later tests.
    """
    made: list[Any] = []

    def make(settings: Settings, room: Any, **kwargs: Any) -> Any:
        made.append(create_app(settings, room, **kwargs))
        return made[-1]

    yield make
    for app in made:
        app.extensions["relay"].close()


@pytest.fixture(params=[True, False], ids=["fast-path", "flask-only"])
def fast_path(request: Any) -> bool:
    """For a module whose tests run with the fast path for plain text and without it: the answers must not differ.

    Such a module overrides `make_app` with `functools.partial(make_app, fast_path=fast_path)`.
    """
    answer: bool = request.param
    return answer


@pytest.fixture
def app(settings: Settings, room: Room, make_app: Callable[..., Any]) -> Any:
    return make_app(settings, room)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def sent_messages(call_client: FakeCallClient) -> list[dict[str, Any]]:
    call_client.settle()
    return list(call_client.sent)


@pytest.fixture
def fake_tavus() -> Iterator[Any]:
    from tests.fake_tavus import start_fake_tavus

    fake = start_fake_tavus()
    yield fake
    fake.released.set()
    fake.server.shutdown()
    fake.server.server_close()


def free_port() -> int:
    """A loopback port nothing listens on (for RELAY_PORT, or a refused connection)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


WAIT_S = 20.0  # how long a test waits for something that takes milliseconds: a hang guard, never a speed
POLL_S = 0.02  # how often wait_until asks


def wait_until(
    condition: Callable[[], T | None],
    what: str | Callable[[], str] = "the condition",
    timeout: float = WAIT_S,
    *,
    interval: float = POLL_S,
    pause: Callable[[float], object] = time.sleep,
) -> T:
    """`condition()`'s first truthy answer, asked every `interval` s; a test failure naming `what` if none came in
    `timeout`.

    The one wait-until loop of the suite: what a test waits for happens in
    milliseconds, so the timeout only stops a broken run from hanging, and a
    busy machine only makes the wait longer, never the test fail. `what` may
    be a function, asked only on failure (to show the state the test saw);
    `pause` is how to wait between two asks (a browser test lets its page run
    meanwhile with `page.wait_for_timeout`).
    """
    deadline = time.monotonic() + timeout
    while True:
        answer = condition()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            pytest.fail(f"waited {timeout:g} s for {what() if callable(what) else what}")
        pause(interval)


def wait_for_relay(port: int, timeout: float = 15.0) -> bool:
    """True once the relay on `port` answers /health; False if it never does (then do not signal it)."""
    try:
        wait_until(lambda: _answers_health(port), f"a relay on port {port}", timeout)
    except pytest.fail.Exception:
        return False
    return True


def _answers_health(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
    except requests.ConnectionError:
        return False
    return True


def signal_when(
    condition: Callable[[], object], signum: int = signal.SIGINT, what: str = "the moment to signal"
) -> threading.Thread:
    """A user pressing Ctrl-C (SIGINT) or a SIGTERM, to this process, once `condition()` holds (or after WAIT_S)."""

    def watch() -> None:
        try:
            wait_until(condition, what)
        finally:
            os.kill(os.getpid(), signum)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def silent_tavus() -> Iterator[SimpleNamespace]:
    """A server that accepts every connection and never answers (each connection kept in `accepted`)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield SimpleNamespace(base_url=f"http://127.0.0.1:{server.getsockname()[1]}/v2", accepted=accepted)
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    for connection in accepted:
        connection.close()
