"""The console in a real browser: headless Chromium (Debian's) driven by Playwright, against a dry-run relay
process.

What a presenter does, and what they would see: the dry run's record file
says what left the relay (and what the simulated face reported), the page
says the rest. A test that fails saves a screenshot of the page it ends on (its path in the test's output).
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import requests
import soundfile

from config import Settings
from relay.markup import EMOTIONS
from relay.room import Room
from tests.browser import CHROMIUM, chromium
from tests.conftest import CALL_REPORT, CONVERSATION_URL, assert_no_secret, free_port, wait_until
from tests.fake_daily import VIEWER
from tests.test_app_main import start, wait_for_port
from tests.wsgi_server import serve_wsgi

TOKEN = "s3cret-token"
HOLD_S = 0.6  # how long a test holds to talk: six of the page's 100 ms chunks
FAST_POLL = "?poll_ms=100"  # the page's documented setting: ask /health every 0.1 s instead of every second
STATIC = Path(__file__).resolve().parents[1] / "static"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module's tests; each test opens its own context (a fresh page, no shared storage)."""
    with chromium() as browser:
        yield browser


class Relay:
    """A dry-run relay process, and what it recorded (RELAY_RECORD_FILE) since the test began.

    Its output is read all the time (a relay serving a whole module would
    otherwise stop on a full pipe) and checked for secrets when it stops.
    """

    def __init__(self, tmp_path: Path, port: int = 0, **env: str) -> None:
        self.tmp_path, self.record = tmp_path, tmp_path / "record.jsonl"
        self.env = {
            "RELAY_RECORD_FILE": str(self.record),
            "RELAY_SCRIPT_LINE_TIMEOUT": "10",
            "RELAY_PORT": str(port),
            **env,
        }
        self.token = env.get("RELAY_AUTH_TOKEN")
        self.lines_before = 0
        self.events_before = 0
        self.start()

    def start(self) -> None:
        self.process = start([], self.tmp_path, **self.env)
        self.port = wait_for_port(self.process)
        self.url = f"http://127.0.0.1:{self.port}"
        self.output: list[str] = []
        self.readers = [
            threading.Thread(target=self.output.extend, args=(stream,), daemon=True)
            for stream in (self.process.stdout, self.process.stderr)
        ]
        for reader in self.readers:
            reader.start()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(30)
        for reader in self.readers:
            reader.join(30)
        assert_no_secret("".join(self.output))

    def health(self) -> dict[str, Any]:
        return requests.get(self.url + "/health", headers=self.headers(), timeout=5).json()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def begin_test(self) -> Relay:
        """Quiet for the next test: whatever still speaks is interrupted, and records and events count from here."""
        requests.post(self.url + "/interrupt", headers=self.headers(), timeout=5).raise_for_status()
        self.wait_until(lambda: not self.health()["replica_speaking"], "the face to be silent")
        self.lines_before = 0
        self.lines_before = len(self.recorded())
        self.events_before = int(self.health()["last_event_id"])
        return self

    def recorded(self) -> list[dict[str, Any]]:
        """Every whole line since the test began: the relay may be halfway through writing the last one."""
        if not self.record.exists():
            return []
        lines = self.record.read_text().split("\n")[:-1]
        return [json.loads(line) for line in lines[self.lines_before :] if line.strip()]

    def sent(self) -> list[dict[str, Any]]:
        return [r["message"] for r in self.recorded() if r["direction"] == "out"]

    def wait_until(self, condition: Callable[[], Any], what: str) -> Any:
        return wait_until(condition, lambda: f"{what}; recorded: {self.recorded()[-5:]}")


@pytest.fixture(scope="module")
def shared_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """One dry-run relay for the module's tests; each test gets it quiet (see `relay`)."""
    relay = Relay(tmp_path_factory.mktemp("relay"))
    yield relay
    relay.stop()


@pytest.fixture
def relay(shared_relay: Relay) -> Relay:
    return shared_relay.begin_test()


@pytest.fixture
def page(browser: Any, relay: Relay, tmp_path: Path, request: Any) -> Iterator[Any]:
    yield from open_console(browser, relay, tmp_path, request, events_after=relay.events_before)


def open_console(
    browser: Any,
    relay: Relay,
    tmp_path: Path,
    request: Any,
    *,
    events_after: int = 0,
    width: int = 1400,
    height: int = 1100,
    query: str = FAST_POLL,
) -> Iterator[Any]:
    """A fresh page (its own browser context); with `events_after`, its first event stream starts after that id.

    The page is opened at `/` + `query`: by default it asks /health (and reconnects a broken event stream) every
    0.1 s, not every second, so that a test sees the relay go and come back without waiting for the page.
    """
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.requested = []
    page.on("request", lambda r: page.requested.append(r.url))
    if events_after:

        def from_this_test_on(route: Any) -> None:
            headers = dict(route.request.headers)
            if headers.get("last-event-id") == "0":
                headers["last-event-id"] = str(events_after)
            route.continue_(headers=headers)

        page.route("**/events", from_this_test_on)
    page.goto(relay.url + "/" + query)
    page.wait_for_selector("section.script[aria-busy=false]")  # the relay's script is shown: the page is ready
    yield page
    called = request.node.stash.get(CALL_REPORT, None)  # None: the test goes on past this page
    if called is not None and called.failed:
        shot = tmp_path / f"{request.node.name}-{width}x{height}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
    context.close()


def write_script(page: Any, text: str) -> None:
    """Open the script's text area (a loaded script shows as its list instead) and write `text` in it."""
    if page.is_visible("#script-edit"):
        page.click("#script-edit")
    page.fill("#script-text", text)


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["properties"]["text"] for m in messages if m.get("properties", {}).get("modality") == "text"]


def wav_bytes(seconds: float = 0.3) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(int(16000 * seconds)) / 16000
    soundfile.write(
        buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32"), 16000, format="WAV", subtype="PCM_16"
    )
    return buffer.getvalue()


# --- say, audio, interrupt -----------------------------------------------------------------------------


def test_enter_sends_the_text_and_shift_enter_is_a_new_line(page, relay):
    page.fill("#say-text", "")
    page.type("#say-text", "Line one")
    page.press("#say-text", "Shift+Enter")
    page.type("#say-text", "line two.")
    page.press("#say-text", "Enter")

    relay.wait_until(lambda: texts(relay.sent()), "the text to go out")
    assert texts(relay.sent()) == ["Line one\nline two."]
    page.wait_for_selector("#say-result.ok")
    assert page.inner_text("#say-result").startswith("sent: 1 message(s), inference_id ")
    assert page.input_value("#say-text") == ""


def test_interrupt_first_sends_the_interrupt_before_the_text(page, relay):
    page.check("#interrupt-first")
    page.fill("#say-text", "Stop, and say this.")
    page.press("#say-text", "Enter")

    relay.wait_until(lambda: texts(relay.sent()), "the text to go out")
    assert [m["event_type"] for m in relay.sent()] == ["conversation.interrupt", "conversation.echo"]


