"""Request bodies in, size-safe `conversation.echo` app messages out.

Everything here is pure: it validates what a caller POSTed, builds the exact
messages Tavus expects (absent fields omitted, `done` a real boolean) and
splits text and PCM so that every serialized message fits the Daily app
message limit. Nothing here touches the network, Flask or daily, and
nothing here decodes audio: parsing returns the audio's bytes and rate as
the caller declared them, and relay/audio.py decodes them.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import functools
import json
import json.decoder
import json.scanner
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

import numpy as np

from relay.errors import MessageError
from relay.markup import EMOTIONS, Cuts, Markup, check_emotion, emotion_tag, with_emotion

MAX_MESSAGE_BYTES = 4096  # Daily's documented limit for one app message
TAVUS_DEFAULT_SAMPLE_RATE = 16000  # what Tavus assumes when sample_rate is absent
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000
SILENCE_MS = 40  # a final chunk that only has to carry `done` (never send empty audio)
MAX_INFERENCE_ID_CHARS = 128
MAX_CONVERSATION_ID_CHARS = 128
BYTES_PER_SAMPLE = 2  # s16le mono
MAX_NUMBER_DIGITS = 18  # any number a field takes fits; more digits would only cost int() time
# Values (objects, arrays, strings, numbers, ...) one body may hold: a route's body has a few dozen at most.
MAX_JSON_VALUES = 10_000

TEXT_ENDPOINT, AUDIO_ENDPOINT, MICROPHONE_ENDPOINT = "/send_text_message", "/send_audio_message", "/microphone"
MODALITY_ENDPOINTS = {"text": TEXT_ENDPOINT, "audio": AUDIO_ENDPOINT}
ENVELOPE_FIELDS = ("message_type", "event_type", "conversation_id", "properties")
ENVELOPE_VALUES = {"message_type": "conversation", "event_type": "conversation.echo"}  # the only value each may have
# The docs' own text body carries a placeholder "audio" and a "sample_rate": accepted, and ignored, on text.
TEXT_FIELDS = ("modality", "text", "emotion", "inference_id", "done", "interrupt", "wait", "audio", "sample_rate")
IGNORED_TEXT_FIELDS = ("audio", "sample_rate")  # any value, never read
WAITS = ("spoken", "started")  # `wait`: answer once the face reported it stopped, or started, speaking
FIELD_CHOICES = {"emotion": EMOTIONS, "wait": WAITS}  # fields that take only these values (the OpenAPI enums)
# The relay's own additions to the flat form: the quickstart form's `properties` are Tavus's, taken as documented.
FLAT_ONLY_FIELDS = ("emotion",)
AUDIO_FIELDS = ("modality", "audio", "sample_rate", "inference_id", "done", "interrupt", "wait")
UPLOAD_FIELDS = ("conversation_id", "inference_id", "done", "interrupt", "wait")  # query or form parameters of a file
# The microphone answers once a clip is queued: it has nothing to wait for.
MICROPHONE_FIELDS = tuple(name for name in AUDIO_FIELDS if name != "wait")
MICROPHONE_UPLOAD_FIELDS = tuple(name for name in UPLOAD_FIELDS if name != "wait")
JSON_FIELDS = {TEXT_ENDPOINT: TEXT_FIELDS, AUDIO_ENDPOINT: AUDIO_FIELDS, MICROPHONE_ENDPOINT: MICROPHONE_FIELDS}
UPLOAD_PARAMETERS = {AUDIO_ENDPOINT: UPLOAD_FIELDS, MICROPHONE_ENDPOINT: MICROPHONE_UPLOAD_FIELDS}
SCRIPT_FIELDS = ("script", "name")
MAX_SCRIPT_NAME_CHARS = 80  # of the name a script's errors are told under; the rest is dropped
FIELD_ALIASES = {"message": "text"}  # what a caller means by a name no endpoint knows, before the closest by spelling
MICROPHONE_WAIT = "wait is for /send_text_message and /send_audio_message: the microphone answers once queued"
MICROPHONE_AUDIO_EMPTY = "audio is empty: send an audio file or base64 PCM to play on /microphone"
_NEEDS_ESCAPE = re.compile(r'[^\x20-\x7e]|["\\]')  # what makes a character cost more than one byte in JSON
_ASCII_COSTS = np.ones(128, dtype=np.int64)  # what each ASCII char costs in JSON; see escaped_costs
_ASCII_COSTS[:0x20] = _ASCII_COSTS[0x7F] = 6
_ASCII_COSTS[[ord(c) for c in '"\\\b\f\n\r\t']] = 2
# The end of the last sentence (else word) break: greedy `.*` backtracks from the end, so it stops at the last one.
_LAST_SENTENCE_BREAK = re.compile(r"(?s:.*)(?:[.!?…。！？;:][\"'”’)\]]*\s+|\n\s*)")
_LAST_WORD_BREAK = re.compile(r"(?s:.*)\s+")
_ASCII_DIGITS = re.compile(f"[0-9]{{1,{MAX_NUMBER_DIGITS}}}")
T = TypeVar("T")


@dataclass(frozen=True)
class TextEcho:
    text: str
    conversation_id: str | None = None
    inference_id: str | None = None
    done: bool = True
    interrupt: bool = False
    wait: str | None = None  # "spoken" or "started": answer once the face reported it (relay.core checks the word)


@dataclass(frozen=True)
class AudioRequest:
    """An audio request as the caller declared it; relay.audio decodes it.

    `audio` is the base64-decoded bytes of JSON's `audio` (raw PCM or a whole
    file: which one is for the decoder to tell) or an uploaded file.
    """

    audio: bytes | BinaryIO
    sample_rate: int | None = None  # the declared rate of raw PCM; None when left out
    conversation_id: str | None = None
    inference_id: str | None = None
    done: bool = False
    interrupt: bool = False
    wait: str | None = None  # as TextEcho's
    audio_name: str = "audio"  # the field as the caller wrote it, for errors found while decoding


def new_inference_id() -> str:
    """The id of an utterance the caller did not name (uuid4 hex): made here only, for every caller."""
    return uuid.uuid4().hex


# --- parsing request bodies -------------------------------------------------


def parse_text_request(body: Any) -> TextEcho:
    """Accept the quickstart form (`properties`) and the flat form alike.

    Other properties, such as the sample's placeholder `"audio"`, are ignored:
    the docs' own curl sends them to the text endpoint. The flat form's
    `emotion` becomes Tavus's tag in front of the text.
    """
    fields = _Fields(body, TEXT_FIELDS, TEXT_ENDPOINT)
    fields.require_modality("text")
    text = fields.checked("text", _text)
    if text is None:
        audio_hint = " (to play audio, POST it to /send_audio_message)" if fields.given("audio") else ""
        raise MessageError(f"{fields.name('text')} is required: a non-empty string for the face to say{audio_hint}")
    emotion = fields.checked("emotion", _string)
    return TextEcho(
        text=with_emotion(text, None if emotion is None else check_emotion(emotion)),
        conversation_id=fields.conversation_id(),
        inference_id=fields.checked("inference_id", check_inference_id),
        done=fields.boolean("done", default=True),
        interrupt=fields.boolean("interrupt", default=False),
        wait=fields.checked("wait", check_wait),
    )


def parse_audio_request(body: Any, *, endpoint: str = AUDIO_ENDPOINT) -> AudioRequest:
    """Accept base64 raw s16le mono PCM, or base64 of an audio file (WAV, MP3, FLAC, OGG, AIFF: by its bytes).

    The bytes and the rate are returned as declared; relay.audio decides
    which of the two the bytes are and decodes them. `audio` may be left out
    only to close an utterance with `done` (not on the microphone); given, it
    must hold audio.
    """
    fields = _Fields(body, JSON_FIELDS[endpoint], endpoint)
    fields.require_modality("audio")
    done = fields.boolean("done", default=False)
    microphone = endpoint == MICROPHONE_ENDPOINT
    audio = fields.checked("audio", functools.partial(_audio, microphone=microphone))
    if audio is None and microphone:
        raise MessageError(MICROPHONE_AUDIO_EMPTY)
    if audio is None and not done:
        raise MessageError(
            f"{fields.name('audio')} is required: base64 of raw 16-bit mono PCM or of an audio file "
            '(send "done": true with no audio to close an utterance)'
        )
    return AudioRequest(
        audio=audio or b"",
        sample_rate=fields.checked("sample_rate", check_sample_rate),
        conversation_id=fields.conversation_id(),
        inference_id=fields.checked("inference_id", check_inference_id),
        done=done,
        interrupt=fields.boolean("interrupt", default=False),
        wait=fields.checked("wait", check_wait),
        audio_name=fields.name("audio"),
    )


def parse_audio_file(source: BinaryIO, params: Mapping[str, str], *, endpoint: str = AUDIO_ENDPOINT) -> AudioRequest:
    """An uploaded audio file; its options come as query (or form) parameters, each a known one.

    `done` defaults to true: a file is a whole utterance unless the caller
    says `done=false` to keep it open for the next file.
    """
    fields = _Fields(dict(params), UPLOAD_PARAMETERS[endpoint], endpoint, noun="parameter")
    return AudioRequest(
        audio=source,
        conversation_id=fields.conversation_id(),
        inference_id=fields.checked("inference_id", check_inference_id),
        done=fields.boolean("done", default=True),
        interrupt=fields.boolean("interrupt", default=False),
        wait=fields.checked("wait", check_wait),
    )


def parse_script_request(body: Any) -> tuple[str, str]:
    """POST /script: the script's text, and the name its errors are told under (the first 80 characters)."""
    if not isinstance(body, dict) or not isinstance(body.get("script"), str):
        raise MessageError('send the script as {"script": "one line per utterance\\n@pause 1\\n..."}')
    check_known(body, SCRIPT_FIELDS, "/script")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise MessageError(f"name must be a string, got {json.dumps(name)[:60]}")
    return body["script"], (name or "the script")[:MAX_SCRIPT_NAME_CHARS]


