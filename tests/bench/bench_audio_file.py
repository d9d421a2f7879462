"""60 s of 44.1 kHz stereo WAV posted as a file: time to first message, to last confirmation, peak memory.

The relay runs in this process on a fake CallClient that confirms at once; the
file is streamed from disk so this process's peak RSS is the relay's (plus
Python and its libraries, printed as the baseline).
Targets (issue 4): first message within 50 ms of the body arriving; >= 100x real time overall.
"""

from __future__ import annotations

import http.client
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from harness import exit_if_failed, relay_on_fake_daily

SECONDS = 60
RATE = 44100
RUNS = 3


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def write_wav(path: Path) -> None:
    """Written a second at a time, so making the file does not set this process's peak memory."""
    t = np.arange(RATE) / RATE
    second = np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 660 * t)], axis=1)
    with soundfile.SoundFile(path, "w", RATE, 2, subtype="PCM_16") as wav:
        for _ in range(SECONDS):
            wav.write(second)


def post_file(port: int, path: Path) -> tuple[float, float, dict]:
    """Seconds from the body's last byte sent to the response, and the moment the body was sent."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    with path.open("rb") as body:
        connection.request("POST", "/send_audio_message", body=body, headers={
            "Content-Type": "audio/wav", "Content-Length": str(path.stat().st_size)})
    body_sent = time.monotonic()
    response = connection.getresponse()
    answer = json.loads(response.read())
    done = time.monotonic()
    connection.close()
    exit_if_failed("audio file", response.status != 200, f"{response.status} {answer}")
    return done - body_sent, body_sent, answer


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        write_wav(path)
        baseline = peak_rss_mb()
        with relay_on_fake_daily() as (port, fake):
            rows = []
            for _ in range(RUNS):
                before = len(fake.client.sent)
                total, body_sent, answer = post_file(port, path)
                fake.client.settle()
                first_sent = fake.client.sent_at[before]
                rows.append((first_sent - fake.clock.arrivals[-1], first_sent - body_sent, total, answer["messages_sent"]))
        size_mb = path.stat().st_size / 1e6
    first, first_from_client, total, messages = sorted(rows, key=lambda row: row[2])[len(rows) // 2]
    print(f"{SECONDS} s of {RATE} Hz stereo WAV ({size_mb:.1f} MB) -> {messages} messages at 24 kHz")
    print(f"first message {first * 1000:.1f} ms after the body reached the relay (target <= 50 ms); "
          f"{first_from_client * 1000:.1f} ms after the client sent its last byte (includes the server reading 10 MB)")
    print(f"last confirmation {total * 1000:.0f} ms after = {SECONDS / total:.0f}x real time (target >= 100x)")
    print(f"peak RSS {peak_rss_mb():.0f} MB (baseline before the relay started: {baseline:.0f} MB)")


if __name__ == "__main__":
    main()
