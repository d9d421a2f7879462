"""Audio files in (raw body, multipart, base64 in JSON), size-safe audio echo out; microphone echo."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import numpy as np
import pytest
import soundfile

import echo_messages
from config import Settings
from echo_messages import serialized_size
from relay import audio
from relay.room import Room, join_client_settings
from tests.conftest import CONVERSATION_URL, sent_messages, wait_until

TARGET = 24000
FRAME_10MS = TARGET // 100


def tone(seconds: float, rate: int, hz: float = 1000.0, channels: int = 1, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = amplitude * np.sin(2 * np.pi * hz * t)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def chirp(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.4 * np.sin(2 * np.pi * (200 + 900 * t / seconds) * t)


def noise(seconds: float, rate: int) -> np.ndarray:
    return np.random.default_rng(7).uniform(-0.3, 0.3, (int(seconds * rate), 2))


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def decoded_pcm(messages: list[dict[str, Any]]) -> np.ndarray:
    return np.frombuffer(b"".join(base64.b64decode(m["properties"]["audio"]) for m in messages), dtype="<i2")


def peak_hz(samples: np.ndarray, rate: int) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(samples.astype(np.float64)))) * rate / len(samples))


FILES = [
    # (name, samples, rate, format, subtype, content type)
    ("wav16-8k-mono-tone", tone(1.0, 8000), 8000, "WAV", "PCM_16", "audio/wav"),
    ("wav24-16k-stereo-tone", tone(1.0, 16000, channels=2), 16000, "WAV", "PCM_24", "audio/x-wav"),
    ("wavfloat-44k1-mono-tone", tone(1.0, 44100), 44100, "WAV", "FLOAT", "audio/wav"),
    ("wav16-48k-stereo-noise", noise(1.0, 48000), 48000, "WAV", "PCM_16", "audio/wav"),
    ("wav16-24k-mono-chirp", chirp(1.0, 24000), 24000, "WAV", "PCM_16", "audio/wav"),
    ("flac-22k05-mono-tone", tone(1.0, 22050), 22050, "FLAC", "PCM_16", "audio/flac"),
    ("flac-48k-stereo-tone", tone(1.0, 48000, channels=2), 48000, "FLAC", "PCM_24", "audio/flac"),
    ("ogg-vorbis-44k1-mono-tone", tone(1.0, 44100), 44100, "OGG", "VORBIS", "audio/ogg"),
    ("ogg-opus-48k-mono-tone", tone(1.0, 48000), 48000, "OGG", "OPUS", "audio/ogg"),
    ("mp3-44k1-stereo-tone", tone(1.0, 44100, channels=2), 44100, "MP3", "MPEG_LAYER_III", "audio/mpeg"),
    ("octet-stream-wav", tone(1.0, 16000), 16000, "WAV", "PCM_16", "application/octet-stream"),
]


@pytest.mark.parametrize("name, samples, rate, fmt, subtype, content_type", FILES, ids=[f[0] for f in FILES])
def test_audio_files_become_one_size_safe_utterance_at_the_relay_rate(
    client, fake_call_client, settings, name, samples, rate, fmt, subtype, content_type
):
    data = encode(samples, rate, fmt, subtype)

    response = client.post("/send_audio_message", data=data, content_type=content_type)

    assert response.status_code == 200, response.get_json()
    messages = sent_messages(fake_call_client)
    pcm = decoded_pcm(messages)
    expected = len(samples) * TARGET / rate
    assert abs(len(pcm) - expected) <= FRAME_10MS
    assert all(serialized_size(m) <= settings.max_message_bytes for m in messages)
    assert {m["properties"]["sample_rate"] for m in messages} == {TARGET}
    assert len({m["properties"]["inference_id"] for m in messages}) == 1
    assert [m["properties"]["done"] for m in messages] == [False] * (len(messages) - 1) + [True]
    body = response.get_json()
    assert body["sample_rate"] == TARGET and body["messages_sent"] == len(messages)
    assert abs(body["audio_ms"] - len(samples) * 1000 / rate) <= 10
    if "tone" in name:
        assert abs(peak_hz(pcm, TARGET) - 1000) <= 2


def test_loud_audio_is_clipped_not_wrapped_around(client, fake_call_client):
    data = encode(np.full(2400, 1.5, dtype="float32"), 24000, "WAV", "FLOAT")

    client.post("/send_audio_message", data=data, content_type="audio/wav")

    pcm = decoded_pcm(sent_messages(fake_call_client))
    assert pcm.min() == 32767 and pcm.max() == 32767


def test_multipart_field_file_with_form_options(client, fake_call_client):
    data = encode(tone(0.5, 16000), 16000, "WAV", "PCM_16")

    response = client.post(
        "/send_audio_message",
        data={"file": (io.BytesIO(data), "speech.wav"), "inference_id": "upload-1", "done": "false"},
        content_type="multipart/form-data",
    )

    assert response.status_code == 200
    messages = sent_messages(fake_call_client)
    assert {m["properties"]["inference_id"] for m in messages} == {"upload-1"}
    assert not any(m["properties"]["done"] for m in messages)


def test_query_parameters_set_id_interrupt_and_keep_the_utterance_open(client, fake_call_client):
    data = encode(tone(0.3, 24000), 24000, "WAV", "PCM_16")

    response = client.post(
        "/send_audio_message?inference_id=part-1&interrupt=true&done=false", data=data, content_type="audio/wav"
    )

    assert response.status_code == 200 and response.get_json()["inference_id"] == "part-1"
    messages = sent_messages(fake_call_client)
    assert messages[0]["event_type"] == "conversation.interrupt"
    assert {m["properties"]["done"] for m in messages[1:]} == {False}


def test_json_base64_wav_is_streamed_like_a_file(client, fake_call_client):
    data = encode(tone(0.5, 44100, channels=2), 44100, "WAV", "PCM_16")

    response = client.post("/send_audio_message", json={"audio": base64.b64encode(data).decode(), "done": True})

    assert response.status_code == 200 and response.get_json()["sample_rate"] == TARGET
    assert abs(len(decoded_pcm(sent_messages(fake_call_client))) - TARGET // 2) <= FRAME_10MS


@pytest.mark.parametrize(
    "data, content_type, status, words",
    [
        (b"\x00\x01garbage" * 50, "audio/wav", 415, "could not decode audio: Format not recognised"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav", 400, "could not decode audio"),
        (b"", "audio/wav", 400, "audio is empty"),
        (encode(np.zeros(0), 16000, "WAV", "PCM_16"), "audio/wav", 400, "audio is empty: the file has no samples"),
        (b"\x89PNG\r\n", "image/png", 415, "Content-Type 'image/png' is not supported"),
        (b"\x00" * 100, "audio/aac", 415, "send WAV, MP3, FLAC or OGG"),
        (b"{}", "multipart/form-data; boundary=x", 400, "a field named file"),
    ],
    ids=["junk", "truncated-wav-header", "zero-length", "no-samples", "png", "aac", "multipart-without-file"],
)
def test_bad_audio_gets_a_clear_error_and_sends_nothing(client, fake_call_client, data, content_type, status, words):
    response = client.post("/send_audio_message", data=data, content_type=content_type)

    assert response.status_code == status
    assert words in response.get_json()["error"]
    assert sent_messages(fake_call_client) == []


def test_audio_longer_than_the_limit_is_413_and_sends_nothing(room, fake_call_client, make_app):
    app = make_app(Settings(max_audio_seconds=1), room)
    response = app.test_client().post(
        "/send_audio_message", data=encode(tone(2, 8000), 8000, "WAV", "PCM_16"), content_type="audio/wav"
    )

    assert response.status_code == 413 and "RELAY_MAX_AUDIO_SECONDS" in response.get_json()["error"]
    assert sent_messages(fake_call_client) == []


def test_a_raw_audio_body_over_the_body_limit_is_413(room, fake_call_client, make_app):
    app = make_app(Settings(max_body_bytes=4096), room)
    response = app.test_client().post(
        "/send_audio_message", data=encode(tone(1, 16000), 16000, "WAV", "PCM_16"), content_type="audio/wav"
    )

    assert response.status_code == 413 and "RELAY_MAX_BODY_BYTES" in response.get_json()["error"]
    assert sent_messages(fake_call_client) == []


def test_the_first_chunk_of_a_long_file_leaves_before_the_file_is_decoded(client, fake_call_client, monkeypatch):
    """Ordering, not wall time: the first send precedes the decoder producing its last block."""
    produced_at: list[float] = []
    original = audio._decoded_blocks

    def timed_blocks(*args: Any, **kwargs: Any):
        for block in original(*args, **kwargs):
            produced_at.append(time.monotonic())
            yield block

    monkeypatch.setattr(audio, "_decoded_blocks", timed_blocks)
    data = encode(np.zeros(16000 * 600, dtype="int16"), 16000, "WAV", "PCM_16")  # ten minutes

    response = client.post("/send_audio_message", data=data, content_type="audio/wav")

    assert response.status_code == 200
    assert response.get_json()["audio_ms"] == 600_000
    fake_call_client.settle()
    assert fake_call_client.sent_at[0] < produced_at[-1]
    assert fake_call_client.sent_at[0] < produced_at[len(produced_at) // 100]


def test_streaming_a_ten_minute_file_needs_far_less_memory_than_its_pcm():
    """The pipeline holds a few blocks at a time, never every message (tracemalloc counts numpy too)."""
    import tracemalloc

    data = encode(np.zeros(16000 * 600, dtype="int16"), 16000, "WAV", "PCM_16")
    decoded_bytes = 600 * TARGET * 2
    tracemalloc.start()
    try:
        pcm = audio.open_audio_file(io.BytesIO(data), audio.AudioLimits(target_rate=TARGET))
        count = sum(
            1
            for _ in echo_messages.audio_echo_messages(
                pcm, sample_rate=TARGET, conversation_id="c", inference_id="i", done=True
            )
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count > 9000
    assert peak < decoded_bytes * 0.1


# --- microphone echo -----------------------------------------------------------------------


@pytest.fixture
def microphone_app(make_app, fake_daily):
    device = fake_daily.microphone_factory(TARGET, blocking=True)
    room = Room(
        CONVERSATION_URL, client_factory=fake_daily.factory, client_settings=join_client_settings(microphone=True)
    )
    room.join(timeout=2)
    yield make_app(Settings(), room, microphone_device=device).test_client(), device
    room.leave()


def pcm_clip(ms: int, value: int) -> bytes:
    return np.full(TARGET * ms // 1000, value, dtype="<i2").tobytes()


def test_microphone_clips_play_in_order_in_real_time_and_answer_202_at_once(microphone_app, fake_call_client):
    client, device = microphone_app
    first, second = pcm_clip(105, 100), pcm_clip(50, 200)
    device.gate.clear()  # the device takes nothing until the answers are in: they cannot have waited for playback

    a = client.post("/microphone", json={"audio": base64.b64encode(first).decode(), "sample_rate": TARGET})
    b = client.post("/microphone", json={"audio": base64.b64encode(second).decode(), "sample_rate": TARGET})
    device.gate.set()

    assert (a.status_code, b.status_code) == (202, 202)
    assert set(a.get_json()) == {"status", "mode", "clip_id", "audio_ms", "queued_ms"}
    assert a.get_json()["audio_ms"] == 110  # padded to whole 10 ms frames
    assert 110 + 50 - 20 <= b.get_json()["queued_ms"] <= 110 + 50  # at most the one 20 ms write held at the gate
    wait_until(lambda: len(device.played) >= len(first) + 240 + len(second))
    assert device.played == first + bytes(240) + second
    assert all(len(frames) % (TARGET // 100 * 2) == 0 for _, frames in device.writes)
    assert sent_messages(fake_call_client) == []  # microphone echo sends no app messages


def test_microphone_resamples_files_to_its_rate(microphone_app):
    client, device = microphone_app

    response = client.post("/microphone", data=encode(tone(0.1, 8000), 8000, "WAV", "PCM_16"), content_type="audio/wav")

    assert response.status_code == 202 and response.get_json()["audio_ms"] == 100
    wait_until(lambda: len(device.played) >= TARGET // 10 * 2)
    assert abs(peak_hz(np.frombuffer(device.played, dtype="<i2"), TARGET) - 1000) <= 10


def test_interrupt_empties_the_microphone_queue_and_stops_the_clip_within_20ms(microphone_app):
    client, device = microphone_app
    client.post("/microphone", json={"audio": base64.b64encode(pcm_clip(2000, 1)).decode(), "sample_rate": TARGET})
    client.post("/microphone", json={"audio": base64.b64encode(pcm_clip(500, 2)).decode(), "sample_rate": TARGET})
    wait_until(lambda: len(device.writes) >= 3)
    assert client.get("/health").get_json()["microphone"]["playing_clip"] is not None

    interrupted_at = time.monotonic()
    response = client.post("/interrupt")
    time.sleep(0.1)

    assert response.get_json()["microphone_clips_dropped"] == 2
    played_after = sum(len(frames) for at, frames in device.writes if at > interrupted_at)
    assert played_after <= TARGET * 20 // 1000 * 2  # at most the one 20 ms write already under way
    assert 2 not in set(np.frombuffer(device.played, dtype="<i2").tolist())
    assert client.get("/health").get_json()["microphone"] == {
        "enabled": True, "playing_clip": None, "queued_ms": 0, "frames_played": len(device.played) // 2,
        "frames_refused": 0, "taking_audio": True,
    }


def test_frames_daily_does_not_take_are_not_counted_and_health_says_so(room, make_app, fake_daily, caplog):
    """The room was joined without the microphone selected, so daily's write_frames takes nothing."""
    client = make_app(Settings(), room, microphone_device=fake_daily.microphone_factory(TARGET)).test_client()

    client.post("/microphone", json={"audio": base64.b64encode(pcm_clip(40, 5)).decode(), "sample_rate": TARGET})
    wait_until(lambda: client.get("/health").get_json()["microphone"]["frames_refused"] == 960)

    microphone = client.get("/health").get_json()["microphone"]
    assert microphone["frames_played"] == 0 and microphone["taking_audio"] is False
    assert "the relay's microphone is not in the call" in caplog.text


