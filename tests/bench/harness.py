"""Shared pieces of the benchmarks: a relay on a fake CallClient served by waitress, and a load client.

Benchmarks print figures; they never assert on speed (the machine decides that).
But a figure measured on failed requests is no figure: any request that does
not get the answer it should makes the benchmark say so and exit 1.
Run one with `python tests/bench/<name>.py` from the repository root.
"""

from __future__ import annotations

import http.client
import json
import logging
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # benches run as scripts: the imports below need the repository root

from app import LOG_FORMAT, create_app
from config import Settings
from relay.room import Room
from tests.conftest import CONVERSATION_URL, FakeBehaviour
from tests.wsgi_server import serve_wsgi


class RequestClock:
    """WSGI middleware noting when each request reaches the app: waitress has the whole body by then."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.arrivals: list[float] = []

    def __call__(self, environ: Any, start_response: Any) -> Any:
        self.arrivals.append(time.monotonic())
        return self.app(environ, start_response)


def log_as_the_relay_does() -> None:
    """The relay's log line per request, formatted and written as `python app.py` does (to /dev/null): part of its cost."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=open(os.devnull, "w"))  # noqa: SIM115


@contextmanager
def relay_on_fake_daily(settings: Settings | None = None) -> Iterator[tuple[int, FakeBehaviour]]:
    """A joined relay whose fake CallClient confirms every send at once, on its own thread.

    The fake behaviour gets a `clock` (RequestClock) for when requests reached the relay.
    """
    log_as_the_relay_does()
    fake = FakeBehaviour()
    fake.check_messages = False  # Daily checks a message natively; the stand-in's Python walk is not the relay's cost
    room = Room(CONVERSATION_URL, client_factory=fake.factory)
    room.join(timeout=5)
    app = create_app(settings or Settings(), room)
    fake.clock = RequestClock(app.wsgi_app)  # type: ignore[attr-defined]
    app.wsgi_app = fake.clock  # type: ignore[method-assign]
    try:
        with serve_wsgi(app) as port:
            yield port, fake
    finally:
        app.extensions["relay"].close()
        room.leave()


def exit_if_failed(what: str, failures: int, first_error: str | None) -> None:
    """A benchmark that saw a failed request prints it and exits 1, instead of printing a figure."""
    if failures:
        print(f"FAILED: {failures} {what} request(s) did not succeed; the first: {first_error}")
        sys.exit(1)


def post_json(connection: http.client.HTTPConnection, path: str, body: Any) -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    connection.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def load(port: int, *, clients: int, requests_each: int, body: Callable[[int, int], Any], path: str) -> dict[str, Any]:
    """Run `load_here` in a separate process, so the client does not share the server's GIL."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(load_here, (port,), {"clients": clients, "requests_each": requests_each, "body": body, "path": path})


def load_here(port: int, *, clients: int, requests_each: int, body: Callable[[int, int], Any], path: str) -> dict[str, Any]:
    """`clients` threads, each on one keep-alive connection, POST `requests_each` times."""
    latencies: list[float] = []
    failures = [0]
    first_error: list[str] = []
    lock = threading.Lock()

    def one_client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for n in range(requests_each):
            started = time.perf_counter()
            status, answer = post_json(connection, path, body(index, n))
            mine.append(time.perf_counter() - started)
            if status != 200:
                with lock:
                    failures[0] += 1
                    first_error[:] = first_error or [f"{status} {answer[:200]!r}"]
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=one_client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "failures": failures[0],
        "first_error": first_error[0] if first_error else None,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }
