"""Text echo: the relay beside the Tavus docs' handler, in one run, on the same machine.

Three servers answer the same body (the docs' quickstart body, with this
conversation's id filled in as the docs say):
  1. the docs' script as published: its handler on Werkzeug's threaded server
     in debug mode (the debugger middleware, but with its console off);
  2. the docs' handler, unchanged, served by waitress with the relay's thread count;
  3. the relay, on a stand-in CallClient that confirms every send from one
     long-lived worker thread, as Daily's does; the relay waits for each confirmation.
Figures: requests/s at 8 connections, p50 at 1 connection, and the ratios
(issue 11: the relay >= 0.8x the docs' handler on waitress, >= 2x the docs'
script as published; p50 at 1 connection within 1.3x of the handler on waitress).
Any request that does not get a 200 makes it exit 1, naming the first error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import waitress
from flask import Flask, jsonify, request
from harness import exit_if_failed, load, relay_on_fake_daily
from waitress import wasyncore
from werkzeug.debug import DebuggedApplication
from werkzeug.serving import make_server

from relay.events import MAX_EVENT_LISTENERS
from relay.run import SERVER_THREADS
from tests.conftest import CONVERSATION_ID, DOCS_TEXT_BODY

CONNECTIONS = 8
REQUESTS_EACH = 400
SINGLE_REQUESTS = 1500
WARM_UP_EACH = 50


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
    """Werkzeug's threaded server with debug's middleware; the reloader is left out (it forks) and so is the console."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # per-request log lines would only slow it
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
        docs_script_app(NoopCallClient()), host="127.0.0.1", port=0, threads=SERVER_THREADS + MAX_EVENT_LISTENERS
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.effective_port  # type: ignore[union-attr]
    finally:
        server.task_dispatcher.shutdown()
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))  # type: ignore[union-attr]
        thread.join(5)


@contextmanager
def the_relay() -> Iterator[int]:
    with relay_on_fake_daily() as (port, fake):
        fake.keep = lambda message: None  # the figures are the relay's, not a log's
        yield port


def measure(name: str, server: Callable[[], Any]) -> dict[str, Any]:
    with server() as port:
        load(port, clients=CONNECTIONS, requests_each=WARM_UP_EACH, body=body, path="/send_text_message")
        many = load(port, clients=CONNECTIONS, requests_each=REQUESTS_EACH, body=body, path="/send_text_message")
        one = load(port, clients=1, requests_each=SINGLE_REQUESTS, body=body, path="/send_text_message")
    for result in (many, one):
        exit_if_failed(name, result["failures"], result["first_error"])
    print(
        f"{name:<46} {many['requests_per_s']:>7.0f} req/s at {CONNECTIONS} connections (p99 {many['p99_ms']:5.2f} ms)"
        f"   p50 {one['p50_ms']:5.2f} ms at 1 connection"
    )
    return {"requests_per_s": many["requests_per_s"], "p50_ms": one["p50_ms"]}


def main() -> None:
    script = measure("1. the docs' script as published (Werkzeug, debug)", docs_script_as_published)
    handler = measure("2. the docs' handler on waitress (relay's threads)", docs_handler_on_waitress)
    relay = measure("3. the relay (waits for every confirmation)", the_relay)
    print(
        f"relay / docs' handler on waitress: {relay['requests_per_s'] / handler['requests_per_s']:.2f}x req/s "
        f"(goal >= 0.8x); p50 at 1 connection {relay['p50_ms'] / handler['p50_ms']:.2f}x (goal <= 1.3x)"
    )
    print(f"relay / docs' script as published: {relay['requests_per_s'] / script['requests_per_s']:.2f}x req/s (goal >= 2x)")


if __name__ == "__main__":
    main()
