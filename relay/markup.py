"""What Tavus's voice reads as markup in a text echo, so a split never cuts it (Tavus's emotional-expression page).

Tavus's voice acts on tags written inside the text: Phoenix-4 faces show
`<emotion value="excited"/>` in face and voice, and its default engine
(Cartesia Sonic) takes `<speed ratio="1.2"/>`, `<volume ratio="0.8"/>`,
`<break time="500ms"/>`, `<spell>A1B2</spell>` and `[laughter]`. A tag cut
across two app messages is read out as words or lost, so the splitter in
echo_messages.py asks here where a long text may end a piece. Markup is any
tag of those shapes, known to Tavus or not (`<name .../>`, `<name ...>`,
`</name>`, `[word]`, `[a few words]`); a stray `<` or `[` is text.

The emotions Tavus lists live here too: the API's `emotion` field, scripts'
`@emotion` and the console's picker are all checked against this one list.
"""

from __future__ import annotations

import bisect
import difflib
import json
import re
from collections.abc import Iterator
from typing import NamedTuple

from relay.errors import MessageError

# Tavus's emotional-expression page lists these, in this order.
EMOTIONS = (
    "neutral", "angry", "excited", "elated", "content", "sad", "dejected", "scared", "contempt", "disgusted",
    "surprised",
)
EMOTIONS_PAGE = "https://docs.tavus.io/sections/conversational-video-interface/quickstart/emotional-expression"
MAX_BRACKET_WORDS = 5  # "[laughter]", "[clears throat]": a few words; a longer bracket is text
MAX_BRACKET_WORD_CHARS = 30  # nor is a bracket of one endless "word" markup
MAX_SHOWN_CHARS = 40  # of a tag quoted in an error

FORWARD = "tag"  # an opening or self-closing tag, or a bracket: it belongs to the words after it
CLOSING = "closing tag"  # `</name>`: it belongs to the words before it
SPELL = "<spell> span"  # `<spell>` ... `</spell>`: one unit, spelled out

_NAME = r"[A-Za-z][\w.:-]*"
_ATTRIBUTE = r"""\s+[\w.:-]+(?:\s*=\s*(?:"[^"<>]*"|'[^'<>]*'|[^\s"'<>=/]+))?"""
_TAG = re.compile(rf"<(?:(?P<closing>/){_NAME}\s*|(?P<name>{_NAME})(?:{_ATTRIBUTE})*\s*(?P<empty>/)?)>")
_BRACKET_WORD = rf"[\w'’-]{{1,{MAX_BRACKET_WORD_CHARS}}}"
_BRACKET = re.compile(rf"\[{_BRACKET_WORD}(?: {_BRACKET_WORD}){{0,{MAX_BRACKET_WORDS - 1}}}\]")
_SPELL_CLOSE = re.compile(r"</spell\s*>", re.IGNORECASE)
_MARKUP_START = re.compile(r"[<\[]")
_SPACES = re.compile(r"\s*")


# --- emotions ---------------------------------------------------------------------------------------


def emotion_tag(emotion: str) -> str:
    return f'<emotion value="{emotion}"/>'


def with_emotion(text: str, emotion: str | None) -> str:
    """The text as Tavus's voice takes it with an emotion: the tag first, applying to every word after it."""
    return text if emotion is None else emotion_tag(emotion) + text


def check_emotion(value: str, name: str = "emotion", *, instead: str = "leave emotion out for none") -> str:
    """`value` if it is one of Tavus's emotions; else a MessageError naming the list, with the closest one.

    `instead` says how to ask for no emotion where the caller writes it.
    """
    if value in EMOTIONS:
        return value
    close = difflib.get_close_matches(value.strip().lower(), EMOTIONS, n=1, cutoff=0.6)
    suggestion = f': did you mean "{close[0]}"?' if close else ""
    raise MessageError(
        f"{name} {json.dumps(value)[:60]} is not one of Tavus's emotions{suggestion} "
        f"(Tavus lists {', '.join(EMOTIONS)}; {instead})"
    )


# --- where markup is ---------------------------------------------------------------------------------


class Span(NamedTuple):
    """One piece of markup: text[start:end], of a kind (FORWARD, CLOSING or SPELL); a tuple, as a long text
    has many."""

    start: int
    end: int
    kind: str


def spans(text: str, start: int = 0, stop: int | None = None) -> Iterator[Span]:
    """The markup starting in text[start:stop], in order (one that starts there may end after `stop`)."""
    return Markup(text).spans(start, len(text) if stop is None else stop)


def without_markup(text: str) -> str:
    """What is said aloud: the text without its tags (a `<spell>` span's letters are kept)."""
    kept, position = [], 0
    for span in spans(text):
        kept.append(text[position : span.start])
        if span.kind == SPELL:
            kept.append(_TAG.sub("", text[span.start : span.end]))
        position = span.end
    kept.append(text[position:])
    return "".join(kept)