def test_microphone_without_the_flag_is_409_saying_how_to_start_it(client):
    response = client.post("/microphone", data=encode(tone(0.1, 8000), 8000, "WAV", "PCM_16"), content_type="audio/wav")

    assert response.status_code == 409
    assert "--microphone" in response.get_json()["error"]


def test_empty_microphone_clip_is_400(microphone_app):
    client, _ = microphone_app

    response = client.post("/microphone", json={"done": True})

    assert response.status_code == 400 and "audio is empty" in response.get_json()["error"]


def test_main_with_microphone_joins_with_the_virtual_microphone_and_camera_off(monkeypatch, tmp_path, fake_daily):
    import app as relay_app
    from relay import run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RELAY_PORT", "0")
    monkeypatch.setattr(run.Run, "serve", lambda *args, **kwargs: 0)

    code = relay_app.main(
        [CONVERSATION_URL, "--microphone"],
        client_factory=fake_daily.factory,
        microphone_factory=fake_daily.microphone_factory,
    )

    assert code == 0
    assert [device.sample_rate for device in fake_daily.microphones] == [24000]
    assert fake_daily.client.joined_with["client_settings"] == {
        "inputs": {
            "camera": False, "microphone": {"isEnabled": True, "settings": {"deviceId": "echo-relay-microphone"}}
        }
    }


