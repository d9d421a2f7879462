"""The echo relay: POST JSON or audio to localhost, the Tavus face says it.

One process, one daily-python CallClient (owned by the room); each request
puts its messages on the wire in its turn, in arrival order, and waits for
Daily to confirm them. Run `python app.py --help` for the modes.

This file is the Flask app: its views (module level, reaching the relay
through `current_relay()`), the one error handler, the fast path for the
plain text request, and the command line. What runs underneath (the run's
lifecycle, the room, the wire, events, scripts) is in relay/; the layer every
request passes (Host, Origin, token, size, the log line) is relay/guard.py.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, BinaryIO
from urllib.parse import urlparse

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

import echo_messages
from config import ConfigError, Settings
from relay import audio
from relay import quickstart as quickstart_run
from relay import run as relay_run
from relay.core import Relay
from relay.errors import (
    INTERNAL_ERROR,
    MessageError,
    ModeError,
    NotFound,
    RelayError,
    UnsupportedMediaType,
    error_body,
    status_of,
)
from relay.events import listing_limit
from relay.guard import AUTHORIZED_KEY, LOG_FIELDS_KEY, RequestGuard, body_too_large
from relay.logs import flush_log, start_logging
from relay.options import Mode, OneLineParser, Options, UsageError
from relay.room import RelayRoom, daily_call_client, daily_microphone_device, show_daily_logs
from relay.utterances import MAX_TRACKED_UTTERANCES

log = logging.getLogger("echo_relay")

JSON_MIMETYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain", "")
AUDIO_FILE_MIMETYPES = (
    "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/mpeg", "audio/mp3", "audio/flac",
    "audio/x-flac", "audio/ogg", "audio/opus", "application/ogg", "audio/aiff", "audio/x-aiff", "application/octet-stream",
)
AUDIO_CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg", "aiff": "audio/aiff"}
SCRIPT_FIELDS = ("script", "name")
TEXT_ENDPOINT = "/send_text_message"

views = Blueprint("relay", __name__)


# --- the app ------------------------------------------------------------------------


def create_app(
    settings: Settings, room: RelayRoom, *, microphone_device: Any = None, fast_path: bool = True
) -> Flask:
    """The Flask app for one room; `room` is a Room, a DryRunRoom, or a test's stand-in.

    With a `microphone_device` (anything with `write_frames(bytes)`), POST
    /microphone plays audio through it. `fast_path=False` sends the plain text
    request through Flask too (the tests run both ways and expect the same).
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["relay"] = Relay(settings, room, microphone_device)
    app.register_blueprint(views)
    app.register_error_handler(Exception, handle_error)
    inner = PlainTextFastPath(app.wsgi_app, app.extensions["relay"]) if fast_path else app.wsgi_app
    app.wsgi_app = RequestGuard(inner, settings)  # type: ignore[method-assign]
    return app


def current_relay() -> Relay:
    """The relay of the app handling this request (Flask's tutorial reaches its db the same way)."""
    relay: Relay = current_app.extensions["relay"]
    return relay


# --- answers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a request gets: a status, a JSON body, and the fields of its log line."""

    status: int
    body: bytes
    log_fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, value: Any, status: int = 200, **log_fields: Any) -> Answer:
        return cls(status, json_bytes(value), log_fields)

    def response(self) -> Response:
        request.environ[LOG_FIELDS_KEY].update(self.log_fields)
        return Response(self.body, self.status, mimetype="application/json")


def json_bytes(value: Any) -> bytes:
    """Every answer is written this one way: keys in the order the relay put them, `", "` and `": "` between."""
    return json.dumps(value).encode()


def answer(value: Any, status: int = 200) -> Response:
    return Answer.of(value, status).response()


def error_answer(error: BaseException, method: str, path: str) -> Answer:
    """Every error a request can end in, as its status and `{"error": ...}`; a bug's details go only to the log."""
    if isinstance(error, RelayError):
        return Answer(status_of(error), error_body(str(error)))
    if isinstance(error, RequestEntityTooLarge):
        return Answer(413, error_body(str(body_too_large(current_relay().settings.max_body_bytes))))
    if isinstance(error, HTTPException):
        return Answer(error.code or 500, error_body(_http_error_text(error, method, path)))
    log.error("unexpected error on %s %s", method, path, exc_info=error)
    return Answer(500, error_body(INTERNAL_ERROR))


def handle_error(error: Exception) -> Response:
    return error_answer(error, request.method, request.path).response()