def test_a_dropped_wav_is_spoken_as_audio_messages(page, relay):
    data = base64.b64encode(wav_bytes()).decode()
    page.evaluate(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "speech.wav", { type: "audio/wav" }));
            document.getElementById("drop-zone").dispatchEvent(
                new DragEvent("drop", { dataTransfer: transfer, bubbles: true })
            );
        }""",
        data,
    )

    relay.wait_until(lambda: any(m["properties"].get("done") for m in relay.sent()), "the audio's last message")
    audio = [m for m in relay.sent() if m["properties"].get("modality") == "audio"]
    assert audio[-1]["properties"]["done"] is True and audio[0]["properties"]["sample_rate"] == 24000
    page.wait_for_selector("#audio-result.ok")
    assert page.inner_text("#audio-result") == f"speech.wav: 300 ms sent in {len(audio)} message(s)"


def test_a_chosen_file_plays_through_the_microphone_when_asked(page, relay, tmp_path):
    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes())
    page.wait_for_selector("#via-microphone:not([disabled])")  # the dry run has a (counting) microphone
    page.check("#via-microphone")
    page.set_input_files("#audio-file", str(path))

    page.wait_for_selector("#audio-result.ok")
    assert page.inner_text("#audio-result").startswith("clip.wav: 300 ms queued on the microphone")
    assert relay.sent() == []  # microphone echo sends no app messages


def test_escape_interrupts(page, relay):
    page.keyboard.press("Escape")

    relay.wait_until(lambda: relay.sent(), "the interrupt")
    assert relay.sent() == [
        {"message_type": "conversation", "event_type": "conversation.interrupt", "conversation_id": "dry-run"}
    ]
    page.wait_for_selector("#interrupt-result.ok")


# --- emotions, and what the face said ---------------------------------------------------------------------


def test_the_emotion_picker_offers_none_and_tavuss_emotions_beside_say(page):
    options = page.eval_on_selector_all(
        "#say-emotion option", "options => options.map((o) => [o.value, o.textContent])"
    )

    assert options == [["", "none"], *([emotion, emotion] for emotion in EMOTIONS)]
    assert page.input_value("#say-emotion") == ""
    assert page.inner_text("label[for=say-emotion]") == "Emotion"
    picker, say = page.locator("#say-emotion").bounding_box(), page.locator("#say-title").bounding_box()
    assert abs((picker["y"] + picker["height"] / 2) - (say["y"] + say["height"] / 2)) < say["height"] / 2  # one line


def test_an_emotion_goes_with_each_line_shown_in_the_log_and_is_kept_for_the_session(page, relay):
    page.select_option("#say-emotion", "excited")
    page.fill("#say-text", "We did it!")
    page.press("#say-text", "Enter")

    relay.wait_until(lambda: texts(relay.sent()), "the text to go out")
    assert texts(relay.sent()) == ['<emotion value="excited"/>We did it!']
    said = page.locator("#event-log li.said").first
    said.wait_for()
    assert said.inner_text().startswith("said We did it! (excited), inference_id ")

    page.reload()
    page.wait_for_selector("section.script[aria-busy=false]")
    assert page.input_value("#say-emotion") == "excited"  # the same tab: remembered
    page.select_option("#say-emotion", "")
    page.fill("#say-text", "Back to normal.")
    page.press("#say-text", "Enter")
    relay.wait_until(lambda: len(texts(relay.sent())) == 2, "the second text to go out")
    assert texts(relay.sent())[1] == "Back to normal."
    page.wait_for_selector("#event-log li.said:has-text('Back to normal.')")
    assert "(" not in page.locator("#event-log li.said").first.inner_text().split(", inference_id")[0]


def test_a_new_session_starts_with_no_emotion(browser, relay, tmp_path, request):
    for page in open_console(browser, relay, tmp_path, request, events_after=relay.events_before):
        page.select_option("#say-emotion", "sad")
    for page in open_console(browser, relay, tmp_path, request, events_after=relay.events_before):
        assert page.input_value("#say-emotion") == ""


def test_what_the_face_said_shows_under_the_line_and_where_an_interrupt_cut_it(page, relay):
    page.fill("#say-text", "Hello there!")
    page.press("#say-text", "Enter")
    page.wait_for_selector("#event-log li.said .spoken")
    assert page.inner_text("#event-log li.said .spoken") == "the face said: “Hello there!”"

    page.fill("#say-text", LONG_FIRST_LINE)
    page.press("#say-text", "Enter")
    # Words out.
    page.wait_for_selector("#event-log li[data-type='conversation.utterance.streaming']:has-text('\"final\":false')")
    page.keyboard.press("Escape")

    cut = page.locator("#event-log li.said").first.locator(".spoken")
    try:
        cut.wait_for(timeout=8000)
    finally:
        print("STARTOVERS", page.evaluate("window.startOvers"))
    spoken = cut.inner_text().removeprefix("cut off after: “").removesuffix("”")
    assert spoken and LONG_FIRST_LINE.startswith(spoken) and len(spoken) < len(LONG_FIRST_LINE)


def test_a_scripts_emotion_and_what_the_face_said_show_on_its_lines(page, relay):
    write_script(page, "@emotion content\nFirst line.\n@emotion none\nSecond line.")
    page.click("#script-load")
    page.wait_for_selector("#script-lines li >> nth=1")
    assert page.locator("#script-lines li").all_inner_texts() == [
        "line 2: First line. (content)",
        "line 4: Second line.",
    ]

    page.click("#script-play")
    page.wait_for_selector("#script-result:has-text('the script is finished')")
    assert texts(relay.sent()) == ['<emotion value="content"/>First line.', "Second line."]
    page.wait_for_selector("#script-lines li >> nth=1 >> .spoken")
    assert [item.split("\n") for item in page.locator("#script-lines li").all_inner_texts()] == [
        ["line 2: First line. (content)", "the face said: “First line.”"],
        ["line 4: Second line.", "the face said: “Second line.”"],
    ]
    playing = page.locator("#event-log li[data-type='relay.script']:has-text('playing line 2')").inner_text()
    assert playing == "relay.script console: playing line 2 (1/2): First line. (content)"


# --- events and status -----------------------------------------------------------------------------------


def test_the_event_log_shows_the_simulated_face_speaking_and_stopping(page, relay):
    page.fill("#say-text", "Two words.")
    page.press("#say-text", "Enter")

    page.wait_for_selector("#event-log li[data-type='conversation.replica.stopped_speaking']")
    shown = page.locator("#event-log li").all_inner_texts()
    items = [item for item in shown if not item.startswith("relay.speaking")]  # the relay's own summary follows
    assert items[0].startswith("conversation.replica.stopped_speaking")  # newest first
    assert "(simulated)" in items[0] and '"interrupted":false' in items[0]
    assert any(item.startswith("conversation.replica.started_speaking") for item in items)
    page.fill("#event-filter", "started")
    assert page.locator("#event-log li:visible").all_inner_texts()[0].startswith(
        "conversation.replica.started_speaking"
    )


def test_the_page_loads_nothing_from_another_host_under_a_strict_policy(page, relay):
    response = page.request.get(relay.url + "/")

    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-src 'none'" in policy
    page.wait_for_selector("#status-mode:has-text('dry-run')")
    assert page.requested and all(url.startswith((relay.url, "data:")) for url in page.requested)


def health_asked(page: Any) -> int:
    """How many times the page asked /health, once a round trip through the page shows every request it made."""
    page.evaluate("() => fetch('/openapi.json').then((r) => r.status)")
    return sum(url.endswith("/health") for url in page.requested)


@pytest.mark.parametrize(
    "query, every_ms", [("", 1000), ("?poll_ms=250", 250), ("?poll_ms=20", 1000), ("?poll_ms=soon", 1000)]
)
def test_the_page_asks_health_every_second_or_every_poll_ms(browser, relay, tmp_path, request, query, every_ms):
    for page in open_console(browser, relay, tmp_path, request, query=query):
        page.clock.install()
        page.reload()
        page.wait_for_selector("section.script[aria-busy=false]")
        page.clock.pause_at(time.time() + 3600)  # the page's clock stands still, but for run_for
        before = health_asked(page)

        for _ in range(2000 // every_ms):  # 2 s, one interval at a time: each poll is answered before the next
            page.clock.run_for(every_ms)
            page.wait_for_function("() => state.healthAsking === null")

        assert health_asked(page) - before == 2000 // every_ms


def hold_the_next_health_answer(page: Any, ask: Callable[[], object] = lambda: None) -> tuple[Any, Any]:
    """The page's next /health (after `ask()`), answered as the relay answers it now, when the test says:
    (route, answer)."""
    held: list[Any] = []

    def hold(route: Any) -> None:
        if held:
            return route.fallback()
        held.append((route, route.fetch()))

    page.route("**/health", hold)
    ask()
    wait_in_page(page, lambda: held, "the page's next /health")
    route, answer = held[0]
    return route, answer


def test_a_health_answer_written_before_the_events_shown_clears_nothing(page, relay):
    """Found with the page polling every 0.1 s: an answer the relay wrote before events the stream brought since
    (its last_event_id behind them) was taken for a new relay's, and the log cleared."""
    stopped = "#event-log li[data-type='conversation.replica.stopped_speaking']"
    page.fill("#say-text", "Before that answer.")
    page.press("#say-text", "Enter")
    page.wait_for_selector("#say-result.ok")  # the page's own line, which no replay of the events brings back
    route, answer = hold_the_next_health_answer(page)
    requests.post(relay.url + "/send_text_message", json={"text": "After that answer was written."}, timeout=5)
    page.wait_for_selector(f"{stopped} >> nth=1")  # events the held answer has not seen
    asked = health_asked(page)

    route.fulfill(response=answer)
    wait_in_page(page, lambda: health_asked(page) > asked, "the page to ask again, the held answer read")

    assert page.locator("#event-log li.said").count() == 1
    assert page.locator(stopped).count() == 2


