"""Shared pieces of the benchmarks: a relay on a fake CallClient served by waitress, and a load client.

Benchmarks print figures; they never assert on speed (the machine decides that).
But a figure measured on failed requests is no figure: any request that does
not get the answer it should makes the benchmark say so and exit 1. And a
figure that misses its goal must not pass unnoticed among the others: each
goal is checked by `Goals`, which prints a `MISSED: …` line per miss at the
end and exits 2.
Run one with `python tests/bench/<name>.py` from the repository root.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import operator
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # benches run as scripts: the imports below need the repository root

from app import create_app
from config import Settings
from relay.logs import start_logging
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
    """The relay's log line per request, formatted and written as `python app.py` does (to /dev/null): part of its
    cost.
    """
    start_logging(verbose=False, stream=open(os.devnull, "w"))  # noqa: SIM115


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
    clock = RequestClock(app.wsgi_app)
    fake.clock = clock  # type: ignore[attr-defined]
    app.wsgi_app = clock  # type: ignore[method-assign]
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


COMPARISONS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class Goals:
    """The goals of one benchmark's figures: each checked where it is printed, every miss said at the end.

    Printing the goal beside the figure was not enough: a p99 of 21.7 ms went
    out beside "target p99 < 20 ms" and the run still looked like a pass.
    """

    def __init__(self) -> None:
        self.missed: list[str] = []

    def check(self, figure: str, measured: float, comparison: str, goal: float, unit: str = "") -> str:
        """Note whether `measured` meets `comparison goal`; return the goal as the figure's line shows it."""
        if comparison not in COMPARISONS:
            raise ValueError(f"{comparison!r} is not one of {sorted(COMPARISONS)}")
        text = f"goal {comparison} {_number(goal)}{unit}"
        if not COMPARISONS[comparison](measured, goal):
            self.missed.append(f"MISSED: {figure} {_number(measured)}{unit}, {text}")
        return text

    def exit_if_missed(self) -> None:
        """After every figure is printed: one `MISSED: …` line per goal missed, and exit 2 (1 is a failed request)."""
        for line in self.missed:
            print(line)
        if self.missed:
            sys.exit(2)


def _number(value: float) -> str:
    """21.7, 300, 0.88: two decimals at most, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def post_json(connection: http.client.HTTPConnection, path: str, body: Any) -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    connection.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def load(port: int, *, clients: int, requests_each: int, body: Callable[[int, int], Any], path: str) -> dict[str, Any]:
    """Run `load_here` in a separate process, so the client does not share the server's GIL."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(
            load_here, (port,), {"clients": clients, "requests_each": requests_each, "body": body, "path": path}
        )


def load_here(
    port: int, *, clients: int, requests_each: int, body: Callable[[int, int], Any], path: str
) -> dict[str, Any]:
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


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = %s
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status ~= 200 and first_error == nil then first_error = status .. " " .. string.sub(body, 1, 200) end
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local error = thread:get("first_error")
    if error then io.write("FIRST_ERROR ", error, "\\n") end
  end
end
"""
WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def have_wrk() -> bool:
    """wrk (apt-get install wrk) is the load client the goals were set with: in C, it leaves the CPU to the servers."""
    return shutil.which("wrk") is not None


def wrk_load(port: int, *, connections: int, seconds: float, body: Any, path: str) -> dict[str, Any]:
    """POST `body` over `connections` keep-alive connections for `seconds`, with wrk; the figures `load` gives."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT % json.dumps(json.dumps(body)))
        script.flush()
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name,
             f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, check=True,
        ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_200 = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    first_error = re.search(r"FIRST_ERROR (.*)", out)
    failures = (int(non_200.group(1)) if non_200 else 0) + (1 if socket_errors else 0)
    return {
        "requests": requests,
        "failures": failures,
        "first_error": first_error.group(1) if first_error else (socket_errors.group(0) if socket_errors else None),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _wrk_ms(re.search(r" 50%\s+([\d.]+)(us|ms|s)", out)),
        "p99_ms": _wrk_ms(re.search(r" 99%\s+([\d.]+)(us|ms|s)", out)),
    }


def _wrk_ms(match: re.Match[str] | None) -> float:
    assert match is not None, "wrk printed no latency distribution"
    return float(match.group(1)) * WRK_UNITS[match.group(2)]


def chromium_or_exit() -> str:
    """Debian's Chromium, for the benchmarks that drive the console."""
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("no Chromium: apt-get install chromium")
    return chromium


@contextmanager
def recorded_dry_run(folder: Path, **env: str) -> Iterator[tuple[str, Path]]:
    """`python app.py` (the dry run) on a free port, recording to a file in `folder`: its URL and that file."""
    from tests.test_app_main import finish, start, wait_for_port

    record = folder / "record.jsonl"
    relay = start([], folder, RELAY_RECORD_FILE=str(record), RELAY_PORT="0", **env)
    try:
        yield f"http://127.0.0.1:{wait_for_port(relay)}", record
    finally:
        relay.terminate()
        finish(relay)
