"""The echo relay: POST JSON or audio to localhost, the Tavus face says it.

One process, one daily-python CallClient (owned by `Room`); each request puts
its messages on the wire in its turn, in arrival order (`Sender`), and waits
for Daily to confirm them. Flask routes only parse and answer; what they share
is `relay.core.Relay`. Run `python app.py --help` for the modes.

This file is the Flask app, its routes and the command line; the parts it owns
that run underneath (the run's lifecycle, room, sender, events, microphone,
scripts) are in relay/.
"""

from __future__ import annotations

import argparse
import hmac
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any, BinaryIO, NoReturn
from urllib.parse import urlparse

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, UnsupportedMediaType

import echo_messages
from config import ConfigError, Settings, check_room_url
from echo_messages import UtteranceRates
from relay import quickstart as quickstart_run
from relay import run as relay_run
from relay.core import Relay
from relay.errors import MessageError, ModeError, RelayError, status_of
from relay.events import events_dropped
from relay.logs import flush_log, start_logging
from relay.options import Mode, Options, UsageError
from relay.room import daily_call_client, daily_microphone_device, show_daily_logs
from relay.script import parse_script

log = logging.getLogger("echo_relay")

JSON_MIMETYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain", "")
AUDIO_FILE_MIMETYPES = (
    "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/mpeg", "audio/mp3", "audio/flac",
    "audio/x-flac", "audio/ogg", "audio/opus", "application/ogg", "audio/aiff", "audio/x-aiff", "application/octet-stream",
)
AUDIO_CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg", "aiff": "audio/aiff"}
# No token needed: they carry nothing from the conversation (the console page asks for the token itself).
PUBLIC_PATHS = ("/health", "/openapi.json", "/")
PUBLIC_PREFIXES = ("/static/",)
SCRIPT_FIELDS = ("script", "name")
QUIET_PATHS = ("/health", "/")  # the console polls /health every second: logged only with --verbose
REQUEST_LINE = "%s %s %d %.1fms inference_id=%s messages_sent=%s"  # never a body, audio or token
INTERNAL_ERROR = "internal error in the relay; the details are in its log"
# --- the HTTP app -----------------------------------------------------------------