def test_the_page_asks_health_again_only_once_it_has_its_answer(page, relay):
    """Found with the page polling every 0.1 s: two questions out at once were answered in either order, and an
    older uptime read after a newer one was taken for a new relay's, and the log cleared."""
    page.clock.install()
    page.reload()
    page.wait_for_selector("section.script[aria-busy=false]")
    page.clock.pause_at(time.time() + 3600)
    route, answer = hold_the_next_health_answer(page, lambda: page.clock.run_for(100))  # a poll out, unanswered
    asked = health_asked(page)

    page.clock.run_for(1000)  # ten more polls' time
    page.fill("#say-text", "Ask after this.")
    page.press("#say-text", "Enter")  # its answer asks too
    relay.wait_until(lambda: texts(relay.sent()), "the text to go out")
    assert health_asked(page) == asked

    route.fulfill(response=answer)
    page.wait_for_selector("#say-result.ok")  # once the header's count has been asked again
    assert health_asked(page) == asked + 1


def test_the_page_with_its_scripts_styles_and_audio_worklet_is_under_100_kb(page, relay):
    files = ["/", *(f"/static/{path.name}" for path in STATIC.iterdir() if path.name != "openapi.json")]
    page.wait_for_selector("#status-mode:has-text('dry-run')")
    assert {url.removeprefix(relay.url) for url in page.requested if "/static/" in url} <= set(files)
    assert "/static/talk-worklet.js" in files  # loaded when the presenter first holds to talk
    assert sum(len(page.request.get(relay.url + path).body()) for path in files) < 100 * 1024


def test_it_says_when_the_relay_is_not_reachable_and_reconnects_by_itself(browser, tmp_path, request):
    relay = Relay(tmp_path, port=free_port())
    console = open_console(browser, relay, tmp_path, request)
    page = next(console)
    try:
        page.wait_for_selector("#status-mode:has-text('dry-run')")
        relay.stop()
        page.wait_for_selector("#connection:has-text('The relay is not reachable. Reconnecting')")
        relay.start()
        page.wait_for_selector("#connection", state="hidden")
        page.fill("#say-text", "Back again.")
        page.press("#say-text", "Enter")
        page.wait_for_selector("#event-log li[data-type='conversation.replica.stopped_speaking']")  # events flow again
    finally:
        next(console, None)
        relay.stop()


# --- scripts ------------------------------------------------------------------------------------------------

SCRIPT = "# a short demo\nFirst line.\n@pause 0.1\nSecond line.\nThird line."


def spoken_in_order_after_the_last_stopped(relay: Relay, lines: list[str]) -> None:
    """Each line left the relay only after the face's stopped_speaking for the line before."""
    records = relay.recorded()
    out = {
        r["message"]["properties"]["text"]: r
        for r in records
        if r["direction"] == "out" and "properties" in r["message"]
    }
    stopped = {
        r["message"]["inference_id"]: r["time"]
        for r in records
        if r["direction"] == "in" and r["message"]["event_type"] == "conversation.replica.stopped_speaking"
    }
    assert texts(relay.sent()) == lines
    for before, after in itertools.pairwise(lines):
        assert out[after]["time"] >= stopped[out[before]["message"]["properties"]["inference_id"]], (before, after)


