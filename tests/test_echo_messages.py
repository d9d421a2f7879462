"""Parsing, building and splitting echo messages: pure functions, exact outputs."""

from __future__ import annotations

import base64
import io
import itertools
import json
from typing import Any

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


@pytest.mark.parametrize("body, name", [
    ({"audio": "", "done": True}, "audio"),
    ({"audio": " \n", "done": True}, "audio"),
    ({"properties": {"audio": "", "done": True}}, "properties.audio"),
])
def test_an_audio_field_present_and_empty_says_the_audio_is_empty_and_how_to_make_the_file(body, name):
    with pytest.raises(MessageError) as caught:
        parse_audio_request(body)

    assert str(caught.value) == (
        f"{name} is empty: put base64 of raw 16-bit PCM or of an audio file in it "
        "(no file at hand? cp examples/hello.wav speech.wav, or espeak-ng -w speech.wav \"Hello there\"); "
        'to close an utterance, leave audio out and send "done": true'
    )


def test_done_with_no_audio_field_still_closes_the_utterance():
    request = parse_audio_request({"inference_id": "story-1", "done": True})

    assert (request.audio, request.done, request.inference_id) == (b"", True, "story-1")


def test_message_on_the_simple_form_suggests_text():
    with pytest.raises(MessageError) as caught:
        parse_text_request({"message": "hi"})

    assert str(caught.value) == (
        'unknown field "message": did you mean "text"? (known: message_type, event_type, conversation_id, '
        "properties, modality, text, emotion, inference_id, done, interrupt, wait, audio, sample_rate)"
    )


@pytest.mark.parametrize("body", [{"audio": "AAAA", "done": True}, {"properties": {"audio": "AAAA"}}])
def test_audio_and_no_text_sent_for_text_says_to_use_send_audio_message(body):
    with pytest.raises(MessageError) as caught:
        parse_text_request(body)

    assert str(caught.value).endswith("(to play audio, POST it to /send_audio_message)")


def test_the_docs_form_may_still_carry_an_ignored_audio_beside_its_text():
    echo = parse_text_request({"properties": {"text": "Hi", "audio": "base64-encoded-audio", "sample_rate": 24000}})

    assert echo.text == "Hi"


@pytest.mark.parametrize("body, error", [
    ({"properties": {"text": "Hi", "done": True}, "done": 5}, "done must be true or false, got 5"),
    ({"properties": {"text": "Hi"}, "text": 5}, "text must be a string, got 5"),
    ({"properties": {"text": "Hi", "wait": "spoken"}, "wait": "soon"},
     'wait must be "spoken" or "started" (or left out), got \'soon\''),
    ({"properties": {"text": "Hi", "inference_id": "a"}, "inference_id": ""},
     'inference_id must be a non-empty string, got ""'),
])
def test_a_field_at_the_top_level_of_the_properties_form_is_checked_even_where_properties_has_it_too(body, error):
    """The properties' value is the one used, but neither is ignored: the document says what both may be."""
    with pytest.raises(MessageError) as caught:
        parse_text_request(body)

    assert str(caught.value) == error


def test_conversation_id_given_at_both_levels_must_be_the_same():
    with pytest.raises(MessageError) as caught:
        parse_text_request({"conversation_id": "c1", "properties": {"text": "Hi", "conversation_id": "c2"}})

    assert str(caught.value) == (
        'conversation_id is given twice with different values ("c1", and "c2" in properties): give it once'
    )
    same = {"conversation_id": "c1", "properties": {"text": "Hi", "conversation_id": "c1"}}
    assert parse_text_request(same).conversation_id == "c1"


@pytest.mark.parametrize("wait", ["soon", "", "SPOKEN"])
def test_wait_takes_only_spoken_or_started(wait):
    with pytest.raises(MessageError) as caught:
        parse_text_request({"text": "Hi", "wait": wait})

    assert str(caught.value) == f'wait must be "spoken" or "started" (or left out), got {wait!r}'


def test_a_sample_rate_written_as_a_whole_float_is_that_number():
    """JSON has one number type: 24000.0 is 24000 (and the OpenAPI document's integer says so)."""
    assert parse_audio_request({"audio": "AAAA", "sample_rate": 24000.0}).sample_rate == 24000