def _http_error_text(error: HTTPException, method: str, path: str) -> str:
    if error.code == 404:
        return f"no endpoint {path}: see GET /health and the README for the endpoints"
    if error.code == 405:
        allowed = ", ".join(sorted(set(error.valid_methods or []) - {"HEAD", "OPTIONS"}))  # type: ignore[attr-defined]
        return f"{method} is not allowed on {path}: use {allowed}"
    return str(error.description)


def answer_text(relay: Relay, body: bytes, ticket: int) -> Answer:
    """POST /send_text_message, whichever path read it: the body in, the face speaks, the answer out.

    `ticket` was taken when the request arrived: an interrupt since then
    (while the body was read and split) drops it.
    """
    echo = echo_messages.parse_text_request(decode_json(body, TEXT_ENDPOINT))
    fields = relay.speak_text(echo, ticket=ticket, wait=echo.wait)
    return sent_answer(relay, fields)


def sent_answer(relay: Relay, fields: Mapping[str, Any]) -> Answer:
    value = {"status": "Message sent successfully", "mode": relay.room.mode, **fields}
    return Answer.of(value, inference_id=fields["inference_id"], messages_sent=fields["messages_sent"])


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

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self._is_plain(environ):
            return self._flask(environ, start_response)
        ticket = self._relay.sender.ticket  # taken first, as the view does
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        try:
            result = answer_text(self._relay, body, ticket)
        except Exception as error:  # noqa: BLE001 (the WSGI boundary: error_answer maps it, as Flask's handler does)
            result = error_answer(error, "POST", TEXT_ENDPOINT)
        environ[LOG_FIELDS_KEY].update(result.log_fields)
        start_response(
            f"{result.status} {HTTPStatus(result.status).phrase}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(result.body)))],
        )
        return [result.body]

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


# --- request bodies ---------------------------------------------------------------------


def json_request_body(endpoint: str) -> bytes:
    """The raw body of a JSON request, whatever the Content-Type a curl -d sends, but not another media type.

    Options of a JSON request are fields of its body: a query parameter would
    be ignored, so it is refused, naming the field it should be.
    """
    mimetype = request.mimetype  # parsed from the header on every access: once is enough
    if mimetype not in JSON_MIMETYPES and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(
            f"Content-Type {mimetype!r} is not supported here: send JSON with Content-Type: application/json"
        )
    if request.args:
        name = next(iter(request.args))
        raise MessageError(
            f"query parameter {name!r} is not read here: put it in the JSON body "
            "(query parameters are for audio file uploads)"
        )
    return request.get_data(cache=False)


def decode_json(data: bytes, endpoint: str) -> Any:
    """The body as JSON; an audio file sent where JSON belongs says which header to add."""
    try:
        return echo_messages.json_body(data)
    except MessageError:
        if container := audio.audio_container(data[:16384]):
            raise MessageError(_audio_body_hint(container, endpoint)) from None
        raise


def _audio_body_hint(container: str, endpoint: str) -> str:
    """curl --data-binary @speech.wav without -H sends form-urlencoded: say which header to add."""
    content_type = AUDIO_CONTENT_TYPES[container]
    if endpoint == TEXT_ENDPOINT:
        return (
            f"the body is an audio file ({container.upper()}), not JSON: POST it to /send_audio_message "
            f'with -H "Content-Type: {content_type}"'
        )
    return f'the body is an audio file ({container.upper()}), not JSON: send it with -H "Content-Type: {content_type}"'


def audio_request(relay: Relay, endpoint: str, open_utterances: audio.OpenRates | None) -> audio.AudioEcho:
    """The three forms of an audio request (JSON, a raw audio file body, or multipart field `file`), decoded."""
    return audio.decode(declared_audio(endpoint), relay.audio_limits, open_utterances)


