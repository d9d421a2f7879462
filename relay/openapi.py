"""The relay's OpenAPI 3.1 document, built from the parser's own field tables and the limits the code enforces.

The API is described once: echo_messages' tables say which fields each
endpoint takes (and the parser refuses every other), and the bounds are the
constants the checks use. static/openapi.json is this document written out
(`python -m relay.openapi` writes it; a test fails when it differs); GET
/openapi.json serves it with the room's own conversation_id as the only one
allowed. What no schema can say (the bytes of an audio file, base64's length,
a script's grammar) is a status on the operation, and schemathesis.toml lists
it with its reason. The answers' schemas are relay/openapi_answers.py's.

Pure: it imports tables and constants, and writes a file only from `main`.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

import echo_messages as em
from relay import openapi_answers as answers
from relay.audio import AUDIO_FILE_MIMETYPES
from relay.events import MAX_EVENT_LISTENERS, MAX_EVENTS_LISTED
from relay.openapi_answers import AUDIO_400, AUDIO_413, AUDIO_415, STATUS_TEXT, TEXT_400, ref, responses
from relay.utterances import MAX_TRACKED_UTTERANCES

Schema = dict[str, Any]

DOCUMENT_PATH = Path(__file__).resolve().parent.parent / "static" / "openapi.json"
REGENERATE = "python -m relay.openapi"
# What Python's str.strip() and str.split() take for whitespace, written out: `\s` means less in JSON Schema's
# regular expressions (ECMA-262 leaves out \x1c-\x1f) than in the parser's Python.
SPACES = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
SPACE = f"[{SPACES}]"
NOT_BLANK = f"[^{SPACES}]"  # what `value.strip()` leaves something of
BASE64 = f"^{SPACE}*(?:[A-Za-z0-9+/]{SPACE}*)+(?:={SPACE}*)*$"  # the alphabet, spaces anywhere; the length: no schema
BOOLEAN_WORD = f"^{SPACE}*(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]){SPACE}*$"  # what parse_bool takes in a string
TRUE_WORD = f"^{SPACE}*[Tt][Rr][Uu][Ee]{SPACE}*$"
NULL: Schema = {"type": "null"}

FIELD_TEXT = {
    "message_type": "Tavus's envelope; only \"conversation\".",
    "event_type": "Tavus's envelope; only \"conversation.echo\" (to interrupt, POST /interrupt).",
    "conversation_id": "Defaults to the joined room's; another room's id is a 400. Given at both levels of the "
    "properties form, the same id.",
    "modality": "May be left out; the other modality is a 400 naming its endpoint.",
    "text": "What the face says (Tavus's TTS speaks it). Long text is split at sentences. Markup Tavus's voice takes "
    "(<emotion value=\"excited\"/>, <break time=\"500ms\"/>, <spell>A1B2</spell>, [laughter], any tag of that shape) "
    "goes as written and is never cut; markup too long for one message is a 400.",
    "emotion": "The flat form only. Tavus's emotion tag is put before the text: {\"text\": \"We did it!\", "
    "\"emotion\": \"excited\"} sends <emotion value=\"excited\"/>We did it! (Phoenix-4 faces show it in face and "
    "voice; Tavus's emotional-expression page lists these). With the properties form, write the tag into its text.",
    "inference_id": "Messages with one id are one utterance; made for you (uuid4 hex) when absent.",
    "done": "Close the utterance: true/false, as a JSON boolean or the string the docs' curl sends; always sent as "
    "a boolean.",
    "interrupt": "Send conversation.interrupt first, exactly as POST /interrupt does (default false).",
    "wait": "Answer once the face reported it started (\"started\") or stopped (\"spoken\") speaking this "
    "utterance, adding `spoken`; if it does not report within RELAY_SPOKEN_TIMEOUT (plus the audio's length), the "
    "answer is still 200 with `spoken: null` and `spoken_timeout_s`.",
    "audio": "Base64 of raw 16-bit signed little-endian mono PCM (an even number of bytes), or of a WAV, MP3, FLAC, "
    "OGG or AIFF file. Given, it holds audio: empty is a 400. Left out, done: true closes the utterance (40 ms of "
    "silence).",
    "sample_rate": "Rate of raw PCM (default: the utterance's, else 16000, as Tavus). 16000 and 24000 pass through "
    "untouched; others are resampled to RELAY_SAMPLE_RATE. A number, or a string of ASCII digits.",
}
IGNORED_TEXT = "Ignored for text (the docs' sample sends a placeholder): any value."
NULL_IS_ABSENT = "A field that is null is the same as one left out."

SILENCE_3_SAMPLES = "AAAAAAAA"  # base64 of 6 zero bytes: three samples of silence, raw PCM
EXAMPLES = {
    em.TEXT_ENDPOINT: {"text": "Hello there!"},
    em.AUDIO_ENDPOINT: {"audio": SILENCE_3_SAMPLES, "sample_rate": 24000, "done": True},
    em.MICROPHONE_ENDPOINT: {"audio": SILENCE_3_SAMPLES, "sample_rate": 24000},
}
UNKNOWN_FIELDS = "Any other field is a 400 that names it and the closest known one; options go in the body, never " \
    "the query string. " + NULL_IS_ABSENT


# --- the fields -------------------------------------------------------------------------------------------------


def digits_between(low: int, high: int) -> str:
    """A pattern for the whole numbers low..high as echo_messages.ascii_int reads them from a string.

    ASCII digits only, leading zeros allowed up to MAX_NUMBER_DIGITS digits in
    all, whitespace around.
    """
    alternatives = []
    for length in range(len(str(low)), len(str(high)) + 1):
        first = max(low, 10 ** (length - 1) if length > 1 else 0)
        last = min(high, 10**length - 1)
        zeros = f"0{{0,{em.MAX_NUMBER_DIGITS - length}}}"
        alternatives += [zeros + part for part in _same_length(str(first), str(last))]
    return f"^{SPACE}*(?:{'|'.join(alternatives)}){SPACE}*$"


def _same_length(low: str, high: str) -> list[str]:
    """Patterns that together match exactly the numbers low..high, both written with the same number of digits."""
    rest = len(low) - 1
    if low == high:
        return [low]
    if low[1:] == "0" * rest and high[1:] == "9" * rest:
        return [f"[{low[0]}-{high[0]}]" + (f"[0-9]{{{rest}}}" if rest else "")]
    if low[0] == high[0]:
        return [low[0] + part for part in _same_length(low[1:], high[1:])]
    parts = [low[0] + part for part in _same_length(low[1:], "9" * rest)]
    if int(high[0]) - int(low[0]) > 1:
        parts.append(f"[{int(low[0]) + 1}-{int(high[0]) - 1}][0-9]{{{rest}}}")
    return parts + [high[0] + part for part in _same_length("0" * rest, high[1:])]


def _nullable(schema: Schema) -> Schema:
    """`schema` or null: the parser takes a null field for one left out (a field of any value stays so)."""
    if "anyOf" in schema:
        return {**schema, "anyOf": [*schema["anyOf"], NULL]}
    if "type" not in schema:
        return schema
    nullable = {**schema, "type": [schema["type"], "null"]}
    return {**nullable, "enum": [*schema["enum"], None]} if "enum" in schema else nullable


def _boolean() -> Schema:
    return {"anyOf": [{"type": "boolean"}, {"type": "string", "pattern": BOOLEAN_WORD}]}


def _conversation_id(conversation_id: str | None) -> Schema:
    if conversation_id is not None:
        return {"type": "string", "enum": [conversation_id]}
    return {"type": "string", "pattern": NOT_BLANK, "maxLength": em.MAX_CONVERSATION_ID_CHARS}


def _inference_id() -> Schema:
    return {"type": "string", "pattern": NOT_BLANK, "maxLength": em.MAX_INFERENCE_ID_CHARS}


def field_schema(name: str, endpoint: str, conversation_id: str | None = None) -> Schema:
    """The schema of a body field as the parser checks it on `endpoint` (null, the same as left out, aside)."""
    if endpoint == em.TEXT_ENDPOINT and name in em.IGNORED_TEXT_FIELDS:
        return {"description": IGNORED_TEXT}
    modality = "text" if endpoint == em.TEXT_ENDPOINT else "audio"
    schemas: dict[str, Schema] = {
        "message_type": {"type": "string", "enum": [em.ENVELOPE_VALUES["message_type"]]},
        "event_type": {"type": "string", "enum": [em.ENVELOPE_VALUES["event_type"]]},
        "conversation_id": _conversation_id(conversation_id),
        "modality": {"type": "string", "enum": [modality]},
        "text": {"type": "string", "pattern": NOT_BLANK},
        "inference_id": _inference_id(),
        "done": _boolean(),
        "interrupt": _boolean(),
        "audio": {"type": "string", "pattern": BASE64, "contentEncoding": "base64"},
        "sample_rate": {"anyOf": [
            {"type": "integer", "minimum": em.MIN_SAMPLE_RATE, "maximum": em.MAX_SAMPLE_RATE},
            {"type": "string", "pattern": digits_between(em.MIN_SAMPLE_RATE, em.MAX_SAMPLE_RATE)},
        ]},
        **{field: {"type": "string", "enum": list(choices)} for field, choices in em.FIELD_CHOICES.items()},
    }
    return {**schemas[name], "description": FIELD_TEXT[name]}


def parameter_schema(name: str, conversation_id: str | None = None) -> Schema:
    """A query (or multipart form) parameter of a file upload: always a string."""
    schemas: dict[str, Schema] = {
        "conversation_id": _conversation_id(conversation_id),
        "inference_id": _inference_id(),
        "done": {"type": "string", "pattern": BOOLEAN_WORD},
        "interrupt": {"type": "string", "pattern": BOOLEAN_WORD},
        "wait": {"type": "string", "enum": list(em.WAITS)},
    }
    return schemas[name]


# --- the bodies -------------------------------------------------------------------------------------------------


def _object(properties: dict[str, Schema], *, required: tuple[str, ...] = (), **more: Any) -> Schema:
    """A JSON object taking these properties and no other (the parser refuses every other)."""
    schema: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    return {**schema, "required": list(required), **more} if required else {**schema, **more}


def _given(name: str, schema: Schema, *, inside: bool) -> Schema:
    """`name` given (not null) at the top level, or inside `properties`."""
    top: Schema = {"required": [name], "properties": {name: schema}}
    return {"required": ["properties"], "properties": {"properties": top}} if inside else top


def _presence(endpoint: str, *, properties_form: bool) -> list[Schema]:
    """What must be given, as alternatives: text for text; audio, or done true, for audio; audio for the microphone.

    In the properties form a field may be at either level; the one in
    properties is used, so `done` at the top counts only when properties has none.
    """
    string: Schema = {"type": "string"}
    true: Schema = {"anyOf": [{"const": True}, {"type": "string", "pattern": TRUE_WORD}]}
    needed = "text" if endpoint == em.TEXT_ENDPOINT else "audio"
    levels = (True, False) if properties_form else (False,)
    alternatives = [_given(needed, string, inside=inside) for inside in levels]
    if endpoint == em.AUDIO_ENDPOINT:
        alternatives.append(_given("done", true, inside=properties_form))
        if properties_form:
            alternatives.append({
                **_given("done", true, inside=False),
                "properties": {"done": true, "properties": {"properties": {"done": NULL}}},
            })
    return alternatives


def json_body(endpoint: str, conversation_id: str | None = None) -> Schema:
    """The JSON body of a speaking endpoint: its flat form, or Tavus's quickstart form with `properties`."""
    known = em.JSON_FIELDS[endpoint]
    envelope = [name for name in em.ENVELOPE_FIELDS if name != "properties"]

    def fields(names: list[str]) -> dict[str, Schema]:
        return {name: _nullable(field_schema(name, endpoint, conversation_id)) for name in names}

    flat_fields = fields([*envelope, *known])
    presence = _presence(endpoint, properties_form=False)
    if len(presence) == 1:  # a field that must be given: required, and not null
        (needed,) = presence[0]["required"]
        flat_fields[needed] = field_schema(needed, endpoint, conversation_id)
        flat = _object(flat_fields, required=(needed,), title="flat")
    else:
        flat = _object(flat_fields, title="flat", anyOf=presence)
    inner = [name for name in known if name not in em.FLAT_ONLY_FIELDS]
    quickstart = _object(
        {**fields([*envelope, *inner]), "properties": _object(fields([*inner, "conversation_id"]))},
        required=("properties",),
        title="properties",
        anyOf=_presence(endpoint, properties_form=True),
        description="Tavus's quickstart form: the fields in properties, or at the top level (where both have one, "
        "properties' is used; every value given is checked).",
    )
    return {"anyOf": [flat, quickstart]}