def test_a_script_steps_with_space_each_line_after_the_face_stopped(page, relay):
    write_script(page, SCRIPT)
    page.click("#script-load")
    page.wait_for_selector("#script-lines li >> nth=3")
    assert page.locator("#script-lines li").all_inner_texts() == [
        "line 2: First line.", "line 3: pause 0.1 s", "line 4: Second line.", "line 5: Third line."
    ]
    assert page.evaluate("document.activeElement.id") == "script-next"  # loading puts Space on Next
    page.keyboard.press("Space")
    relay.wait_until(lambda: texts(relay.sent()) == ["First line."], "the first line")

    # The pause, then two lines: each key once the step before is over (its line greyed: that stays, where a
    # step's highlight can come and go between two looks of a busy browser: the pause lasts 0.1 s).
    for steps_over in (1, 2, 3):
        page.wait_for_function("n => document.querySelectorAll('#script-lines li.done').length === n", arg=steps_over)
        page.keyboard.press("ArrowRight")
    page.wait_for_selector("#script-result:has-text('the script is finished')")

    spoken_in_order_after_the_last_stopped(relay, ["First line.", "Second line.", "Third line."])


LONG_FIRST_LINE = (
    "A long first line that the simulated face takes a good many seconds to say, at its calm pace of two and a "
    "half words a second, so that the test has all the time it needs to press Escape while it is being spoken."
)


def test_a_script_plays_through_and_interrupt_stops_it(page, relay):
    write_script(page, SCRIPT)
    page.click("#script-load")
    page.click("#script-play")
    page.wait_for_selector("#script-result:has-text('the script is finished')")
    spoken_in_order_after_the_last_stopped(relay, ["First line.", "Second line.", "Third line."])

    # A first line the stand-in face takes seconds to say: Esc lands while it speaks, however busy the machine.
    write_script(page, LONG_FIRST_LINE + "\nSecond line.")
    page.click("#script-load")
    page.click("#script-play")
    page.wait_for_selector("#script-lines li.current:has-text('A long first line')")
    page.keyboard.press("Escape")
    page.wait_for_selector("#script-result:has-text('stopped')")
    assert texts(relay.sent())[3:] == [LONG_FIRST_LINE]  # the second run got no further


def test_a_bad_script_is_refused_with_its_line_and_sends_nothing(page, relay):
    write_script(page, "Hello.\n@audio missing.wav")
    page.click("#script-load")

    page.wait_for_selector("#script-result.error")
    assert page.inner_text("#script-result").startswith("400: console line 2: no audio file missing.wav")
    assert relay.sent() == []


# --- the token ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_guarded_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    relay = Relay(tmp_path_factory.mktemp("guarded-relay"), RELAY_AUTH_TOKEN=TOKEN)
    yield relay
    relay.stop()


@pytest.fixture
def guarded_relay(shared_guarded_relay: Relay) -> Relay:
    return shared_guarded_relay.begin_test()


@pytest.fixture
def guarded_page(browser: Any, guarded_relay: Relay, tmp_path: Path, request: Any) -> Iterator[Any]:
    yield from open_console(browser, guarded_relay, tmp_path, request, events_after=guarded_relay.events_before)


def enter_a_wrong_then_the_right_token(page: Any) -> None:
    page.wait_for_selector("#token-form:visible")
    page.fill("#token-input", "wrong")
    page.press("#token-input", "Enter")
    page.wait_for_selector("#token-result:has-text('That token is wrong')")

    page.fill("#token-input", TOKEN)
    page.press("#token-input", "Enter")
    page.wait_for_selector("#token-form", state="hidden")


def test_a_late_refusal_of_a_replaced_token_does_not_ask_for_the_token_again(guarded_page):
    """A request sent with a wrong token can be answered after the right one is in: its 401 must not undo it."""
    page = guarded_page
    held: list[Any] = []

    def hold_the_wrong_tokens_room_request(route: Any) -> None:
        if route.request.headers.get("authorization") == "Bearer wrong" and not held:
            held.append(route)  # answered below, once the right token is in
        else:
            route.continue_()

    page.route("**/room", hold_the_wrong_tokens_room_request)
    enter_a_wrong_then_the_right_token(page)

    assert len(held) == 1
    with page.expect_response(lambda r: r.url.endswith("/room") and r.status == 401) as late:
        held[0].continue_()
    late.value.finished()
    page.evaluate("() => fetch('/health').then((r) => r.json())")  # a round trip after it through the page's loop
    assert page.is_hidden("#token-form")


def test_with_a_token_the_page_asks_once_and_a_wrong_one_says_so(guarded_page, guarded_relay):
    page = guarded_page
    enter_a_wrong_then_the_right_token(page)

    page.fill("#say-text", "Authorised.")
    page.press("#say-text", "Enter")
    page.wait_for_selector("#event-log li[data-type='conversation.replica.stopped_speaking']")  # the stream works too
    assert texts(guarded_relay.sent()) == ["Authorised."]
    page.wait_for_selector("#status-mode:text-is('dry-run')")  # /health tells the room's state to the token only
    assert all(TOKEN not in url for url in page.requested)  # in a header, never in a URL


# --- events the console does not understand, and the relay.speaking contract -----------------------------


def serve_events(page: Any, bodies: list[str | None]) -> list[Any]:
    """The page's next event streams answer `bodies`, one per (re)connection, then the relay's own stream.

    A None holds that connection: it is in the list returned, for the test to answer.
    """
    left, held = list(bodies), []

    def crafted(route: Any) -> None:
        if not left:
            return route.fallback()
        body = left.pop(0)
        if body is None:
            return held.append(route)
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    page.route("**/events", crafted)
    return held


def wait_in_page(page: Any, condition: Callable[[], Any], what: str) -> None:
    """Until `condition` holds, letting Playwright deliver the page's events (route handlers run only then)."""
    wait_until(condition, what, pause=lambda seconds: page.wait_for_timeout(seconds * 1000))


def frames(*frames: str) -> str:
    return "retry: 2000\n\n" + "".join(frame + "\n\n" for frame in frames)


FORGED = [
    'event: conversation.replica.stopped_speaking\ndata: {"forged":true}',  # no type
    "data: this is not JSON {",
    'event: x\ndata: {"type":"conversation.replica\\nstopped_speaking","id":5}',  # a type with a newline
    'data: {"type":42}',
]


def test_an_event_the_console_does_not_understand_is_shown_as_text_and_the_stream_goes_on(page, relay):
    serve_events(page, [frames(*FORGED)])
    page.reload()

    page.wait_for_selector("#event-log li.raw >> nth=3")
    assert sorted(page.locator("#event-log li.raw").all_inner_texts()) == sorted(FORGED)
    assert page.get_attribute("#connection", "data-state") == "connected" and page.is_hidden("#connection")
    page.fill("#say-text", "Still listening.")
    page.press("#say-text", "Enter")
    page.wait_for_selector("#event-log li[data-type='conversation.replica.stopped_speaking']")  # later events appear
    assert page.get_attribute("#connection", "data-state") == "connected" and page.is_hidden("#connection")
    assert page.locator("#event-log li.raw").count() == 4


