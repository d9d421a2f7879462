"""Request bodies in, size-safe `conversation.echo` app messages out.

Everything here is pure: it validates what a caller POSTed, builds the exact
messages Tavus expects (absent fields omitted, `done` a real boolean) and
splits text and PCM so that every serialized message fits the Daily app
message limit. Nothing here touches the network, Flask or daily.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any, BinaryIO

import numpy as np
import soundfile
import soxr

MAX_MESSAGE_BYTES = 4096  # Daily's documented limit for one app message
TAVUS_DEFAULT_SAMPLE_RATE = 16000  # what Tavus assumes when sample_rate is absent
PASSTHROUGH_SAMPLE_RATES = (16000, 24000)  # the rates Tavus documents; sent untouched
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000
SILENCE_MS = 40  # a final chunk that only has to carry `done` (never send empty audio)
MAX_INFERENCE_ID_CHARS = 128
MAX_CONVERSATION_ID_CHARS = 128
BYTES_PER_SAMPLE = 2  # s16le mono
DECODE_BLOCK_FRAMES = 4096  # ~0.1 s: small enough that the first message leaves at once

MODALITY_ENDPOINTS = {"text": "/send_text_message", "audio": "/send_audio_message"}
_SENTENCE_BREAK = re.compile(r"[.!?…。！？;:][\"'”’)\]]*\s+|\n\s*")
_WORD_BREAK = re.compile(r"\s+")


class MessageError(ValueError):
    """The caller's input is wrong; the message names the field and the fix (HTTP 400)."""

    status = 400


class UnsupportedAudio(MessageError):
    """The audio could not be decoded (HTTP 415)."""

    status = 415


class AudioTooLong(MessageError):
    """The audio is longer than the relay accepts (HTTP 413)."""

    status = 413


@dataclass(frozen=True)
class TextEcho:
    text: str
    conversation_id: str | None = None
    inference_id: str | None = None
    done: bool = True
    interrupt: bool = False


class PcmStream:
    """Mono s16le PCM at one rate, produced block by block and counted as it is consumed.

    Files are decoded lazily so the first message can leave before the last
    block is decoded, and a long file never sits in memory twice.
    """

    def __init__(self, blocks: Iterable[bytes], sample_rate: int, *, max_seconds: float | None = None) -> None:
        self.sample_rate = sample_rate
        self.bytes_out = 0
        self._blocks = blocks
        self._max_seconds = max_seconds

    @classmethod
    def of(cls, pcm: bytes, sample_rate: int) -> PcmStream:
        return cls([pcm] if pcm else [], sample_rate)

    @property
    def audio_ms(self) -> int:
        """Milliseconds produced so far: all of it once the stream was sent."""
        return pcm_duration_ms(self.bytes_out, self.sample_rate)

    def __iter__(self) -> Iterator[bytes]:
        for block in self._blocks:
            self.bytes_out += len(block)
            check_duration(self.bytes_out, self.sample_rate, self._max_seconds)
            yield block


@dataclass(frozen=True)
class AudioEcho:
    audio: PcmStream
    conversation_id: str | None = None
    inference_id: str | None = None
    done: bool = False
    interrupt: bool = False

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate


# --- parsing request bodies -------------------------------------------------


def parse_text_request(body: Any) -> TextEcho:
    """Accept the quickstart form (`properties`) and the flat form alike.

    Other properties, such as the sample's placeholder `"audio"`, are ignored:
    the docs' own curl sends them to the text endpoint.
    """
    fields = _Fields(body)
    fields.require_modality("text")
    text = fields.optional_str("text")
    if text is None or not text.strip():
        raise MessageError(f"{fields.name('text')} is required: a non-empty string for the face to say")
    return TextEcho(
        text=text,
        conversation_id=fields.conversation_id(),
        inference_id=fields.inference_id(),
        done=fields.boolean("done", default=True),
        interrupt=fields.boolean("interrupt", default=False),
    )


def parse_audio_request(body: Any, *, target_rate: int, max_seconds: float | None = None) -> AudioEcho:
    """Accept base64 raw s16le mono PCM or a base64 WAV.

    Raw PCM at a documented rate (16000, 24000) passes through byte for byte;
    any other rate, and every file, is resampled to `target_rate`.
    """
    fields = _Fields(body)
    fields.require_modality("audio")
    done = fields.boolean("done", default=False)
    audio = fields.optional_str("audio")
    data = _decode_base64(audio, fields.name("audio")) if audio else b""
    if not data and not done:
        raise MessageError(
            f"{fields.name('audio')} is required: base64 of raw 16-bit mono PCM or of a WAV file "
            '(send "done": true with no audio to close an utterance)'
        )
    declared_rate = fields.sample_rate()
    if looks_like_wav(data):
        audio = open_audio_file(io.BytesIO(data), target_rate=target_rate, max_seconds=max_seconds)
    else:
        pcm, rate = _raw_pcm(data, declared_rate or TAVUS_DEFAULT_SAMPLE_RATE, target_rate, fields.name("audio"))
        check_duration(len(pcm), rate, max_seconds)
        audio = PcmStream.of(pcm, rate)
    return AudioEcho(
        audio=audio,
        conversation_id=fields.conversation_id(),
        inference_id=fields.inference_id(),
        done=done,
        interrupt=fields.boolean("interrupt", default=False),
    )


