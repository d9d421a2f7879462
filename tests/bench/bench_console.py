"""The console in headless Chromium against a dry-run relay: Enter to the message leaving the relay, and the page's
size.

Enter is timed in the page (performance.timeOrigin + performance.now(), at the
keydown), the message leaving by the relay's RELAY_RECORD_FILE line (written
as the message is handed to the room); both are this machine's clock.
Goals: p50 over 50 sends under 20 ms in the dry run; the page under
100 KB, with no request to another host. Any send that never leaves makes it exit 1.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from harness import Goals, chromium_or_exit, exit_if_failed, recorded_dry_run
from playwright.sync_api import sync_playwright

SENDS = 50
WAIT_S = 10


def main() -> None:
    chromium = chromium_or_exit()
    with tempfile.TemporaryDirectory() as folder, recorded_dry_run(Path(folder)) as (url, record):
        delays, failures, sizes, foreign = measure(chromium, url, record)
    exit_if_failed("console", len(failures), failures[0] if failures else None)
    goals = Goals()
    p50, size_kb = statistics.median(delays), sum(sizes.values()) / 1024
    print(f"console: Enter -> message leaving the relay, {SENDS} sends: p50 {p50:.1f} ms, "
          f"max {max(delays):.1f} ms ({goals.check('console p50', p50, '<', 20, ' ms')})")
    print(f"page: {size_kb:.1f} KB in {len(sizes)} files {sorted(sizes)} "
          f"({goals.check('page size', size_kb, '<', 100, ' KB')}); "
          f"requests to other hosts: {len(foreign)} ({goals.check('requests to other hosts', len(foreign), '<=', 0)})")
    goals.exit_if_missed()


def measure(chromium: str, url: str, record: Path) -> tuple[list[float], list[str], dict[str, int], list[str]]:
    sizes: dict[str, int] = {}
    foreign: list[str] = []
    delays: list[float] = []
    failures: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()

        def seen(response) -> None:
            if not response.url.startswith(url):
                foreign.append(response.url)
            elif (path := response.url.split("?")[0].removeprefix(url)) == "/" or path.startswith("/static/"):
                sizes[path] = len(response.body())  # the page and every file it loads (the API's answers aside)

        page.on("response", seen)
        page.goto(url + "/")
        page.wait_for_selector("#status-mode:has-text('dry-run')")
        page.evaluate("""() => document.getElementById('say-text').addEventListener('keydown', (event) => {
            if (event.key === 'Enter') window.enterAt = (performance.timeOrigin + performance.now()) / 1000;
        }, true)""")
        for n in range(SENDS):
            text = f"Line {n}."
            page.fill("#say-text", text)
            page.press("#say-text", "Enter")
            left = wait_for_line(record, text)
            if left is None:
                failures.append(f"{text!r} never left the relay")
                continue
            delays.append((left - page.evaluate("window.enterAt")) * 1000)
            page.wait_for_selector("#say-result.ok")
        browser.close()
    return delays, failures, sizes, foreign


def wait_for_line(record: Path, text: str) -> float | None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for line in record.read_text().splitlines() if record.exists() else []:
            entry = json.loads(line)
            if entry["direction"] == "out" and entry["message"].get("properties", {}).get("text") == text:
                return entry["time"]
        time.sleep(0.002)
    return None


if __name__ == "__main__":
    main()