def json_body(data: bytes | bytearray) -> Any:
    """A request body read as JSON, or a MessageError saying in one line what is wrong with it.

    A key given twice is refused, as a misspelt one is: JSON's own rule
    (the last one wins) would silently drop what the caller meant by the
    first, e.g. `{"interrupt": false, "interrupt": true}`.

    Reading a body costs a few times its size, whatever its shape: a parse
    stops as it passes MAX_JSON_VALUES values (a 50 MB body of `[{}, {}, ...]`
    built 12 million objects, 1.45 GB, before any field was checked), and a
    bytearray is emptied once it is text, so the body's bytes are never held
    beside both its text and the values parsed out of it.
    """
    if not data or data.isspace():
        raise MessageError('the body is empty: send a JSON object, such as {"text": "Hello there!"}')
    try:
        encoding = json.detect_encoding(data)
        if encoding == "utf-8" and not data.isascii() and _ASTRAL_UTF8.search(data) is not None:
            try:
                return _decode_astral_escaped(data)
            except (json.JSONDecodeError, _NotEscapable):
                pass  # read as written below: an error is then said at the place the caller wrote it
        text = data.decode(encoding, "surrogatepass")  # as json.loads
        if isinstance(data, bytearray):
            data.clear()
        return _decode_bounded(text)
    except json.JSONDecodeError as error:
        raise MessageError(
            f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise MessageError(
            'the body is JSON nested too deep to read: send a JSON object, such as {"text": "Hello there!"}'
        ) from None
    except ValueError:  # not UTF-8 (UnicodeDecodeError), or a number too long for int()
        raise MessageError("the body is not valid JSON (UTF-8 expected)") from None


def _decode_astral_escaped(data: bytes | bytearray) -> Any:
    """The body read as JSON with every character beyond the BMP (an emoji) written as JSON's escape for it.

    Python holds a text with one such character at 4 bytes a character: the body's text would be held so beside
    the text parsed out of it (a 10 MB text with one emoji: 8x the body). Escaped, the body's text is held at 1
    or 2 bytes a character while it is parsed, and only the text parsed out of it at 4. After a backslash an
    escape would not mean the same: such a body is read as written (_NotEscapable).
    """
    if _ASTRAL_AFTER_BACKSLASH.search(data) is not None:
        raise _NotEscapable
    text = _ASTRAL_UTF8.sub(lambda found: json.dumps(found.group().decode("utf-8")).encode()[1:-1], data).decode()
    return _decode_bounded(text)


class _NotEscapable(Exception):
    """A body whose characters beyond the BMP cannot all be written as escapes."""


_ASTRAL_UTF8 = re.compile(rb"[\xf0-\xf4][\x80-\xbf]{3}")  # a character beyond the BMP, as UTF-8 writes it
_ASTRAL_AFTER_BACKSLASH = re.compile(rb"\\[\xf0-\xf4]")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise MessageError(f"the body has the key {json.dumps(twice)[:80]} twice: send each field once")
    return obj


# One for every request: json.loads makes one each call.
_BODY_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _decode_bounded(text: str) -> Any:
    """`text` as JSON, by the C scanner when it cannot hold more than MAX_JSON_VALUES values, else by one that counts.

    Every value but the first follows a `[`, `,` or `:`, so their count (in strings too) is a bound on the
    values, found in a pass far faster than the parse (and a body of fewer characters has fewer values): a body
    of a route's few fields, or one long text without many commas, is parsed at the C scanner's speed.
    """
    if len(text) < MAX_JSON_VALUES or text.count(",") + text.count(":") + text.count("[") < MAX_JSON_VALUES:
        return _BODY_DECODER.decode(text)
    return _CountingDecoder().decode(text)


class _CountingDecoder(json.JSONDecoder):
    """A decoder (one per body: it counts) that stops, with a MessageError, before it builds value MAX_JSON_VALUES + 1.

    The standard library's pure-Python scanner, whose object and array parsers it takes from its decoder
    (`parse_object`, `parse_array`): here each is given a scan that counts every value before building it. Its
    strings are still read by the C `scanstring`, so a long text costs what it does in the C scanner.
    """

    def __init__(self) -> None:
        super().__init__(object_pairs_hook=_unique_keys)
        self.left = MAX_JSON_VALUES
        self.parse_object = self._object
        self.parse_array = self._array
        self.scan_once = _PY_MAKE_SCANNER(self)

    def _object(self, state: tuple[str, int], strict: bool, scan_once: _Scan, *hooks: Any) -> tuple[Any, int]:
        return _JSON_OBJECT(state, strict, self._counted(scan_once), *hooks)

    def _array(self, state: tuple[str, int], scan_once: _Scan) -> tuple[Any, int]:
        return _JSON_ARRAY(state, self._counted(scan_once))

    def _counted(self, scan_once: _Scan) -> _Scan:
        def scan(string: str, index: int) -> tuple[Any, int]:
            self.left -= 1
            if self.left < 0:
                raise MessageError(
                    f"the body holds more than {MAX_JSON_VALUES} JSON values (objects, arrays, strings, numbers): "
                    'send one JSON object with the endpoint\'s fields, such as {"text": "Hello there!"}'
                )
            return scan_once(string, index)

        return scan


_Scan = Callable[[str, int], tuple[Any, int]]
# The pure-Python scanner, and its own object and array parsers (the type stubs leave them out).
_PY_MAKE_SCANNER = vars(json.scanner)["py_make_scanner"]
_JSON_OBJECT, _JSON_ARRAY = vars(json.decoder)["JSONObject"], vars(json.decoder)["JSONArray"]


def ascii_int(text: str, name: str, *, meaning: str = "a whole number") -> int:
    """A whole number written as a string: ASCII digits 0-9 only, at most MAX_NUMBER_DIGITS of them.

    `str.isdigit()` also takes "²" (which int() then refuses) and
    Arabic-Indic "١٦٠٠٠" (which int() reads as 16000): neither is a number
    a caller means here. Anything else is a 400 naming the field.
    """
    stripped = text.strip()
    if not _ASCII_DIGITS.fullmatch(stripped):
        raise MessageError(f"{name} must be {meaning}, got {json.dumps(text)[:60]}")
    return int(stripped)


def parse_bool(value: Any, name: str) -> bool:
    """`true`/`false` as JSON booleans or as the strings the docs' curl sends."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise MessageError(f"{name} must be true or false, got {json.dumps(value)[:60]}")


def check_unicode(value: str, name: str) -> str:
    """JSON can carry lone surrogates ("\\ud800") that no UTF-8 encoder, daily's included, accepts."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MessageError(f"{name} is not valid Unicode (it has an unpaired surrogate such as \\ud800)") from None
    return value


def check_inference_id(value: Any, name: str = "inference_id") -> str:
    if not isinstance(value, str) or not value.strip():
        raise MessageError(f"{name} must be a non-empty string, got {json.dumps(value)[:60]}")
    check_unicode(value, name)
    if len(value) > MAX_INFERENCE_ID_CHARS:
        raise MessageError(f"{name} must be at most {MAX_INFERENCE_ID_CHARS} characters, got {len(value)}")
    return value


def check_wait(value: Any, name: str = "wait") -> str:
    if value not in WAITS:
        raise MessageError(f'{name} must be "spoken" or "started" (or left out), got {str(value)[:40]!r}')
    return str(value)


def check_sample_rate(value: Any, name: str = "sample_rate") -> int:
    """A whole number (24000 or 24000.0: JSON has one number type) or ASCII digits, MIN_ to MAX_SAMPLE_RATE."""
    meaning = "a positive whole number such as 24000"
    if isinstance(value, str):
        value = ascii_int(value, name, meaning=meaning)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise MessageError(f"{name} must be {meaning}, got {json.dumps(value)[:60]}")
    if not MIN_SAMPLE_RATE <= value <= MAX_SAMPLE_RATE:
        raise MessageError(f"{name} must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE}, got {str(value)[:20]}")
    return value


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise MessageError(f"{name} must be a string, got {json.dumps(value)[:60]}")
    return check_unicode(value, name)


def _text(value: Any, name: str) -> str:
    text = _string(value, name)
    if not text.strip():
        raise MessageError(f"{name} is required: a non-empty string for the face to say")
    return text


def _audio(value: Any, name: str, *, microphone: bool = False) -> bytes:
    """Given, `audio` holds audio: empty is a mistake (a file that was not there), never a way to close."""
    data = _decode_base64(_string(value, name), name)
    if not data and microphone:
        raise MessageError(MICROPHONE_AUDIO_EMPTY)
    if not data:
        raise MessageError(
            f"{name} is empty: put base64 of raw 16-bit PCM or of an audio file in it (no file at hand? "
            'cp examples/hello.wav speech.wav, or espeak-ng -w speech.wav "Hello there"); '
            'to close an utterance, leave audio out and send "done": true'
        )
    return data


class _Fields:
    """The fields of a body in either form, named as the caller wrote them; a field no endpoint knows is a 400.

    The quickstart form may give a field in `properties` or at the top level:
    every value given is checked, and the one in `properties` is used.
    """

    def __init__(self, body: Any, known: tuple[str, ...], endpoint: str, *, noun: str = "field") -> None:
        if not isinstance(body, dict):
            raise MessageError('the body must be a JSON object, such as {"text": "Hello there!"}')
        self._body = body
        self._prefix = ""
        self._props: Mapping[str, Any] = {}
        if "properties" in body:
            if not isinstance(body["properties"], dict):
                raise MessageError("properties must be a JSON object")
            self._props = body["properties"]
            _refuse_flat_only(body, self._props, known)
            known = _properties_fields(known)
            self._prefix = "properties."
            check_known(self._props, (*known, "conversation_id"), endpoint, noun=noun, prefix=self._prefix)
        top_level = known if noun == "parameter" else (*ENVELOPE_FIELDS, *known)
        check_known(body, top_level, endpoint, noun=noun)
        self._check_envelope()

    def _check_envelope(self) -> None:
        for key, expected in ENVELOPE_VALUES.items():
            value = self._body.get(key)
            if value is not None and value != expected:
                hint = " (use POST /interrupt to interrupt)" if value == "conversation.interrupt" else ""
                raise MessageError(f'{key} must be "{expected}" or left out, got {json.dumps(value)[:60]}{hint}')

    def name(self, key: str) -> str:
        return self._prefix + key

    def given(self, key: str) -> list[tuple[str, Any]]:
        """Each value given for `key` (null is not one), named as written: the one in `properties` first."""
        found = [(self._prefix + key, self._props[key])] if self._props.get(key) is not None else []
        return found + [(key, self._body[key])] if self._body.get(key) is not None else found

    def checked(self, key: str, check: Callable[[Any, str], T]) -> T | None:
        """The value used for `key`, or None; every value given passes `check` (which names it as written)."""
        inner, outer = self._props.get(key), self._body.get(key)  # read directly: this runs for every field
        if inner is None:
            return None if outer is None else check(outer, key)
        used = check(inner, self._prefix + key)
        if outer is not None:
            check(outer, key)
        return used

    def require_modality(self, expected: str) -> None:
        """`modality` may be left out; the other modality names the endpoint that takes it."""
        for name, modality in self.given("modality"):
            modality = _string(modality, name)
            if modality == expected:
                continue
            hint = (
                f" (send {modality} to {MODALITY_ENDPOINTS[modality]})"
                if modality in MODALITY_ENDPOINTS
                else f", got {modality[:40]!r}"
            )
            raise MessageError(f'{name} must be "{expected}" on {MODALITY_ENDPOINTS[expected]}{hint}')

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self.checked(key, parse_bool)
        return default if value is None else value

    def conversation_id(self) -> str | None:
        """One relay serves one room: an id given at both levels must be the same id."""
        given = self.given("conversation_id")
        if len(given) < 2:  # the common case, said without building a dict: one id, or none
            return _conversation_id(given[0][1], given[0][0]) if given else None
        values = {name: _conversation_id(value, name) for name, value in given}
        if len(set(values.values())) > 1:
            top, inner = values["conversation_id"], values["properties.conversation_id"]
            raise MessageError(
                f"conversation_id is given twice with different values ({json.dumps(top)[:60]}, and "
                f"{json.dumps(inner)[:60]} in properties): give it once"
            )
        return next(iter(values.values()), None)


def _conversation_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_CONVERSATION_ID_CHARS:
        raise MessageError(
            f"conversation_id must be a non-empty string of at most {MAX_CONVERSATION_ID_CHARS} "
            f"characters (or left out), got {json.dumps(value)[:60]}"
        )
    return check_unicode(value, "conversation_id")


@functools.cache
def _properties_fields(known: tuple[str, ...]) -> tuple[str, ...]:
    """The fields Tavus's `properties` may hold of an endpoint's: all but the relay's own flat-form ones."""
    return tuple(name for name in known if name not in FLAT_ONLY_FIELDS)


def _refuse_flat_only(body: Mapping[str, Any], properties: Mapping[str, Any], known: tuple[str, ...]) -> None:
    """The relay's own fields (`emotion`) beside or inside Tavus's `properties`: say where they go, and how to
    write the same with Tavus's form."""
    for name in FLAT_ONLY_FIELDS:
        if name in known and (name in body or name in properties):
            raise MessageError(
                f'{name} is for the flat form, such as {{"text": "We did it!", "{name}": "excited"}}; with Tavus\'s '
                f"properties form, write the tag into the text instead: {emotion_tag('excited')}We did it!"
            )


def check_known(
    given: Mapping[str, Any], known: tuple[str, ...], endpoint: str, *, noun: str = "field", prefix: str = ""
) -> None:
    """A misspelt field ("interupt", "Done") would otherwise be ignored without a word: name it, suggest the closest."""
    for name in given:
        if name in known:
            continue
        if not isinstance(name, str):  # a multipart part without a name
            raise MessageError(
                "every form field needs a name: send the file as -F file=@speech.wav, options as -F done=true"
            )
        if name == "text" and endpoint != TEXT_ENDPOINT:
            raise MessageError(
                f'{prefix}text is for POST /send_text_message: {endpoint or "this endpoint"} speaks audio '
                "(base64 PCM in audio, or an audio file as the body)"
            )
        if name == "wait" and endpoint == MICROPHONE_ENDPOINT:
            raise MessageError(MICROPHONE_WAIT)
        raise MessageError(f"unknown {noun} {json.dumps(prefix + name)[:80]}{_closest(name, known, prefix)}")


def _closest(name: str, known: tuple[str, ...], prefix: str) -> str:
    lowered = {candidate.lower(): candidate for candidate in known}
    alias = FIELD_ALIASES.get(name.lower())
    match = (
        (alias if alias in known else None)
        or lowered.get(name.lower())
        or next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.6)), None)
    )
    suggestion = f'did you mean "{prefix}{match}"? ' if match else ""
    return f": {suggestion}(known: {', '.join(known)})"


