"""Server-Sent Events to 50 listeners: events/s delivered, and the delay from a room event to a listener.

The relay runs here on a fake room; 50 listeners run in another process (so
they do not share the relay's GIL), each on its own socket. Room events carry
the CLOCK_MONOTONIC time they were raised (shared by processes on Linux), and
a `seq` as Tavus's do, so they pass the relay's 5 ms reordering window.
Goal: p99 delay under 20 ms; a miss prints `MISSED: …` and exits 2.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.synchronize
import socket
import statistics
import threading
import time

from harness import Goals, exit_if_failed, relay_on_fake_daily

from config import Settings

LISTENERS = 50
PACED_EVENTS, PACED_RATE = 300, 100  # events, events/s: for the delay
BURST_EVENTS = 2000  # as fast as the room can raise them: for throughput


def listen(
    port: int, after: int, expected: int, ready: threading.Barrier, delays: list[float], finished: list[float]
) -> None:
    """A raw HTTP/1.0 reader (no chunked encoding to undo), as light as a listener gets."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"GET /events?after={after} HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n".encode())
        ready.wait()
        buffer, seen = b"", 0
        while seen < expected:
            chunk = sock.recv(65536)
            if not chunk:
                break
            now = time.monotonic()
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                for line in frame.split(b"\n"):
                    if line.startswith(b"data: "):
                        sent_at = json.loads(line[6:])["message"]["properties"]["sent_at"]
                        delays.append(now - sent_at)
                        seen += 1
        finished.append(time.monotonic())


def listeners_process(
    port: int, after: int, expected: int, started: multiprocessing.synchronize.Event, out: multiprocessing.Queue
) -> None:
    delays: list[float] = []
    finished: list[float] = []
    ready = threading.Barrier(LISTENERS + 1)
    threads = [
        threading.Thread(target=listen, args=(port, after, expected, ready, delays, finished))
        for _ in range(LISTENERS)
    ]
    for thread in threads:
        thread.start()
    ready.wait()
    started.set()
    for thread in threads:
        thread.join(120)
    out.put((delays, finished))


def run(port: int, fake, events: int, rate: float | None, seq_start: int) -> tuple[list[float], float, float]:
    context = multiprocessing.get_context("spawn")
    started, out = context.Event(), context.Queue()
    after = 2 + seq_start  # past relay.joined, relay.replica_joined and any earlier run's events
    process = context.Process(target=listeners_process, args=(port, after, events, started, out))
    process.start()
    started.wait(30)
    time.sleep(0.3)  # every stream open and idle
    first = time.monotonic()
    for n in range(events):
        message = {
            "event_type": "conversation.utterance.streaming",
            "seq": seq_start + n,
            "properties": {"sent_at": time.monotonic(), "speech": "word " * 20},
        }
        fake.client.room_sends(message)
        if rate:
            time.sleep(max(0.0, first + (n + 1) / rate - time.monotonic()))
    delays, finished = out.get(timeout=120)
    process.join(10)
    return delays, first, max(finished)


def main() -> None:
    # A fresh relay per phase: a stream whose listener hung up holds its slot until its next write
    # (an event or the 15 s keep-alive), so the first phase's 50 would crowd out the second's.
    with relay_on_fake_daily(Settings(event_buffer=10_000)) as (port, fake):
        delays, _, _ = run(port, fake, PACED_EVENTS, PACED_RATE, 0)
    with relay_on_fake_daily(Settings(event_buffer=10_000)) as (port, fake):
        burst, first, last = run(port, fake, BURST_EVENTS, None, 0)
    expected = LISTENERS * PACED_EVENTS, LISTENERS * BURST_EVENTS
    missing = expected[0] - len(delays) + expected[1] - len(burst)
    exit_if_failed("event delivery", missing, f"{missing} events never reached their listener")
    delays.sort()
    p99_ms = delays[int(len(delays) * 0.99) - 1] * 1000
    goals = Goals()
    print(f"{LISTENERS} listeners, {PACED_EVENTS} room events at {PACED_RATE}/s: {len(delays)} deliveries")
    print(f"delay room event -> listener: p50 {statistics.median(delays) * 1000:.1f} ms, p99 {p99_ms:.1f} ms "
          f"({goals.check('p99 delay room event -> listener', p99_ms, '<', 20, ' ms')}; includes the 5 ms seq window)")
    print(f"burst of {BURST_EVENTS} events: {len(burst)} deliveries in {last - first:.2f} s = "
          f"{len(burst) / (last - first):.0f} events/s delivered")
    goals.exit_if_missed()


if __name__ == "__main__":
    main()