def upload_body(endpoint: str, conversation_id: str | None = None) -> dict[str, Schema]:
    """The other forms of an audio request: the file as the body, or multipart with the file in `file`."""
    binary: Schema = {"schema": {"type": "string", "format": "binary"}}
    options = {name: parameter_schema(name, conversation_id) for name in em.UPLOAD_PARAMETERS[endpoint]}
    multipart = _object({"file": {"type": "string", "format": "binary"}, **options}, required=("file",))
    return {**{media: binary for media in AUDIO_FILE_MIMETYPES}, "multipart/form-data": {"schema": multipart}}


def upload_parameters(endpoint: str, conversation_id: str | None = None) -> list[Schema]:
    return [
        {"name": name, "in": "query", "schema": parameter_schema(name, conversation_id),
         "description": f"For file bodies only (a JSON body carries its options itself). {FIELD_TEXT[name]}"}
        for name in em.UPLOAD_PARAMETERS[endpoint]
    ]


def script_body() -> Schema:
    return _object(
        {
            "script": {"type": "string", "minLength": 1, "description": "One line per utterance; @pause SECONDS; "
                       "@audio FILE; @emotion NAME; # comments. A script with nothing to play is a 400."},
            "name": {"type": ["string", "null"], "description": "What its errors call it (the first "
                     f"{em.MAX_SCRIPT_NAME_CHARS} characters; default \"the script\")."},
        },
        required=("script",),
    )