def _decode_base64(text: str, name: str) -> bytes:
    """Strict base64, but tolerant of the line breaks `base64 file` inserts."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise MessageError(f"{name} is not valid base64 (standard alphabet, with padding)") from None


def silence(ms: int, sample_rate: int) -> bytes:
    return bytes(sample_rate * ms // 1000 * BYTES_PER_SAMPLE)


def pcm_duration_ms(pcm_bytes: int, sample_rate: int) -> int:
    return round(pcm_bytes / BYTES_PER_SAMPLE * 1000 / sample_rate)


# --- building messages -------------------------------------------------------


def serialized_size(message: Mapping[str, Any]) -> int:
    """Bytes of the message as compact JSON with every non-ASCII char escaped.

    That is the largest form a JSON encoder without whitespace produces, so a
    message that fits here fits however daily serializes it.
    """
    return len(json.dumps(message, separators=(",", ":"), ensure_ascii=True))


def echo_message(conversation_id: str, **properties: Any) -> dict[str, Any]:
    """A `conversation.echo` message; properties that are None are left out, never sent as null."""
    return {
        "message_type": "conversation",
        "event_type": "conversation.echo",
        "conversation_id": conversation_id,
        "properties": {key: value for key, value in properties.items() if value is not None},
    }


def interrupt_message(conversation_id: str) -> dict[str, Any]:
    return {
        "message_type": "conversation",
        "event_type": "conversation.interrupt",
        "conversation_id": conversation_id,
    }


def text_echo_messages(
    text: str,
    *,
    conversation_id: str,
    inference_id: str,
    done: bool,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> Iterator[dict[str, Any]]:
    """Split text at sentence, else word, boundaries so every message fits max_bytes.

    The pieces concatenate back to the exact input; all share one inference_id
    and only the last carries the caller's `done`. Speech markup is never cut
    (relay/markup.py): a piece never ends inside a tag or a `<spell>` span, and
    a tag starts the piece with the words it applies to; markup too long for
    one message is a MessageError, since no cut can make it fit.

    Where each piece ends is found now, so a text that cannot be split raises
    here and sends nothing; the messages themselves are made one at a time as
    they are sent, so a long text is never held twice (as itself and as pieces).
    """

    def message(piece: str, last: bool) -> dict[str, Any]:
        return echo_message(
            conversation_id, modality="text", text=piece, inference_id=inference_id, done=done if last else False
        )

    if len(text) <= max_bytes and serialized_size(whole := message(text, True)) <= max_bytes:
        return iter([whole])  # most texts fit one message: it is made once
    ends = _piece_ends(text, message, max_bytes)

    def messages() -> Iterator[dict[str, Any]]:
        start = 0
        for number, end in enumerate(ends, start=1):
            yield message(text[start:end], last=number == len(ends))
            start = end

    return messages()


def _piece_ends(text: str, message: Callable[[str, bool], dict[str, Any]], max_bytes: int) -> list[int]:
    """Where each piece of `text` ends, the last at its end; `message(piece, last)` is a piece's message."""
    budget: int | None = None  # bytes left for the escaped text: measured only when a text needs splitting
    found: Markup | None = None  # the text's markup: read only when it needs splitting
    ends: list[int] = []
    start = 0
    while True:
        # Each char costs at least one byte, so only a rest of at most max_bytes chars can fit whole.
        if len(text) - start <= max_bytes and serialized_size(message(text[start:], True)) <= max_bytes:
            return [*ends, len(text)]
        window = text[start : start + max_bytes]
        if budget is None:
            budget = max_bytes - serialized_size(message("", False))
        fit = _fitting_length(window, budget)
        if fit == 0:
            raise _envelope_too_long(max_bytes)
        if found is None:
            found = Markup(text)
        start = _piece_end(text, start, start + fit, found.cuts(start, start + fit, start + len(window)), max_bytes)
        ends.append(start)