def create_app(settings: Settings, room: Any, *, microphone_device: Any = None) -> Flask:
    """The Flask app for one room; `room` is a Room, a DryRunRoom, or a test's stand-in.

    With a `microphone_device` (anything with `write_frames(bytes)`), POST /microphone plays audio through it.
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    relay = Relay(settings, room, microphone_device)
    app.extensions["relay"] = relay

    app.before_request(_start_request)
    app.after_request(_log_request)
    app.register_error_handler(Exception, _error_response)
    app.wsgi_app = PlainTextRoute(app.wsgi_app, relay)  # type: ignore[method-assign]

    @app.post("/send_text_message")
    def send_text_message() -> Response:
        """Every form of the request but the plain one, which `PlainTextRoute` answers (the same way)."""
        ticket = relay.sender.generation  # taken first: an interrupt while the body is read and split drops it
        echo = echo_messages.parse_text_request(_json_body())
        return _sent(relay, _speak_text(relay, echo, ticket))

    @app.post("/send_audio_message")
    def send_audio_message() -> Response:
        ticket = relay.sender.generation
        echo = _audio_request(settings, relay.utterances, "/send_audio_message")
        return _sent(relay, relay.speak_audio(echo, ticket=ticket))

    @app.post("/microphone")
    def microphone_clip() -> tuple[Response, int]:
        microphone = relay.microphone
        if microphone is None:
            raise ModeError(
                "microphone echo is off: start the relay with --microphone "
                "(python app.py <conversation_url> --microphone)"
            )
        room.check_open()
        echo = _audio_request(settings, {}, "/microphone")
        pcm = b"".join(echo.audio)
        if not pcm:
            raise MessageError("audio is empty: send an audio file or base64 PCM to play")
        if echo.sample_rate != microphone.sample_rate:
            pcm = echo_messages.resample_pcm(pcm, echo.sample_rate, microphone.sample_rate)
        return jsonify(status="Queued", mode=room.mode, **microphone.enqueue(pcm)), 202

    @app.post("/interrupt")
    def interrupt() -> Response:
        relay.script.halt()  # an interrupt also ends a script run
        conversation_id = relay.conversation_id_for(None)
        clips_dropped = relay.microphone.clear() if relay.microphone else 0
        dispatched, dropped = relay.sender.interrupt(conversation_id)
        relay.events.publish(
            "relay.interrupted", reason="POST /interrupt", requests_dropped=dropped, microphone_clips_dropped=clips_dropped
        )
        sent = relay.sender.confirm(dispatched)
        g.messages_sent = sent
        return jsonify(
            status="Interrupted",
            messages_sent=sent,
            requests_dropped=dropped,
            microphone_clips_dropped=clips_dropped,
            conversation_id=conversation_id,
            mode=room.mode,
        )

    @app.get("/events")
    def events() -> Response:
        last_id = _event_cursor()
        if "text/event-stream" in request.headers.get("Accept", ""):
            return Response(
                relay.events.stream(last_id),
                mimetype="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        newer, dropped = relay.events.after(last_id)
        return jsonify(([events_dropped(dropped)] if dropped else []) + [event.as_dict() for event in newer])

    @app.get("/openapi.json")
    def openapi() -> Response:
        return app.send_static_file("openapi.json")

    @app.get("/")
    def console() -> Response:
        response = app.send_static_file("console.html")
        response.headers["Content-Security-Policy"] = console_policy(room)
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/room")
    def room_info() -> Response:
        """What the console needs to show the face: the room's URL (never a meeting token)."""
        return jsonify(
            mode=room.mode,
            conversation_id=room.conversation_id,
            conversation_url=getattr(room, "conversation_url", None),
            private=room.private,
        )

    @app.post("/script")
    def load_script() -> Response:
        body = _json_body("/script")
        if not isinstance(body, dict) or not isinstance(body.get("script"), str):
            raise MessageError('send the script as {"script": "one line per utterance\\n@pause 1\\n..."}')
        echo_messages.check_known(body, SCRIPT_FIELDS, "/script")
        name = str(body.get("name") or "the script")[:80]
        return jsonify(relay.script.load(parse_script(body["script"], Path.cwd(), name=name), name))

    @app.get("/script")
    def script_state() -> Response:
        return jsonify(relay.script.state())

    @app.post("/script/next")
    def script_next() -> tuple[Response, int]:
        return jsonify(relay.script.next()), 202

    @app.post("/script/play")
    def script_play() -> tuple[Response, int]:
        return jsonify(relay.script.play()), 202

    @app.post("/script/stop")
    def script_stop() -> Response:
        relay.script.stop()
        return jsonify(relay.script.state())

    @app.get("/health")
    def health() -> Response:
        return jsonify(
            status="ok",
            mode=room.mode,
            call_state=room.call_state,
            left_reason=room.left_reason if room.call_state == "left" else None,
            conversation_id=room.conversation_id,
            replica_present=room.replica_present,
            replica_speaking=relay.room_events.replica_speaking,
            last_event_id=relay.events.last_id,
            uptime_s=round(time.monotonic() - relay.started, 3),
            messages_sent=relay.sender.messages_sent,
            send_errors=relay.sender.send_errors,
            queue_depth=relay.sender.queue_depth,
            microphone=relay.microphone.status() if relay.microphone else {"enabled": False},
            auth_required=settings.auth_token is not None,
        )

    return app


def console_policy(room: Any) -> str:
    """The console's Content-Security-Policy: its own files only; in room mode, the room's page in a frame."""
    url = getattr(room, "conversation_url", None)
    frame = f"{urlparse(url).scheme}://{urlparse(url).netloc}" if url else "'none'"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        f"frame-src {frame}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


class PlainTextRoute:
    """POST /send_text_message in its plain form, answered without Flask's request machinery.

    Text echo is the relay's busiest route, and for a short text Flask's
    request and response objects, contexts, hooks and signals cost more than
    everything the relay does (tests/bench/bench_text_echo.py). So the plain
    form (JSON with a Content-Length within RELAY_MAX_BODY_BYTES, no query
    string, the bearer token when one is set) is answered here, by the
    functions the Flask route calls, with the same answer and log line. Any
    other form, and any body that fails its checks, goes to Flask as it came
    (the body re-read from memory): each error is still worded in one place.
    """

    def __init__(self, flask_wsgi_app: Callable[..., Any], relay: Relay) -> None:
        self._flask = flask_wsgi_app
        self._relay = relay

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        length = self._plain_length(environ)
        if length is None:
            return self._flask(environ, start_response)
        started = time.perf_counter()
        ticket = self._relay.sender.generation  # taken first, as the Flask route does
        body = environ["wsgi.input"].read(length)
        try:
            echo = echo_messages.parse_text_request(json.loads(body))
        except (ValueError, RecursionError, MessageError):  # bad JSON or a bad field: Flask says which
            environ["wsgi.input"] = io.BytesIO(body)
            return self._flask(environ, start_response)
        fields: Mapping[str, Any] = {}
        try:
            fields = _speak_text(self._relay, echo, ticket)
            status, answer = 200, json.dumps(_sent_answer(self._relay, fields))
        except (MessageError, RelayError) as error:
            status, answer = status_of(error), _error_json(str(error))
        except Exception:  # a bug: the same generic 500 as every route's, with the details in the log
            log.exception("unexpected error on POST /send_text_message")
            status, answer = 500, _error_json(INTERNAL_ERROR)
        _log_line(logging.INFO, "POST", "/send_text_message", status, started, fields.get("inference_id", "-"),
                  fields.get("messages_sent", "-"))
        data = answer.encode()
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        return [data]

    def _plain_length(self, environ: Mapping[str, Any]) -> int | None:
        """The body's length when the request is the plain form; None when Flask should answer it."""
        if environ["REQUEST_METHOD"] != "POST" or environ.get("PATH_INFO") != "/send_text_message":
            return None
        if environ.get("QUERY_STRING") or _mimetype(environ.get("CONTENT_TYPE", "")) != "application/json":
            return None
        token = self._relay.settings.auth_token
        if token is not None and not _bearer_matches(environ.get("HTTP_AUTHORIZATION", ""), token):
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or not 0 < int(length) <= self._relay.settings.max_body_bytes:
            return None
        return int(length)