# --- the operations ----------------------------------------------------------------------------------------------


def _speaking(endpoint: str, conversation_id: str | None) -> dict[str, Any]:
    """The request forms of the three speaking endpoints."""
    example = EXAMPLES[endpoint]
    content: dict[str, Any] = {"application/json": {"schema": json_body(endpoint, conversation_id), "example": example}}
    if endpoint == em.TEXT_ENDPOINT:
        return {"requestBody": {"required": True, "content": content}}
    return {
        "parameters": upload_parameters(endpoint, conversation_id),
        "requestBody": {"required": True, "content": {**content, **upload_body(endpoint, conversation_id)}},
    }


def _operation(summary: str, operation_id: str, answered: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"summary": summary, "operationId": operation_id, **more, "responses": answered}


def paths(conversation_id: str | None = None) -> dict[str, Any]:
    """Every operation: the three that speak, then the rest."""
    return {**_speaking_paths(conversation_id), **_other_paths()}


def _speaking_paths(conversation_id: str | None) -> dict[str, Any]:
    sent = (400, 401, 403, 409, 413, 415, 500, 502, 503, 504)
    audio_words = {"s400": AUDIO_400, "s413": AUDIO_413, "s415": AUDIO_415}
    queued = "The microphone queue would hold more than RELAY_MAX_MICROPHONE_QUEUE_SECONDS with this clip; " \
        "nothing was queued."
    return {
        em.TEXT_ENDPOINT: {"post": _operation(
            "Make the face say text (conversation.echo, modality text)", "sendTextMessage",
            responses((200, "Daily confirmed every message.", ref("Sent")), sent, s400=TEXT_400),
            description=UNKNOWN_FIELDS, **_speaking(em.TEXT_ENDPOINT, conversation_id),
        )},
        em.AUDIO_ENDPOINT: {"post": _operation(
            "Make the face lip-sync audio: base64 PCM or a file in JSON, an audio file body, or multipart field file",
            "sendAudioMessage",
            responses((200, "Daily confirmed every message.", ref("SentAudio")), sent, **audio_words),
            description=UNKNOWN_FIELDS, **_speaking(em.AUDIO_ENDPOINT, conversation_id),
        )},
        em.MICROPHONE_ENDPOINT: {"post": _operation(
            "Play audio through the relay's microphone (only with --microphone, and in the dry run)", "microphone",
            responses((202, "Queued; it plays in real time.", ref("Queued")),
                      (400, 401, 403, 409, 413, 415, 429, 500, 503),
                      s409="Microphone echo is off: start the relay with --microphone.", s429=queued, **audio_words),
            description=UNKNOWN_FIELDS + " The microphone answers once queued: it takes no wait.",
            **_speaking(em.MICROPHONE_ENDPOINT, conversation_id),
        )},
    }


