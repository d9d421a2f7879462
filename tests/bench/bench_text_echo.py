"""Text echo: the relay beside the Tavus docs' handler, in one run, on the same machine.

Three servers answer the same body (the docs' quickstart body, with this
conversation's id filled in as the docs say):
  1. the docs' script as published: its handler on Werkzeug's threaded server
     in debug mode (the debugger middleware, but with its console off);
  2. the docs' handler, unchanged, served by waitress with the relay's thread count;
  3. the relay, on a stand-in CallClient that confirms every send from one
     long-lived worker thread, as Daily's does; the relay waits for each confirmation.
Figures: requests/s at 8 connections, p50 at 1 connection, and the ratios
(goals: the relay >= 0.85x the docs' handler on waitress, >= 2x the docs'
script as published; p50 at 1 connection within 1.3x of the handler on waitress).
The load client is wrk when installed (apt-get install wrk: the goals were set
with it, and in C it leaves both cores to the servers), else Python's
http.client in another process. This machine's speed drifts from minute to
minute, so the servers take turns, round after round, and each ratio is the
median of the rounds' ratios.
Any request that does not get a 200 makes it exit 1, naming the first error.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from statistics import median
from typing import Any

import waitress
from flask import Flask, jsonify, request
from harness import Goals, exit_if_failed, have_wrk, load, relay_on_fake_daily, wrk_load
from waitress import wasyncore
from werkzeug.debug import DebuggedApplication
from werkzeug.serving import make_server

from relay.events import MAX_EVENT_LISTENERS
from relay.server import API_THREADS
from tests.conftest import CONVERSATION_ID, DOCS_TEXT_BODY

CONNECTIONS = 8
ROUNDS = 5
WRK_SECONDS = 3
REQUESTS_EACH = 400  # the Python client's share, when wrk is not installed
SINGLE_REQUESTS = 1500
WARM_UP_EACH = 50
HANDLER_GOAL = 0.85  # the relay at 8 connections, against the docs' handler on waitress
P50_GOAL = 1.3  # p50 at 1 connection, against the same handler
SCRIPT_GOAL = 2.0  # against the docs' script as published (missed on a 2-core VM: see docs/benchmarks.md)


def body(client: int, n: int) -> dict[str, Any]:
    properties = DOCS_TEXT_BODY["properties"] | {"inference_id": f"c{client}-{n}"}
    return DOCS_TEXT_BODY | {"conversation_id": CONVERSATION_ID, "properties": properties}


def docs_script_app(call_client: Any) -> Flask:
    """The handler from the Tavus Echo Mode quickstart, unchanged in what it does."""
    app = Flask("docs_script")

    @app.route("/send_text_message", methods=["POST"])
    def send_text_message():
        body = request.json
        properties = body.get("properties", {})
        message = {
            "message_type": "conversation",
            "event_type": "conversation.echo",
            "conversation_id": body.get("conversation_id"),
            "properties": {
                "modality": properties.get("modality"),
                "text": properties.get("text"),
                "audio": properties.get("audio"),
                "sample_rate": properties.get("sample_rate", 16000),
                "inference_id": properties.get("inference_id"),
                "done": properties.get("done"),
            },
        }
        call_client.send_app_message(message)
        return jsonify({"status": "Message sent successfully"}), 200

    return app


class NoopCallClient:
    """The docs' script sends and never waits, so its client's work is not part of its request."""

    def send_app_message(self, message: Any, participant_id: Any = None, completion: Any = None) -> None:
        pass


@contextmanager
def docs_script_as_published() -> Iterator[int]:
    """Werkzeug's threaded server with debug's middleware and its log line per request, as `app.run(debug=True)`
    runs it.

    The line goes to /dev/null, as the relay's does: both pay for writing one.
    Left out, in the script's favour: the reloader (it forks, and its thread
    polls every module's file each second) and the debugger's console.
    """
    werkzeug_log = logging.getLogger("werkzeug")
    werkzeug_log.setLevel(logging.INFO)
    werkzeug_log.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115 (lives as long as the bench)
    werkzeug_log.propagate = False
    app = DebuggedApplication(docs_script_app(NoopCallClient()), evalex=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.port
    finally:
        server.shutdown()


@contextmanager
def docs_handler_on_waitress() -> Iterator[int]:
    server = waitress.create_server(
        docs_script_app(NoopCallClient()), host="127.0.0.1", port=0, threads=API_THREADS + MAX_EVENT_LISTENERS
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        server.task_dispatcher.shutdown()
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(5)


@contextmanager
def the_relay() -> Iterator[int]:
    with relay_on_fake_daily() as (port, fake):
        fake.keep = lambda message: None  # the figures are the relay's, not a log's
        yield port


def measure_once(port: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One round on one server: 8 connections, then 1; wrk when installed, else the Python client."""
    if have_wrk():
        fixed = body(0, 0)
        many = wrk_load(port, connections=CONNECTIONS, seconds=WRK_SECONDS, body=fixed, path="/send_text_message")
        one = wrk_load(port, connections=1, seconds=WRK_SECONDS, body=fixed, path="/send_text_message")
    else:
        many = load(port, clients=CONNECTIONS, requests_each=REQUESTS_EACH, body=body, path="/send_text_message")
        one = load(port, clients=1, requests_each=SINGLE_REQUESTS, body=body, path="/send_text_message")
    return many, one