def _mimetype(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def _speak_text(relay: Relay, echo: echo_messages.TextEcho, ticket: int) -> dict[str, Any]:
    return relay.speak_text(
        echo.text,
        inference_id=echo.inference_id,
        conversation_id=echo.conversation_id,
        done=echo.done,
        interrupt=echo.interrupt,
        ticket=ticket,
    )


def _sent_answer(relay: Relay, fields: Mapping[str, Any]) -> dict[str, Any]:
    return {"status": "Message sent successfully", "mode": relay.room.mode, **fields}


def _sent(relay: Relay, fields: Mapping[str, Any]) -> Response:
    g.inference_id, g.messages_sent = fields["inference_id"], fields["messages_sent"]
    return Response(json.dumps(_sent_answer(relay, fields)), mimetype="application/json")  # no need for jsonify's extras


def _event_cursor() -> int:
    """The last event id the caller has: `?after=` or the `Last-Event-ID` an EventSource sends on reconnect."""
    raw = request.args.get("after", request.headers.get("Last-Event-ID", "0")).strip() or "0"
    if not raw.isdigit() or len(raw) > 18:
        raise MessageError(f"after (or Last-Event-ID) must be an event id, a whole number >= 0, got {raw[:40]!r}")
    return int(raw)


def _start_request() -> Response | None:
    """Every request: start its clock (for the log line), then check the bearer token."""
    g.started = time.perf_counter()
    return _check_bearer_token()


def _log_request(response: Response) -> Response:
    """One line per request: never a body, audio or token. The console's polling and files only with --verbose."""
    method, path = request.method, request.path
    quiet = method == "GET" and (path in QUIET_PATHS or path.startswith(PUBLIC_PREFIXES))
    level = logging.DEBUG if quiet else logging.INFO
    started = g.get("started", time.perf_counter())
    _log_line(level, method, path, response.status_code, started, g.get("inference_id", "-"), g.get("messages_sent", "-"))
    return response


def _log_line(level: int, method: str, path: str, status: int, started: float, inference_id: Any, sent: Any) -> None:
    if log.isEnabledFor(level):
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.log(level, REQUEST_LINE, method, path, status, elapsed_ms, inference_id, sent)


def _audio_request(
    settings: Settings, open_utterances: Mapping[str, UtteranceRates], endpoint: str
) -> echo_messages.AudioEcho:
    """The three forms of /send_audio_message: JSON, a raw audio file body, or multipart field `file`."""
    limits = {"target_rate": settings.sample_rate, "max_seconds": settings.max_audio_seconds}
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise MessageError("a multipart upload needs the audio in a field named file (curl -F file=@speech.wav)")
        return echo_messages.parse_audio_file(upload.stream, request.values, **limits)  # type: ignore[arg-type]
    if mimetype in AUDIO_FILE_MIMETYPES:
        return echo_messages.parse_audio_file(_body_file(), request.args, **limits)
    if mimetype.startswith("audio/"):
        raise UnsupportedMediaType(
            f"Content-Type {mimetype!r} is not supported: send WAV, MP3, FLAC or OGG "
            "(or application/octet-stream and the relay recognises the format)"
        )
    return echo_messages.parse_audio_request(
        _json_body(endpoint),
        open_utterances=open_utterances,
        endpoint=endpoint,
        require_audio=endpoint == "/microphone",
        **limits,
    )


def _body_file() -> BinaryIO:
    """The raw body as a seekable file for soundfile, without copying it when the server has one.

    waitress spools large bodies to a seekable temp file (`wsgi.input`); reading
    that directly (PEP 3333 allows it, within CONTENT_LENGTH) is an order of
    magnitude faster than werkzeug's chunked get_data() for a 10 MB file, and
    holds no second copy. Other servers get the plain, copying path.
    """
    length = request.content_length
    if length is not None and request.max_content_length is not None and length > request.max_content_length:
        raise RequestEntityTooLarge()
    stream = request.environ.get("wsgi.input")
    if length and stream is not None and _seekable(stream):
        return stream  # type: ignore[no-any-return]
    body = request.get_data(cache=False)
    if not body:
        raise MessageError("audio is empty: the request body has no bytes")
    return io.BytesIO(body)


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable()) and stream.tell() == 0
    except (AttributeError, OSError, ValueError):
        return False