def _other_paths() -> dict[str, Any]:
    state = ref("ScriptState")
    not_ready = "No script is loaded, a line is still playing, or the script is finished."
    script_400 = "The script (or the body) is wrong; the error names the line. Besides what the schema says: a line " \
        "the script's grammar refuses, an @audio file that is not there, or nothing to play."
    console = "No token needed for the page itself; it asks for RELAY_AUTH_TOKEN when the relay has one. Served with " \
        "a strict Content-Security-Policy; nothing is loaded from another host."
    page = {"200": {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}},
            **responses((403, STATUS_TEXT[403], ref("Error")), ())}
    script_example = {"script": "Hello there!\n@pause 1\nThanks for watching.", "name": "demo"}
    return {
        "/interrupt": {"post": _operation(
            "Stop the face now; drop queued messages, microphone audio and a running script", "interrupt",
            responses((200, "conversation.interrupt was confirmed.", ref("Interrupted")),
                      (401, 403, 500, 502, 503, 504)),
        )},
        "/events": {"get": _events()},
        "/health": {"get": _operation(
            "State of the relay, the room and the face; with RELAY_AUTH_TOKEN set, only 'up' without the token",
            "health", responses((200, "OK", {"oneOf": [ref("Health"), ref("HealthUp")]}), (403, 500)), security=[{}],
        )},
        "/openapi.json": {"get": _operation(
            "This document, with the room's own conversation_id the only one allowed (no token needed)", "openapi",
            responses((200, "OpenAPI 3.1", {"type": "object"}), (403,)), security=[{}],
        )},
        "/": {"get": _operation(
            "The console: a page to say text, play audio, interrupt, step through a script, watch events and see the "
            "face.", "console", page, description=console, security=[{}],
        )},
        "/room": {"get": _operation("The room the console shows: its URL (never a meeting token).", "room",
                                    responses((200, "The room.", ref("Room")), (401, 403, 500)))},
        "/script": {
            "get": _operation("The loaded script and how far it has played.", "scriptState",
                              responses((200, "The script's state.", state), (401, 403, 500))),
            "post": _operation(
                "Load a demo script (one line per utterance; @pause SECONDS; @audio FILE; @emotion NAME; # comments).",
                "loadScript",
                responses((200, "Loaded.", state), (400, 401, 403, 413, 415, 500), s400=script_400,
                          s413="The body is over RELAY_MAX_BODY_BYTES.", s415="Not JSON."),
                description="A bad script is a 400 naming its line; nothing is sent. @audio names files inside "
                "RELAY_AUDIO_DIR. Any other field is a 400.",
                requestBody={"required": True, "content": {"application/json": {
                    "schema": script_body(), "example": script_example,
                }}},
            ),
        },
        "/script/next": {"post": _operation(
            "Play the next step only, after the face stopped saying the last.", "scriptNext",
            responses((202, "Started.", state), (401, 403, 409, 500), s409=not_ready),
        )},
        "/script/play": {"post": _operation(
            "Play every step that is left, each after the face stopped saying the last.", "scriptPlay",
            responses((202, "Started.", state), (401, 403, 409, 500), s409=not_ready),
        )},
        "/script/stop": {"post": _operation("End a script run now (an interrupt does too).", "scriptStop",
                                            responses((200, "Stopped.", state), (401, 403, 500)))},
        "/utterances/{inference_id}": {"get": _operation(
            f"What became of one utterance (the last {MAX_TRACKED_UTTERANCES}): its state and times", "utterance",
            responses((200, "OK", ref("Utterance")), (401, 403, 404, 500),
                      s404=f"No utterance with that id among the last {MAX_TRACKED_UTTERANCES}."),
            parameters=[{"name": "inference_id", "in": "path", "required": True,
                         "schema": {"type": "string", "minLength": 1}}],
        )},
    }