def test_a_relay_restarted_event_clears_the_old_relays_events(page, relay):
    old = 'id: 1\ndata: {"id":1,"type":"relay.joined","time":1.0}'
    restarted = 'data: {"type":"relay.restarted","time":2.0,"last_event_id":0}'
    new = 'id: 1\ndata: {"id":1,"type":"relay.joined","time":3.0}'  # the new relay's first event
    serve_events(page, [frames(old), frames(restarted, new), None])  # then no stream: nothing else is shown
    page.reload()

    page.wait_for_selector("#event-log li[data-type='relay.restarted']")
    page.wait_for_selector("#event-log li[value='1']")
    assert [item.get_attribute("data-type") for item in page.locator("#event-log li").all()] == [
        "relay.joined",
        "relay.restarted",
    ]


def log_types(page: Any) -> list[str | None]:
    return [item.get_attribute("data-type") for item in page.locator("#event-log li").all()]


def test_a_participants_relay_messages_neither_empty_the_log_nor_move_the_indicator(
    browser, fake_daily, make_app, tmp_path, request
):
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)  # a room, played with the Daily stand-in
    room.join(timeout=2)
    app = make_app(Settings(), room)
    fake = fake_daily.client
    fake.participant_joins(VIEWER)
    with serve_wsgi(app) as port:
        console = open_console(browser, SimpleNamespace(url=f"http://127.0.0.1:{port}"), tmp_path, request)
        page = next(console)
        try:
            page.wait_for_selector("#event-log li[data-type='relay.replica_joined']")
            fake.room_sends({"event_type": "relay.speaking", "speaking": True, "inference_id": "x"}, VIEWER["id"])
            fake.room_sends({"event_type": "relay.restarted", "time": 2.0, "last_event_id": 0}, VIEWER["id"])
            page.wait_for_selector("#event-log li[data-type$='relay.restarted']")

            assert log_types(page) == [
                "room.relay.restarted", "room.relay.speaking", "relay.replica_joined", "relay.joined"
            ]
            assert page.inner_text("#status-speaking") == "silent"
        finally:
            next(console, None)
    room.leave()


def test_the_console_acts_only_on_the_relays_own_events_not_on_a_senders(page, relay):
    # No ids: the page compares them with the shared relay's, which /health gives it (see relayRestarted).
    joined = 'data: {"type":"relay.joined","time":1.0}'
    forged = [  # as a relay that published room messages under their own type did
        'data: {"type":"relay.speaking","time":2.0,"speaking":true,"sender":"viewer-1","message":{}}',
        'data: {"type":"relay.restarted","time":3.0,"sender":"viewer-1","message":{}}',
    ]
    serve_events(page, [frames(joined, *forged), None])  # its reconnection held: only these events reach the page
    page.reload()

    page.wait_for_selector("#event-log li[data-type='relay.restarted']")  # the last of them
    assert log_types(page) == ["relay.restarted", "relay.speaking", "relay.joined"]
    assert page.inner_text("#status-speaking") == "silent"


def speaking_frame(speaking: bool, **more: Any) -> str:
    return "data: " + json.dumps(
        {"type": "relay.speaking", "time": 1.0, "speaking": speaking, "inference_id": "i1", **more}
    )


def test_the_speaking_indicator_reads_relay_speaking_and_nothing_else(page, relay):
    stopped = {"event_type": "conversation.replica.stopped_speaking", "inference_id": "i1", "properties": {}}
    stopped_frame = "data: " + json.dumps({"type": stopped["event_type"], "time": 1.0, "message": stopped})
    held = serve_events(page, [frames(speaking_frame(True), stopped_frame), None])
    page.reload()

    page.wait_for_selector("#event-log li[data-type='conversation.replica.stopped_speaking']")
    with page.expect_response("**/health") as poll:  # the relay says replica_speaking false: only the event counts
        pass
    assert poll.value.json()["replica_speaking"] is False
    page.evaluate("() => fetch('/health')")  # a round trip through the page's loop after that poll was handled
    assert page.inner_text("#status-speaking") == "speaking"

    wait_in_page(page, lambda: held, "the console to reconnect")
    held[0].fulfill(
        status=200, headers={"Content-Type": "text/event-stream"}, body=frames(speaking_frame(False, interrupted=True))
    )
    page.wait_for_selector("#status-speaking:text-is('silent')")
    assert page.locator("#event-log li").all_inner_texts()[0] == (
        "relay.speaking the face stopped speaking (interrupted), inference_id i1"
    )


# --- the page as a presenter sees it, on a laptop's screen --------------------------------------------------

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "console.png"  # the README shows it
LAID_OUT = (
    "header, #status li, #connection, main section, button, textarea, select, #drop-zone, #event-filter, #event-log, "
    "#script-lines"
)
SCREENS = [(1366, 768), (1024, 768)]


@pytest.fixture(params=SCREENS, ids=[f"{w}x{h}" for w, h in SCREENS])
def laptop_page(browser: Any, relay: Relay, tmp_path: Path, request: Any) -> Iterator[Any]:
    """The console at a laptop's size, with a script loaded (what a presenter has open during a demo)."""
    width, height = request.param
    for page in open_console(
        browser, relay, tmp_path, request, events_after=relay.events_before, width=width, height=height
    ):
        write_script(page, SCRIPT)
        page.click("#script-load")
        page.wait_for_selector("#script-lines li >> nth=3")
        yield page


def boxes(page: Any) -> list[list[Any]]:
    return page.evaluate(
        """(selector) => [...document.querySelectorAll(selector)].map((element, index) => {
            const box = element.getBoundingClientRect();
            return [element.id || `${element.tagName} ${index}`, box.x, box.y, box.width, box.height];
        })""",
        LAID_OUT,
    )


def test_the_layout_holds_still_while_the_face_starts_and_stops_speaking(laptop_page, relay):
    page = laptop_page
    page.wait_for_selector("#status-speaking:text-is('silent')")
    before = boxes(page)
    requests.post(relay.url + "/send_text_message", json={"text": "Welcome, everyone, to this short demo."}, timeout=5)

    page.wait_for_selector("#status-speaking:text-is('speaking')")
    during = boxes(page)
    if page.viewport_size["width"] == 1366 and os.environ.get("UPDATE_SCREENSHOTS"):
        page.screenshot(path=str(SCREENSHOT))  # the README's picture of the console, made by this test
    page.wait_for_selector("#status-speaking:text-is('silent')")
    after = boxes(page)
    assert during == before
    assert after == before


def test_choosing_an_emotion_and_saying_a_line_moves_nothing(laptop_page, relay):
    page = laptop_page
    before = boxes(page)

    page.select_option("#say-emotion", "disgusted")  # the longest name
    page.fill("#say-text", "Welcome, everyone.")
    page.keyboard.press("Enter")
    page.wait_for_selector("#event-log li.said .spoken")  # the line, and what the face said under it

    assert boxes(page) == before
    assert texts(relay.sent()) == ['<emotion value="disgusted"/>Welcome, everyone.']


def test_the_event_log_and_the_script_list_are_in_view_without_scrolling(laptop_page):
    assert_in_view(laptop_page)


