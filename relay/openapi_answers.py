"""The relay's answers, for the OpenAPI document relay/openapi.py builds: each status's words, each body's schema.

Requests are described from the parser's tables; answers from what the views
and the Relay return, here. tests/test_openapi.py runs schemathesis, which
checks every answer it gets against these.
"""

from __future__ import annotations

from typing import Any

from relay.events import MAX_EVENT_LISTENERS
from relay.markup import EMOTIONS
from relay.utterances import DONE_STATES, LATENCY_WINDOW, MAX_SPOKEN_TEXT_CHARS, SENT_STATES

Schema = dict[str, Any]

MODES = ["room", "dry-run"]
UTTERANCE_STATES = [*SENT_STATES, "sent", "speaking", *DONE_STATES]
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
STRING: Schema = {"type": "string"}
BOOLEAN: Schema = {"type": "boolean"}


STATUS_TEXT = {
    400: "Bad input: the message names the field and the fix. Nothing was sent.",
    401: "RELAY_AUTH_TOKEN is set and the request lacks `Authorization: Bearer <token>`.",
    403: "A web page on another origin (Origin, Sec-Fetch-Site), or a Host that is not a name of this relay "
    "(RELAY_ALLOWED_HOSTS, RELAY_ALLOWED_ORIGINS).",
    409: "Dropped or cut short by an interrupt (the message says how many messages went out), or an endpoint not "
    "available in this mode.",
    413: "Body over RELAY_MAX_BODY_BYTES, or audio over RELAY_MAX_AUDIO_SECONDS. Nothing was sent.",
    415: "A Content-Type this endpoint does not take, or audio that cannot be decoded. Nothing was sent.",
    500: "A bug in the relay; the details are in its log.",
    502: "Daily reported a send error.",
    503: "Not joined, the conversation ended, or the face did not join within RELAY_REPLICA_TIMEOUT (or left "
    "mid-utterance).",
    504: "Daily did not confirm within RELAY_SEND_TIMEOUT.",
}
# What only the bytes can tell (no schema says them): the operations' own words for these statuses.
AUDIO_400 = (
    "Bad input: the message names the field and the fix. Nothing was sent. Besides what the schema says: base64 "
    "whose length is wrong, raw PCM of an odd number of bytes, a damaged audio file, an audio file body with no "
    "bytes, and query parameters beside a JSON body (they are for file bodies)."
)
TEXT_400 = (
    "Bad input: the message names the field and the fix. Nothing was sent. Besides what the schema says: an unpaired "
    "surrogate (such as \\ud800) in a string, and one markup tag or <spell> span too long for one message."
)
AUDIO_413 = (
    "Body over RELAY_MAX_BODY_BYTES, audio over RELAY_MAX_AUDIO_SECONDS, or a file holding more than "
    "RELAY_MAX_AUDIO_SAMPLES (frames x channels, from its header). Nothing was sent."
)
AUDIO_415 = "A Content-Type this endpoint does not take, or audio in a format no decoder reads. Nothing was sent."


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def maybe(kind: str) -> Schema:
    """A value of `kind`, or null where the relay does not know it."""
    return {"type": [kind, "null"]}


def _object(required: list[str], properties: dict[str, Schema], **more: Any) -> Schema:
    return {"type": "object", "required": required, "properties": properties, **more}


SPOKEN: Schema = {
    "oneOf": [{"type": "null"}, _object(
        ["started_after_ms", "duration_s", "interrupted"],
        {"started_after_ms": maybe("integer"), "duration_s": maybe("number"), "interrupted": maybe("boolean")},
    )],
    "description": "With wait: what the face reported; null when it did not report in time (the messages were sent "
    "all the same).",
}


