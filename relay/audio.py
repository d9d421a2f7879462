"""Audio in: recognise a file by its bytes, decode it (soundfile), downmix and resample it (soxr) to s16le mono.

Parsing (echo_messages) says what the caller declared: bytes, a rate, the
options. This module turns that into the PCM that goes out, lazily, block by
block, so the first message can leave before the last block is decoded. What
can be known before decoding (the format, emptiness, length, the work the
file's header promises) is checked first, so a bad or too costly file sends
nothing and costs nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import BinaryIO, Protocol

import numpy as np
import soundfile
import soxr

from echo_messages import (
    BYTES_PER_SAMPLE,
    SILENCE_MS,
    TAVUS_DEFAULT_SAMPLE_RATE,
    AudioRequest,
    pcm_duration_ms,
    silence,
)
from relay.errors import AudioTooLong, MessageError, RelayError, TooLarge, UnsupportedAudio

# The media types of a body that is an audio file (the decoder tells the format by the bytes); for the views and
# the OpenAPI document.
AUDIO_FILE_MIMETYPES = (
    "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/mpeg", "audio/mp3", "audio/flac",
    "audio/x-flac", "audio/ogg", "audio/opus", "application/ogg", "audio/aiff", "audio/x-aiff",
    "application/octet-stream",
)
# The Content-Type to name for each container an error finds where JSON belongs.
AUDIO_CONTENT_TYPES = {
    "wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg", "aiff": "audio/aiff"
}

PASSTHROUGH_SAMPLE_RATES = (16000, 24000)  # the rates Tavus documents; sent untouched
DECODE_BLOCK_FRAMES = 16384  # ~0.35 s at 44.1 kHz: decodes in about a millisecond, so the first message leaves at once


@dataclass(frozen=True)
class AudioLimits:
    """The bounds one request's audio is held to, and the rate files are resampled to."""

    target_rate: int
    max_seconds: float | None = None  # RELAY_MAX_AUDIO_SECONDS
    max_samples: int | None = None  # RELAY_MAX_AUDIO_SAMPLES: a file's frames times channels, from its header


@dataclass(frozen=True)
class UtteranceRates:
    """An open utterance's rates: the caller's PCM rate (the default for its next chunks) and the rate sent."""

    input_rate: int
    sent_rate: int


class OpenRates(Protocol):
    """Where an open utterance's rates are found by its inference_id (relay.utterances.OpenUtterances, or a dict)."""

    def get(self, inference_id: str, /) -> UtteranceRates | None: ...


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
    """An audio request, decoded: what the caller declared, and the PCM that goes out (produced as it is sent)."""

    request: AudioRequest
    audio: PcmStream
    input_rate: int | None = None  # the rate raw PCM came at (None for a file, which says its own)

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate


def decode(
    request: AudioRequest, limits: AudioLimits, open_utterances: OpenRates | None = None
) -> AudioEcho:
    """Raw PCM at a documented rate (16000, 24000) passes byte for byte; other PCM, and every file, goes at the target.

    A chunk that left out `sample_rate` takes its utterance's (from
    `open_utterances`), else Tavus's 16000; a `done` with no audio closes the
    utterance with 40 ms of silence at the rate the utterance was sent at.
    """
    source = request.audio
    if not isinstance(source, bytes):
        return AudioEcho(request, open_audio_file(source, limits))
    utterance = (open_utterances or {}).get(request.inference_id) if request.inference_id else None
    input_rate = request.sample_rate or (utterance.input_rate if utterance else TAVUS_DEFAULT_SAMPLE_RATE)
    if not source:
        rate = utterance.sent_rate if utterance else sent_rate_of(input_rate, limits.target_rate)
        return AudioEcho(request, PcmStream.of(silence(SILENCE_MS, rate), rate), input_rate)
    if audio_container(source):
        return AudioEcho(request, open_audio_file(io.BytesIO(source), limits))
    pcm, rate = _raw_pcm(source, input_rate, limits.target_rate, request.audio_name)
    check_duration(len(pcm), rate, limits.max_seconds)
    return AudioEcho(request, PcmStream.of(pcm, rate), input_rate)


def sent_rate_of(input_rate: int, target_rate: int) -> int:
    """Raw PCM at a rate Tavus documents goes as it is; any other rate is resampled to the target."""
    return input_rate if input_rate in PASSTHROUGH_SAMPLE_RATES else target_rate


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


def check_decode_work(frames: int, channels: int, samplerate: int, max_samples: int | None) -> None:
    """Decoding costs frames times channels: a small file of many channels at a high rate costs more than its
    length says.
    """
    if max_samples is not None and frames * channels > max_samples:
        raise TooLarge(
            f"the file holds {frames * channels} samples ({frames} frames x {channels} channels at {samplerate} Hz), "
            f"over RELAY_MAX_AUDIO_SAMPLES ({max_samples}): send fewer channels, a lower rate or a shorter file"
        )


