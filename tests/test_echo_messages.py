"""Parsing, building and splitting echo messages: pure functions, exact outputs."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

import echo_messages
from echo_messages import (
    audio_echo_messages,
    echo_message,
    float_to_s16le,
    interrupt_message,
    open_audio_file,
    parse_audio_request,
    parse_text_request,
    serialized_size,
    text_echo_messages,
)
from relay.errors import AudioTooLong, MessageError, UnsupportedAudio, status_of


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- parsing ------------------------------------------------------------------


def test_quickstart_and_flat_forms_parse_alike():
    quickstart = parse_text_request({"conversation_id": "c1", "properties": {"text": "Hi", "done": "false"}})
    flat = parse_text_request({"conversation_id": "c1", "text": "Hi", "done": False})

    assert quickstart == flat
    assert quickstart.done is False and quickstart.conversation_id == "c1"


def test_text_request_defaults():
    echo = parse_text_request({"text": "Hi"})

    assert (echo.done, echo.interrupt, echo.inference_id, echo.conversation_id) == (True, False, None, None)


def test_audio_request_defaults_done_false_and_rate_16000():
    echo = parse_audio_request({"audio": b64(bytes(4))}, target_rate=24000)

    assert (echo.done, echo.sample_rate, b"".join(echo.audio)) == (False, 16000, bytes(4))


def test_audio_base64_with_line_breaks_from_the_base64_tool_is_accepted():
    pcm = bytes(range(200))
    wrapped = base64.encodebytes(pcm).decode()  # 76-column lines, as `base64 file` prints

    assert b"".join(parse_audio_request({"audio": wrapped}, target_rate=24000).audio) == pcm


@pytest.mark.parametrize("rate", [16000, 24000])
def test_raw_pcm_at_a_documented_rate_passes_through_byte_identical(rate):
    pcm = np.random.default_rng(1).integers(-32768, 32767, 4800, dtype=np.int16).tobytes()

    echo = parse_audio_request({"audio": b64(pcm), "sample_rate": rate}, target_rate=24000)

    assert b"".join(echo.audio) == pcm and echo.sample_rate == rate


def test_raw_pcm_at_another_rate_is_resampled_to_the_target():
    pcm = np.zeros(44100, dtype="<i2").tobytes()

    echo = parse_audio_request({"audio": b64(pcm), "sample_rate": "44100"}, target_rate=24000)

    assert echo.sample_rate == 24000 and len(b"".join(echo.audio)) == 24000 * 2


def test_wav_is_decoded_downmixed_and_resampled():
    t = np.arange(48000) / 48000
    stereo = np.stack([np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t)], axis=1) * 0.5
    buffer = io.BytesIO()
    soundfile.write(buffer, stereo, 48000, format="WAV", subtype="FLOAT")

    echo = parse_audio_request({"audio": b64(buffer.getvalue()), "sample_rate": 16000}, target_rate=24000)

    samples = np.frombuffer(b"".join(echo.audio), dtype="<i2")
    assert echo.sample_rate == 24000 and len(samples) == 24000
    peak_hz = np.argmax(np.abs(np.fft.rfft(samples))) * 24000 / len(samples)
    assert abs(peak_hz - 1000) <= 2


def test_corrupt_wav_is_a_bad_request_naming_the_damage():
    with pytest.raises(MessageError, match="could not decode audio: .*WAV") as caught:
        parse_audio_request({"audio": b64(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")}, target_rate=24000)

    assert status_of(caught.value) == 400


def test_an_unknown_format_is_unsupported_audio_without_the_file_objects_repr():
    with pytest.raises(UnsupportedAudio) as caught:
        open_audio_file(io.BytesIO(b"not audio at all" * 20), target_rate=24000)

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

    sent = b"".join(open_audio_file(as_int16, target_rate=24000))

    assert sent == b"".join(open_audio_file(as_float, target_rate=24000))
    assert len(sent) == 24000 * 2


def test_audio_over_the_length_limit_is_refused():
    with pytest.raises(AudioTooLong, match="RELAY_MAX_AUDIO_SECONDS"):
        parse_audio_request({"audio": b64(bytes(16000 * 2 * 3))}, target_rate=24000, max_seconds=2)


def test_floats_are_clipped_not_wrapped():
    assert np.frombuffer(float_to_s16le(np.array([1.5, -1.5, 1.0, 0.0])), dtype="<i2").tolist() == [32767, -32768, 32767, 0]


# --- building -----------------------------------------------------------------


def test_echo_message_leaves_out_none_properties():
    assert echo_message("c1", modality="text", text="Hi", inference_id=None, done=True) == {
        "message_type": "conversation",
        "event_type": "conversation.echo",
        "conversation_id": "c1",
        "properties": {"modality": "text", "text": "Hi", "done": True},
    }


def test_interrupt_message_has_no_properties():
    assert interrupt_message("c1") == {
        "message_type": "conversation",
        "event_type": "conversation.interrupt",
        "conversation_id": "c1",
    }


def test_size_is_measured_on_escaped_json_bytes_not_characters():
    message = echo_message("c1", modality="text", text="é" * 100)

    assert serialized_size(message) == len(json.dumps(message, separators=(",", ":"))) 
    assert serialized_size(message) > 100 * 6


def test_text_is_split_at_sentences_when_it_can_be():
    text = "First sentence here. " * 300

    pieces = [m["properties"]["text"] for m in text_echo_messages(text, conversation_id="c", inference_id="i", done=True)]

    assert len(pieces) > 1 and all(piece.endswith("here. ") for piece in pieces)


def test_text_without_spaces_is_still_split_to_fit():
    text = "x" * 10000

    messages = list(text_echo_messages(text, conversation_id="c", inference_id="i", done=True, max_bytes=600))

    assert "".join(m["properties"]["text"] for m in messages) == text
    assert all(serialized_size(m) <= 600 for m in messages)


def test_envelope_too_big_for_the_limit_is_a_message_error():
    with pytest.raises(MessageError, match="too long to fit"):
        list(text_echo_messages("Hi there", conversation_id="c" * 600, inference_id="i", done=True, max_bytes=600))


def test_done_only_audio_becomes_40ms_of_silence():
    (message,) = audio_echo_messages(b"", sample_rate=16000, conversation_id="c", inference_id="i", done=True)

    assert base64.b64decode(message["properties"]["audio"]) == bytes(16000 * 40 // 1000 * 2)


def test_audio_blocks_of_any_size_are_rechunked_exactly():
    pcm = bytes(range(256)) * 100
    blocks = [pcm[i : i + 777] for i in range(0, len(pcm), 777)]

    messages = list(audio_echo_messages(iter(blocks), sample_rate=24000, conversation_id="c", inference_id="i", done=True))

    assert b"".join(base64.b64decode(m["properties"]["audio"]) for m in messages) == pcm


def test_4096_byte_messages_carry_about_60ms_at_24khz():
    pcm = bytes(24000 * 2)

    first = next(audio_echo_messages(pcm, sample_rate=24000, conversation_id="c123", inference_id="x" * 32, done=True))

    chunk = len(base64.b64decode(first["properties"]["audio"]))
    assert 2800 <= chunk <= 2940 and serialized_size(first) <= 4096


# --- properties of the splitters ------------------------------------------------

ids = st.text(min_size=1, max_size=40).filter(str.strip)


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(min_size=1, max_size=6000),
    inference_id=ids,
    done=st.booleans(),
    max_bytes=st.integers(min_value=512, max_value=4096),
)
def test_text_pieces_fit_rebuild_the_input_share_one_id_and_done_only_last(text, inference_id, done, max_bytes):
    messages = list(text_echo_messages(text, conversation_id="c123", inference_id=inference_id, done=done, max_bytes=max_bytes))

    assert all(serialized_size(m) <= max_bytes for m in messages)
    assert "".join(m["properties"]["text"] for m in messages) == text
    assert {m["properties"]["inference_id"] for m in messages} == {inference_id}
    assert [m["properties"]["done"] for m in messages] == [False] * (len(messages) - 1) + [done]
    assert all(m["properties"]["text"] for m in messages)


@settings(max_examples=150, deadline=None)
@given(
    samples=st.integers(min_value=1, max_value=20000),
    rate=st.sampled_from([8000, 16000, 24000, 48000]),
    inference_id=ids,
    done=st.booleans(),
    max_bytes=st.integers(min_value=512, max_value=8192),
)
def test_pcm_pieces_fit_rebuild_the_input_on_whole_samples(samples, rate, inference_id, done, max_bytes):
    pcm = np.random.default_rng(samples).integers(-32768, 32767, samples, dtype=np.int16).tobytes()

    messages = list(
        audio_echo_messages(pcm, sample_rate=rate, conversation_id="c123", inference_id=inference_id, done=done, max_bytes=max_bytes)
    )

    chunks = [base64.b64decode(m["properties"]["audio"]) for m in messages]
    assert all(serialized_size(m) <= max_bytes for m in messages)
    assert b"".join(chunks) == pcm and all(chunk and len(chunk) % 2 == 0 for chunk in chunks)
    assert {m["properties"]["inference_id"] for m in messages} == {inference_id}
    assert {m["properties"]["sample_rate"] for m in messages} == {rate}
    assert [m["properties"]["done"] for m in messages] == [False] * (len(messages) - 1) + [done]


def test_raw_pcm_that_starts_like_an_mp3_frame_is_still_raw_pcm():
    """0xFF 0xE0 is just a small negative sample; only a WAV's 12-byte signature makes JSON audio a file."""
    pcm = bytes([0xFF, 0xE0]) + bytes(958)

    echo = parse_audio_request({"audio": b64(pcm), "sample_rate": 24000}, target_rate=24000)

    assert b"".join(echo.audio) == pcm