class Markup:
    """The markup of one text, found a stretch at a time, so a long text costs no more memory than a message.

    A `<spell>` is one span with its `</spell>`; the search for that closing
    tag is remembered, so many `<spell>`s with none cost one pass, not one each.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._close_searched_from = len(text) + 1  # nothing searched yet
        self._close: re.Match[str] | None = None

    def spans(self, start: int, stop: int) -> Iterator[Span]:
        position = start
        while (found := _MARKUP_START.search(self._text, position, stop)) is not None:
            span = self._span_at(found.start())
            if span is None:
                position = found.start() + 1
                continue
            yield span
            position = span.end

    def cuts(self, start: int, limit: int, horizon: int) -> Cuts:
        """Where a piece that begins at `start` may end, up to `limit`: from the markup that starts in
        text[start:limit], and a closing tag just after it (no further than `horizon`).

        The runs come in order of their first position (each span's starts after the last one's), so they
        are merged as they come: this runs for every message of a long text."""
        text = self._text
        after = _end_of_spaces(text, limit, horizon)  # a closing tag there belongs before `limit`
        found = self.spans(start, min(after + 1, len(text)))
        spans = [span for span in found if span.start <= limit or span.kind == CLOSING]
        soft: list[tuple[int, int]] = []
        for span_start, end, kind in spans:
            if kind == FORWARD:  # never between a tag and the first word after it
                spaced = end <= limit and text[end : end + 1].isspace()
                soft.append((span_start + 1, _end_of_spaces(text, end, limit + 1) if spaced else end))
            elif kind == CLOSING:  # never between the last word before it and it
                soft.append((_start_of_spaces(text, span_start, start), end - 1))
            else:
                soft.append((span_start + 1, end - 1))
        return Cuts(start, spans, soft)

    def _span_at(self, at: int) -> Span | None:
        text = self._text
        if text[at] == "[":
            bracket = _BRACKET.match(text, at)
            return Span(at, bracket.end(), FORWARD) if bracket else None
        tag = _TAG.match(text, at)
        if tag is None:
            return None
        if tag["closing"]:
            return Span(at, tag.end(), CLOSING)
        if tag["name"].lower() == "spell" and not tag["empty"] and (close := self._spell_close(tag.end())):
            return Span(at, close, SPELL)
        return Span(at, tag.end(), FORWARD)

    def _spell_close(self, after: int) -> int | None:
        """The end of the first `</spell>` at or after `after`, or None if there is none."""
        remembered = self._close_searched_from <= after and (self._close is None or self._close.start() >= after)
        if not remembered:
            self._close_searched_from = after
            self._close = _SPELL_CLOSE.search(self._text, after)
        return None if self._close is None else self._close.end()


def _end_of_spaces(text: str, start: int, stop: int) -> int:
    """Where the whitespace from `start` ends (not after `stop`): the first word's first character."""
    spaces = _SPACES.match(text, start, max(start, stop))
    return spaces.end() if spaces else start


def _start_of_spaces(text: str, end: int, floor: int) -> int:
    """Where the whitespace just before `end` begins (not before `floor + 1`)."""
    position = end
    while position > floor + 1 and text[position - 1].isspace():
        position -= 1
    return position


class Cuts:
    """The positions where a piece beginning at `start` may end.

    Never inside markup (`hard`: there is no other way, so a span that does
    not fit is an error); and where it can be helped, never between a tag and
    the words it applies to (`soft`): a tag starts the piece that follows.
    Each list holds forbidden runs of positions (first, last), merged here.
    """

    def __init__(self, start: int, spans: list[Span], soft: list[tuple[int, int]]) -> None:
        self.start = start
        self._spans = spans
        self._soft = _merged(soft)

    def blocked(self, position: int) -> int | None:
        """The first position of the forbidden run that holds `position`, or None where a piece may end."""
        return _run_start(self._soft, position)

    def too_long(self, text: str, max_bytes: int) -> MessageError:
        """The 400 when no place is allowed: the markup the piece starts with may not be split, and it is longer
        than one message holds."""
        span = self._spans[0] if self._spans else Span(self.start, len(text), FORWARD)  # only markup forbids all
        shown = json.dumps(text[span.start : span.start + MAX_SHOWN_CHARS])[1:-1]
        return MessageError(
            f"the text has a {span.kind} of {span.end - span.start} characters that does not fit one "
            f"{max_bytes}-byte message, and markup is never split: shorten it (it starts {shown}…)"
        )

    def last_allowed(self, limit: int, *, soft: bool) -> int | None:
        """The last position up to `limit` where a piece may end (after `start`), or None."""
        runs = self._soft if soft else _merged([(span.start + 1, span.end - 1) for span in self._spans])
        run = _run_start(runs, limit)
        position = limit if run is None else run - 1
        return position if position > self.start else None


def _merged(runs: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Runs in order of their first position, joined where they overlap or touch: (firsts, lasts)."""
    firsts: list[int] = []
    lasts: list[int] = []
    for first, last in runs:
        if first > last:
            continue
        if lasts and first <= lasts[-1] + 1:
            lasts[-1] = max(lasts[-1], last)
        else:
            firsts.append(first)
            lasts.append(last)
    return firsts, lasts


def _run_start(runs: tuple[list[int], list[int]], position: int) -> int | None:
    firsts, lasts = runs
    index = bisect.bisect_right(firsts, position) - 1
    return firsts[index] if index >= 0 and lasts[index] >= position else None