def test_dry_run_microphone_counts_frames_without_playing(make_app):
    from relay.dry_run import DryRunRoom
    from relay.microphone import CountingMicrophoneDevice

    app = make_app(Settings(), DryRunRoom(io.StringIO()), microphone_device=CountingMicrophoneDevice(TARGET))
    client = app.test_client()

    response = client.post(
        "/microphone", json={"audio": base64.b64encode(pcm_clip(40, 5)).decode(), "sample_rate": TARGET}
    )
    wait_until(lambda: client.get("/health").get_json()["microphone"]["frames_played"] == 960)

    assert response.status_code == 202 and response.get_json()["mode"] == "dry-run"


def test_a_file_promising_more_samples_than_the_bound_is_413_naming_the_setting_and_sends_nothing(
    room, fake_call_client, make_app
):
    from tests.test_audio import flac_promising

    app = make_app(Settings(max_audio_samples=100_000), room)
    data = flac_promising(48000, channels=8, rate=48000)  # 1 s: well within RELAY_MAX_AUDIO_SECONDS

    response = app.test_client().post("/send_audio_message", data=data, content_type="audio/flac")

    assert response.status_code == 413
    assert response.get_json()["error"] == (
        "the file holds 384000 samples (48000 frames x 8 channels at 48000 Hz), over RELAY_MAX_AUDIO_SAMPLES (100000): "
        "send fewer channels, a lower rate or a shorter file"
    )
    assert sent_messages(fake_call_client) == []


