"""The waitress server the relay runs on: a request has RELAY_REQUEST_DEADLINE to arrive, however slowly it trickles.

Real sockets against a real waitress server on 127.0.0.1, with a short deadline. Nothing here is timed: each
test waits for its outcome in a loop bounded by WAIT_S, far longer than the deadline plus the server's pass.
"""

from __future__ import annotations

import inspect
import io
import logging
import platform
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Self

import pytest
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

from config import Settings
from relay import server as relay_server
from relay.dry_run import DryRunRoom
from relay.server import RequestDeadlineServer, create_server
from tests.conftest import wait_until
from tests.wsgi_server import serve_wsgi

DEADLINE_S = 2.0
WAIT_S = 20.0
TRICKLE_EVERY_S = 0.2  # a byte this often: waitress's idle timeout (30 s, restarted by every byte) never closes one
HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
# (what a slow client sends first, then the byte it sends again and again)
TRICKLES = {
    "headers": (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", b"a"),
    "body": (
        (
            b"POST /send_text_message HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{\"text\": \""
        ),
        b"a",
    ),
    "blank-lines": (b"", b"\r\n"),  # a server skips blank lines before a request: no request ever starts
}
CROWD = 30  # trickling connections, more than the server below takes
CROWD_CONNECTION_LIMIT = 20


@pytest.fixture
def dry_relay(make_app: Callable[..., Any]) -> Callable[[], AbstractContextManager[int]]:
    """`with dry_relay() as port`: a dry-run relay whose requests have DEADLINE_S to arrive, served as `app.py` does."""

    def serve() -> AbstractContextManager[int]:
        return serve_wsgi(make_app(Settings(request_deadline_s=DEADLINE_S), DryRunRoom(io.StringIO())))

    return serve


def is_closed_by_the_server(sock: socket.socket) -> bool:
    """Whether the server closed `sock`: an end of stream to read, or a reset to a write."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(65536) == b""
    except OSError:
        return True


def trickle_until_closed(sock: socket.socket, byte: bytes, what: str) -> None:
    """Send `byte` every TRICKLE_EVERY_S until the server closes the connection; a failure naming `what` after
    WAIT_S.
    """

    def trickled_and_closed() -> bool:
        try:
            sock.sendall(byte)
        except OSError:
            return True
        return is_closed_by_the_server(sock)

    wait_until(trickled_and_closed, f"the server to close {what}", WAIT_S, interval=TRICKLE_EVERY_S)


def read_answer(sock: socket.socket) -> bytes:
    """One whole answer (headers and a Content-Length body) from a kept-alive connection; b"" if it was closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        body += chunk
    return head


def health_status(port: int) -> bytes:
    """The status line of GET /health on a new connection, or b"" if none came within WAIT_S."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(HEALTH)
        try:
            return read_answer(sock).partition(b"\r\n")[0]
        except TimeoutError:
            return b""


# --- slow clients over real sockets ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(TRICKLES))
def test_a_trickling_request_is_closed_after_the_deadline_while_a_whole_one_is_served(dry_relay, kind):
    head, byte = TRICKLES[kind]
    with dry_relay() as port, socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as slow:
        slow.sendall(head + byte)

        assert health_status(port) == b"HTTP/1.1 200 OK"  # while the slow one trickles
        trickle_until_closed(slow, byte, f"a connection trickling its {kind}")


def test_a_kept_alive_connection_that_keeps_asking_is_never_closed_by_the_deadline(dry_relay):
    """Each request arrives whole: the deadline restarts with each one, though the connection lives far longer."""
    asked = 0
    with dry_relay() as port, socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as kept:
        until = time.monotonic() + 3 * DEADLINE_S
        while time.monotonic() < until:
            kept.sendall(HEALTH)
            assert read_answer(kept).startswith(b"HTTP/1.1 200 OK"), f"closed after {asked} answers"
            asked += 1
            time.sleep(TRICKLE_EVERY_S)


class TricklingCrowd:
    """`count` connections each sending a header byte every TRICKLE_EVERY_S, each reopened once the server
    closes it, as an attacker would: on its own thread until the `with` block ends."""

    def __init__(self, port: int, count: int) -> None:
        self._port = port
        self._head, self._byte = TRICKLES["headers"]
        self._sockets = [self._connect() for _ in range(count)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="trickling-crowd", daemon=True)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self._port), timeout=WAIT_S)
        sock.sendall(self._head)  # waiting in the listening socket's backlog takes it as well
        return sock

    def _trickle(self) -> None:
        while not self._stop.wait(TRICKLE_EVERY_S):
            for index, sock in enumerate(self._sockets):
                if is_closed_by_the_server(sock) or not self._send(sock):
                    sock.close()
                    self._sockets[index] = self._connect()

    def _send(self, sock: socket.socket) -> bool:
        try:
            sock.sendall(self._byte)
        except OSError:
            return False
        return True

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(WAIT_S)
        for sock in self._sockets:
            sock.close()


def test_health_answers_while_more_connections_trickle_than_the_server_takes(dry_relay, monkeypatch):
    """Without the deadline, the crowd holds every connection the server takes and /health waits as long as it
    trickles.
    """
    monkeypatch.setattr(relay_server, "CONNECTION_LIMIT", CROWD_CONNECTION_LIMIT)
    with dry_relay() as port, TricklingCrowd(port, CROWD):
        status = health_status(port)

    assert status == b"HTTP/1.1 200 OK", f"/health was unanswered for {WAIT_S} s while {CROWD} connections trickled"


# --- the extension, held to the installed waitress --------------------------------------------------------------


@pytest.fixture
def idle_server(room: Any, make_app: Callable[..., Any]) -> Iterator[tuple[RequestDeadlineServer, dict[int, Any]]]:
    """The relay's server on a listening socket, its loop never run: each test drives its maintenance pass itself."""
    listening = socket.create_server(("127.0.0.1", 0))
    connections: dict[int, Any] = {}
    settings = Settings(request_deadline_s=DEADLINE_S)
    server = create_server(make_app(settings, room), listening, settings, connections)
    yield server, connections
    server.task_dispatcher.shutdown()
    for channel in list(connections.values()):
        channel.close()
    listening.close()


@pytest.fixture
def channel(idle_server: tuple[RequestDeadlineServer, dict[int, Any]]) -> Iterator[HTTPChannel]:
    """A connection as waitress's own channel class takes it (one end of a socket pair)."""
    server, connections = idle_server
    ours, theirs = socket.socketpair()
    yield HTTPChannel(server, ours, ("127.0.0.1", 0), server.adj, map=connections)
    theirs.close()


def test_the_deadline_extends_the_two_methods_of_the_installed_waitress_it_names():
    """An upgrade of waitress that renamed them would leave the deadline silently off: this says so instead."""
    assert RequestDeadlineServer.__mro__[1] is TcpWSGIServer
    assert list(inspect.signature(TcpWSGIServer.maintenance).parameters) == ["self", "now"]
    assert list(inspect.signature(TcpWSGIServer.add_task).parameters) == ["self", "task"]
    assert "self.maintenance(now)" in inspect.getsource(TcpWSGIServer.readable)
    assert "self.server.add_task(self)" in inspect.getsource(HTTPChannel.received)


def test_the_servers_pass_closes_a_connection_whose_request_is_late(idle_server, channel, caplog):
    server, _ = idle_server
    caplog.set_level(logging.WARNING, logger="echo_relay")

    server.maintenance(channel.creation_time + DEADLINE_S / 2)
    assert not channel.will_close
    server.maintenance(channel.creation_time + DEADLINE_S + 0.1)

    assert channel.will_close
    assert "closed 1 connection(s) that sent no whole request within RELAY_REQUEST_DEADLINE (2 s)" in caplog.text


def test_a_connection_being_answered_is_never_late_and_its_next_request_gets_the_whole_deadline(idle_server, channel):
    server, _ = idle_server
    answered_until = channel.creation_time + 10 * DEADLINE_S
    channel.requests = [object()]  # an event stream, or a wait for the face: the answer takes as long as it takes

    server.maintenance(answered_until)
    channel.requests = []
    server.maintenance(answered_until + DEADLINE_S / 2)
    assert not channel.will_close
    server.maintenance(answered_until + DEADLINE_S + 0.1)

    assert channel.will_close


def test_the_pass_runs_every_second_so_the_deadline_is_kept_within_one():
    assert relay_server.server_adjustments(Settings())["cleanup_interval"] == relay_server.MAINTENANCE_INTERVAL_S == 1


def test_requests_that_wait_for_the_face_get_threads_of_their_own():
    """Beyond the API's and the event streams': so however many wait (at most RELAY_MAX_WAITING_FOR_FACE), the
    threads /health, /interrupt and plain sends need are free."""
    threads = relay_server.server_adjustments(Settings(max_waiting_for_face=5))["threads"]

    assert threads == relay_server.API_THREADS + relay_server.MAX_EVENT_LISTENERS + 5


def test_on_glibc_what_one_request_frees_serves_the_next():
    """mallopt's answer: two arenas, large blocks mapped; elsewhere (no glibc) nothing is changed and it says so."""
    assert relay_server.share_freed_memory() is (platform.libc_ver()[0] == "glibc")