def declared_audio(endpoint: str) -> echo_messages.AudioRequest:
    """An audio request as the caller declared it: the bytes or file, the rate, the options."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise MessageError("a multipart upload needs the audio in a field named file (curl -F file=@speech.wav)")
        return echo_messages.parse_audio_file(upload.stream, request.values)  # type: ignore[arg-type]
    if mimetype in AUDIO_FILE_MIMETYPES:
        return echo_messages.parse_audio_file(_body_file(), request.args)
    if mimetype.startswith("audio/"):
        raise UnsupportedMediaType(
            f"Content-Type {mimetype!r} is not supported: send WAV, MP3, FLAC or OGG "
            "(or application/octet-stream and the relay recognises the format)"
        )
    return echo_messages.parse_audio_request(
        decode_json(json_request_body(endpoint), endpoint),
        endpoint=endpoint,
        require_audio=endpoint == "/microphone",
    )


def _body_file() -> BinaryIO:
    """The raw body as a seekable file for soundfile, without copying it when the server has one.

    waitress spools large bodies to a seekable temp file (`wsgi.input`); reading
    that directly (PEP 3333 allows it, within CONTENT_LENGTH) is an order of
    magnitude faster than werkzeug's chunked get_data() for a 10 MB file, and
    holds no second copy. Other servers get the plain, copying path.
    """
    length = request.content_length
    stream = request.environ.get("wsgi.input")
    if length and stream is not None and _seekable(stream):
        return stream
    body = request.get_data(cache=False)
    if not body:
        raise MessageError("audio is empty: the request body has no bytes")
    return io.BytesIO(body)


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable()) and stream.tell() == 0
    except (AttributeError, OSError, ValueError):
        return False


def event_cursor() -> int:
    """The last event id the caller has: `?after=` or the `Last-Event-ID` an EventSource sends on reconnect."""
    raw = request.args.get("after", request.headers.get("Last-Event-ID", "0")).strip() or "0"
    return echo_messages.ascii_int(raw, "after (or Last-Event-ID)", meaning="an event id, a whole number >= 0")


# --- views --------------------------------------------------------------------------------


@views.post(TEXT_ENDPOINT)
def send_text_message() -> Response:
    """Every form of the request; the plain one usually arrives by PlainTextFastPath (the same answer)."""
    relay = current_relay()
    ticket = relay.sender.ticket  # taken first: an interrupt while the body is read and split drops it
    return answer_text(relay, json_request_body(TEXT_ENDPOINT), ticket).response()


@views.post("/send_audio_message")
def send_audio_message() -> Response:
    relay = current_relay()
    ticket = relay.sender.ticket
    echo = audio_request(relay, "/send_audio_message", relay.utterances)
    return sent_answer(relay, relay.speak_audio(echo, ticket=ticket, wait=echo.request.wait)).response()


@views.post("/microphone")
def microphone_clip() -> Response:
    relay = current_relay()
    microphone = relay.microphone
    if microphone is None:
        raise ModeError(
            "microphone echo is off: start the relay with --microphone (python app.py <conversation_url> --microphone)"
        )
    relay.room.check_open()
    echo = audio_request(relay, "/microphone", {})
    if echo.request.wait is not None:
        raise MessageError("wait is for /send_text_message and /send_audio_message: the microphone answers once queued")
    pcm = b"".join(echo.audio)
    if not pcm:
        raise MessageError("audio is empty: send an audio file or base64 PCM to play")
    if echo.sample_rate != microphone.sample_rate:
        pcm = audio.resample_pcm(pcm, echo.sample_rate, microphone.sample_rate)
    return answer({"status": "Queued", "mode": relay.room.mode, **microphone.enqueue(pcm)}, 202)


@views.get("/utterances/<inference_id>")
def utterance(inference_id: str) -> Response:
    """What became of one utterance: queued, sending, sent, speaking, spoken, interrupted or failed, with times."""
    found = current_relay().utterance(inference_id)
    if found is None:
        raise NotFound(
            f"no utterance {inference_id[:128]!r} among the last {MAX_TRACKED_UTTERANCES}: "
            "check the inference_id a send answered with"
        )
    return answer(found)


@views.post("/interrupt")
def interrupt() -> Response:
    relay = current_relay()
    relay.script.halt()  # an interrupt also ends a script run
    conversation_id = relay.conversation_id_for(None)
    clips_dropped = relay.microphone.clear() if relay.microphone else 0
    dispatched, dropped = relay.sender.interrupt(conversation_id)
    relay.interrupted(reason="POST /interrupt", requests_dropped=dropped, microphone_clips_dropped=clips_dropped)
    sent = relay.sender.confirm(dispatched)
    request.environ[LOG_FIELDS_KEY]["messages_sent"] = sent
    return answer(
        {
            "status": "Interrupted",
            "mode": relay.room.mode,
            "messages_sent": sent,
            "requests_dropped": dropped,
            "microphone_clips_dropped": clips_dropped,
            "conversation_id": conversation_id,
        }
    )


@views.get("/events")
def events() -> Response:
    relay = current_relay()
    last_id = event_cursor()
    if "text/event-stream" in request.headers.get("Accept", ""):
        return Response(
            relay.events.stream(last_id),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return answer(relay.events.listing(last_id, listing_limit(request.args.get("limit"))))


@views.get("/openapi.json")
def openapi() -> Response:
    return current_app.send_static_file("openapi.json")


@views.get("/")
def console() -> Response:
    response = current_app.send_static_file("console.html")
    response.headers["Content-Security-Policy"] = console_policy(current_relay().room.conversation_url)
    response.headers["Cache-Control"] = "no-store"
    return response


def console_policy(conversation_url: str | None) -> str:
    """The console's Content-Security-Policy: its own files only; in room mode, the room's page in a frame."""
    parsed = urlparse(conversation_url) if conversation_url else None
    frame = f"{parsed.scheme}://{parsed.netloc}" if parsed else "'none'"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        f"frame-src {frame}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@views.get("/room")
def room_info() -> Response:
    """What the console needs to show the face: the room's URL (never a meeting token)."""
    room = current_relay().room
    return answer(
        {
            "mode": room.mode,
            "conversation_id": room.conversation_id,
            "conversation_url": room.conversation_url,
            "private": room.private,
        }
    )