@pytest.mark.parametrize("body", [{"audio": "AAAA", "wait": "spoken"}, {"audio": "AAAA", "wait": None}])
def test_the_microphone_takes_no_wait(body):
    with pytest.raises(MessageError) as caught:
        parse_audio_request(body, endpoint="/microphone")

    assert str(caught.value) == echo_messages.MICROPHONE_WAIT


def test_a_microphone_upload_takes_no_wait_parameter():
    with pytest.raises(MessageError) as caught:
        echo_messages.parse_audio_file(io.BytesIO(b"RIFF"), {"wait": "spoken"}, endpoint="/microphone")

    assert str(caught.value) == echo_messages.MICROPHONE_WAIT


@pytest.mark.parametrize("body, expected", [
    ({"script": "Hi"}, ("Hi", "the script")),
    ({"script": "Hi", "name": "demo"}, ("Hi", "demo")),
    ({"script": "Hi", "name": None}, ("Hi", "the script")),
    ({"script": "Hi", "name": "x" * 100}, ("Hi", "x" * 80)),
])
def test_a_script_request_is_its_script_and_name(body, expected):
    assert echo_messages.parse_script_request(body) == expected


@pytest.mark.parametrize("body, error", [
    ({"script": 5}, 'send the script as {"script": "one line per utterance\\n@pause 1\\n..."}'),
    ([], 'send the script as {"script": "one line per utterance\\n@pause 1\\n..."}'),
    ({"script": "Hi", "name": {}}, "name must be a string, got {}"),
    ({"script": "Hi", "nme": "demo"}, 'unknown field "nme": did you mean "name"? (known: script, name)'),
])
def test_a_script_request_that_is_not_a_script_and_a_name_is_a_message_error(body, error):
    with pytest.raises(MessageError) as caught:
        echo_messages.parse_script_request(body)

    assert str(caught.value) == error


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

    pieces = [
        m["properties"]["text"] for m in text_echo_messages(text, conversation_id="c", inference_id="i", done=True)
    ]

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

    messages = list(
        audio_echo_messages(iter(blocks), sample_rate=24000, conversation_id="c", inference_id="i", done=True)
    )

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
    messages = list(
        text_echo_messages(text, conversation_id="c123", inference_id=inference_id, done=done, max_bytes=max_bytes)
    )

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
        audio_echo_messages(
            pcm, sample_rate=rate, conversation_id="c123", inference_id=inference_id, done=done, max_bytes=max_bytes
        )
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
    "value, shown",
    [("²", '"\\u00b2"'), ("١٦٠٠٠", '"\\u0661\\u0666\\u0660\\u0660\\u0660"'), ("9" * 19, '"' + "9" * 19 + '"')],
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
        (
            b'{"interrupt": false, "interrupt": true, "text": "Hi"}',
            'the body has the key "interrupt" twice: send each field once',
        ),
        (b'{"properties": {"text": "a", "text": "b"}}', 'the body has the key "text" twice: send each field once'),
        (
            b"[" * 100_000 + b"]" * 100_000,
            'the body is JSON nested too deep to read: send a JSON object, such as {"text": "Hello there!"}',
        ),
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
    assert echo_messages.json_body(b'{"text": "Hi", "properties": {"done": true}}') == {
        "text": "Hi", "properties": {"done": True}
    }


TOO_MANY_VALUES = (
    f"the body holds more than {echo_messages.MAX_JSON_VALUES} JSON values (objects, arrays, strings, numbers): "
    'send one JSON object with the endpoint\'s fields, such as {"text": "Hello there!"}'
)


