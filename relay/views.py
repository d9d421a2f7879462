"""The HTTP API: one blueprint of views, and the body readers behind them.

The only module of the relay that reads Flask's request (Flask's tutorial keeps
its views in `blog.py` the same way). Views are module level and reach the
relay through `current_relay()`; what they do is the Relay's (relay/core.py),
how a body is read and checked is echo_messages.py's, and every error becomes
an answer in `error_answer`, which the fast path in app.py calls too.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from typing import Any, BinaryIO
from urllib.parse import urlparse

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

import echo_messages
from relay import audio
from relay.answers import Answer
from relay.core import Relay
from relay.errors import INTERNAL_ERROR, MessageError, ModeError, NotFound, RelayError, UnsupportedMediaType, status_of
from relay.events import listing_limit
from relay.guard import AUTHORIZED_KEY, LOG_FIELDS_KEY, body_too_large
from relay.utterances import MAX_TRACKED_UTTERANCES

log = logging.getLogger("echo_relay")

TEXT_ENDPOINT = "/send_text_message"
JSON_MIMETYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain", "")
AUDIO_FILE_MIMETYPES = (
    "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/mpeg", "audio/mp3", "audio/flac",
    "audio/x-flac", "audio/ogg", "audio/opus", "application/ogg", "audio/aiff", "audio/x-aiff",
    "application/octet-stream",
)
AUDIO_CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg", "aiff": "audio/aiff"}
SCRIPT_FIELDS = ("script", "name")

views = Blueprint("relay", __name__)


def current_relay() -> Relay:
    """The relay of the app handling this request (Flask's tutorial reaches its db the same way)."""
    relay: Relay = current_app.extensions["relay"]
    return relay


# --- answers ----------------------------------------------------------------------------


def respond(answer: Answer) -> Response:
    """An Answer as Flask's response; its log fields go to the request's one log line."""
    request.environ[LOG_FIELDS_KEY].update(answer.log_fields)
    return Response(answer.body, answer.status, headers=answer.headers)


def answer(value: Any, status: int = 200) -> Response:
    return respond(Answer.of(value, status))


def error_answer(error: BaseException, method: str, path: str, max_body_bytes: int) -> Answer:
    """Every error a request can end in, as its status and `{"error": ...}`; a bug's details go only to the log."""
    if isinstance(error, RelayError):
        return Answer.error(str(error), status_of(error))
    if isinstance(error, RequestEntityTooLarge):
        return Answer.error(str(body_too_large(max_body_bytes)), 413)
    if isinstance(error, HTTPException):
        return _http_error_answer(error, method, path)
    log.error("unexpected error on %s %s", method, path, exc_info=error)
    return Answer.error(INTERNAL_ERROR, 500)


def handle_error(error: Exception) -> Response:
    """The app's one error handler."""
    return respond(error_answer(error, request.method, request.path, current_relay().settings.max_body_bytes))


def _http_error_answer(error: HTTPException, method: str, path: str) -> Answer:
    """Flask's own refusals in the relay's words; a 405 names the methods in `Allow`, as RFC 9110 requires."""
    if error.code == 404:
        return Answer.error(f"no endpoint {path}: see GET /health and the README for the endpoints", 404)
    if error.code == 405:
        valid = set(getattr(error, "valid_methods", None) or [])
        named = ", ".join(sorted(valid - {"HEAD", "OPTIONS"}))
        return Answer.error(f"{method} is not allowed on {path}: use {named}", 405, ("Allow", ", ".join(sorted(valid))))
    return Answer.error(str(error.description), error.code or 500)


def answer_text(relay: Relay, body: bytes, ticket: int) -> Answer:
    """POST /send_text_message, whichever path read it: the body in, the face speaks, the answer out.

    `ticket` was taken when the request arrived: an interrupt since then
    (while the body was read and split) drops it.
    """
    echo = echo_messages.parse_text_request(decode_json(body, TEXT_ENDPOINT))
    return sent_answer(relay, relay.speak_text(echo, ticket=ticket, wait=echo.wait))


def sent_answer(relay: Relay, fields: Mapping[str, Any]) -> Answer:
    value = {"status": "Message sent successfully", "mode": relay.room.mode, **fields}
    return Answer.of(value, inference_id=fields["inference_id"], messages_sent=fields["messages_sent"])


# --- request bodies ---------------------------------------------------------------------


def json_request_body() -> bytes:
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
    """The body as JSON; an audio file sent where JSON belongs says which header to add.

    `endpoint` is the request's path, given: the fast path answers the text route without Flask's request.
    """
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


def audio_request(relay: Relay, open_utterances: audio.OpenRates | None) -> audio.AudioEcho:
    """The three forms of an audio request (JSON, a raw audio file body, or multipart field `file`), decoded."""
    return audio.decode(declared_audio(), relay.audio_limits, open_utterances)


def declared_audio() -> echo_messages.AudioRequest:
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
        decode_json(json_request_body(), request.path), endpoint=request.path, require_audio=request.path == "/microphone"
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


# --- speaking -------------------------------------------------------------------------------


@views.post(TEXT_ENDPOINT)
def send_text_message() -> Response:
    """Every form of the request; the plain one usually arrives by app.PlainTextFastPath (the same answer)."""
    relay = current_relay()
    ticket = relay.ticket  # taken first: an interrupt while the body is read and split drops it
    return respond(answer_text(relay, json_request_body(), ticket))


@views.post("/send_audio_message")
def send_audio_message() -> Response:
    relay = current_relay()
    ticket = relay.ticket
    echo = audio_request(relay, relay.utterances)
    return respond(sent_answer(relay, relay.speak_audio(echo, ticket=ticket, wait=echo.request.wait)))


@views.post("/microphone")
def microphone_clip() -> Response:
    relay = current_relay()
    if relay.microphone is None:
        raise ModeError(
            "microphone echo is off: start the relay with --microphone (python app.py <conversation_url> --microphone)"
        )
    relay.room.check_open()
    echo = audio_request(relay, {})
    if echo.request.wait is not None:
        raise MessageError("wait is for /send_text_message and /send_audio_message: the microphone answers once queued")
    return answer({"status": "Queued", "mode": relay.room.mode, **relay.play_on_microphone(echo)}, 202)


@views.post("/interrupt")
def interrupt() -> Response:
    relay = current_relay()
    fields = relay.interrupt()
    request.environ[LOG_FIELDS_KEY]["messages_sent"] = fields["messages_sent"]
    return answer({"status": "Interrupted", "mode": relay.room.mode, **fields})


# --- watching -------------------------------------------------------------------------------


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


@views.get("/health")
def health() -> Response:
    """Up or not, for any probe; with RELAY_AUTH_TOKEN set, the room's state only with the token."""
    if not request.environ.get(AUTHORIZED_KEY, False):
        return answer({"status": "ok", "auth_required": True})
    return answer(current_relay().health())


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


# --- the console and its document -------------------------------------------------------------


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


# --- scripts ---------------------------------------------------------------------------------


@views.post("/script")
def load_script() -> Response:
    body = decode_json(json_request_body(), request.path)
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