@views.post("/script")
def load_script() -> Response:
    body = decode_json(json_request_body("/script"), "/script")
    if not isinstance(body, dict) or not isinstance(body.get("script"), str):
        raise MessageError('send the script as {"script": "one line per utterance\\n@pause 1\\n..."}')
    echo_messages.check_known(body, SCRIPT_FIELDS, "/script")
    name = str(body.get("name") or "the script")[:80]
    return answer(current_relay().load_script(body["script"], name))


@views.get("/script")
def script_state() -> Response:
    return answer(current_relay().script.state())


@views.post("/script/next")
def script_next() -> Response:
    return answer(current_relay().script.next(), 202)


@views.post("/script/play")
def script_play() -> Response:
    return answer(current_relay().script.play(), 202)


@views.post("/script/stop")
def script_stop() -> Response:
    script = current_relay().script
    script.stop()
    return answer(script.state())


@views.get("/health")
def health() -> Response:
    """Up or not, for any probe; with RELAY_AUTH_TOKEN set, the room's state only with the token."""
    relay = current_relay()
    if not request.environ.get(AUTHORIZED_KEY, False):
        return answer({"status": "ok", "auth_required": True})
    room = relay.room
    return answer(
        {
            "status": "ok",
            "mode": room.mode,
            "sample_rate": relay.settings.sample_rate,
            "call_state": room.call_state,
            "left_reason": room.left_reason if room.call_state == "left" else None,
            "conversation_id": room.conversation_id,
            "replica_present": room.replica_present,
            "face": room.face,
            "connection": room.connection,
            "replica_speaking": relay.face_speaking.speaking,
            "last_event_id": relay.events.last_id,
            "uptime_s": round(time.monotonic() - relay.started, 3),
            "messages_sent": relay.sender.messages_sent,
            "send_errors": relay.sender.send_errors,
            "queue_depth": relay.sender.queue_depth,
            "oldest_wait_s": relay.sender.oldest_wait_s,
            "latency": relay.tracker.latency(),
            "event_streams": relay.events.listeners,
            "microphone": relay.microphone.status() if relay.microphone else {"enabled": False},
            "auth_required": relay.settings.auth_token is not None,
        }
    )


