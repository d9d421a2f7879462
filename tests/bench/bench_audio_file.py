"""60 s of 44.1 kHz stereo WAV posted as a file: time to first message, to last confirmation, peak memory.

The relay runs in this process on a fake CallClient that confirms at once; the
file is streamed from disk so this process's peak RSS is the relay's (plus
Python and its libraries, printed as the baseline).
Goals: the first message within 10 ms of the body arriving; 300x real time or more to the
last confirmation; and for a 50 MB upload (about 5 minutes of the same audio), peak memory under 3x the body.
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
from harness import Goals, exit_if_failed, relay_on_fake_daily

from config import Settings

SECONDS = 60
RATE = 44100
RUNS = 3
BIG_SECONDS = 283  # 44.1 kHz stereo 16-bit: 50 MB


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def write_wav(path: Path, seconds: int = SECONDS) -> None:
    """Written a second at a time, so making the file does not set this process's peak memory."""
    t = np.arange(RATE) / RATE
    second = np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 660 * t)], axis=1)
    with soundfile.SoundFile(path, "w", RATE, 2, subtype="PCM_16") as wav:
        for _ in range(seconds):
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
        path, big = Path(folder) / "speech.wav", Path(folder) / "long.wav"
        write_wav(path)
        write_wav(big, seconds=BIG_SECONDS)
        baseline = peak_rss_mb()
        settings = Settings(max_audio_seconds=BIG_SECONDS + 1, send_timeout_s=60)
        with relay_on_fake_daily(settings) as (port, fake):
            fake.keep = lambda message: None  # the figures are the relay's, not a log's
            rows = []
            for _ in range(RUNS):
                before = len(fake.client.sent_at)
                total, body_sent, answer = post_file(port, path)
                fake.client.settle()
                first_sent = fake.client.sent_at[before]
                rows.append(
                    (first_sent - fake.clock.arrivals[-1], first_sent - body_sent, total, answer["messages_sent"])
                )
            before_big = peak_rss_mb()
            post_file(port, big)
            fake.client.settle()
            big_growth = peak_rss_mb() - before_big
        size_mb, big_mb = path.stat().st_size / 1e6, big.stat().st_size / 1e6
    first, first_from_client, total, messages = sorted(rows, key=lambda row: row[2])[len(rows) // 2]
    goals = Goals()
    print(f"{SECONDS} s of {RATE} Hz stereo WAV ({size_mb:.1f} MB) -> {messages} messages at 24 kHz")
    print(f"first message {first * 1000:.1f} ms after the body reached the relay "
          f"({goals.check('WAV first message after the body reached the relay', first * 1000, '<=', 10, ' ms')}); "
          f"{first_from_client * 1000:.1f} ms after the client sent its last byte (includes the server reading it)")
    print(f"last confirmation {total * 1000:.0f} ms after = {SECONDS / total:.0f}x real time "
          f"({goals.check('WAV file to the last confirmation', SECONDS / total, '>=', 300, 'x real time')})")
    growth = big_growth / big_mb
    print(f"a {big_mb:.0f} MB upload: peak RSS grew {big_growth:.0f} MB = {growth:.2f}x the body "
          f"({goals.check(f'{big_mb:.0f} MB upload peak memory growth', growth, '<', 3, 'x the body')}); "
          f"peak RSS {peak_rss_mb():.0f} MB, baseline before the relay {baseline:.0f} MB")
    goals.exit_if_missed()


if __name__ == "__main__":
    main()