def _piece_end(text: str, start: int, limit: int, cuts: Cuts, max_bytes: int) -> int:
    """Where the piece from `start` ends, at most at `limit`: after the last sentence, else the last word, where
    markup allows; else the last place it allows; else anywhere but inside markup."""
    for pattern in (_LAST_SENTENCE_BREAK, _LAST_WORD_BREAK):
        end = limit
        while end > start and (found := pattern.match(text, start, end)):
            blocked = cuts.blocked(found.end())
            if blocked is None:
                return found.end()
            end = blocked - 1  # the breaks before the markup that forbids this one
    cut = cuts.last_allowed(limit, soft=True) or cuts.last_allowed(limit, soft=False)
    if cut is None:
        raise cuts.too_long(text, max_bytes)
    return cut


def _fitting_length(window: str, budget: int) -> int:
    """How many chars of `window` fit in `budget` bytes of escaped JSON.

    A message's size is its envelope's plus its text's escaped length, so
    only the text is measured: plain ASCII costs one byte a char (no search),
    anything else is found by a binary search on the escaped length.
    """
    plain = window[: max(budget, 0)]
    if not _NEEDS_ESCAPE.search(plain):
        return len(plain)
    return int(np.searchsorted(np.cumsum(escaped_costs(window)), budget, side="right"))