def _events() -> dict[str, Any]:
    event_id: Schema = {"type": "string", "pattern": f"^{SPACE}*[0-9]{{0,{em.MAX_NUMBER_DIGITS}}}{SPACE}*$"}
    return {
        "summary": "What the face and the relay report: Server-Sent Events with Accept: text/event-stream, else a "
        "JSON list",
        "operationId": "events",
        "parameters": [
            {"name": "after", "in": "query", "schema": event_id,
             "description": "Only events with a larger id (an event id: ASCII digits; empty means 0)."},
            {"name": "limit", "in": "query",
             "schema": {"type": "string", "pattern": digits_between(1, MAX_EVENTS_LISTED)},
             "description": f"The JSON list only (checked on a stream too): at most this many events, 1 to "
             f"{MAX_EVENTS_LISTED}, the oldest after the cursor (continue with after=<the last id listed>); a "
             "relay.restarted or relay.events_dropped marker may lead them. Anything else is a 400 naming limit."},
            {"name": "Last-Event-ID", "in": "header", "schema": event_id,
             "description": "What an EventSource sends on reconnect; the same as after (which is used when both are "
             "given; both are checked). Empty means 0."},
        ],
        "responses": {
            "200": {"description": "Events, oldest first.", "content": {
                "application/json": {"schema": {"type": "array", "items": ref("Event")}},
                "text/event-stream": {"schema": {"type": "string"}},
            }},
            **responses((400, STATUS_TEXT[400], ref("Error")), (401, 403, 500, 503),
                         s503=f"{MAX_EVENT_LISTENERS} event streams are open already, or the relay is closing."),
        },
    }