@pytest.mark.parametrize(
    "values",
    [
        b"{}, " * echo_messages.MAX_JSON_VALUES + b"{}",
        b"[], " * echo_messages.MAX_JSON_VALUES + b"[]",
        b"0, " * echo_messages.MAX_JSON_VALUES + b"0",
        b'{"k": [' + b"[1, 2, 3], " * (echo_messages.MAX_JSON_VALUES // 4) + b"[]]}",
    ],
    ids=["objects", "arrays", "numbers", "nested"],
)
def test_a_body_of_more_values_than_any_endpoint_takes_is_refused_as_it_is_read(values):
    with pytest.raises(MessageError) as caught:
        echo_messages.json_body(b'{"text": "a", "x": [' + values + b"]}")

    assert str(caught.value) == TOO_MANY_VALUES


def test_a_body_of_as_many_values_as_it_may_hold_reads_as_json():
    body = b'{"x": [' + b"{}, " * (echo_messages.MAX_JSON_VALUES - 2) + b"{}]}"

    assert len(echo_messages.json_body(body)["x"]) == echo_messages.MAX_JSON_VALUES - 1


def test_commas_and_brackets_inside_a_text_are_no_values():
    text = "[laughter] Yes, yes, yes: " * echo_messages.MAX_JSON_VALUES

    body = {"text": text, "done": [True]}

    assert echo_messages.json_body(json.dumps(body).encode()) == body


@pytest.mark.parametrize("tail", [b'",}', b'"} x', b'", "n": NaN, "f": 1e400}', b'", "t": [true, null]}'])
def test_a_body_read_by_counting_reads_as_the_standard_library_reads_it(tail):
    body = b'{"text": "' + b", " * echo_messages.MAX_JSON_VALUES + tail  # more commas than values: counted

    try:
        expected: Any = json.loads(body)
    except json.JSONDecodeError as error:
        expected = f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
    try:
        read: Any = echo_messages.json_body(body)
    except MessageError as error:
        read = str(error)

    assert read == expected or (read["n"] != read["n"] and {**read, "n": 0} == {**expected, "n": 0})  # NaN != NaN


def test_a_bytearray_body_is_emptied_once_it_is_text():
    body = bytearray(b'{"text": "Hello there!"}')

    assert echo_messages.json_body(body) == {"text": "Hello there!"}
    assert body == bytearray()


# --- what the module is: pure and cheap ------------------------------------------------------------


def test_echo_messages_loads_no_audio_decoder():
    """Parsing and splitting stay cheap to import and test: decoding is relay/audio.py's."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, echo_messages; print(sorted({'soundfile', 'soxr', 'relay.audio'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )

    assert done.stdout.strip() == "[]"


def test_new_inference_ids_are_uuid4_hex_and_never_repeat():
    ids = {echo_messages.new_inference_id() for _ in range(1000)}

    assert len(ids) == 1000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


# --- speech markup is never cut -------------------------------------------------------------------------

EXCITED = '<emotion value="excited"/>'


def pieces_of(text: str, max_bytes: int = 4096) -> list[str]:
    messages = text_echo_messages(text, conversation_id="c123", inference_id="i" * 32, done=True, max_bytes=max_bytes)
    return [m["properties"]["text"] for m in messages]


WORDS_2000 = " ".join(f"word{n % 10}" for n in range(2000))


@pytest.mark.parametrize("before_the_cut", range(1, 40))
def test_an_emotion_tag_near_the_4_kb_boundary_is_never_cut(before_the_cut):
    """2,000 words, the tag near the boundary: once, one message ended with `<emotion`, the next began `value=`."""
    boundary = len(pieces_of(WORDS_2000)[0])  # where the first message ends without the tag
    at = WORDS_2000.rindex(" ", 0, boundary - before_the_cut) + 1  # a word that starts shortly before it
    text = WORDS_2000[:at] + EXCITED + WORDS_2000[at:]

    pieces = pieces_of(text)

    assert "".join(pieces) == text
    assert [piece.count(EXCITED) for piece in pieces if "<" in piece or "value=" in piece] == [1]


def cuts_of(pieces: list[str]) -> list[int]:
    """The offsets in the text where one piece ends and the next begins."""
    return list(itertools.accumulate(len(piece) for piece in pieces))[:-1]


@pytest.mark.parametrize(
    "markup",
    [EXCITED, '<speed ratio="1.2"/>', "<volume ratio='0.8' />", '<break time="500ms"/>', "[laughter]",
     "[clears his throat]", "<spell>A1B2 C3</spell>", '<prosody rate="slow">', "</prosody>"],
)
@pytest.mark.parametrize("before_the_cut", [2, 9, 15])
def test_no_form_of_markup_is_cut_near_a_boundary(markup, before_the_cut):
    boundary = len(pieces_of(WORDS_2000, 600)[0])
    at = WORDS_2000.rindex(" ", 0, boundary - before_the_cut) + 1
    text = WORDS_2000[:at] + markup + WORDS_2000[at:]

    pieces = pieces_of(text, 600)

    assert "".join(pieces) == text
    assert sum(piece.count(markup) for piece in pieces) == 1


@pytest.mark.parametrize("markup", [EXCITED, "[laughter]", '<break time="1s"/>'])
def test_a_tag_starts_the_piece_with_the_words_it_applies_to(markup):
    """Where a piece would end just after a tag and its space, the tag goes to the next piece instead."""
    room = len(pieces_of("x" * 5000, 600)[0])  # characters one 600-byte message holds
    filler = WORDS_2000[: WORDS_2000.rindex(" ", 0, room - len(markup) - 3) + 1]
    text = filler + markup + " " + "y" * 300  # the last word break that fits is just after the tag

    pieces = pieces_of(text, 600)

    assert pieces[0] == filler and pieces[1].startswith(markup)


def test_a_closing_tag_stays_with_the_words_before_it():
    boundary = len(pieces_of(WORDS_2000, 600)[0])
    text = WORDS_2000[:boundary] + "</prosody> " + WORDS_2000[boundary:]

    pieces = pieces_of(text, 600)

    assert "".join(pieces) == text and not pieces[1].lstrip().startswith("</prosody>")


def test_a_sentence_break_still_comes_first_before_markup():
    sentences = "A sentence ends here. " * 20 + '<emotion value="sad"/>Then this one. ' * 20

    pieces = pieces_of(sentences, 600)

    assert all(piece.endswith(". ") for piece in pieces[:-1])
    assert "".join(pieces) == sentences


@pytest.mark.parametrize(
    "text",
    ["a < b and b > c, " * 200, "x[" * 2000, "<" + "word " * 1000, "[" + "word " * 1000, "<3 " * 1500,
     "<spell>unclosed " * 400, "[a] " * 1500, "</b>" * 1500, "<br/>" * 1500],
    ids=["comparisons", "stray-brackets", "unclosed-tag", "unclosed-bracket", "hearts", "unclosed-spells",
         "many-brackets", "many-closing-tags", "many-tags"],
)
def test_stray_markup_characters_and_runs_of_tags_are_split_like_text(text):
    messages = list(text_echo_messages(text, conversation_id="c", inference_id="i", done=True, max_bytes=600))

    assert "".join(m["properties"]["text"] for m in messages) == text
    assert all(serialized_size(m) <= 600 for m in messages)


@pytest.mark.parametrize(
    "markup, error",
    [
        ("<spell>" + "A1" * 300 + "</spell>", ("the text has a <spell> span of 615 characters that does not fit one "
         "600-byte message, and markup is never split: shorten it (it starts <spell>A1A1")),
        ('<emotion value="' + "x" * 700 + '"/>', ("the text has a tag of 719 characters that does not fit one 600-byte "
         'message, and markup is never split: shorten it (it starts <emotion value=\\"xxx')),
    ],
)
def test_markup_too_long_for_one_message_is_a_message_error_that_says_so(markup, error):
    with pytest.raises(MessageError) as raised:
        pieces_of("Hello there. " + markup + " and the rest.", 600)

    assert str(raised.value).startswith(error)


# --- properties of the splitter, with markup ---------------------------------------------------------------

LETTERS = st.characters(categories=["Ll", "Lu"], max_codepoint=0x2FF)
WORD = st.text(LETTERS, min_size=1, max_size=12)
BREAKS = st.sampled_from([" ", " ", " ", ". ", "! ", "? ", ", ", "\n", "  ", "; "])
NAMES = st.sampled_from(["emotion", "speed", "volume", "break", "prosody", "x-tag"])
VALUES = st.text(st.characters(categories=["Ll", "Nd"], include_characters="é.%"), min_size=1, max_size=10)
FORWARD_TAGS = st.one_of(
    st.sampled_from([EXCITED, '<speed ratio="1.2"/>', '<volume ratio="0.8"/>', '<break time="500ms"/>', "[laughter]"]),
    st.builds(lambda name, value: f'<{name} value="{value}"/>', NAMES, VALUES),
    st.builds(lambda name, value: f"<{name} ratio='{value}'>", NAMES, VALUES),
    st.builds(lambda words: f"[{' '.join(words)}]", st.lists(WORD, min_size=1, max_size=3)),
)
SPELLED = st.text(st.characters(categories=["Lu", "Nd"]), min_size=1, max_size=20)
SPELLS = st.builds(lambda letters: f"<spell>{letters}</spell>", SPELLED)
CLOSING_TAGS = st.builds(lambda name: f"</{name}>", NAMES)
STRAYS = st.sampled_from(["<", "[", " < ", "a<b", "[ ", "<3", "x]", ">"])


def assemble(tokens: list[tuple[str, str]]) -> tuple[str, list[tuple[int, int, str]]]:
    """The text, and where each piece of markup in it is: (start, end, kind)."""
    text, where, position = [], [], 0
    for kind, token in tokens:
        if kind != "text":
            where.append((position, position + len(token), kind))
        text.append(token)
        position += len(token)
    return "".join(text), where


ANY_TOKEN = st.one_of(
    st.tuples(st.just("text"), WORD), st.tuples(st.just("text"), BREAKS), st.tuples(st.just("text"), STRAYS),
    st.tuples(st.just("forward"), FORWARD_TAGS), st.tuples(st.just("spell"), SPELLS),
    st.tuples(st.just("closing"), CLOSING_TAGS),
)


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(ANY_TOKEN, min_size=1, max_size=600), max_bytes=st.integers(min_value=512, max_value=4096))
def test_no_piece_cuts_markup_every_piece_fits_and_the_pieces_rebuild_the_text(tokens, max_bytes):
    text, markup = assemble(tokens)

    messages = list(
        text_echo_messages(text, conversation_id="c123", inference_id="i" * 32, done=True, max_bytes=max_bytes)
    )

    pieces = [m["properties"]["text"] for m in messages]
    assert "".join(pieces) == text and all(pieces)
    assert all(serialized_size(m) <= max_bytes for m in messages)
    assert not [(cut, span) for cut in cuts_of(pieces) for span in markup if span[0] < cut < span[1]]


MOSTLY_SPACES = st.sampled_from([" "] * 9 + [". "])  # word breaks, where a cut could fall right after a tag
TAGGED_WORD = st.tuples(st.one_of(st.just(""), FORWARD_TAGS), st.sampled_from(["", " "]), WORD, MOSTLY_SPACES)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(TAGGED_WORD, min_size=1, max_size=800), max_bytes=st.integers(min_value=512, max_value=4096))
def test_in_tagged_prose_no_piece_ends_with_a_tag(words, max_bytes):
    """A tag goes with the words after it: it starts a piece or sits inside one, never ends one."""
    text = "".join(tag + gap + word + space for tag, gap, word, space in words)
    tags = {tag for tag, _, _, _ in words if tag}

    pieces = pieces_of(text, max_bytes)

    assert "".join(pieces) == text
    assert not [piece for piece in pieces[:-1] for tag in tags if piece.rstrip().endswith(tag)]


# --- a text beyond the BMP is read as written, at less cost -------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"text": "hi 😀 there"}', '{"text": "😀😀", "inference_id": "🎉"}', '{"text": "\\\\😀"}',
        '{"text": "a\\ud83d\\ude00b 😀"}', '["😀", {"😀": "x"}]', '{"text": "日本 😀 é"}',
    ],
)
def test_a_body_with_emoji_reads_as_json_loads_reads_it(body):
    assert echo_messages.json_body(bytearray(body.encode())) == json.loads(body)


@pytest.mark.parametrize("body", ['{"text": "\\😀"}', '{"text": "😀😀", "x": 😀}', '{"text": "😀😀",}', '{"a": "😀"'])
def test_a_malformed_body_with_emoji_is_named_where_the_caller_wrote_the_mistake(body):
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(body)
    with pytest.raises(MessageError) as raised:
        echo_messages.json_body(body.encode())

    error = expected.value
    assert str(raised.value) == f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
