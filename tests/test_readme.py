"""The README's example answers are what the relay really answers: the same keys, in the same order.

Every JSON answer shown under an endpoint's heading in the README is held to
the answer the dry-run relay gives the request that heading documents; a new
example without a row here fails, so no example can drift.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from relay.dry_run import DryRunRoom
from relay.microphone import CountingMicrophoneDevice

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
SILENCE = base64.b64encode(bytes(4800)).decode()

# heading -> the request its example answer is the answer of
REQUESTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "POST /send_text_message": ("POST", "/send_text_message", {"json": {"text": "Hello there!"}}),
    "POST /microphone": ("POST", "/microphone", {"json": {"audio": SILENCE, "sample_rate": 24000}}),
    "POST /interrupt": ("POST", "/interrupt", {}),
    "GET /health": ("GET", "/health", {}),
    "GET /utterances/<inference_id>": ("GET", "/utterances/story-1", {}),
}
# what must have happened before a heading's request
SETUP = {
    "GET /utterances/<inference_id>": ("POST", "/send_text_message", {"json": {"text": "Hello there!", "inference_id": "story-1", "wait": "spoken"}}),
}


def example_answers() -> list[tuple[str, dict[str, Any]]]:
    """(heading, answer) for every ```json block under a `### METHOD /path` heading of the README, to the next heading."""
    found: list[tuple[str, dict[str, Any]]] = []
    heading, fence, block = "", None, []
    for line in README.splitlines():
        if fence is None and line.startswith("```"):
            fence, block = line[3:].strip(), []
        elif fence is not None and line.startswith("```"):
            if fence == "json" and re.match(r"(GET|POST) /", heading):
                found.append((heading, json.loads("\n".join(block))))
            fence = None
        elif fence is not None:
            block.append(line)
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
    return found


@pytest.fixture
def dry_run_client(make_app):
    app = make_app(Settings(), DryRunRoom(io.StringIO()), microphone_device=CountingMicrophoneDevice(24000))
    return app.test_client()


def test_every_example_answer_has_a_request_here():
    assert {heading for heading, _ in example_answers()} == set(REQUESTS)


@pytest.mark.parametrize("heading, example", example_answers(), ids=[h for h, _ in example_answers()])
def test_an_example_answer_has_the_real_answers_keys_in_order(dry_run_client, heading, example):
    method, path, kwargs = REQUESTS[heading]
    if heading in SETUP:
        setup_method, setup_path, setup_kwargs = SETUP[heading]
        assert dry_run_client.open(setup_path, method=setup_method, **setup_kwargs).status_code == 200

    response = dry_run_client.open(path, method=method, **kwargs)
    real = response.get_json()

    assert response.data == json.dumps(real).encode()  # one style for every answer, the one the README shows
    assert list(example) == list(real)
    for key, value in example.items():
        if isinstance(value, dict):
            assert list(value) == list(real[key]), key