def assert_in_view(page: Any) -> None:
    """What a presenter needs is on the screen, with nothing to scroll and no line of the status wrapped."""
    viewport = page.viewport_size
    assert page.evaluate("document.documentElement.scrollHeight") <= viewport["height"]
    for selector in ("#event-log", "#script-lines", "#say-text", "#say-emotion", "#interrupt-button"):
        box = page.locator(selector).bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], selector
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], selector
    assert page.locator("#event-log").bounding_box()["height"] >= 100  # room for a few events
    # found by a new user at 1024x768: the controls' column scrolled, and the status wrapped onto two lines
    assert page.eval_on_selector(".controls", "e => e.scrollHeight <= e.clientHeight")
    assert page.locator("#status-errors").bounding_box()["y"] == page.locator("#status-mode").bounding_box()["y"]


WINDOWS = [(1366, 650), (1024, 650)]  # a 768-pixel laptop screen less the browser's own bars


@pytest.mark.parametrize("width, height", WINDOWS, ids=[f"{w}x{h}" for w, h in WINDOWS])
def test_in_a_browser_window_what_a_presenter_uses_stays_in_view_and_the_controls_scroll(
    browser, relay, tmp_path, request, width, height
):
    for page in open_console(browser, relay, tmp_path, request, width=width, height=height):
        write_script(page, SCRIPT)
        page.click("#script-load")
        page.wait_for_selector("#script-lines li >> nth=3")
        assert page.evaluate("document.documentElement.scrollHeight") <= height  # the page itself never scrolls
        for selector in ("#say-text", "#say-button", "#interrupt-button", "#script-lines", "#event-log"):
            box = page.locator(selector).bounding_box()
            assert box["y"] >= 0 and box["y"] + box["height"] <= height, selector
        page.locator("#face-toggle").scroll_into_view_if_needed()  # the rest: in the controls' own scrolling box
        assert 0 <= page.locator("#face-toggle").bounding_box()["y"] < height
        assert page.evaluate("document.documentElement.scrollTop") == 0


def middle(box: dict[str, float]) -> float:
    return box["y"] + box["height"] / 2


def test_the_scripts_buttons_stay_on_one_row(laptop_page):
    """Found at 1024x768: Stop wrapped onto a row of its own."""
    page = laptop_page
    row = ["label[for=script-file]", "#script-edit", "#script-load", "#script-next", "#script-play", "#script-stop"]
    first, *others = [page.locator(selector).bounding_box() for selector in row]

    assert all(abs(middle(box) - middle(first)) < first["height"] / 2 for box in others), row


def test_the_level_meter_has_its_label_beside_it_and_live_shows_in_its_place(laptop_page):
    """Found at 1024 wide: the meter had a row of its own, a blank gap before it (LIVE's place, hidden) and no label."""
    page = laptop_page
    label = page.locator("label[for=talk-level]")
    named, meter = label.bounding_box(), page.locator("#talk-level").bounding_box()

    assert label.is_visible() and label.inner_text() == "level"
    assert abs(middle(named) - middle(meter)) < named["height"] / 2  # one line
    assert 0 <= meter["x"] - (named["x"] + named["width"]) <= 12  # beside it: the row's gap, no blank
    before = boxes(page)
    page.evaluate("showLive(true)")  # what holding to talk shows while the microphone is open
    live = page.locator("#talk-live").bounding_box()
    assert page.is_visible("#talk-live") and (live["x"], live["width"]) == (named["x"], named["width"])
    assert live["y"] <= named["y"] and live["y"] + live["height"] >= named["y"] + named["height"]  # over the label
    assert boxes(page) == before


def test_the_header_counts_a_message_sent_when_its_answer_shows(browser, relay, tmp_path, request):
    """Found under Say: the answer showed, and the header's sent count only followed at its next poll of /health."""
    seldom = "?poll_ms=60000"  # the page's own poll cannot be what brings the count
    for page in open_console(browser, relay, tmp_path, request, events_after=relay.events_before, query=seldom):
        page.fill("#say-text", "Count me.")
        page.press("#say-text", "Enter")
        page.wait_for_selector("#say-result.ok")
        assert page.inner_text("#status-sent") == str(relay.health()["messages_sent"])

        page.keyboard.press("Escape")
        page.wait_for_selector("#interrupt-result.ok")
        assert page.inner_text("#status-sent") == str(relay.health()["messages_sent"])


def without_the_banner(laid_out: list[list[Any]]) -> list[list[Any]]:
    return [box for box in laid_out if box[0] != "connection"]


def test_nothing_moves_when_the_relay_goes_and_comes_back_and_the_header_says_what_is_known(browser, tmp_path, request):
    """Found by a new user: the banner pushed the page down 37 px, clipped its bottom, and the header still said
    `face in the room` with no relay to know it from. At both laptop sizes, with a script loaded."""
    relay = Relay(tmp_path, port=free_port())
    consoles = [open_console(browser, relay, tmp_path, request, width=w, height=h) for w, h in SCREENS]
    try:
        pages = [next(console) for console in consoles]
        load_the_script(pages)
        before = [without_the_banner(boxes(page)) for page in pages]

        relay.stop()
        for page, (width, height), laid_out in zip(pages, SCREENS, before, strict=True):
            page.wait_for_selector("#connection:has-text('The relay is not reachable. Reconnecting')")
            page.screenshot(path=str(tmp_path / f"{request.node.name}-{width}x{height}-relay-gone.png"))
            assert without_the_banner(boxes(page)) == laid_out, width
            status = [
                page.inner_text(f"#status-{name}") for name in ("mode", "call", "conversation", "face", "speaking")
            ]
            assert status == ["dry-run", "unknown", "dry-run", "unknown", "unknown"], width
            banner, header = page.locator("#connection").bounding_box(), page.locator("header").bounding_box()
            assert banner["y"] >= header["y"] + header["height"] and banner["y"] + banner["height"] <= height, width
            assert_in_view(page)

        relay.start()
        for page in pages:
            page.wait_for_selector("#connection", state="hidden")
            page.wait_for_selector("#script-text", state="visible")  # the new relay has no script
        load_the_script(pages)  # again, as the presenter would
        assert [without_the_banner(boxes(page)) for page in pages] == before
    finally:
        for console in consoles:
            next(console, None)
        relay.stop()


def load_the_script(pages: list[Any]) -> None:
    """SCRIPT, loaded from the first page: every page shows its lines, and the face in the room."""
    write_script(pages[0], SCRIPT)
    pages[0].click("#script-load")
    for page in pages:
        page.wait_for_selector("#script-lines li >> nth=3")
        page.wait_for_selector("#status-face:text-is('in the room')")


def test_an_answer_appearing_under_say_moves_no_panel(laptop_page):
    """Found by a new user: the first answer line wrapped, and the Interrupt button moved under the presenter's
    click.
    """
    page = laptop_page
    panels = "#drop-zone, #interrupt-button, #face-title"
    before = [page.locator(selector).bounding_box() for selector in panels.split(", ")]

    page.fill("#say-text", "Welcome, everyone, to this short demo of a face that says what it is told.")
    page.keyboard.press("Enter")
    page.wait_for_selector("#say-result:has-text('inference_id')")

    assert [page.locator(selector).bounding_box() for selector in panels.split(", ")] == before


