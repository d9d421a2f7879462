"""Parsing, building and splitting echo messages: pure functions, exact outputs."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import echo_messages
from echo_messages import (
    audio_echo_messages,
    echo_message,
    interrupt_message,
    parse_audio_request,
    parse_text_request,
    serialized_size,
    text_echo_messages,
)
from relay.errors import MessageError


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


def test_audio_base64_with_line_breaks_from_the_base64_tool_is_accepted():
    pcm = bytes(range(200))
    wrapped = base64.encodebytes(pcm).decode()  # 76-column lines, as `base64 file` prints

    assert parse_audio_request({"audio": wrapped}).audio == pcm


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


# --- numbers: ASCII digits only ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value, shown", [("²", '"\\u00b2"'), ("١٦٠٠٠", '"\\u0661\\u0666\\u0660\\u0660\\u0660"'), ("9" * 19, '"' + "9" * 19 + '"')]
)
def test_a_sample_rate_in_other_than_ascii_digits_is_a_message_error_naming_the_field(value, shown):
    with pytest.raises(MessageError) as caught:
        parse_audio_request({"properties": {"audio": "AAAA", "sample_rate": value}})

    assert str(caught.value) == f"properties.sample_rate must be a positive whole number such as 24000, got {shown}"


@pytest.mark.parametrize("text, number", [("16000", 16000), (" 24000\n", 24000), ("0", 0), ("9" * 18, 10**18 - 1)])
def test_ascii_int_reads_ascii_digits(text, number):
    assert echo_messages.ascii_int(text, "after") == number


@pytest.mark.parametrize("text", ["", " ", "+5", "-5", "5.0", "1e3", "0x10", "²", "١", "１６", "9" * 19])
def test_ascii_int_refuses_anything_else_naming_the_field(text):
    with pytest.raises(MessageError, match="^after must be an event id, got "):
        echo_messages.ascii_int(text, "after", meaning="an event id")


# --- JSON bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, error",
    [
        (b'{"interrupt": false, "interrupt": true, "text": "Hi"}', 'the body has the key "interrupt" twice: send each field once'),
        (b'{"properties": {"text": "a", "text": "b"}}', 'the body has the key "text" twice: send each field once'),
        (b"[" * 100_000 + b"]" * 100_000, 'the body is JSON nested too deep to read: send a JSON object, such as {"text": "Hello there!"}'),
        (b" \n", 'the body is empty: send a JSON object, such as {"text": "Hello there!"}'),
        (b'{"text": "Hi"', "the body is not valid JSON: Expecting ',' delimiter at line 1 column 14"),
        (b'{"text": "caf\xe9"}', "the body is not valid JSON (UTF-8 expected)"),
    ],
    ids=["duplicate-key", "duplicate-key-in-properties", "nested-100000-deep", "empty", "truncated", "not-utf8"],
)
def test_a_body_that_is_not_one_clear_json_value_is_a_message_error_saying_why(data, error):
    with pytest.raises(MessageError) as caught:
        echo_messages.json_body(data)

    assert str(caught.value) == error


def test_a_json_body_with_each_key_once_reads_as_json():
    assert echo_messages.json_body(b'{"text": "Hi", "properties": {"done": true}}') == {"text": "Hi", "properties": {"done": True}}


# --- what the module is: pure and cheap ------------------------------------------------------------


def test_echo_messages_loads_no_audio_decoder():
    """Parsing and splitting stay cheap to import and test: decoding is relay/audio.py's."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, echo_messages; print(sorted({'soundfile', 'soxr', 'relay.audio'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent
    )

    assert done.stdout.strip() == "[]"


def test_new_inference_ids_are_uuid4_hex_and_never_repeat():
    ids = {echo_messages.new_inference_id() for _ in range(1000)}

    assert len(ids) == 1000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
