"""The one schemathesis hook of this repository (schemathesis.toml names this module).

A generated request the relay takes that asks to wait for the face (`wait`)
is not sent. Its answer comes once the face has spoken it, after every
utterance sent before it: against the dry run's stand-in face (150 words a
minute), a fuzzer's hundreds of utterances make that up to
RELAY_SPOKEN_TIMEOUT (60 s), and never at all for an utterance left open
(`done` false), by design (docs/face.md, "Knowing the face spoke it"). The run would
spend its minutes waiting, past schemathesis's request timeout, and learn
nothing the tests of `wait` do not (tests/test_app_utterances.py). A `wait`
the relay refuses, and every other request, is sent as generated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis

import echo_messages
from relay.errors import MessageError

PARSERS: dict[str, Callable[[Any], echo_messages.TextEcho | echo_messages.AudioRequest]] = {
    echo_messages.TEXT_ENDPOINT: echo_messages.parse_text_request,
    echo_messages.AUDIO_ENDPOINT: echo_messages.parse_audio_request,
}


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """False for a JSON body the relay takes with a `wait`; the relay's own parser says which."""
    parse = PARSERS.get(case.path)
    if parse is None or not isinstance(case.body, dict):
        return True
    try:
        return parse(case.body).wait is None
    except MessageError:
        return True