def test_the_event_log_is_as_large_as_the_rest_and_a_scripts_progress_reads_as_lines(page, relay):
    write_script(page, SCRIPT)
    page.click("#script-load")
    page.click("#script-next")
    page.wait_for_selector("#event-log li[data-type='relay.script']:has-text('spoken')")

    font = "(e) => getComputedStyle(e).fontSize"
    body = page.evaluate("getComputedStyle(document.body).fontSize")
    assert page.eval_on_selector("#event-log li", font) == page.eval_on_selector("#say-text", font) == body
    assert float(body.removesuffix("px")) >= 16
    script = page.locator("#event-log li[data-type='relay.script']").all_inner_texts()
    assert script == [
        "relay.script console: spoken line 2 (1/4): First line.",
        "relay.script console: playing line 2 (1/4): First line.",
        "relay.script console: loaded",
    ]


def test_after_play_all_then_escape_the_lines_played_stay_greyed(page, relay):
    write_script(page, SCRIPT)
    page.click("#script-load")
    page.click("#script-play")
    page.wait_for_selector("#script-lines li.current:has-text('Second line.')")
    page.keyboard.press("Escape")
    page.wait_for_selector("#script-result:has-text('stopped')")

    page.wait_for_selector("#script-lines li.current", state="detached")
    played = requests.get(relay.url + "/script", timeout=5).json()["position"]  # the line cut off may count as played
    assert played >= 2  # the first line and the pause were over before Esc
    # Not what was said.
    done = [text.split("\n")[0] for text in page.locator("#script-lines li.done").all_inner_texts()]
    assert done == [
        "line 2: First line.", "line 3: pause 0.1 s", "line 4: Second line.", "line 5: Third line."
    ][:played]


def test_a_loaded_script_is_shown_once_and_edit_brings_its_text_back(page, relay):
    write_script(page, SCRIPT)
    page.click("#script-load")
    page.wait_for_selector("#script-lines li >> nth=3")
    assert page.is_hidden("#script-text") and page.is_visible("#script-lines")

    page.click("#script-edit")
    assert page.is_visible("#script-text") and page.is_hidden("#script-lines")
    assert page.input_value("#script-text") == SCRIPT
    page.click("#script-load")
    page.wait_for_selector("#script-text", state="hidden")


def test_the_filter_shows_a_placeholder_not_a_value(page):
    assert page.input_value("#event-filter") == ""
    assert page.get_attribute("#event-filter", "placeholder") == "filter events (e.g. speaking)"
    placeholder = page.eval_on_selector("#event-filter", "(e) => getComputedStyle(e, '::placeholder').color")
    typed = page.eval_on_selector("#event-filter", "(e) => getComputedStyle(e).color")
    assert placeholder != typed


def test_the_interrupt_panel_is_its_button_and_its_answer(page):
    panel = page.locator("#interrupt-button").locator("xpath=..").bounding_box()
    button = page.locator("#interrupt-button").bounding_box()
    answer = page.locator("#interrupt-result").bounding_box()
    assert panel["height"] - button["height"] - answer["height"] <= 30  # padding, no empty space


# --- a new relay process under the page ---------------------------------------------------------------------


def test_after_the_relay_restarts_the_console_shows_only_the_new_relays_events_and_script(browser, tmp_path, request):
    relay = Relay(tmp_path, port=free_port())
    console = open_console(browser, relay, tmp_path, request)
    page = next(console)
    try:
        write_script(page, SCRIPT)
        page.click("#script-load")
        page.fill("#say-text", "Before the restart.")
        page.press("#say-text", "Enter")
        page.wait_for_selector("#event-log li[data-type='conversation.replica.stopped_speaking']")
        relay.stop()
        page.wait_for_selector("#connection:has-text('The relay is not reachable')")
        relay.start()
        page.wait_for_selector("#connection", state="hidden")

        page.wait_for_selector("#script-text", state="visible")  # the new relay has no script
        assert page.locator("#script-lines li").count() == 0
        page.fill("#say-text", "After the restart.")
        page.press("#say-text", "Enter")
        page.wait_for_selector(
            "#event-log li[data-type='conversation.replica.stopped_speaking']:has-text('(simulated)')"
        )
        page.wait_for_selector("#say-result.ok")
        after_id = page.inner_text("#say-result").rsplit(" ", 1)[1]
        stopped = page.locator("#event-log li[data-type='conversation.replica.stopped_speaking']").all_inner_texts()
        assert len(stopped) == 1 and after_id in stopped[0]
        assert page.locator("#event-log li[data-type='relay.script']").count() == 0  # the old relay's are gone
    finally:
        next(console, None)
        relay.stop()


def test_the_token_button_stands_apart_from_its_input(guarded_page):
    page = guarded_page
    page.wait_for_selector("#token-form:visible")
    field = page.locator("#token-input").bounding_box()
    button = page.locator("#token-form button").bounding_box()
    beside = button["x"] - (field["x"] + field["width"])
    below = button["y"] - (field["y"] + field["height"])
    assert max(beside, below) >= 8


# --- hold to talk: Chromium's fake microphone plays a tone ------------------------------------------------


