"""The listening socket and the waitress server on it.

The socket is bound first, by the relay itself, so a taken port or a bad
RELAY_HOST fails before a room is joined or a billed conversation is created;
waitress is handed that socket through its public `sockets=` adjustment once
the app exists, and until then connections wait in the socket's backlog.
The server is waitress's own, with one extension: a request must arrive whole
within RELAY_REQUEST_DEADLINE (RequestDeadlineServer).
"""

from __future__ import annotations

import _thread
import ctypes
import errno
import ipaddress
import logging
import resource
import signal
import socket
import threading
import time
from typing import Any

from waitress.adjustments import Adjustments
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from config import ConfigError, Settings
from relay.events import MAX_EVENT_LISTENERS

# Threads run requests; waitress reads headers and bodies on its own loop, so a slow client holds no thread.
# For requests; event streams get MAX_EVENT_LISTENERS more, and requests that wait for the face
# RELAY_MAX_WAITING_FOR_FACE more (both bounded: past them, 503 and 429), so neither ever takes these.
API_THREADS = 16
# Open connections (each a socket): 200 slow clients and every event stream leave room for the API.
# Past it waitress stops accepting until one closes. waitress's loop uses select(), which watches
# descriptors below 1024 only (FD_SETSIZE), so the limit keeps every socket under it. (Its poll() loop
# would take more, but re-registers every socket on each turn: the text route lost a tenth of its
# throughput at 8 connections with it, tests/bench/bench_text_echo.py.)
CONNECTION_LIMIT = 700
SELECT_MAX_FILES = 1024
RESERVED_FILES = 300  # open files kept for everything else: Daily, logs, the record file, a spooled body per thread
# An idle connection (no request in progress) is closed after this; waitress's 120 s kept dead sockets too long.
CHANNEL_TIMEOUT_S = 30
BACKLOG = 1024
LOOPBACK_NAMES = ("localhost",)
# How often waitress's loop passes over its connections (its default: 30 s), closing idle ones and, here,
# those past RELAY_REQUEST_DEADLINE: so a deadline is kept to within this.
MAINTENANCE_INTERVAL_S = 1
LATE_REQUESTS_LINE = "closed %d connection(s) that sent no whole request within RELAY_REQUEST_DEADLINE (%g s)"
# glibc's malloc, for a server whose threads take turns with large bodies (see share_freed_memory).
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # mallopt's parameters, from glibc's malloc.h
MALLOC_ARENAS = 2  # Python's lock lets one thread allocate at a time; Daily's own threads get the second
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's default, fixed: a block this large is mapped, and unmapped once freed

log = logging.getLogger("echo_relay")


class ListenError(Exception):
    """The relay cannot listen on RELAY_HOST:RELAY_PORT; the run prints it and exits 1."""


def bind(settings: Settings) -> socket.socket:
    """A listening socket on RELAY_HOST:RELAY_PORT; refused beyond loopback without RELAY_AUTH_TOKEN (ConfigError)."""
    address = _resolve(settings.host, settings.port)
    if settings.auth_token is None and not is_loopback(settings.host, address):
        raise ConfigError(
            f"RELAY_HOST {settings.host} listens beyond this machine: set RELAY_AUTH_TOKEN (a long random secret) "
            "so others on the network cannot make the face speak or read the room, or use RELAY_HOST=127.0.0.1"
        )
    family, sockaddr = address
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As waitress does: a restart reuses the port at once.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRNOTAVAIL:
            raise ListenError(
                f"RELAY_HOST {settings.host!r} is not an address of this machine: set RELAY_HOST to 127.0.0.1 "
                "(or another address of this machine)"
            ) from None
        raise ListenError(
            f"cannot listen on {settings.host}:{settings.port}: {error.strerror or error}; "
            "set RELAY_PORT (or RELAY_HOST) to a free address, or stop the other relay"
        ) from None
    return sock


def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, Any]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError):
        infos = []
    if not infos:
        raise ListenError(
            f"RELAY_HOST {host!r} is not an address this machine can listen on: "
            "set RELAY_HOST to 127.0.0.1 (or another address of this machine)"
        )
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def is_loopback(host: str, address: tuple[socket.AddressFamily, Any] | None = None) -> bool:
    """Whether RELAY_HOST is reached from this machine only: `localhost`, or an address on loopback (a name: the
    address it resolves to, `address` when the caller resolved it already). The one rule for the token that
    listening beyond loopback needs (bind) and for the addresses the relay then answers to (relay/guard.py)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    if address is None:
        try:
            address = _resolve(host, 0)
        except ListenError:
            return False
    return ipaddress.ip_address(address[1][0]).is_loopback


def server_adjustments(settings: Settings) -> dict[str, Any]:
    """waitress's settings for the relay: the limits above, and RELAY_MAX_BODY_BYTES enforced while reading.

    waitress refuses a body at >= max_request_body_size (by Content-Length, before
    reading it; a chunked one as soon as it passes), so the limit is one above ours.
    It is the largest: a route's own, smaller limit is the guard's (relay/guard.py).
    """
    return {
        "threads": API_THREADS + MAX_EVENT_LISTENERS + settings.max_waiting_for_face,
        "connection_limit": connection_limit(),
        "channel_timeout": CHANNEL_TIMEOUT_S,
        "cleanup_interval": MAINTENANCE_INTERVAL_S,
        "max_request_body_size": settings.max_body_bytes + 1,
        "ident": "echo relay",
    }


def connection_limit() -> int:
    """CONNECTION_LIMIT, or fewer where the process may open fewer files, and never a socket select() cannot watch."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = SELECT_MAX_FILES if soft == resource.RLIM_INFINITY else min(soft, SELECT_MAX_FILES)
    return max(1, min(CONNECTION_LIMIT, files - RESERVED_FILES))


