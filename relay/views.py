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
from typing import IO, Any, BinaryIO
from urllib.parse import urlparse

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

import echo_messages
from echo_messages import AUDIO_ENDPOINT, MICROPHONE_ENDPOINT, TEXT_ENDPOINT
from relay import audio
from relay import openapi as api_document
from relay.answers import Answer
from relay.core import Relay
from relay.errors import INTERNAL_ERROR, MessageError, ModeError, NotFound, RelayError, UnsupportedMediaType, status_of
from relay.events import listing_limit
from relay.guard import AUTHORIZED_KEY, LOG_FIELDS_KEY, BodyLimit, body_limit, body_too_large
from relay.utterances import MAX_TRACKED_UTTERANCES

log = logging.getLogger("echo_relay")

JSON_MIMETYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain", "")
AUDIO_SNIFF_BYTES = 16384  # of a body that is not JSON: enough to tell an audio file
EVENT_ID_MEANING = "an event id, a whole number >= 0"

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


def error_answer(error: BaseException, method: str, path: str, limit: BodyLimit) -> Answer:
    """Every error a request can end in, as its status and `{"error": ...}`; a bug's details go only to the log.

    `limit` is the route's body limit, for a body found too large only as it was read."""
    if isinstance(error, RelayError):
        return Answer.error(str(error), status_of(error))
    if isinstance(error, RequestEntityTooLarge):
        return Answer.error(str(body_too_large(limit)), 413)
    if isinstance(error, HTTPException):
        return _http_error_answer(error, method, path)
    log.error("unexpected error on %s %s", method, path, exc_info=error)
    return Answer.error(INTERNAL_ERROR, 500)


def handle_error(error: Exception) -> Response:
    """The app's one error handler."""
    limit = body_limit(current_relay().settings, request.path)
    return respond(error_answer(error, request.method, request.path, limit))


def _http_error_answer(error: HTTPException, method: str, path: str) -> Answer:
    """Flask's own refusals in the relay's words; a 405 names the methods in `Allow`, as RFC 9110 requires."""
    if error.code == 404:
        return Answer.error(
            f"no endpoint {path}: GET /openapi.json lists every endpoint (docs/api.md describes them)", 404
        )
    if error.code == 405:
        valid = set(getattr(error, "valid_methods", None) or [])
        named = ", ".join(sorted(valid - {"HEAD", "OPTIONS"}))
        return Answer.error(f"{method} is not allowed on {path}: use {named}", 405, ("Allow", ", ".join(sorted(valid))))
    return Answer.error(str(error.description), error.code or 500)


def answer_text(relay: Relay, body: bytearray, ticket: int) -> Answer:
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