def escaped_costs(text: str) -> np.ndarray:
    """Bytes each char of `text` takes inside a JSON string as json.dumps(ensure_ascii=True) writes it.

    1 for printable ASCII; 2 for the short escapes (\\" \\\\ \\b \\f \\n \\r \\t); 6 for every
    other control char, DEL and BMP char (\\uXXXX); 12 beyond the BMP (a surrogate pair).
    """
    codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4")
    beyond_ascii = np.where(codes > 0xFFFF, 12, 6)
    return np.where(codes < 0x80, _ASCII_COSTS[codes & 0x7F], beyond_ascii)  # a table: faster than np.isin


def audio_echo_messages(
    pcm: bytes | Iterable[bytes],
    *,
    sample_rate: int,
    conversation_id: str,
    inference_id: str,
    done: bool,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> Iterator[dict[str, Any]]:
    """Split PCM on whole samples so every serialized message fits max_bytes.

    `pcm` may be one buffer or an iterable of blocks (a decoder's output), so
    the first message can go out before the last block exists. No message
    carries an empty `audio`: a `done` with no audio becomes 40 ms of silence.
    """

    def message(chunk: bytes, last: bool) -> dict[str, Any]:
        return echo_message(
            conversation_id,
            modality="audio",
            audio=base64.b64encode(chunk).decode("ascii"),
            sample_rate=sample_rate,
            inference_id=inference_id,
            done=done if last else False,
        )

    chunk_bytes = pcm_bytes_per_message(message(b"", last=False), max_bytes)  # raises now, not on first next()
    blocks = [pcm] if isinstance(pcm, (bytes, bytearray, memoryview)) else pcm

    def messages() -> Iterator[dict[str, Any]]:
        sent_any = False
        for chunk, last in _with_last_flag(_rechunk(blocks, chunk_bytes)):
            sent_any = True
            yield message(chunk, last)
        if not sent_any:
            if not done:
                raise MessageError("audio is empty")
            yield message(silence(SILENCE_MS, sample_rate)[:chunk_bytes], last=True)

    return messages()


def pcm_bytes_per_message(empty_message: Mapping[str, Any], max_bytes: int) -> int:
    """PCM bytes that fit beside the envelope: a multiple of 6, so base64 needs no padding and samples stay whole."""
    room = max_bytes - serialized_size(empty_message)
    chunk_bytes = room // 8 * 6
    if chunk_bytes <= 0:
        raise _envelope_too_long(max_bytes)
    return chunk_bytes


def _envelope_too_long(max_bytes: int) -> MessageError:
    """Both splitters' words when the ids leave no room for a piece of text or audio."""
    return MessageError(f"inference_id and conversation_id are too long to fit a {max_bytes}-byte message")


def _rechunk(blocks: Iterable[bytes | bytearray | memoryview], size: int) -> Iterator[bytes]:
    """Re-cut blocks of any size into `size`-byte chunks without copying the whole stream."""
    pending = b""
    for block in blocks:
        view = memoryview(pending + bytes(block) if pending else block)
        whole = len(view) - len(view) % size
        for start in range(0, whole, size):
            yield bytes(view[start : start + size])
        pending = bytes(view[whole:])
    if pending:
        yield pending


def _with_last_flag(items: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    previous = next(items, None)
    for item in items:
        yield previous, False  # type: ignore[misc]
        previous = item
    if previous is not None:
        yield previous, True
