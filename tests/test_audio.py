"""Sniffing, decoding and resampling audio: what the caller's bytes become before they are split."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
import soundfile

from config import Settings
from echo_messages import parse_audio_request
from relay.audio import AudioEcho, AudioLimits, audio_container, decode, float_to_s16le, open_audio_file
from relay.errors import AudioTooLong, MessageError, TooLarge, UnsupportedAudio, status_of

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
    assert np.frombuffer(float_to_s16le(np.array([1.5, -1.5, 1.0, 0.0])), dtype="<i2").tolist() == [
        32767, -32768, 32767, 0
    ]


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


# --- the work a file's header promises is bounded before anything is decoded ------------------


def flac_promising(frames: int, *, channels: int, rate: int) -> bytes:
    """A tiny FLAC whose STREAMINFO header says it holds `frames` frames: what the relay bounds, read from the
    header.
    """
    data = bytearray(encode_file(np.zeros((rate // 10, channels)), rate, "FLAC", "PCM_16"))
    info = 8  # "fLaC", then the STREAMINFO block's 4-byte header
    packed = int.from_bytes(data[info + 10 : info + 18], "big")  # rate (20 bits), channels, bits, total (36 bits)
    data[info + 10 : info + 18] = ((packed >> 36 << 36) | frames).to_bytes(8, "big")
    return bytes(data)


def encode_file(samples: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def test_a_small_file_whose_header_promises_more_samples_than_the_bound_is_too_large_before_decoding(monkeypatch):
    """A file of a few KB whose header promises 192 kHz, 8 channels, 599 s."""
    from relay import audio

    data = flac_promising(599 * 192000, channels=8, rate=192000)
    assert soundfile.info(io.BytesIO(data)).frames == 599 * 192000 and len(data) < 20_000
    monkeypatch.setattr(audio, "_decoded_blocks", lambda *args: pytest.fail("decoding started"))

    with pytest.raises(TooLarge) as caught:
        open_audio_file(io.BytesIO(data), AudioLimits(target_rate=24000, max_samples=600 * 96000))

    assert str(caught.value) == (
        "the file holds 920064000 samples (115008000 frames x 8 channels at 192000 Hz), over RELAY_MAX_AUDIO_SAMPLES "
        "(57600000): send fewer channels, a lower rate or a shorter file"
    )
    assert status_of(caught.value) == 413


def test_the_default_sample_bound_passes_the_longest_audio_of_48khz_stereo(monkeypatch):
    from relay import audio

    seconds = Settings().max_audio_seconds
    data = flac_promising(int(seconds * 48000), channels=2, rate=48000)
    monkeypatch.setattr(audio, "_decoded_blocks", lambda sound, rate: iter([bytes(2)]))  # the header is all that counts

    stream = open_audio_file(io.BytesIO(data), AudioLimits(24000, seconds, Settings().max_audio_samples))

    assert stream.sample_rate == 24000


# --- libmpg123's own lines stay off the terminal ------------------------------------------------


def noisy_mp3(seconds: float = 1.0) -> bytes:
    """An MP3 that plays whole, but one damaged frame makes libmpg123 print an `error:` line on fd 2."""
    tone = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(int(44100 * seconds)) / 44100)
    data = bytearray(encode_file(tone, 44100, "MP3", "MPEG_LAYER_III"))
    frame = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xFB][5]
    data[frame + 6 : frame + 8] = b"\xff\xf0"  # the side info's part2_3_length: too large for the frame
    return bytes(data)


DECODE_IN_A_PROCESS = """
import io, os, sys
from relay.audio import AudioLimits, open_audio_file
from relay.daily_logs import hide_native_log_lines
if sys.argv[1] == "filtered":
    hide_native_log_lines()
os.write(2, b"a line of the relay's own\\n")
pcm = b"".join(open_audio_file(io.BytesIO(sys.stdin.buffer.read()), AudioLimits(44100)))
print(len(pcm))
"""


@pytest.mark.parametrize("mode", ["filtered", "unfiltered"])
def test_libmpg123s_own_lines_do_not_reach_stderr_and_the_relays_do(mode):
    """Unfiltered is the control: it shows the file really makes libmpg123 speak."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "-c", DECODE_IN_A_PROCESS, mode], input=noisy_mp3(), capture_output=True, check=False,
        cwd=Path(__file__).resolve().parent.parent, timeout=60,
    )

    assert done.returncode == 0 and done.stdout.decode().strip() == str(44100 * 2)
    assert b"a line of the relay's own\n" in done.stderr
    assert (b"[src/libmpg123/" in done.stderr) is (mode == "unfiltered"), done.stderr
