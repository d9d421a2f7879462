"""A 60 s, 24 kHz PCM utterance posted as JSON: request to last confirmation, as a multiple of real time.

The relay runs on a fake CallClient that confirms every send at once on its own
thread. The response arrives only after Daily (the fake) confirmed the last
message, so the request's wall time is the figure. Goal: >= 300x.
"""

from __future__ import annotations

import base64
import http.client
import json
import time

import numpy as np
from harness import Goals, exit_if_failed, relay_on_fake_daily

SECONDS = 60
RATE = 24000
RUNS = 5


def main() -> None:
    t = np.arange(SECONDS * RATE) / RATE
    pcm = (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()
    body = json.dumps({"audio": base64.b64encode(pcm).decode(), "sample_rate": RATE, "done": True}).encode()
    with relay_on_fake_daily() as (port, _fake):
        timings = []
        for _ in range(RUNS):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            started = time.perf_counter()
            connection.request("POST", "/send_audio_message", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            result = json.loads(response.read())
            timings.append(time.perf_counter() - started)
            connection.close()
            exit_if_failed("audio JSON", response.status != 200, f"{response.status} {result}")
        best, median = min(timings), sorted(timings)[len(timings) // 2]
    print(f"{SECONDS} s of {RATE} Hz PCM ({len(pcm) / 1e6:.2f} MB, {len(body) / 1e6:.2f} MB JSON) "
          f"in {result['messages_sent']} messages")
    goals = Goals()
    goal = goals.check("PCM as JSON to the last confirmation", SECONDS / median, ">=", 300, "x real time")
    print(f"request to last confirmation: median {median * 1000:.0f} ms, best {best * 1000:.0f} ms "
          f"= {SECONDS / median:.0f}x real time ({goal})")
    goals.exit_if_missed()


if __name__ == "__main__":
    main()