@pytest.fixture(scope="module")
def talk_browser(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A second Chromium (from the same Playwright) whose microphone, allowed without asking, plays a 440 Hz tone."""
    wav = tmp_path_factory.mktemp("microphone") / "tone.wav"
    t = np.arange(48000) / 48000
    soundfile.write(wav, (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32"), 48000, subtype="PCM_16")
    flags = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]
    talking = browser.browser_type.launch(executable_path=CHROMIUM, args=["--no-sandbox", *flags])
    yield talking
    talking.close()


@pytest.fixture
def talk_page(talk_browser: Any, relay: Relay, tmp_path: Path, request: Any) -> Iterator[Any]:
    yield from open_console(talk_browser, relay, tmp_path, request, events_after=relay.events_before)


def spoken_audio(relay: Relay) -> list[dict[str, Any]]:
    """The properties of every audio-echo message, once the utterance's last one (done) has gone out."""
    relay.wait_until(
        lambda: any(m.get("properties", {}).get("done") for m in relay.sent()), "the utterance's last message"
    )
    return [m["properties"] for m in relay.sent() if m.get("properties", {}).get("modality") == "audio"]


def assert_one_utterance_as_long_as_the_hold(audio: list[dict[str, Any]], hold: tuple[float, float]) -> None:
    """One inference_id, one rate, done only last, and as much audio as the microphone was LIVE (±1 chunk)."""
    assert len({p["inference_id"] for p in audio}) == 1 and len({p["sample_rate"] for p in audio}) == 1
    assert [p.get("done", False) for p in audio] == [False] * (len(audio) - 1) + [True]
    seconds = sum(len(base64.b64decode(p["audio"])) for p in audio if "audio" in p) / 2 / audio[0]["sample_rate"]
    shortest, longest = hold
    assert HOLD_S - 0.4 <= shortest - 0.1 <= seconds <= longest + 0.1, (shortest, seconds, longest)


def hold(page: Any, press: Callable[[], None], release: Callable[[], None], seconds: float) -> tuple[float, float]:
    """Hold for `seconds` (what the presenter says, not a wait for the page), checking LIVE meanwhile.

    Returns the shortest and the longest the microphone can have been LIVE, as
    this side saw it: from LIVE seen to the release sent, and from the press to
    the release done (a busy machine stretches a hold; the audio must match it).
    """
    pressed = time.monotonic()
    press()
    page.wait_for_selector("#talk-live.on")
    live = time.monotonic()
    page.wait_for_timeout(seconds * 1000)
    assert page.is_visible("#talk-live")
    releasing = time.monotonic()
    release()
    return releasing - live, time.monotonic() - pressed


def test_holding_the_talk_button_speaks_the_microphone_as_one_utterance(talk_page, relay):
    page = talk_page
    button = page.get_by_role("button", name="Hold to talk")
    assert "(T)" in button.inner_text()
    button.hover()
    held = hold(page, page.mouse.down, page.mouse.up, HOLD_S)

    assert_one_utterance_as_long_as_the_hold(spoken_audio(relay), held)
    page.wait_for_selector("#say-result.ok:has-text('spoken: inference_id')")
    assert page.is_hidden("#talk-live")
    assert float(page.get_attribute("#talk-level", "data-peak")) > 0  # the meter moved


def test_holding_t_speaks_too_and_interrupt_first_interrupts_before_it(talk_page, relay):
    page = talk_page
    page.check("#interrupt-first")
    page.locator("#event-log").click()  # out of any text field: T is for talking
    held = hold(page, lambda: page.keyboard.down("t"), lambda: page.keyboard.up("t"), HOLD_S)

    assert_one_utterance_as_long_as_the_hold(spoken_audio(relay), held)
    assert relay.sent()[0]["event_type"] == "conversation.interrupt"
    assert all(m["event_type"] == "conversation.echo" for m in relay.sent()[1:])


def test_letting_go_within_150_ms_sends_nothing(talk_page, relay):
    page = talk_page
    page.clock.install()
    page.reload()
    page.wait_for_selector("section.script[aria-busy=false]")
    page.clock.pause_at(time.time() + 3600)  # the page's clock stands still: however long the hold, it is 0 ms
    page.get_by_role("button", name="Hold to talk").hover()
    page.mouse.down()
    page.wait_for_selector("#talk-live.on")
    page.wait_for_function("() => Number(document.getElementById('talk-level').dataset.peak) > 0")  # chunks came
    page.mouse.up()

    page.wait_for_selector("#say-result:has-text('let go within 150 ms: nothing was sent')")
    page.evaluate("() => fetch('/health')")  # a round trip after the release
    assert relay.sent() == []


def test_a_chunk_the_relay_refuses_stops_the_stream_and_says_why(talk_page, relay):
    page = talk_page
    posts: list[Any] = []

    def refuse_the_second(route: Any) -> None:
        posts.append(route.request.post_data_json)
        if len(posts) == 2:
            return route.fulfill(
                status=503, content_type="application/json", body='{"error": "the face left the room"}'
            )
        route.continue_()

    page.route("**/send_audio_message", refuse_the_second)
    page.get_by_role("button", name="Hold to talk").hover()
    page.mouse.down()
    page.wait_for_selector("#say-result.error")
    assert page.inner_text("#say-result") == (
        "the relay refused the voice (503: the face left the room): nothing more is sent"
    )
    assert page.is_hidden("#talk-live")  # the microphone is closed although the button is still held
    page.mouse.up()

    page.evaluate("() => fetch('/health')")  # a round trip after the release
    assert len(posts) == 2 and posts[0]["done"] is False
    audio = [m["properties"] for m in relay.sent()]
    assert len({p["inference_id"] for p in audio}) == 1 and not any(p.get("done") for p in audio)


def test_a_microphone_the_browser_refuses_gets_one_sentence_and_sends_nothing(page, relay):
    page.get_by_role("button", name="Hold to talk").hover()
    page.mouse.down()  # this Chromium has no fake microphone and no one to allow it

    page.wait_for_selector("#say-result.error")
    assert page.inner_text("#say-result") in (
        "the browser may not use the microphone: allow it for this page (the icon in the address bar), then hold again",
        "no microphone found: plug one in or choose one in the system settings",
    )
    page.mouse.up()
    assert relay.sent() == []


def test_the_microphone_switch_plays_the_voice_through_the_relays_microphone_and_sends_no_app_message(talk_page, relay):
    page = talk_page
    page.wait_for_selector("#talk-microphone:not([disabled])")  # the dry run has a (counting) microphone
    page.check("#talk-microphone")
    before = relay.health()["microphone"]["frames_played"]
    page.get_by_role("button", name="Hold to talk").hover()
    held = hold(page, page.mouse.down, page.mouse.up, HOLD_S)

    page.wait_for_selector("#say-result.ok:has-text(\"played through the relay's microphone\")")
    health = relay.wait_until(
        lambda: (h := relay.health())["microphone"]["playing_clip"] is None and h["microphone"]["queued_ms"] == 0 and h,
        "the microphone to play every clip",
    )
    seconds = (health["microphone"]["frames_played"] - before) / health["sample_rate"]
    shortest, longest = held
    assert HOLD_S - 0.4 <= shortest - 0.1 <= seconds <= longest + 0.1, (shortest, seconds, longest)
    assert relay.sent() == []  # microphone echo: no audio-echo app message went out


def test_interrupt_first_through_the_microphone_interrupts_before_the_first_clip(talk_page, relay):
    page = talk_page
    page.wait_for_selector("#talk-microphone:not([disabled])")
    page.check("#talk-microphone")
    page.check("#interrupt-first")
    page.get_by_role("button", name="Hold to talk").hover()
    hold(page, page.mouse.down, page.mouse.up, 0.5)

    page.wait_for_selector("#say-result.ok:has-text(\"played through the relay's microphone\")")
    assert [m["event_type"] for m in relay.sent()] == ["conversation.interrupt"]


def test_the_console_captures_at_the_relays_sample_rate(talk_browser, tmp_path, request):
    relay = Relay(tmp_path, RELAY_SAMPLE_RATE="16000")
    try:
        for page in open_console(talk_browser, relay, tmp_path, request):
            page.get_by_role("button", name="Hold to talk").hover()
            held = hold(page, page.mouse.down, page.mouse.up, HOLD_S)

            audio = spoken_audio(relay)
            assert {p["sample_rate"] for p in audio} == {16000}
            assert_one_utterance_as_long_as_the_hold(audio, held)
    finally:
        relay.stop()
