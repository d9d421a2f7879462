"""A 10 MB text in one request: from the body reaching the relay to its last message handed to Daily, in MB/s.

The relay runs on the stand-in CallClient (confirming from one worker thread, as
Daily does). The text has sentences, quotes and non-ASCII letters, so the
splitter has escapes to measure; it is measured twice: plain, and with speech
markup every 50 words (every form Tavus's voice takes, which the splitter must
never cut). Goal: 10 MB/s or more, each. Any request that
does not get a 200 makes it exit 1; a missed goal, 2.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

from harness import Goals, exit_if_failed, relay_on_fake_daily

from config import Settings

MEGABYTES = 10
RUNS = 3
GOAL_MB_S = 10
WORDS_BETWEEN_TAGS = 50
TAGS = ('<emotion value="excited"/>', '<speed ratio="1.2"/>', '<volume ratio="0.8"/>', '<break time="500ms"/>',
        "<spell>A1B2</spell>", "[laughter]")


def long_text(*, tagged: bool) -> str:
    sentence = 'The face says "exactly" what was sent, naïvely or not, with no lost words. '
    words = (sentence * (MEGABYTES * 1_000_000 // len(sentence) + 1)).split(" ")
    if tagged:
        for at in range(0, len(words), WORDS_BETWEEN_TAGS):
            words[at] = TAGS[at // WORDS_BETWEEN_TAGS % len(TAGS)] + words[at]
    return " ".join(words)[: MEGABYTES * 1_000_000]


def measure(port: int, fake: Any, text: str) -> tuple[float, int]:
    """The median rate over RUNS requests of `text`, and how many messages one took."""
    body = json.dumps({"text": text}).encode()
    rates = []
    for _ in range(RUNS):
        before = len(fake.client.sent_at)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        connection.request("POST", "/send_text_message", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        connection.close()
        exit_if_failed("long text", response.status != 200, f"{response.status} {answer}")
        handed = fake.client.sent_at[-1] - fake.clock.arrivals[-1]
        rates.append(len(text.encode()) / 1e6 / handed)
        messages = len(fake.client.sent_at) - before
    return sorted(rates)[len(rates) // 2], messages


def main() -> None:
    settings = Settings(max_body_bytes=64 * 1024 * 1024, send_timeout_s=60)
    goals = Goals()
    with relay_on_fake_daily(settings) as (port, fake):
        fake.keep = lambda message: None
        for tagged, what in ((False, "plain"), (True, f"with markup every {WORDS_BETWEEN_TAGS} words")):
            rate, messages = measure(port, fake, long_text(tagged=tagged))
            goal = goals.check(f"long text ({what}) split and handed to Daily", rate, ">=", GOAL_MB_S, " MB/s")
            print(f"{MEGABYTES} MB of text ({what}) in {messages} messages: split and handed to Daily at "
                  f"{rate:.1f} MB/s (median of {RUNS}; {goal})")
    goals.exit_if_missed()


if __name__ == "__main__":
    main()