# --- command line -----------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python app.py",
        description=(
            "Relay POSTed text and audio to a Tavus face in Echo Mode. With no URL (and no "
            "TAVUS_CONVERSATION_URL) it runs a dry run: messages are printed, not sent."
        ),
    )
    parser.add_argument(
        "conversation_url", nargs="?",
        help="the conversation_url Tavus returned, https://<domain>.daily.co/<conversation_id> "
        "(a private room's may end in ?t=<token>)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print messages instead of joining a room")
    parser.add_argument(
        "--quickstart",
        action="store_true",
        help="with TAVUS_API_KEY: create an echo persona (or reuse TAVUS_PERSONA_ID) and a conversation, "
        "join it and serve; the conversation is ended when the relay stops",
    )
    parser.add_argument(
        "--microphone",
        action="store_true",
        help="join with a virtual microphone for microphone echo (POST /microphone plays audio through it)",
    )
    parser.add_argument("--meeting-token", help="a private room's meeting token (default: TAVUS_MEETING_TOKEN)")
    parser.add_argument(
        "--script", metavar="FILE", help="play a demo script once the face is in the room, each line after the last is spoken"
    )
    parser.add_argument(
        "--exit-after-script", action="store_true", help="with --script: stop when it is over (a quickstart ends its conversation)"
    )
    quickstart = parser.add_argument_group("quickstart options")
    quickstart.add_argument(
        "--pal", action="store_true",
        help="create a PAL (POST /pals), not a persona; with no face given, Tavus's first stock face",
    )
    quickstart.add_argument(
        "--face-id", "--replica-id", dest="face_id", metavar="F",
        help="the face (replica) to use (default: TAVUS_REPLICA_ID or TAVUS_FACE_ID)",
    )
    quickstart.add_argument(
        "--private", action="store_true", help="create a private room (require_auth) and join it with its meeting token"
    )
    quickstart.add_argument(
        "--test-mode", action="store_true", help="create a conversation that is not billed (no face joins it)"
    )
    quickstart.add_argument("--name", default=quickstart_run.CONVERSATION_NAME, help="the conversation's name")
    quickstart.add_argument(
        "--max-call-duration", dest="max_call_seconds", type=int, metavar="S",
        help="Tavus ends the conversation by itself after S seconds, should the relay not "
        "(default: RELAY_MAX_CALL_SECONDS, 3600)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging, and daily's own log lines on stderr")
    return parser


def parse_args(argv: list[str] | None, settings: Settings) -> Options:
    """The command line (and TAVUS_CONVERSATION_URL, TAVUS_MEETING_TOKEN) as one Options; the mode is decided here."""
    args = _parser().parse_args(argv)
    if args.quickstart and (args.conversation_url or args.dry_run):
        raise UsageError("--quickstart creates its own conversation: give no URL and no --dry-run")
    if args.dry_run and args.conversation_url:
        raise UsageError("--dry-run joins no room: give no URL (--dry-run is for ignoring TAVUS_CONVERSATION_URL)")
    if args.exit_after_script and not args.script:
        raise UsageError("--exit-after-script goes with --script FILE")
    if args.quickstart and args.meeting_token:
        raise UsageError("--meeting-token is for joining a room by URL; --quickstart --private gets its own token")
    if args.max_call_seconds is not None and args.max_call_seconds < 60:
        raise UsageError(f"--max-call-duration must be at least 60, got {args.max_call_seconds}")
    given = [flag for flag, on in (("--pal", args.pal), ("--face-id", args.face_id), ("--private", args.private),
                                   ("--test-mode", args.test_mode), ("--max-call-duration", args.max_call_seconds))
             if on]
    if given and not args.quickstart:
        raise UsageError(f"{', '.join(given)} go{'es' if len(given) == 1 else ''} with --quickstart")
    url = None if args.dry_run or args.quickstart else (args.conversation_url or settings.tavus_conversation_url)
    if args.quickstart:
        mode = Mode.QUICKSTART
    elif url:
        mode = Mode.ROOM  # its shape is checked with every other setting, before binding (relay.run)
    else:
        mode = Mode.DRY_RUN
    return Options(
        mode=mode,
        conversation_url=url,
        meeting_token=(args.meeting_token or settings.tavus_meeting_token) if mode is Mode.ROOM else None,
        microphone=args.microphone,
        script=args.script,
        exit_after_script=args.exit_after_script,
        verbose=args.verbose,
        pal=args.pal,
        face_id=args.face_id,
        private=args.private,
        test_mode=args.test_mode,
        name=args.name,
        max_call_seconds=args.max_call_seconds,
    )


def main(
    argv: list[str] | None = None,
    *,
    client_factory: Callable[..., Any] = daily_call_client,
    microphone_factory: Callable[[int], Any] = daily_microphone_device,
) -> int:
    """The command line; the factories let tests stand in for daily's CallClient and microphone."""
    try:
        settings = Settings.from_env()
        options = parse_args(argv, settings)
    except (ConfigError, UsageError) as error:
        return relay_run.exit_with_error(str(error), 2)
    start_logging(options.verbose)
    show_daily_logs(options.verbose)
    try:
        return relay_run.run(options, settings, relay_run.Daily(client_factory, microphone_factory), create_app)
    finally:
        flush_log()


if __name__ == "__main__":
    sys.exit(main())
