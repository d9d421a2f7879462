"""What a body costs the relay in memory, for the worst bodies a hostile client once sent and for the largest each
route takes.

Each case runs against its own `python app.py` (the dry run) in a subprocess, so the figure is the relay's
alone: after a warm-up (one small request of every kind), the process's peak RSS is reset (/proc/PID/clear_refs),
the case is run, and its growth is the peak (VmHWM) over the RSS before. Printed per case: the peak growth, in MB
and as a multiple of the body, what is still held after, the time, and what the relay answered.

Goals: a request's peak growth under 3x its body. A text Python holds at 4 bytes a character (one emoji in it
does it; an ASCII text takes 1) may cost up to 4x its bytes more: under 7x. A run of requests
one after another must not grow: its second half adds less than one body to the peak of its first. A
request that does not get the answer its case expects makes the bench exit 1; a missed goal, 2.

    python tests/bench/bench_memory.py [--only TEXT] [--list]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
from harness import ROOT, Goals

from config import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_TEXT_BODY_BYTES
from relay.events import MAX_EVENT_LISTENERS
from relay.script import MAX_SCRIPT_LINE_CHARS

MB = 1_000_000
GOAL_X = 3.0
WIDE_TEXT_EXTRA_X = 4.0  # what a text Python holds at 4 bytes a character (against 1 for ASCII) may cost more
RUN_GROWTH_GOAL_X = 1.0  # what the second half of a run may add to the first's peak, in bodies
# At the default script limit (1 MiB) a script's cost is lost among what the threads cost themselves.
RAISED_SCRIPT_LIMIT = 10 * 1024 * 1024
RAISED = (("RELAY_MAX_SCRIPT_BODY_BYTES", str(RAISED_SCRIPT_LIMIT)),)
STREAMS = MAX_EVENT_LISTENERS
RUN = 10  # requests (or load/next/interrupt cycles) in a run
START_TIMEOUT_S = 30
REQUEST_TIMEOUT_S = 600


@dataclass
class Outcome:
    """What one case did: the body that drove it, what the relay answered, anything else worth printing, and for a
    run of requests the peak growth (MB) after its first half."""

    body_bytes: int
    answers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    halfway_mb: float | None = None


Runner = Callable[[str, Callable[[], float]], Outcome]  # the relay's URL, and its peak growth so far (MB)


@dataclass(frozen=True)
class Case:
    name: str
    run: Runner
    expected: tuple[int, ...]  # the statuses its requests may get (a 413 or a 400 is the right answer for some)
    goal_x: float = GOAL_X
    settings: tuple[tuple[str, str], ...] = ()  # the relay's environment for the case


# --- the bodies ----------------------------------------------------------------------------------


def containers_body(size: int, field_name: str = "text") -> bytes:
    """`{"text": "a", "x": [{}, {}, ...]}` of about `size` bytes: as many objects as a body that size holds."""
    head, tail, item = b'{"%s": "a", "x": [' % field_name.encode(), b"{}]}", b"{}, "
    return head + item * ((size - len(head) - len(tail)) // len(item)) + tail


def script_body(size: int, line: str) -> bytes:
    """`{"script": "LINE\\nLINE\\n..."}` of at most `size` bytes."""
    head, tail = b'{"script": "', b'"}'
    one = json.dumps(line + "\n")[1:-1].encode()
    return head + one * ((size - len(head) - len(tail)) // len(one)) + tail


def long_text_body(size: int, *, wide: bool) -> bytes:
    """A text of `size` bytes as JSON; `wide`: with one emoji, so Python holds it at 4 bytes a character."""
    sentence = "The face says exactly what was sent, with no lost words. "
    text = (sentence * (size // len(sentence) + 1))[: size - 40]
    if wide:
        text = "\N{GRINNING FACE} " + text
    return json.dumps({"text": text}, ensure_ascii=False).encode()


# --- what the cases do -----------------------------------------------------------------------------


def post(base: str, path: str, body: bytes) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    return requests.post(base + path, data=body, headers=headers, timeout=REQUEST_TIMEOUT_S)


def answered(response: requests.Response) -> str:
    text = response.text
    return f"{response.status_code} {text[:150]!r}{' …' if len(text) > 150 else ''} ({len(response.content):,} bytes)"


def one_body(path: str, body: bytes) -> Runner:
    def run(base: str, peak_mb: Callable[[], float]) -> Outcome:
        return Outcome(len(body), [answered(post(base, path, body))])

    return run


def four_at_once(path: str, body: bytes) -> Runner:
    def run(base: str, peak_mb: Callable[[], float]) -> Outcome:
        answers: list[str] = []
        threads = [threading.Thread(target=lambda: answers.append(answered(post(base, path, body)))) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return Outcome(4 * len(body), answers[:1], [f"{len(answers)} answered"])

    return run


def script_and_its_state(body: bytes) -> Runner:
    """POST /script, then GET /script (the console asks for it on every start)."""

    def run(base: str, peak_mb: Callable[[], float]) -> Outcome:
        loaded = post(base, "/script", body)
        state = requests.get(base + "/script", timeout=REQUEST_TIMEOUT_S)
        return Outcome(len(body), [answered(loaded)], [f"GET /script answered {len(state.content):,} bytes"])

    return run


def one_after_another(path: str, body: bytes) -> Runner:
    """RUN requests, one after another: what one frees must serve the next, whichever server thread runs it."""

    def run(base: str, peak_mb: Callable[[], float]) -> Outcome:
        outcome = Outcome(len(body))
        for number in range(RUN):
            if number == RUN // 2:
                outcome.halfway_mb = peak_mb()
            outcome.answers.append(answered(post(base, path, body)))
        return outcome

    return run


def script_cycles(body: bytes) -> Runner:
    """RUN times: load the script, play its next line, interrupt it. Then what /events?after=0 answers, and STREAMS
    event streams replaying the whole buffer at once."""

    def run(base: str, peak_mb: Callable[[], float]) -> Outcome:
        outcome = Outcome(len(body))
        for number in range(RUN):
            if number == RUN // 2:
                outcome.halfway_mb = peak_mb()
            for path, data in (("/script", body), ("/script/next", b""), ("/interrupt", b"")):
                response = post(base, path, data)
                if response.status_code >= 300:
                    outcome.answers.append(answered(response))
                    outcome.halfway_mb = None
                    return outcome
        outcome.notes.append(f"every load, next and interrupt answered 2xx; peak +{peak_mb():.1f} MB")
        listing = requests.get(base + "/events?after=0", timeout=REQUEST_TIMEOUT_S)
        outcome.notes.append(f"/events?after=0 answered {len(listing.content):,} bytes")
        last_id = requests.get(base + "/health", timeout=30).json()["last_event_id"]
        read = replay_streams(base, last_id)
        outcome.notes.append(f"then {STREAMS} streams each read {read // STREAMS:,} bytes to event {last_id}")
        return outcome

    return run


def replay_streams(base: str, last_id: int) -> int:
    """STREAMS event streams from the start, each read until it has event `last_id`; the bytes they read."""
    port = int(base.rsplit(":", 1)[1])
    totals: list[int] = []
    marker = f"\nid: {last_id}\n".encode()

    def read_one() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT_S) as sock:
            sock.sendall(b"GET /events?after=0 HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
            total, tail = 0, b""
            while marker not in tail:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
                tail = (tail + chunk)[-len(marker) - len(chunk) :]
            totals.append(total)

    threads = [threading.Thread(target=read_one) for _ in range(STREAMS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(totals)


def cases() -> list[Case]:
    ten_mb_text = long_text_body(10 * MB, wide=False)
    longest_lines = script_body(RAISED_SCRIPT_LIMIT, "x" * MAX_SCRIPT_LINE_CHARS)
    return [
        Case("worst case: a 50 MB body of {} to the text route",
             one_body("/send_text_message", containers_body(50 * MB)), (400, 413)),
        Case("a body of {} at the text route's limit",
             one_body("/send_text_message", containers_body(DEFAULT_MAX_TEXT_BODY_BYTES)), (400,)),
        Case("a body of {} at the largest limit, to the audio route",
             one_body("/send_audio_message", containers_body(DEFAULT_MAX_BODY_BYTES, "audio")), (400,)),
        Case("worst case: four 50 MB bodies of {} at once, to the audio route",
             four_at_once("/send_audio_message", containers_body(50 * MB, "audio")), (400,)),
        Case("worst case: a script of 2.5 million one-character lines (7.5 MB), and GET /script",
             script_and_its_state(script_body(7_500_000, "a")), (200, 400, 413)),
        Case("a script of one-character lines at a raised limit (10 MiB), and GET /script",
             script_and_its_state(script_body(RAISED_SCRIPT_LIMIT, "a")), (400,), settings=RAISED),
        Case(f"a script of {MAX_SCRIPT_LINE_CHARS:,}-character lines at a raised limit (10 MiB), and GET /script",
             script_and_its_state(longest_lines), (200,), settings=RAISED),
        Case(f"worst case: {RUN} load/next/interrupt cycles of a 10 MB line, then {STREAMS} streams replay the events",
             script_cycles(script_body(10 * MB + 20, "x" * (10 * MB))), (200, 400, 413)),
        Case(f"{RUN} load/next/interrupt cycles of {MAX_SCRIPT_LINE_CHARS:,}-character lines at a raised limit "
             f"(10 MiB), then {STREAMS} streams replay the events", script_cycles(longest_lines), (200,),
             settings=RAISED),
        Case("a 10 MB text", one_body("/send_text_message", ten_mb_text), (200,)),
        Case(f"{RUN} 10 MB texts, one after another", one_after_another("/send_text_message", ten_mb_text), (200,)),
        Case("a 10 MB text with one emoji (held at 4 bytes a character)",
             one_body("/send_text_message", long_text_body(10 * MB, wide=True)), (200,),
             goal_x=GOAL_X + WIDE_TEXT_EXTRA_X),
    ]


# --- the relay -----------------------------------------------------------------------------------


@contextmanager
def dry_run(settings: tuple[tuple[str, str], ...] = ()) -> Iterator[tuple[str, int]]:
    """`python app.py` on a free port (its output to files, so a 10 MB text's lines never fill a pipe): URL, pid."""
    env = {"RELAY_PORT": "0", "PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin", **dict(settings)}
    with tempfile.TemporaryDirectory() as folder, open(Path(folder) / "stderr", "w+") as stderr:
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=folder, env=env,
                                   stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        try:
            yield f"http://127.0.0.1:{port_of(process, Path(folder) / 'stderr')}", process.pid
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def port_of(process: subprocess.Popen[str], stderr: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if match := re.search(r"listening on http://127\.0\.0\.1:(\d+)", stderr.read_text()):
            return int(match.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit(f"FAILED: the relay did not start: {stderr.read_text()[-2000:]}")


def status_kb(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise LookupError(name)


def reset_peak(pid: int) -> None:
    """Linux: writing 5 to clear_refs sets VmHWM to the RSS now."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")


def warm_up(base: str) -> None:
    """One small request of every kind a case makes, so what a first one loads or starts is not counted."""
    post(base, "/send_text_message", b'{"text": "Warming up."}')
    post(base, "/send_audio_message", b'{"audio": "AAAA", "done": true}')
    for path, data in (("/script", b'{"script": "Warming up."}'), ("/script/next", b""), ("/interrupt", b"")):
        post(base, path, data)
    requests.get(base + "/script", timeout=30)
    requests.get(base + "/events?after=0", timeout=30)
    replay_streams(base, requests.get(base + "/health", timeout=30).json()["last_event_id"])
    time.sleep(0.5)  # its last events settle


def measure(case: Case, goals: Goals) -> bool:
    """Run one case on a fresh relay and print its figures; False when a request got an answer it should not."""
    with dry_run(case.settings) as (base, pid):
        warm_up(base)
        reset_peak(pid)
        before_kb = status_kb(pid, "VmRSS")

        def peak_mb() -> float:
            return max(0, status_kb(pid, "VmHWM") - before_kb) / 1000

        started = time.perf_counter()
        outcome = case.run(base, peak_mb)
        took = time.perf_counter() - started
        growth_mb, kept_mb = peak_mb(), max(0, status_kb(pid, "VmRSS") - before_kb) / 1000
    body_mb = outcome.body_bytes / MB
    print(f"{case.name}\n  body {body_mb:.1f} MB; peak RSS +{growth_mb:.1f} MB = {growth_mb / body_mb:.2f}x the body "
          f"({run_goal(case, outcome, growth_mb, goals)}); +{kept_mb:.1f} MB still held after; {took:.1f} s")
    for line in outcome.answers[:1] + outcome.notes:
        print(f"  {line}")
    statuses = {int(answer.split()[0]) for answer in outcome.answers}
    return statuses <= set(case.expected)


def run_goal(case: Case, outcome: Outcome, growth_mb: float, goals: Goals) -> str:
    """A single request's goal, or a run's: its second half adds less than RUN_GROWTH_GOAL_X bodies."""
    body_mb = outcome.body_bytes / MB
    if outcome.halfway_mb is None:
        return goals.check(f"{case.name}: peak growth", growth_mb / body_mb, "<", case.goal_x, "x the body")
    added = (growth_mb - outcome.halfway_mb) / body_mb
    goal = goals.check(f"{case.name}: the second half's growth", added, "<", RUN_GROWTH_GOAL_X, "x the body")
    return f"+{outcome.halfway_mb:.1f} MB after the first half, the second added {added:.2f}x the body, {goal}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the cases")
    options = parser.parse_args()
    chosen = [case for case in cases() if options.only is None or options.only in case.name]
    if options.list:
        print("\n".join(case.name for case in chosen))
        return
    goals = Goals()
    failed = [case.name for case in chosen if not measure(case, goals)]
    if failed:
        print(f"FAILED: {len(failed)} case(s) got an answer they should not; the first: {failed[0]}")
        sys.exit(1)
    goals.exit_if_missed()


if __name__ == "__main__":
    main()