def test_the_dry_run_keeps_libmpg123s_lines_off_its_terminal_and_answers_200(tmp_path):
    import requests

    from tests.test_app_main import finish, start, wait_for_port
    from tests.test_audio import noisy_mp3

    process = start([], tmp_path)
    try:
        port = wait_for_port(process)
        response = requests.post(
            f"http://127.0.0.1:{port}/send_audio_message",
            data=noisy_mp3(0.3),
            headers={"Content-Type": "audio/mpeg"},
            timeout=30,
        )
        process.terminate()
        _, stderr = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert response.status_code == 200 and response.json()["audio_ms"] == 300
    assert "POST /send_audio_message 200" in stderr
    assert "libmpg123" not in stderr


# --- the microphone queue is bounded ----------------------------------------------------------


@pytest.fixture
def bounded_microphone(make_app, fake_daily):
    """A microphone whose queue takes 0.5 s of audio; its device takes nothing until the test opens its gate."""
    device = fake_daily.microphone_factory(TARGET, blocking=True)
    device.gate.clear()
    room = Room(
        CONVERSATION_URL, client_factory=fake_daily.factory, client_settings=join_client_settings(microphone=True)
    )
    room.join(timeout=2)
    yield make_app(Settings(max_microphone_queue_seconds=0.5), room, microphone_device=device).test_client(), device
    device.gate.set()
    room.leave()


