"""Slow clients at scale: how long /health goes unanswered while 720 connections trickle their headers.

720 connections (more than the server takes) each send one header byte every 10 s and open
again as soon as the relay closes them, as an attacker would; they run in another process (so they do not
share the relay's GIL, nor its file descriptors, which select() needs below 1024). Meanwhile /health is asked,
one request after another on new connections, and each wait for its answer is measured.
Goal: /health is answered within RELAY_REQUEST_DEADLINE plus GOAL_MARGIN_S. Without the
deadline the crowd holds every connection for as long as it trickles, and the first probe is never answered.

    python tests/bench/bench_slow_clients.py [--connections 720] [--every 10] [--deadline 30] [--probes 3]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import multiprocessing.synchronize
import resource
import selectors
import socket
import time

from harness import Goals, exit_if_failed, log_as_the_relay_does

from app import create_app
from config import DEFAULT_REQUEST_DEADLINE_S, Settings
from relay.dry_run import DryRunRoom
from tests.wsgi_server import serve_wsgi

HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
GOAL_MARGIN_S = 5.0  # the server's pass runs every second; the rest is the crowd reconnecting ahead of the probe
PROBE_PAUSE_FRACTION = 0.4  # probes start at different points of the crowd's cycle: this much of a deadline apart


def crowd(port: int, connections: int, every: float, ready: multiprocessing.synchronize.Event,
          stop: multiprocessing.synchronize.Event, reopened: multiprocessing.Queue) -> None:
    """`connections` sockets, each sending a byte every `every` s (spread evenly), each reopened when closed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * connections)), hard))
    selector = selectors.DefaultSelector()  # a closed connection reads as readable: it is reopened at once
    sockets: list[socket.socket | None] = [None] * connections

    def reopen(index: int) -> None:
        old = sockets[index]
        if old is not None:
            selector.unregister(old)
            old.close()
        sockets[index] = new = open_slow(port)
        selector.register(new, selectors.EVENT_READ, index)

    for index in range(connections):
        reopen(index)
    ready.set()
    started, sent, count = time.monotonic(), 0, 0
    while not stop.is_set():
        due = started + every * sent / connections  # the connections take turns, in order
        for key, _ in selector.select(timeout=max(0.0, due - time.monotonic())):
            reopen(key.data)
            count += 1
        if time.monotonic() >= due:
            index = sent % connections
            if not send_byte(sockets[index]):  # type: ignore[arg-type]
                reopen(index)
                count += 1
            sent += 1
    for sock in sockets:
        if sock is not None:
            sock.close()
    reopened.put(count)


def open_slow(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(HEAD)
    return sock


def send_byte(sock: socket.socket) -> bool:
    try:
        sock.sendall(b"a")
    except OSError:
        return False
    return True


def probe(port: int, patience: float) -> tuple[float | None, bytes]:
    """Seconds until GET /health's answer began on a new connection (None if not within `patience`), and its start."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=patience) as sock:
        sock.sendall(HEALTH)
        try:
            answer = sock.recv(64)
        except TimeoutError:
            return None, b""
    return time.monotonic() - started, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=720)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between one connection's bytes")
    parser.add_argument("--deadline", type=float, default=DEFAULT_REQUEST_DEADLINE_S, help="RELAY_REQUEST_DEADLINE")
    parser.add_argument("--probes", type=int, default=3)
    args = parser.parse_args()

    log_as_the_relay_does()
    app = create_app(Settings(request_deadline_s=args.deadline), DryRunRoom(io.StringIO()))
    context = multiprocessing.get_context("spawn")
    ready, stop, reopened = context.Event(), context.Event(), context.Queue()
    waits: list[float | None] = []
    wrong: list[bytes] = []
    try:
        with serve_wsgi(app) as port:
            process = context.Process(target=crowd, args=(port, args.connections, args.every, ready, stop, reopened))
            process.start()
            ready.wait(60)
            patience = 3 * args.deadline + GOAL_MARGIN_S
            for n in range(args.probes):
                if n:
                    time.sleep(PROBE_PAUSE_FRACTION * args.deadline)
                wait, answer = probe(port, patience)
                waits.append(wait)
                if wait is not None and not answer.startswith(b"HTTP/1.1 200"):
                    wrong.append(answer)
                print(f"probe {n + 1}: /health answered after "
                      + (f"{waits[-1]:.1f} s" if waits[-1] is not None else f"more than {patience:.0f} s (unanswered)"))
            stop.set()
            closed = reopened.get(timeout=60)
            process.join(30)
    finally:
        app.extensions["relay"].close()

    exit_if_failed("/health", len(wrong), repr(wrong[0]) if wrong else None)
    goals = Goals()
    longest = max(wait if wait is not None else float("inf") for wait in waits)
    goal = args.deadline + GOAL_MARGIN_S
    print(f"{args.connections} connections trickling a header byte every {args.every:g} s, "
          f"RELAY_REQUEST_DEADLINE {args.deadline:g} s: /health unanswered for at most {longest:.1f} s "
          f"({goals.check('longest /health wait', longest, '<=', goal, ' s')}); "
          f"the relay closed {closed} trickling connections (each opened again at once)")
    goals.exit_if_missed()


if __name__ == "__main__":
    main()