def json_request_body() -> bytearray:
    """The raw body of a JSON request, whatever the Content-Type a curl -d sends, but not another media type.

    Options of a JSON request are fields of its body: a query parameter would
    be ignored, so it is refused, naming the field it should be. It is held to
    its route's limit as it is read, and is a bytearray, which json_body empties
    once the body is text.
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
    request.max_content_length = body_limit(current_relay().settings, request.path).bytes
    length = request.content_length
    if length is None:  # no length (a server that does not set it for a chunked body): read as werkzeug reads it
        return bytearray(request.get_data(cache=False))
    return read_body(request.stream, length)


def read_body(stream: IO[bytes], length: int) -> bytearray:
    """`length` bytes of a request's body, read straight into a bytearray: a body of megabytes is not also held as
    the chunks it was read in, nor as the bytes they were joined into (werkzeug's get_data holds both at once)."""
    if not hasattr(stream, "readinto"):  # WSGI promises read() only
        return bytearray(stream.read(length))
    body = bytearray(length)
    got = stream.readinto(body) or 0  # all of it, from a file or a buffer, as waitress gives it
    if got < length:
        with memoryview(body) as view:
            while got < length and (count := stream.readinto(view[got:])):
                got += count
        del body[got:]
    return body


def decode_json(data: bytearray, endpoint: str) -> Any:
    """The body as JSON; an audio file sent where JSON belongs says which header to add.

    `endpoint` is the request's path, given: the fast path answers the text route without Flask's request.
    """
    head = bytes(data[:AUDIO_SNIFF_BYTES])  # json_body empties `data` once it is text
    try:
        return echo_messages.json_body(data)
    except MessageError:
        if container := audio.audio_container(head):
            raise MessageError(_audio_body_hint(container, endpoint)) from None
        raise


def _audio_body_hint(container: str, endpoint: str) -> str:
    """curl --data-binary @speech.wav without -H sends form-urlencoded: say which header to add."""
    content_type = audio.AUDIO_CONTENT_TYPES[container]
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
        stream: Any = upload.stream
        return echo_messages.parse_audio_file(stream, request.values, endpoint=request.path)
    if mimetype in audio.AUDIO_FILE_MIMETYPES:
        return echo_messages.parse_audio_file(_body_file(), request.args, endpoint=request.path)
    if mimetype.startswith("audio/"):
        raise UnsupportedMediaType(
            f"Content-Type {mimetype!r} is not supported: send WAV, MP3, FLAC or OGG "
            "(or application/octet-stream and the relay recognises the format)"
        )
    return echo_messages.parse_audio_request(decode_json(json_request_body(), request.path), endpoint=request.path)


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
    """The last event id the caller has: `?after=`, else the `Last-Event-ID` an EventSource sends on reconnect.

    Each given is checked (empty means 0), so neither is ever ignored for being wrong.
    """
    given = [raw for raw in (request.args.get("after"), request.headers.get("Last-Event-ID")) if raw is not None]
    ids = [_event_id(raw) for raw in given]
    return ids[0] if ids else 0


def _event_id(raw: str) -> int:
    return echo_messages.ascii_int(raw.strip() or "0", "after (or Last-Event-ID)", meaning=EVENT_ID_MEANING)


# --- speaking -------------------------------------------------------------------------------


@views.post(TEXT_ENDPOINT)
def send_text_message() -> Response:
    """Every form of the request; the plain one usually arrives by app.PlainTextFastPath (the same answer)."""
    relay = current_relay()
    ticket = relay.ticket  # taken first: an interrupt while the body is read and split drops it
    return respond(answer_text(relay, json_request_body(), ticket))


@views.post(AUDIO_ENDPOINT)
def send_audio_message() -> Response:
    relay = current_relay()
    ticket = relay.ticket
    echo = audio_request(relay, relay.utterances)
    return respond(sent_answer(relay, relay.speak_audio(echo, ticket=ticket, wait=echo.request.wait)))


@views.post(MICROPHONE_ENDPOINT)
def microphone_clip() -> Response:
    relay = current_relay()
    if relay.microphone is None:
        raise ModeError(
            "microphone echo is off: start the relay with --microphone (python app.py <conversation_url> --microphone)"
        )
    relay.room.check_open()
    echo = audio_request(relay, {})
    relay.conversation_id_for(echo.request.conversation_id)  # one relay serves one room, its microphone too
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
    limit = listing_limit(request.args.get("limit"))  # checked on a stream too, where it has no use
    if "text/event-stream" in request.headers.get("Accept", ""):
        return Response(
            relay.events.stream(last_id),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return answer(relay.events.listing(last_id, limit))


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
    """The API's description, generated from the parser's tables, with this room's conversation_id the only one.

    Without the token (when one is set) the document does not name the room: the id is the room's name in its
    Daily URL, which /room keeps behind the token.
    """
    authorized = request.environ.get(AUTHORIZED_KEY, False)
    return respond(Answer(200, api_document.served(current_relay().room.conversation_id if authorized else None)))


@views.get("/")
def console() -> Response:
    response = current_app.send_static_file("console.html")
    response.headers["Cache-Control"] = "no-store"
    return response


@views.after_app_request
def console_files_keep_the_consoles_policy(response: Response) -> Response:
    """The console and every file beside it carry its policy: /static/console.html is the console too, and no
    other page may frame it or have it load anything from elsewhere."""
    if request.path == "/" or request.path.startswith("/static/"):
        response.headers["Content-Security-Policy"] = console_policy(current_relay().room.conversation_url)
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
    script, name = echo_messages.parse_script_request(decode_json(json_request_body(), request.path))
    return answer(current_relay().load_script(script, name))


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