def parse_audio_file(
    source: BinaryIO, params: Mapping[str, str], *, target_rate: int, max_seconds: float | None = None
) -> AudioEcho:
    """An uploaded audio file; its options come as query (or form) parameters.

    `done` defaults to true: a file is a whole utterance unless the caller
    says `done=false` to keep it open for the next file.
    """
    fields = _Fields(dict(params))
    audio = open_audio_file(source, target_rate=target_rate, max_seconds=max_seconds)
    return AudioEcho(
        audio=audio,
        conversation_id=fields.conversation_id(),
        inference_id=fields.inference_id(),
        done=fields.boolean("done", default=True),
        interrupt=fields.boolean("interrupt", default=False),
    )


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


class _Fields:
    """The fields of a body in either form, named as the caller wrote them."""

    def __init__(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise MessageError('the body must be a JSON object, such as {"text": "Hello there!"}')
        self._body = body
        self._prefix = ""
        self._props: Mapping[str, Any] = body
        if "properties" in body:
            if not isinstance(body["properties"], dict):
                raise MessageError("properties must be a JSON object")
            self._props = body["properties"]
            self._prefix = "properties."
        self._check_envelope()

    def _check_envelope(self) -> None:
        for key, expected in (("message_type", "conversation"), ("event_type", "conversation.echo")):
            value = self._body.get(key)
            if value is not None and value != expected:
                hint = " (use POST /interrupt to interrupt)" if value == "conversation.interrupt" else ""
                raise MessageError(f'{key} must be "{expected}" or left out, got {json.dumps(value)[:60]}{hint}')

    def name(self, key: str) -> str:
        return self._prefix + key

    def get(self, key: str) -> Any:
        """A property, falling back to the top level (where the flat form keeps it)."""
        value = self._props.get(key)
        return self._body.get(key) if value is None else value

    def require_modality(self, expected: str) -> None:
        """`modality` may be left out; the other modality names the endpoint that takes it."""
        modality = self.optional_str("modality")
        if modality in (None, expected):
            return
        hint = f" (send {modality} to {MODALITY_ENDPOINTS[modality]})" if modality in MODALITY_ENDPOINTS else f", got {modality[:40]!r}"
        raise MessageError(f'{self.name("modality")} must be "{expected}" on {MODALITY_ENDPOINTS[expected]}{hint}')

    def optional_str(self, key: str) -> str | None:
        value = self.get(key)
        if value is not None and not isinstance(value, str):
            raise MessageError(f"{self.name(key)} must be a string, got {json.dumps(value)[:60]}")
        return None if value is None else check_unicode(value, self.name(key))

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self.get(key)
        return default if value is None else parse_bool(value, self.name(key))

    def inference_id(self) -> str | None:
        value = self.get("inference_id")
        return None if value is None else check_inference_id(value, self.name("inference_id"))

    def conversation_id(self) -> str | None:
        value = self._body.get("conversation_id", self._props.get("conversation_id"))
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_CONVERSATION_ID_CHARS:
            raise MessageError(
                f"conversation_id must be a non-empty string of at most {MAX_CONVERSATION_ID_CHARS} "
                f"characters (or left out), got {json.dumps(value)[:60]}"
            )
        return check_unicode(value, "conversation_id")

    def sample_rate(self) -> int | None:
        value = self.get("sample_rate")
        if value is None:
            return None
        name = self.name("sample_rate")
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise MessageError(f"{name} must be a positive whole number such as 24000, got {json.dumps(value)[:60]}")
        if not MIN_SAMPLE_RATE <= value <= MAX_SAMPLE_RATE:
            raise MessageError(f"{name} must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE}, got {str(value)[:20]}")
        return value


def _decode_base64(text: str, name: str) -> bytes:
    """Strict base64, but tolerant of the line breaks `base64 file` inserts."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise MessageError(f"{name} is not valid base64 (standard alphabet, with padding)") from None


def _raw_pcm(data: bytes, rate: int, target_rate: int, name: str) -> tuple[bytes, int]:
    if len(data) % BYTES_PER_SAMPLE:
        raise MessageError(
            f"{name} must be whole 16-bit samples (an even number of bytes) of raw PCM, got {len(data)} bytes"
        )
    if rate in PASSTHROUGH_SAMPLE_RATES or not data:
        return data, rate
    return resample_pcm(data, rate, target_rate), target_rate


def check_duration(pcm_bytes: int, rate: int, max_seconds: float | None) -> None:
    if max_seconds is not None and pcm_bytes / BYTES_PER_SAMPLE / rate > max_seconds:
        seconds = pcm_bytes / BYTES_PER_SAMPLE / rate
        raise AudioTooLong(
            f"audio is {seconds:.1f} s long, over RELAY_MAX_AUDIO_SECONDS ({max_seconds:g} s): "
            "send it in shorter pieces with one inference_id"
        )


# --- audio decoding and resampling -------------------------------------------


def looks_like_wav(data: bytes) -> bool:
    """A WAV's 12-byte signature. JSON `audio` is raw PCM or a WAV: sniffing for
    anything shorter (an MP3 frame sync is two bytes) would mistake real PCM for a file."""
    return data[:4] in (b"RIFF", b"RIFX", b"RF64") and data[8:12] == b"WAVE"


def open_audio_file(source: BinaryIO, *, target_rate: int, max_seconds: float | None = None) -> PcmStream:
    """Open a file soundfile can read and check it now; decode it lazily, block by block.

    Everything that can be known before sending (format, emptiness, length,
    the first block decoding) is checked here, so a bad file sends nothing.
    """
    try:
        sound = soundfile.SoundFile(source)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise _decode_error(error) from None
    if sound.frames == 0:
        raise MessageError("audio is empty: the file has no samples")
    check_duration(sound.frames * BYTES_PER_SAMPLE, sound.samplerate, max_seconds)
    blocks = _decoded_blocks(sound, target_rate)
    try:
        first = next(blocks)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise _decode_error(error) from None
    return PcmStream(chain([first], blocks), target_rate, max_seconds=max_seconds)


def _decoded_blocks(sound: soundfile.SoundFile, target_rate: int) -> Iterator[bytes]:
    """Downmix, resample (soxr, streaming) and convert each block; the resampler is flushed at the end."""
    resampler = None if sound.samplerate == target_rate else soxr.ResampleStream(
        sound.samplerate, target_rate, 1, dtype="float32", quality="HQ"
    )
    with sound:
        for block in sound.blocks(DECODE_BLOCK_FRAMES, dtype="float32", always_2d=True):
            mono = block.mean(axis=1, dtype="float32") if block.shape[1] > 1 else block[:, 0]
            if resampler is not None:
                mono = resampler.resample_chunk(mono)
            if mono.size:
                yield float_to_s16le(mono)
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, dtype="float32"), last=True)
        if tail.size:
            yield float_to_s16le(tail)


def _decode_error(error: Exception) -> MessageError:
    """libsndfile's words without the file object's repr; unknown formats are 415, damaged files 400."""
    reason = str(getattr(error, "error_string", "") or error).strip().rstrip(".")
    if "not recognised" in reason or "unsupported" in reason.lower():
        return UnsupportedAudio(f"could not decode audio: {reason} (send WAV, MP3, FLAC or OGG)")
    return MessageError(f"could not decode audio: {reason}")


def float_to_s16le(samples: np.ndarray) -> bytes:
    """Scale [-1, 1] floats to int16, clipping overs instead of wrapping them around."""
    scaled = np.clip(np.rint(samples * 32768.0), -32768, 32767)
    return scaled.astype("<i2").tobytes()


def resample_pcm(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2")
    return soxr.resample(samples, from_rate, to_rate).astype("<i2").tobytes()


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
    and only the last carries the caller's `done`.
    """

    def message(piece: str, last: bool) -> dict[str, Any]:
        return echo_message(
            conversation_id, modality="text", text=piece, inference_id=inference_id, done=done if last else False
        )

    rest = text
    while True:
        whole = message(rest, last=True)
        if serialized_size(whole) <= max_bytes:
            yield whole
            return
        # Each char costs at least one byte, so no fitting piece is longer than max_bytes chars.
        window = rest[:max_bytes]
        fit = _longest_fitting_prefix(window, lambda piece: serialized_size(message(piece, False)) <= max_bytes)
        if fit == 0:
            raise MessageError(f"inference_id and conversation_id are too long to fit a {max_bytes}-byte message")
        cut = _natural_break(window[:fit]) or fit
        yield message(rest[:cut], last=False)
        rest = rest[cut:]


def _longest_fitting_prefix(text: str, fits: Callable[[str], bool]) -> int:
    """Binary search: serialized size only grows as a prefix grows."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(text[:middle]):
            low = middle
        else:
            high = middle - 1
    return low


def _natural_break(prefix: str) -> int:
    """Where to end a piece inside `prefix`: after the last sentence, else the last word."""
    for pattern in (_SENTENCE_BREAK, _WORD_BREAK):
        ends = [match.end() for match in pattern.finditer(prefix)]
        if ends:
            return ends[-1]
    return 0


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
        raise MessageError(f"inference_id and conversation_id are too long to fit a {max_bytes}-byte message")
    return chunk_bytes


def _rechunk(blocks: Iterable[bytes], size: int) -> Iterator[bytes]:
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