def schemas() -> dict[str, Schema]:
    """Every component schema the document's answers name."""
    return {
        "Error": _object(["error"], {"error": {"type": "string", "minLength": 1}}),
        "Sent": _object(["status", "inference_id", "messages_sent", "mode", "conversation_id"], {
            "status": {"const": "Message sent successfully"},
            "inference_id": STRING,
            "messages_sent": {"type": "integer", "minimum": 1},
            "mode": {"enum": MODES},
            "conversation_id": STRING,
            "spoken": SPOKEN,
            "spoken_timeout_s": {**NUMBER, "description": "With wait, when the face did not report: how long the "
                                 "relay waited."},
        }),
        "SentAudio": {"allOf": [ref("Sent"), _object(["audio_ms", "sample_rate"], {
            "audio_ms": {"type": "integer", "minimum": 0}, "sample_rate": INTEGER,
        })]},
        "Interrupted": _object(
            ["status", "messages_sent", "requests_dropped", "microphone_clips_dropped", "conversation_id", "mode"],
            {"status": {"const": "Interrupted"}, "messages_sent": INTEGER, "requests_dropped": INTEGER,
             "microphone_clips_dropped": INTEGER, "conversation_id": STRING, "mode": {"enum": MODES}},
        ),
        "Queued": _object(["status", "clip_id", "audio_ms", "queued_ms", "mode"], {
            "status": {"const": "Queued"}, "clip_id": STRING, "audio_ms": INTEGER, "queued_ms": INTEGER,
            "mode": {"enum": MODES},
        }),
        "Event": _object(["type", "time"], {
            "id": {"type": "integer", "minimum": 1, "description": "Absent only on relay.events_dropped."},
            "type": {**STRING, "description": "conversation.* / system.* as Tavus sent them, or relay.joined, "
                     "relay.replica_joined, relay.replica_left, relay.left, relay.send_failed, relay.interrupted, "
                     "relay.said (what the face said of an utterance: inference_id, text, interrupted), "
                     "relay.events_dropped."},
            "time": NUMBER,
            "sender": STRING,
            "message": {"description": "The app message as received."},
            "count": {**INTEGER, "description": "relay.events_dropped: how many events are gone."},
        }, additionalProperties=True),
        "Health": _health(),
        "HealthUp": _object(["status", "auth_required"], {"status": {"const": "ok"}, "auth_required": {"const": True}},
                            additionalProperties=False, description="What /health says without the token when "
                            "RELAY_AUTH_TOKEN is set: only that the relay is up."),
        "ScriptState": _object(["name", "steps", "position", "playing", "finished"], {
            "name": STRING,
            "steps": {"type": "array", "items": _object(["line", "kind", "text"], {
                "line": INTEGER,
                "kind": {"enum": ["say", "audio", "pause"]},
                "text": STRING,
                "emotion": {"enum": list(EMOTIONS), "description": "The emotion of the last @emotion before the line "
                            "(a line to say only); absent for none."},
            })},
            "position": {**INTEGER, "description": "How many steps were played."},
            "playing": BOOLEAN,
            "finished": BOOLEAN,
        }),
        "Utterance": _object(["inference_id", "state", "arrived_at"], {
            "inference_id": STRING,
            "state": {"enum": UTTERANCE_STATES},
            "arrived_at": NUMBER,
            **{name: maybe("number") for name in ("sent_at", "started_speaking_at", "stopped_speaking_at")},
            "started_after_ms": maybe("integer"),
            "duration_s": maybe("number"),
            "interrupted": maybe("boolean"),
            "error": STRING,
            "spoken_text": {**STRING, "description": "What the face said, up to where it was cut off: the speech of "
                            "Tavus's final conversation.utterance.streaming for this inference_id (its last "
                            f"{MAX_SPOKEN_TEXT_CHARS} characters, led by \u2026, for a long one). Absent where the "
                            "face sends no such report."},
        }),
        "Room": _object(["mode", "conversation_id", "conversation_url", "private"], {
            "mode": {"enum": MODES}, "conversation_id": STRING, "conversation_url": maybe("string"), "private": BOOLEAN,
        }),
    }


def _health() -> Schema:
    microphone = _object(["enabled"], {
        "enabled": BOOLEAN,
        "playing_clip": maybe("string"),
        "queued_ms": INTEGER,
        "frames_played": {**INTEGER, "description": "Frames Daily's microphone took (what write_frames returned)."},
        "frames_refused": {**INTEGER, "description": "Frames offered that Daily did not take (it takes none outside "
                           "a call)."},
        "taking_audio": {**BOOLEAN, "description": "false once Daily stopped taking the microphone's audio."},
    })
    face = _object(["present", "signal", "participant_id"], {
        "present": BOOLEAN,
        "signal": {**maybe("string"), "description": "What made the face count: user_id, user_name, "
                   "system.replica_joined, system.replica_present, system.pal_present, or simulated."},
        "participant_id": maybe("string"),
    })
    required = ["status", "mode", "sample_rate", "call_state", "conversation_id", "replica_present",
                "replica_speaking", "messages_sent", "send_errors", "queue_depth", "last_event_id", "uptime_s",
                "microphone", "auth_required"]
    return _object(required, {
        "status": {"const": "ok"},
        "mode": {"enum": MODES},
        "sample_rate": {**INTEGER, "description": "RELAY_SAMPLE_RATE: the rate of the audio the relay sends (the "
                        "console captures the microphone at it)."},
        "call_state": STRING,
        "left_reason": {**maybe("string"), "description": "Why the call ended; null unless call_state is left (a send "
                        "error is not the call ending)."},
        "conversation_id": {**maybe("string"), "description": "The joined room's id; \"dry-run\" in the dry run."},
        "replica_present": BOOLEAN,
        "replica_speaking": BOOLEAN,
        **{name: INTEGER for name in ("messages_sent", "send_errors", "queue_depth", "last_event_id")},
        "uptime_s": NUMBER,
        "microphone": microphone,
        "auth_required": {**BOOLEAN, "description": "Whether RELAY_AUTH_TOKEN is set (the console then asks for it)."},
        "face": face,
        "connection": {"enum": ["connected", "interrupted"], "description": "Daily's signalling connection; nothing "
                       "is handed to Daily while it is interrupted."},
        "oldest_wait_s": {**NUMBER, "description": "How long the oldest waiting request has waited (0 when none)."},
        "latency": {"type": "object", "properties": {
            "p50_ms": maybe("number"), "p95_ms": maybe("number"), "utterances": INTEGER,
        }, "description": "From a request's arrival to the face's started_speaking, over the last "
           f"{LATENCY_WINDOW} utterances."},
        "event_streams": {**INTEGER, "description": f"Open /events streams ({MAX_EVENT_LISTENERS} at most)."},
    })


def responses(success: tuple[int, str, Schema], statuses: tuple[int, ...], **words: str) -> dict[str, Any]:
    """The success and every error status, each error `{"error": ...}`; `words` overrides a status's text (s400=)."""
    code, description, schema = success
    found: dict[str, Any] = {
        str(code): {"description": description, "content": {"application/json": {"schema": schema}}}
    }
    for status in statuses:
        text = words.get(f"s{status}", STATUS_TEXT.get(status, ""))
        found[str(status)] = {"description": text, "content": {"application/json": {"schema": ref("Error")}}}
    return found