def _json_body(endpoint: str = "/send_text_message") -> Any:
    """The body as JSON whatever the Content-Type a curl -d sends, but not another media type.

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
    data = request.get_data(cache=False)
    if not data.strip():
        raise MessageError('the body is empty: send a JSON object, such as {"text": "Hello there!"}')
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        if container := echo_messages.audio_container(data[:16384]):
            raise MessageError(_audio_body_hint(container, endpoint)) from None
        if isinstance(error, UnicodeDecodeError):
            raise MessageError("the body is not valid JSON (UTF-8 expected)") from None
        raise MessageError(
            f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except (ValueError, RecursionError):
        raise MessageError("the body is not valid JSON (UTF-8 expected)") from None


def _audio_body_hint(container: str, endpoint: str) -> str:
    """curl --data-binary @speech.wav without -H sends form-urlencoded: say which header to add."""
    content_type = AUDIO_CONTENT_TYPES[container]
    if endpoint == "/send_text_message":
        return (
            f"the body is an audio file ({container.upper()}), not JSON: POST it to /send_audio_message "
            f'with -H "Content-Type: {content_type}"'
        )
    return f'the body is an audio file ({container.upper()}), not JSON: send it with -H "Content-Type: {content_type}"'



def _check_bearer_token() -> Response | None:
    from flask import current_app

    token = current_app.extensions["relay"].settings.auth_token
    if token is None or request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES):
        return None
    if _bearer_matches(request.headers.get("Authorization", ""), token):
        return None
    response = _error("missing or wrong bearer token: send the header 'Authorization: Bearer <RELAY_AUTH_TOKEN>'", 401)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _bearer_matches(authorization: str, token: str) -> bool:
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _error_response(error: Exception) -> Response:
    """Every error becomes {"error": "..."} with the status DESIGN.md gives it."""
    if isinstance(error, (MessageError, RelayError)):
        return _error(str(error), status_of(error))
    if isinstance(error, RequestEntityTooLarge):
        limit = request.max_content_length
        return _error(f"the body is over RELAY_MAX_BODY_BYTES ({limit} bytes): send less or raise the limit", 413)
    if isinstance(error, HTTPException):
        return _error(_http_error_text(error), error.code or 500)
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _error(INTERNAL_ERROR, 500)


def _error(text: str, status: int) -> Response:
    return Response(_error_json(text), status, mimetype="application/json")


def _error_json(text: str) -> str:
    """An error's body, byte for byte the same from Flask's routes and the plain text route."""
    return json.dumps({"error": text})


def _http_error_text(error: HTTPException) -> str:
    if error.code == 404:
        return f"no endpoint {request.path}: see GET /health and the README for the endpoints"
    if error.code == 405:
        allowed = ", ".join(sorted(set(error.valid_methods or []) - {"HEAD", "OPTIONS"}))  # type: ignore[attr-defined]
        return f"{request.method} is not allowed on {request.path}: use {allowed}"
    return str(error.description)


# --- command line -----------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line through the run's one exit path (exit 2), not usage + SystemExit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see python app.py --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
        "--max-call-seconds", type=int, metavar="S",
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
    if args.exit_after_script and not args.script:
        raise UsageError("--exit-after-script goes with --script FILE")
    if args.quickstart and args.meeting_token:
        raise UsageError("--meeting-token is for joining a room by URL; --quickstart --private gets its own token")
    if args.max_call_seconds is not None and args.max_call_seconds < 60:
        raise UsageError(f"--max-call-seconds must be at least 60, got {args.max_call_seconds}")
    given = [flag for flag, on in (("--pal", args.pal), ("--face-id", args.face_id), ("--private", args.private),
                                   ("--test-mode", args.test_mode), ("--max-call-seconds", args.max_call_seconds))
             if on]
    if given and not args.quickstart:
        raise UsageError(f"{', '.join(given)} go{'es' if len(given) == 1 else ''} with --quickstart")
    url = None if args.dry_run or args.quickstart else (args.conversation_url or settings.tavus_conversation_url)
    if args.quickstart:
        mode = Mode.QUICKSTART
    elif url:
        mode = Mode.ROOM
        check_room_url(url)
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
