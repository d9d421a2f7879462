"""The echo relay: POST JSON or audio to localhost, the Tavus face says it.

One process, one daily-python CallClient (owned by the room); each request
puts its messages on the wire in its turn, in arrival order, and waits for
Daily to confirm them. Run `python app.py --help` for the modes.

This file wires the app together: `create_app` (the Flask app, its one error
handler, the layer every request passes), the fast path for the plain text
request, and a thin `main()`. The views are relay/views.py, the command line's
parser relay/options.py, the run's lifecycle relay/run.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask

from config import ConfigError, Settings
from echo_messages import TEXT_ENDPOINT
from relay import run as relay_run
from relay.core import Relay
from relay.guard import LOG_FIELDS_KEY, RequestGuard, body_limit
from relay.logs import exit_with_error, flush_log, start_logging
from relay.options import UsageError, parse_args
from relay.room import RelayRoom, daily_call_client, daily_microphone_device, show_daily_logs
from relay.server import share_freed_memory
from relay.views import answer_text, error_answer, handle_error, read_body, views


def create_app(
    settings: Settings, room: RelayRoom, *, microphone_device: Any = None, fast_path: bool = True
) -> Flask:
    """The Flask app for one room, its relay started; `room` is a Room, a DryRunRoom, or a test's stand-in.

    With a `microphone_device` (anything with `write_frames(bytes)`), POST
    /microphone plays audio through it. `fast_path=False` sends the plain text
    request through Flask too (the tests run both ways and expect the same).
    Whoever made the app closes its relay (`app.extensions["relay"].close()`).
    """
    relay = Relay(settings, room, microphone_device)
    app = app_for(relay, fast_path=fast_path)
    relay.start()
    return app


def app_for(relay: Relay, *, fast_path: bool = True) -> Flask:
    """The Flask app that serves `relay`: the views, the one error handler, the fast path, the guard around both.

    The run (relay/run.py) builds, starts and closes the relay itself and serves this app.
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = relay.settings.max_body_bytes
    app.extensions["relay"] = relay
    app.register_blueprint(views)
    app.register_error_handler(Exception, handle_error)
    inner = PlainTextFastPath(app.wsgi_app, relay) if fast_path else app.wsgi_app
    app.wsgi_app = RequestGuard(inner, relay.settings)  # type: ignore[method-assign]
    return app


class PlainTextFastPath:
    """The plain text request, answered by `answer_text` without Flask's per-request machinery.

    Text echo is the relay's busiest route, and for a short text Flask's
    request and response objects, contexts, hooks and signals cost more than
    everything the relay does (tests/bench/bench_text_echo.py). The plain form
    is POST /send_text_message, `Content-Type: application/json`, a
    Content-Length, no query string; every other request goes to Flask. Both
    sit inside the RequestGuard, so no check can be skipped here.
    """

    def __init__(self, flask_wsgi_app: Callable[..., Iterable[bytes]], relay: Relay) -> None:
        self._flask = flask_wsgi_app
        self._relay = relay
        self._limit = body_limit(relay.settings, TEXT_ENDPOINT)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self._is_plain(environ):
            return self._flask(environ, start_response)
        ticket = self._relay.ticket  # taken first, as the view does
        body = read_body(environ["wsgi.input"], int(environ["CONTENT_LENGTH"]))  # json_body empties it once read
        try:
            result = answer_text(self._relay, body, ticket)
        except Exception as error:  # noqa: BLE001 (the WSGI boundary: error_answer maps it, as Flask's handler does)
            result = error_answer(error, "POST", TEXT_ENDPOINT, self._limit)
        environ[LOG_FIELDS_KEY].update(result.log_fields)
        return result.start(start_response)

    @staticmethod
    def _is_plain(environ: Mapping[str, Any]) -> bool:
        length = environ.get("CONTENT_LENGTH", "")
        return (
            environ["REQUEST_METHOD"] == "POST"
            and environ.get("PATH_INFO") == TEXT_ENDPOINT
            and not environ.get("QUERY_STRING")
            and _mimetype(environ.get("CONTENT_TYPE", "")) == "application/json"
            and length.isascii()
            and length.isdigit()
            and int(length) > 0
        )


def _mimetype(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def main(
    argv: list[str] | None = None,
    *,
    client_factory: Callable[..., Any] = daily_call_client,
    microphone_factory: Callable[[int], Any] = daily_microphone_device,
) -> int:
    """The command line; the factories let tests stand in for daily's CallClient and microphone."""
    share_freed_memory()  # before any thread of the relay's starts
    try:
        settings = Settings.from_env()
        options = parse_args(argv, settings)
    except (ConfigError, UsageError) as error:
        return exit_with_error(str(error), 2)
    start_logging(options.verbose)
    show_daily_logs(options.verbose)
    try:
        return relay_run.run(options, settings, relay_run.Daily(client_factory, microphone_factory), app_for)
    finally:
        flush_log()


if __name__ == "__main__":
    sys.exit(main())
