"""What Tavus's voice reads as markup, and the emotions it takes: one place, read by the API, scripts and the
stand-in face.
"""

from __future__ import annotations

import pytest

from relay.errors import MessageError
from relay.markup import CLOSING, EMOTIONS, FORWARD, SPELL, check_emotion, spans, with_emotion, without_markup


def test_the_emotions_are_the_ones_tavus_lists_in_its_order():
    assert EMOTIONS == (
        "neutral", "angry", "excited", "elated", "content", "sad", "dejected", "scared", "contempt", "disgusted",
        "surprised",
    )


def test_an_emotion_is_tavuss_tag_before_the_text_and_none_leaves_it_as_written():
    assert with_emotion("We did it!", "excited") == '<emotion value="excited"/>We did it!'
    assert with_emotion("We did it!", None) == "We did it!"


@pytest.mark.parametrize("value, closest", [("exited", "excited"), ("SAD", "sad"), ("suprised", "surprised")])
def test_a_near_miss_suggests_the_emotion_meant(value, closest):
    with pytest.raises(MessageError, match=f'did you mean "{closest}"'):
        check_emotion(value)


@pytest.mark.parametrize(
    "text, found",
    [
        ('Hi <emotion value="excited"/>there', [('<emotion value="excited"/>', FORWARD)]),
        ("<speed ratio=1.2 />fast", [("<speed ratio=1.2 />", FORWARD)]),
        ("<prosody rate='slow'>slow</prosody>", [("<prosody rate='slow'>", FORWARD), ("</prosody>", CLOSING)]),
        ("[laughter] and [clears his throat]", [("[laughter]", FORWARD), ("[clears his throat]", FORWARD)]),
        ("Code <spell>A1 <b/>B2</spell>.", [("<spell>A1 <b/>B2</spell>", SPELL)]),
        ("<spell>never closed", [("<spell>", FORWARD)]),
        ("a < b, c > d, <3, [ ], x[y, [" + "w" * 40 + "], [a b c d e f]", []),
    ],
    ids=["self-closing", "unquoted", "open-and-close", "brackets", "spell", "unclosed-spell", "stray"],
)
def test_markup_is_found_by_its_shape_and_a_stray_bracket_is_text(text, found):
    assert [(text[span.start : span.end], span.kind) for span in spans(text)] == found


def test_what_is_said_aloud_is_the_text_without_its_tags_but_with_what_is_spelled():
    text = '<emotion value="sad"/>Sorry. [sighs] Your code is <spell>A1B2</spell>, <break time="1s"/>ok? a < b'

    assert without_markup(text) == "Sorry.  Your code is A1B2, ok? a < b"