def share_freed_memory() -> bool:
    """Let what one request freed serve the next, whichever server thread runs it; False where this is not glibc.

    glibc gives threads malloc arenas of their own (up to 8 per core) and keeps what each frees for that thread;
    once a large block is freed it also stops mapping blocks that size, keeping them in the arena too. So ten
    10 MB texts, one after another, each on another of the server's threads, left 297 MB held (each request alone
    peaks at 2.5x its body), and the more threads a run met, the more. With two arenas and large blocks always
    mapped (and unmapped when freed), the ten peak at 5x one body, the last five adding next to nothing
    (tests/bench/bench_memory.py). Process-wide, and only for threads started after it: `python app.py` calls it first.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # no C library to load, or one without mallopt (musl has a stub)
        return False
    return bool(mallopt(M_ARENA_MAX, MALLOC_ARENAS)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


class RequestDeadlineServer(TcpWSGIServer):
    """waitress's server, whose maintenance pass also closes a connection that has not sent a whole request
    (headers and body) within RELAY_REQUEST_DEADLINE of opening or of its last answer.

    waitress closes only a connection idle for `channel_timeout`, and every byte restarts that clock: 720
    connections each sending a header byte every 10 s held every connection the server takes, and /health
    went unanswered for as long as they trickled. Its maintenance pass, run by its loop every
    `cleanup_interval`, is where it closes idle connections already; `add_task`, which a connection calls
    once a whole request has arrived, restarts that connection's clock. Nothing else is changed.
    """

    def __init__(self, *args: Any, request_deadline_s: float, **kwargs: Any) -> None:
        self.request_deadline_s = request_deadline_s
        self._waiting_since: dict[Any, float] = {}  # connection (waitress's channel) -> since when its request is due
        self._waiting_lock = threading.Lock()  # add_task runs on request threads too (a pipelined request)
        super().__init__(*args, **kwargs)

    def add_task(self, task: Any) -> None:
        """A connection (waitress passes its channel) has a whole request: its next one's clock starts now."""
        with self._waiting_lock:
            self._waiting_since[task] = time.time()
        super().add_task(task)

    def maintenance(self, now: float) -> None:
        """waitress's pass (idle connections), then the deadline's, on the loop's thread; `now` is time.time()."""
        super().maintenance(now)
        late = self._close_late_requests(now)
        if late:
            log.warning(LATE_REQUESTS_LINE, late, self.request_deadline_s)

    def _close_late_requests(self, now: float) -> int:
        """Mark each connection whose request is past the deadline to be closed, as waitress marks idle ones.

        A connection being answered (a request in hand, or an answer still going out) is never late: an
        event stream or a wait for the face takes as long as it takes, and its next request's clock starts
        once that is over. Returns how many were marked.
        """
        cutoff = now - self.request_deadline_s
        late = 0
        with self._waiting_lock:
            waiting: dict[Any, float] = {}
            for channel in list(self.active_channels.values()):
                if channel.requests or channel.total_outbufs_len:
                    waiting[channel] = now
                    continue
                waiting[channel] = since = self._waiting_since.get(channel, channel.creation_time)
                if since < cutoff and not channel.will_close:
                    channel.will_close = True
                    late += 1
            self._waiting_since = waiting  # closed connections drop out here
        return late


def create_server(
    app: Any, sock: socket.socket, settings: Settings, connections: dict[int, Any]
) -> RequestDeadlineServer:
    """The server on the bound socket; `connections` is its map of open channels (closed by the caller).

    Built as `waitress.create_server` builds one for a socket it is given (one server, one task dispatcher
    with the adjustments' threads), but of the class above.
    """
    adjustments = Adjustments(sockets=[sock], **server_adjustments(settings))
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adjustments.threads)
    return RequestDeadlineServer(
        app,
        map=connections,
        _sock=sock,
        dispatcher=dispatcher,
        adj=adjustments,
        bind_socket=False,
        sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()),
        request_deadline_s=settings.request_deadline_s,
    )


def stop_serving(server: Any) -> None:
    """From any thread, stop `server.run()` on the main thread the way Ctrl-C does.

    waitress has no public stop(): its documented way out of run() is a
    KeyboardInterrupt (or SystemExit) on the thread running it, which run()
    catches, finishing in-flight requests. So this raises SIGTERM's handler on
    the main thread (`_thread.interrupt_main`, the stdlib's way) and wakes the
    loop's select with `server.pull_trigger()` (a public method) so it sees it
    at once, instead of closing waitress's socket map from outside its loop.
    """
    _thread.interrupt_main(signal.SIGTERM)
    server.pull_trigger()