def main() -> None:
    names = {
        "script": "1. the docs' script as published (Werkzeug, debug)",
        "handler": "2. the docs' handler on waitress (relay's threads)",
        "relay": "3. the relay (waits for every confirmation)",
    }
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    client = "wrk" if have_wrk() else "Python http.client (install wrk for the figures the goals use)"
    print(f"load client: {client}; "
          f"{ROUNDS} rounds, the servers taking turns in each (this machine's speed drifts)")
    with docs_script_as_published() as script, docs_handler_on_waitress() as handler, the_relay() as relay:
        ports = {"script": script, "handler": handler, "relay": relay}
        for port in ports.values():
            load(port, clients=CONNECTIONS, requests_each=WARM_UP_EACH, body=body, path="/send_text_message")
        for _ in range(ROUNDS):
            for name, port in ports.items():
                many, one = measure_once(port)
                for result in (many, one):
                    exit_if_failed(names[name], result["failures"], result["first_error"])
                rounds[name].append({"requests_per_s": many["requests_per_s"], "p50_ms": one["p50_ms"]})
    for name, label in names.items():
        rates = [r["requests_per_s"] for r in rounds[name]]
        print(f"{label:<52} {median(rates):>6.0f} req/s at {CONNECTIONS} connections "
              f"({min(rates):.0f}-{max(rates):.0f})"
              f"   p50 {median([r['p50_ms'] for r in rounds[name]]):5.2f} ms at 1 connection")
    goals = Goals()
    throughput, p50 = ratio(rounds, "requests_per_s", "handler"), ratio(rounds, "p50_ms", "handler")
    over_script = ratio(rounds, "requests_per_s", "script")
    print(
        f"relay / docs' handler on waitress: {throughput:.2f}x req/s "
        f"({goals.check('relay / handler req/s', throughput, '>=', HANDLER_GOAL, 'x')}); "
        f"p50 at 1 connection {p50:.2f}x ({goals.check('relay / handler p50', p50, '<=', P50_GOAL, 'x')})"
    )
    print(
        f"relay / docs' script as published: {over_script:.2f}x req/s "
        f"({goals.check('relay / script req/s', over_script, '>=', SCRIPT_GOAL, 'x')})"
    )
    print("(each ratio is the median of the rounds' ratios, each round's servers measured back to back)")
    goals.exit_if_missed()


def ratio(rounds: dict[str, list[dict[str, float]]], figure: str, other: str) -> float:
    return median([mine[figure] / theirs[figure] for mine, theirs in zip(rounds["relay"], rounds[other], strict=True)])


if __name__ == "__main__":
    main()
