"""Sniffing, decoding and resampling audio: what the caller's bytes become before they are split."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
import soundfile

from echo_messages import parse_audio_request
from relay.audio import AudioEcho, AudioLimits, audio_container, decode, float_to_s16le, open_audio_file
from relay.errors import AudioTooLong, MessageError, UnsupportedAudio, status_of

LIMITS = AudioLimits(target_rate=24000)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decoded(body: Any, *, max_seconds: float | None = None) -> AudioEcho:
    """A JSON body parsed as the routes parse it, then decoded at the relay's default rate."""
    return decode(parse_audio_request(body), AudioLimits(target_rate=24000, max_seconds=max_seconds))


def test_audio_request_defaults_done_false_and_rate_16000():
    echo = decoded({"audio": b64(bytes(4))})

    assert (echo.request.done, echo.sample_rate, b"".join(echo.audio)) == (False, 16000, bytes(4))


@pytest.mark.parametrize("rate", [16000, 24000])
def test_raw_pcm_at_a_documented_rate_passes_through_byte_identical(rate):
    pcm = np.random.default_rng(1).integers(-32768, 32767, 4800, dtype=np.int16).tobytes()

    echo = decoded({"audio": b64(pcm), "sample_rate": rate})

    assert b"".join(echo.audio) == pcm and echo.sample_rate == rate


def test_raw_pcm_at_another_rate_is_resampled_to_the_target():
    pcm = np.zeros(44100, dtype="<i2").tobytes()

    echo = decoded({"audio": b64(pcm), "sample_rate": "44100"})

    assert echo.sample_rate == 24000 and len(b"".join(echo.audio)) == 24000 * 2


def test_wav_is_decoded_downmixed_and_resampled():
    t = np.arange(48000) / 48000
    stereo = np.stack([np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t)], axis=1) * 0.5
    buffer = io.BytesIO()
    soundfile.write(buffer, stereo, 48000, format="WAV", subtype="FLOAT")

    echo = decoded({"audio": b64(buffer.getvalue()), "sample_rate": 16000})

    samples = np.frombuffer(b"".join(echo.audio), dtype="<i2")
    assert echo.sample_rate == 24000 and len(samples) == 24000
    peak_hz = np.argmax(np.abs(np.fft.rfft(samples))) * 24000 / len(samples)
    assert abs(peak_hz - 1000) <= 2


def test_corrupt_wav_is_a_bad_request_naming_the_damage():
    with pytest.raises(MessageError, match="could not decode audio: .*WAV") as caught:
        decoded({"audio": b64(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")})

    assert status_of(caught.value) == 400


def test_an_unknown_format_is_unsupported_audio_without_the_file_objects_repr():
    with pytest.raises(UnsupportedAudio) as caught:
        open_audio_file(io.BytesIO(b"not audio at all" * 20), LIMITS)

    assert str(caught.value) == "could not decode audio: Format not recognised (send WAV, MP3, FLAC or OGG)"
    assert status_of(caught.value) == 415


@pytest.mark.parametrize("channels", [1, 2])
def test_a_16_bit_file_decodes_to_exactly_what_the_same_samples_as_floats_do(channels):
    """16-bit files are read as 16-bit and scaled by the relay: the PCM sent must not change by one bit for it."""
    samples = np.random.default_rng(7).integers(-32768, 32768, (44100, channels)).astype("<i2")
    as_int16, as_float = io.BytesIO(), io.BytesIO()
    soundfile.write(as_int16, samples, 44100, format="WAV", subtype="PCM_16")
    soundfile.write(as_float, samples / 32768.0, 44100, format="WAV", subtype="FLOAT")  # exact: int16 / 2**15
    as_int16.seek(0)
    as_float.seek(0)

    sent = b"".join(open_audio_file(as_int16, LIMITS))

    assert sent == b"".join(open_audio_file(as_float, LIMITS))
    assert len(sent) == 24000 * 2


def test_audio_over_the_length_limit_is_refused():
    with pytest.raises(AudioTooLong, match="RELAY_MAX_AUDIO_SECONDS"):
        decoded({"audio": b64(bytes(16000 * 2 * 3))}, max_seconds=2)


def test_floats_are_clipped_not_wrapped():
    assert np.frombuffer(float_to_s16le(np.array([1.5, -1.5, 1.0, 0.0])), dtype="<i2").tolist() == [32767, -32768, 32767, 0]


def test_raw_pcm_that_starts_like_an_mp3_frame_is_still_raw_pcm():
    """0xFF 0xE0 is just a small negative sample; only a WAV's 12-byte signature makes JSON audio a file."""
    pcm = bytes([0xFF, 0xE0]) + bytes(958)

    echo = decoded({"audio": b64(pcm), "sample_rate": 24000})

    assert b"".join(echo.audio) == pcm


@pytest.mark.parametrize(
    "fmt, subtype, expected",
    [("WAV", "PCM_16", "wav"), ("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"), ("OGG", "OPUS", "ogg"),
     ("MP3", "MPEG_LAYER_III", "mp3"), ("AIFF", "PCM_16", "aiff")],
)
def test_every_container_the_upload_takes_is_recognised_by_its_bytes(fmt, subtype, expected):
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(48000, dtype="float32"), 48000, format=fmt, subtype=subtype)

    assert audio_container(buffer.getvalue()) == expected


def test_random_pcm_that_starts_with_an_mp3_frame_sync_is_never_taken_for_a_file():
    rng = np.random.default_rng(3)
    for _ in range(2000):
        pcm = rng.integers(-32768, 32767, 2400, dtype=np.int16).astype("<i2").tobytes()
        assert audio_container(b"\xff\xfb\x94\xc4" + pcm) is None