# --- containers in JSON audio: recognised by their bytes, never mistaken for raw PCM ---------


@pytest.mark.parametrize(
    "fmt, subtype, expected",
    [("WAV", "PCM_16", "wav"), ("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"), ("OGG", "OPUS", "ogg"),
     ("MP3", "MPEG_LAYER_III", "mp3"), ("AIFF", "PCM_16", "aiff")],
)
def test_every_container_the_upload_takes_is_recognised_by_its_bytes(fmt, subtype, expected):
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(48000, dtype="float32"), 48000, format=fmt, subtype=subtype)

    assert echo_messages.audio_container(buffer.getvalue()) == expected


def test_random_pcm_that_starts_with_an_mp3_frame_sync_is_never_taken_for_a_file():
    rng = np.random.default_rng(3)
    for _ in range(2000):
        pcm = rng.integers(-32768, 32767, 2400, dtype=np.int16).astype("<i2").tobytes()
        assert echo_messages.audio_container(b"\xff\xfb\x94\xc4" + pcm) is None


# --- splitting is linear, so a 50 MB body does not take minutes ------------------------------


def test_splitting_a_long_text_serializes_each_character_a_bounded_number_of_times(monkeypatch):
    """Counts the work instead of timing it: the old splitter serialized the whole rest for every piece."""
    serialized = [0]
    real = echo_messages.serialized_size

    def counting(message):
        serialized[0] += len(message.get("properties", {}).get("text", ""))
        return real(message)

    monkeypatch.setattr(echo_messages, "serialized_size", counting)
    text = ("Ünïcödé and \"quotes\" need escaping. " + "plain words go by fast " * 40) * 400  # ~400 KB
    pieces = list(echo_messages.text_echo_messages(text, conversation_id="c", inference_id="i", done=True))

    assert "".join(p["properties"]["text"] for p in pieces) == text
    assert serialized[0] <= 20 * len(text)


@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=300))
@settings(max_examples=300, deadline=None)
def test_each_chars_escaped_cost_adds_up_to_what_json_writes(text):
    """The splitter's per-char costs must equal json.dumps's bytes exactly (lone surrogates included)."""
    assert int(echo_messages.escaped_costs(text).sum()) == len(json.dumps(text, ensure_ascii=True)) - 2