def document(conversation_id: str | None = None) -> dict[str, Any]:
    """The whole document; with `conversation_id`, the one a relay serves: that id is the only one allowed."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Echo relay",
            "version": "0.1.0",
            "description": "POST text or audio; a Tavus face in Echo Mode says it. Every error is "
            "{\"error\": \"...\"}. A 200 means Daily confirmed every app message of the request. Generated from the "
            f"relay's own field tables ({REGENERATE}). See docs/api.md.",
        },
        "servers": [{"url": "http://127.0.0.1:8000"}],
        "security": [{}, {"bearer": []}],
        "paths": paths(conversation_id),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "Only when RELAY_AUTH_TOKEN is set."}},
            "schemas": answers.schemas(),
        },
    }


def written(value: dict[str, Any]) -> str:
    """The document as static/openapi.json holds it."""
    return json.dumps(value, indent=2) + "\n"


@functools.lru_cache(maxsize=4)
def served(conversation_id: str | None) -> bytes:
    """GET /openapi.json's body for a room (None: for one it does not name)."""
    return json.dumps(document(conversation_id)).encode()


def main(argv: list[str] | None = None) -> int:
    """`python -m relay.openapi`: write static/openapi.json from the code (or --check that it is current)."""
    parser = argparse.ArgumentParser(prog=REGENERATE, description=main.__doc__)
    parser.add_argument("--output", type=Path, default=DOCUMENT_PATH, help="where to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file differs")
    options = parser.parse_args(argv)
    text = written(document())
    current = options.output.read_text(encoding="utf-8") if options.output.exists() else None
    if options.check:
        if current != text:
            print(f"{options.output} is not the generated document: run {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    options.output.write_text(text, encoding="utf-8")
    print(f"wrote {options.output}" + (" (unchanged)" if current == text else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
