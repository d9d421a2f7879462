"""Microphone echo's terminal: one line per utterance (clips played back to back), each clip's line with --verbose."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from echo_messages import BYTES_PER_SAMPLE
from relay.microphone import Microphone, MicrophoneUtterance
from tests.conftest import WAIT_S, wait_until
from tests.docs import page

RATE = 24000


class GatedDevice:
    """A virtual microphone that takes nothing until the test opens it: clips queue up meanwhile, as in a stream."""

    def __init__(self) -> None:
        self.opened = threading.Event()

    def write_frames(self, frames: bytes) -> int:
        self.opened.wait(WAIT_S)
        return len(frames) // BYTES_PER_SAMPLE


def clip(milliseconds: int) -> bytes:
    return bytes(RATE * milliseconds // 1000 * BYTES_PER_SAMPLE)


@pytest.fixture
def device() -> GatedDevice:
    return GatedDevice()


@pytest.fixture
def microphone(device: GatedDevice) -> Iterator[Microphone]:
    microphone = Microphone(device, RATE)
    yield microphone
    device.opened.set()
    microphone.close()


def said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith("microphone: ")]


def utterances(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [line for line in said(caplog) if "utterance" in line]


def play_back_to_back(microphone: Microphone, device: GatedDevice, *lengths_ms: int) -> list[str]:
    """The first clip starts, the others queue behind it before it ends: one utterance."""
    first, *rest = lengths_ms
    microphone.enqueue(clip(first))
    microphone.start()
    wait_until(lambda: microphone.status()["playing_clip"], "the first clip to start")
    ids = [microphone.enqueue(clip(length))["clip_id"] for length in rest]
    device.opened.set()
    return ids


def test_clips_played_back_to_back_are_one_line_with_the_utterances_length(microphone, device, caplog):
    caplog.set_level(logging.INFO, logger="echo_relay")

    play_back_to_back(microphone, device, 100, 100, 100)
    wait_until(lambda: utterances(caplog), "the utterance's line")
    microphone.close()

    assert said(caplog) == ["microphone: played an utterance of 300 ms (3 clips back to back)"]


def test_with_verbose_each_clip_has_its_own_line_too(microphone, device, caplog):
    caplog.set_level(logging.DEBUG, logger="echo_relay")  # what --verbose sets

    clip_ids = play_back_to_back(microphone, device, 100, 50)
    wait_until(lambda: utterances(caplog), "the utterance's line")

    first, second, utterance = said(caplog)
    assert first.startswith("microphone: clip ") and first.endswith(" played 100 of 100 ms")
    assert second == f"microphone: clip {clip_ids[0]} played 50 of 50 ms"
    assert utterance == "microphone: played an utterance of 150 ms (2 clips back to back)"


def test_a_gap_between_clips_ends_the_utterance(microphone, device, caplog):
    caplog.set_level(logging.INFO, logger="echo_relay")
    device.opened.set()
    microphone.start()

    microphone.enqueue(clip(40))
    wait_until(lambda: utterances(caplog), "the first utterance's line")
    microphone.enqueue(clip(60))
    wait_until(lambda: len(utterances(caplog)) == 2, "the second utterance's line")

    assert said(caplog) == [
        "microphone: played an utterance of 40 ms (1 clip)",
        "microphone: played an utterance of 60 ms (1 clip)",
    ]


def test_an_interrupt_ends_the_utterance_saying_it_was_cut_short(microphone, device, caplog):
    caplog.set_level(logging.INFO, logger="echo_relay")
    microphone.enqueue(clip(2000))
    microphone.start()
    wait_until(lambda: microphone.status()["playing_clip"], "the clip to start")

    microphone.clear()  # as POST /interrupt does: the clip stops after the write under way (20 ms)
    device.opened.set()

    assert wait_until(lambda: utterances(caplog), "the utterance's line") == [
        "microphone: played an utterance of 20 ms (1 clip), cut short by an interrupt"
    ]


def test_the_console_page_shows_the_line_the_relay_prints_for_a_held_utterance():
    console_page = page("docs/console.md")
    held = MicrophoneUtterance()
    for _ in range(12):  # hold to talk: 100 ms clips
        held.add(100, 100)

    assert f"`{held.line()}`" in console_page
