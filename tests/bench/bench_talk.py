"""Hold to talk in headless Chromium against a dry-run relay: a chunk captured in the page to its message leaving
the relay.

Chromium's fake microphone plays a tone; the console stamps each chunk it
sends with the moment the audio worklet handed it over, its last sample
captured (performance.timeOrigin + performance.now(), kept in
window.talkCaptured in the order sent), and the relay's RELAY_RECORD_FILE
says when each audio message left; the two are matched by order, both on
this machine's clock. Goals: over 50 chunks, p50 <= 150 ms and
p95 <= 250 ms. A chunk that never leaves makes it exit 1; a missed goal, 2.
"""

from __future__ import annotations

import base64
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from harness import Goals, chromium_or_exit, exit_if_failed, recorded_dry_run
from playwright.sync_api import sync_playwright

CHUNKS = 50
WAIT_S = 30


def main() -> None:
    chromium = chromium_or_exit()
    with tempfile.TemporaryDirectory() as folder:
        tone = Path(folder) / "tone.wav"
        t = np.arange(48000) / 48000
        soundfile.write(tone, (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32"), 48000, subtype="PCM_16")
        with recorded_dry_run(Path(folder)) as (url, record):
            captured = hold_to_talk(chromium, url, tone)
            left = chunks_left(record, captured)
    delays = [(out - at) * 1000 for (at, _), out in zip(captured, left, strict=False)][:CHUNKS]
    exit_if_failed("talk chunk", CHUNKS - len(delays), f"{len(captured)} chunks sent, {len(left)} left the relay")
    p50, p95 = statistics.median(delays), statistics.quantiles(delays, n=20)[18]
    goals = Goals()
    print(f"talk: chunk captured in the page -> its message leaving the relay, {CHUNKS} chunks of 100 ms "
          "(dry run, Chromium): "
          f"p50 {p50:.1f} ms ({goals.check('talk p50', p50, '<=', 150, ' ms')}), "
          f"p95 {p95:.1f} ms ({goals.check('talk p95', p95, '<=', 250, ' ms')}), max {max(delays):.1f} ms")
    goals.exit_if_missed()


def hold_to_talk(chromium: str, url: str, tone: Path) -> list[tuple[float, int]]:
    """Hold the button until CHUNKS chunks went out, let go; each chunk's capture time (s since the epoch) and bytes."""
    flags = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={tone}",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", *flags])
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_selector("#status-mode:has-text('dry-run')")
        page.get_by_role("button", name="Hold to talk").hover()
        page.mouse.down()
        page.wait_for_function(f"() => window.talkCaptured.length > {CHUNKS}", timeout=WAIT_S * 1000)
        page.mouse.up()
        page.wait_for_selector("#say-result.ok", timeout=WAIT_S * 1000)
        captured = [(chunk["at"] / 1000, chunk["bytes"]) for chunk in page.evaluate("window.talkCaptured")]
        browser.close()
    return captured


def chunks_left(record: Path, captured: list[tuple[float, int]]) -> list[float]:
    """When each chunk's last byte left the relay: the time of the audio message that took the audio past its end."""
    ends = list(itertools.accumulate(size for _, size in captured))
    left: list[float] = []
    total = 0
    for entry in audio_sent(record):
        total += len(base64.b64decode(entry["message"]["properties"].get("audio", "")))
        while len(left) < len(ends) and ends[len(left)] <= total:
            left.append(entry["time"])
    return left


def audio_sent(record: Path) -> list[dict]:
    """The audio messages that left the relay, once the utterance's last (done) has."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        entries = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
        sent = [
            e
            for e in entries
            if e["direction"] == "out" and e["message"].get("properties", {}).get("modality") == "audio"
        ]
        if sent and sent[-1]["message"]["properties"].get("done"):
            return sent
        time.sleep(0.01)
    return []


if __name__ == "__main__":
    main()