def test_a_clip_past_the_microphone_queue_bound_is_429_saying_how_much_is_queued_and_queues_nothing(bounded_microphone):
    client, device = bounded_microphone
    first, second = pcm_clip(300, 1), pcm_clip(300, 2)
    queued = client.post("/microphone", json={"audio": base64.b64encode(first).decode(), "sample_rate": TARGET})

    refused = client.post("/microphone", json={"audio": base64.b64encode(second).decode(), "sample_rate": TARGET})

    assert queued.status_code == 202
    assert refused.status_code == 429
    assert refused.get_json()["error"] == (
        "the microphone queue holds 0.3 s of audio and this clip is 0.3 s, over RELAY_MAX_MICROPHONE_QUEUE_SECONDS "
        "(0.5 s): wait for it to play, or POST /interrupt to empty it"
    )
    device.gate.set()
    wait_until(lambda: len(device.played) >= len(first))
    wait_until(lambda: client.get("/health").get_json()["microphone"]["playing_clip"] is None)
    assert device.played == first


def test_a_clip_longer_than_the_microphone_queue_bound_is_429_even_when_the_queue_is_empty(bounded_microphone):
    client, _ = bounded_microphone

    refused = client.post("/microphone", data=encode(tone(0.6, 8000), 8000, "WAV", "PCM_16"), content_type="audio/wav")

    assert refused.status_code == 429
    assert refused.get_json()["error"].startswith("the microphone queue holds 0.0 s of audio and this clip is 0.6 s")
    assert client.get("/health").get_json()["microphone"]["queued_ms"] == 0