# --- recognising a container ---------------------------------------------------------------


_MP3_BITRATES_KBPS = {  # layer III, by MPEG version: MPEG-1, and MPEG-2/2.5
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
MP3_FRAMES_TO_MATCH = 3  # consecutive frame headers, each where the last one's length says: no PCM does that


def audio_container(data: bytes) -> str | None:
    """The file format `data` is, by its bytes ("wav", "flac", "ogg", "aiff", "mp3"), or None for raw PCM.

    Raw PCM can start with any bytes, so every test here is strict: a whole
    signature, or (for an MP3 without an ID3 tag) several valid frame headers
    in a row, each exactly where the previous frame's length puts it.
    """
    if data[:4] in (b"RIFF", b"RIFX", b"RF64") and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS" and data[4:5] == b"\x00":
        return "ogg"
    if data[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if data[:3] == b"ID3" and len(data) >= 10 and data[3] < 0xFF and data[4] < 0xFF:
        return "mp3"
    return "mp3" if _mp3_frames_in_a_row(data) else None


def _mp3_frames_in_a_row(data: bytes) -> bool:
    offset = 0
    for _ in range(MP3_FRAMES_TO_MATCH):
        length = _mp3_frame_length(data[offset : offset + 4])
        if length is None:
            return False
        offset += length
        if offset >= len(data):
            return offset == len(data)  # a short file: its frames end exactly where the data does
    return True


def _mp3_frame_length(header: bytes) -> int | None:
    """The length of the MPEG layer III frame this 4-byte header starts, or None if it is not one."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    bitrate_index, rate_index, padding = header[2] >> 4, (header[2] >> 2) & 3, (header[2] >> 1) & 1
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    bitrate = _MP3_BITRATES_KBPS[1 if version == 3 else 2][bitrate_index] * 1000
    sample_rate = _MP3_SAMPLE_RATES[version][rate_index]
    return (144 if version == 3 else 72) * bitrate // sample_rate + padding


# --- decoding and resampling -----------------------------------------------------------------


def open_audio_file(source: BinaryIO, limits: AudioLimits) -> PcmStream:
    """Open a file soundfile can read and check it now; decode it lazily, block by block.

    Everything that can be known before sending (format, emptiness, length,
    the decoding work its header promises, the first block decoding) is
    checked here, so a bad file sends nothing.
    """
    try:
        sound = soundfile.SoundFile(source)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise _decode_error(error) from None
    if sound.frames == 0:
        raise MessageError("audio is empty: the file has no samples")
    check_duration(sound.frames * BYTES_PER_SAMPLE, sound.samplerate, limits.max_seconds)
    check_decode_work(sound.frames, sound.channels, sound.samplerate, limits.max_samples)
    blocks = _decoded_blocks(sound, limits.target_rate)
    try:
        first = next(blocks)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise _decode_error(error) from None
    return PcmStream(chain([first], blocks), limits.target_rate, max_seconds=limits.max_seconds)


def _decoded_blocks(sound: soundfile.SoundFile, target_rate: int) -> Iterator[bytes]:
    """Downmix, resample (soxr, streaming) and convert each block; the resampler is flushed at the end."""
    resampler = None if sound.samplerate == target_rate else soxr.ResampleStream(
        sound.samplerate, target_rate, 1, dtype="float32", quality="HQ"
    )
    downmix = np.full(sound.channels, 1 / sound.channels, dtype="float32")  # a dot product: far cheaper than mean()
    with sound:
        while (block := _read_float_block(sound)).size:
            mono = block @ downmix if sound.channels > 1 else block[:, 0]
            if resampler is not None:
                mono = resampler.resample_chunk(mono)
            if mono.size:
                yield float_to_s16le(mono)
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, dtype="float32"), last=True)
        if tail.size:
            yield float_to_s16le(tail)


def _read_float_block(sound: soundfile.SoundFile) -> np.ndarray:
    """The next block as floats in [-1, 1], as libsndfile gives them.

    A 16-bit file is read as 16-bit and scaled here: the same floats, bit for
    bit (int16 / 2**15 is exact), at a quarter of libsndfile's cost.
    """
    if sound.subtype != "PCM_16":
        return sound.read(DECODE_BLOCK_FRAMES, dtype="float32", always_2d=True)
    block = sound.read(DECODE_BLOCK_FRAMES, dtype="int16", always_2d=True)
    return block.astype(np.float32) * np.float32(1 / 32768)


def _decode_error(error: Exception) -> RelayError:
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
