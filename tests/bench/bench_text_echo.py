"""Text echo throughput: the relay vs the Tavus docs' Flask script, 8 concurrent clients each.

The relay runs on a fake CallClient that confirms at once (on its own thread, as
Daily does) and waits for every confirmation. The docs' script is rebuilt here
as published (it sends and returns without waiting) on the server its
`app.run()` starts, werkzeug's threaded server, but with debug off.
Targets (issue 2): at least 2x the docs script's requests/s; p99 under 10 ms.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask, jsonify, request
from harness import load, relay_on_fake_daily
from werkzeug.serving import make_server

from tests.conftest import DOCS_TEXT_BODY

CLIENTS = 8
REQUESTS_EACH = 300


def body(client: int, n: int) -> dict[str, Any]:
    return DOCS_TEXT_BODY | {"properties": DOCS_TEXT_BODY["properties"] | {"inference_id": f"c{client}-{n}"}}


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
    def send_app_message(self, message: Any, participant_id: Any = None, completion: Any = None) -> None:
        pass


def run_docs_script() -> dict[str, float]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # per-request log lines would only slow it
    server = make_server("127.0.0.1", 0, docs_script_app(NoopCallClient()), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        load(server.port, clients=CLIENTS, requests_each=20, body=body, path="/send_text_message")  # warm-up
        return load(server.port, clients=CLIENTS, requests_each=REQUESTS_EACH, body=body, path="/send_text_message")
    finally:
        server.shutdown()


def run_relay() -> dict[str, float]:
    with relay_on_fake_daily() as (port, fake):
        load(port, clients=CLIENTS, requests_each=20, body=body, path="/send_text_message")  # warm-up
        result = load(port, clients=CLIENTS, requests_each=REQUESTS_EACH, body=body, path="/send_text_message")
        fake.client.settle()
        result["messages_confirmed"] = len(fake.client.sent)
        return result


def show(name: str, result: dict[str, float]) -> None:
    print(
        f"{name:<28} {result['requests']:>5.0f} requests  {result['failures']:>3.0f} failed  "
        f"{result['requests_per_s']:>7.0f} req/s  p50 {result['p50_ms']:5.2f} ms  p99 {result['p99_ms']:5.2f} ms"
    )


def main() -> None:
    docs = run_docs_script()
    relay = run_relay()
    show("Tavus docs script (werkzeug)", docs)
    show("echo relay (waitress)", relay)
    print(f"relay / docs script: {relay['requests_per_s'] / docs['requests_per_s']:.2f}x requests/s "
          f"(target >= 2x); relay p99 {relay['p99_ms']:.2f} ms (target < 10 ms)")


if __name__ == "__main__":
    main()
