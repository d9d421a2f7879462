"""Scripted demos: a plain-text script, played line by line, each line once the face stopped saying the last.

The format, one step a line:

    # a comment
    Hello there! Every other line is something for the face to say.
    @pause 1.5
    @audio speech.wav        (a file in the script's folder; over HTTP, in RELAY_AUDIO_DIR only)
    @emotion excited         (Tavus's emotion tag before each line to say after it; @emotion none ends it)
    \\@ or \\# at the start speaks a line that begins with @ or #

Markup inside a line (`<break time="1s"/>`, `[laughter]`) is passed to
Tavus's voice as written, and never cut (relay/markup.py). An emotion is a
directive, not a leading `[excited]`, which would read like `[laughter]`.

One runner serves the terminal (`python app.py --script demo.txt`) and the
console (POST /script, /script/next, /script/play, /script/stop): it sends a
step through the relay like any request, then waits until the utterance
tracker (relay/utterances.py) says the face stopped speaking that step's
`inference_id`, at most RELAY_SCRIPT_LINE_TIMEOUT, so a lost event never hangs
the demo.
"""

from __future__ import annotations

import logging
import stat
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import soundfile

import echo_messages
from relay.errors import MessageError, RelayError, ScriptNotReady
from relay.events import excerpt
from relay.logs import escape_control
from relay.markup import check_emotion, with_emotion

if TYPE_CHECKING:  # types only: the runner reaches them through the relay it is given
    from relay.events import EventLog
    from relay.room import RelayRoom
    from relay.utterances import UtteranceTracker

log = logging.getLogger("echo_relay")

MAX_PAUSE_S = 600.0
# A script is read whole and shown whole (GET /script, the console): 2.5 million one-character lines took 11 s and
# 1.5 GB to load, and GET /script answered 116 MB. A demo has hundreds of lines, each a few sentences.
MAX_SCRIPT_LINES = 10_000
MAX_SCRIPT_LINE_CHARS = 20_000  # about 3,000 words, twenty minutes of speech: send a longer text as a request
# What str.splitlines() ends a line at; "\r\n" ends one line, though it is two of them.
LINE_BREAKS = ("\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
DIRECTIVES = "@audio FILE, @pause SECONDS or @emotion NAME"
NO_EMOTION = "none"  # `@emotion none`: the lines after it have no emotion tag
EMOTION = "emotion"  # the kind of an @emotion line while parsing: it changes the lines after it, it is no step


class ScriptError(MessageError):
    """A script that cannot be played; the message starts with the line number. Nothing was sent."""


@dataclass(frozen=True)
class Step:
    line: int
    kind: str  # "say", "audio" or "pause"
    text: str = ""  # what the face says ("say"), as written
    file_name: str = ""  # the audio file as the script names it ("audio")
    path: Path | None = None  # where that file is ("audio")
    seconds: float = 0.0  # how long to wait ("pause")
    emotion: str | None = None  # the emotion of the last @emotion before it ("say")

    def as_dict(self) -> dict[str, Any]:
        """How GET /script and the `relay.script` events show it: a line's text as an excerpt, as every event's
        text is (2.5 million lines shown whole made GET /script answer 116 MB)."""
        shown = {
            "say": excerpt(self.text), "audio": f"audio {excerpt(self.file_name)}", "pause": f"pause {self.seconds:g} s"
        }[self.kind]
        fields: dict[str, Any] = {"line": self.line, "kind": self.kind, "text": shown}
        if self.emotion is not None:
            fields["emotion"] = self.emotion
        return fields

    def spoken_text(self) -> str:
        """What goes to Tavus's voice for a "say" step: the line, after its emotion's tag."""
        return with_emotion(self.text, self.emotion)


def parse_script(text: str, audio_dir: Path, *, name: str = "the script", confined: bool = False) -> list[Step]:
    """Every step, checked now (a missing or unreadable audio file, an unknown directive): nothing is sent on error.

    `audio_dir` is where @audio names are looked for. A script the user gave
    on the command line (`confined=False`) names any file, relative to its own
    folder. A script that arrived over HTTP (`confined=True`) may name only
    regular files inside `audio_dir` (RELAY_AUDIO_DIR): no absolute path, no
    `..`, no link that leads out; its errors show the name as written only,
    the same whether or not something is there, so a request cannot probe the disk.
    """
    _check_line_count(text, name)
    steps: list[Step] = []
    emotion: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if len(raw) > MAX_SCRIPT_LINE_CHARS:
            raise ScriptError(
                f"{name} line {number} has {len(raw)} characters, more than a script line may have "
                f"({MAX_SCRIPT_LINE_CHARS}): split it over several lines, or send it as one request"
            )
        step = _step(raw.strip(), f"{name} line {number}", number, audio_dir, confined)
        if step is None:
            continue
        if step.kind == EMOTION:
            emotion = step.emotion
        else:
            steps.append(replace(step, emotion=emotion) if step.kind == "say" else step)
    if not steps:
        raise ScriptError(f"{name} has nothing to play: write one line for the face to say per line")
    return steps


def _check_line_count(text: str, name: str) -> None:
    """More than MAX_SCRIPT_LINES lines is a ScriptError, found by counting line breaks: before a line is split out."""
    breaks = sum(text.count(mark) for mark in LINE_BREAKS) - text.count("\r\n")
    lines = breaks + (not text.endswith(LINE_BREAKS))
    if lines > MAX_SCRIPT_LINES:
        raise ScriptError(
            f"{name} has {lines} lines, more than a script may have ({MAX_SCRIPT_LINES}): split it into several scripts"
        )


def _step(line: str, where: str, number: int, audio_dir: Path, confined: bool) -> Step | None:
    if not line or line.startswith("#"):
        return None
    if line.startswith(("\\@", "\\#")):
        return Step(number, "say", text=line[1:])
    if not line.startswith("@"):
        return Step(number, "say", text=line)
    directive, _, argument = line[1:].partition(" ")
    argument = argument.strip()
    if directive == "pause":
        try:
            seconds = float(argument)
        except ValueError:
            raise ScriptError(f"{where}: @pause needs seconds, such as @pause 1.5, got {argument[:40]!r}") from None
        if not 0 <= seconds <= MAX_PAUSE_S:
            raise ScriptError(f"{where}: @pause takes 0 to {MAX_PAUSE_S:g} seconds, got {seconds:g}")
        return Step(number, "pause", seconds=seconds)
    if directive == "audio":
        if not argument:
            raise ScriptError(f"{where}: @audio needs a file, such as @audio speech.wav")
        path = _audio_in_folder(argument, audio_dir, where) if confined else _audio_anywhere(argument, audio_dir, where)
        return Step(number, "audio", file_name=argument, path=path)
    if directive == EMOTION:
        return Step(number, EMOTION, emotion=_emotion(argument, where))
    raise ScriptError(
        f"{where}: unknown directive @{directive[:30]}: use {DIRECTIVES} (start the line with \\@ to say it)"
    )


def _emotion(argument: str, where: str) -> str | None:
    """The emotion an @emotion line names (None for `none`); one Tavus does not list stops the script at load."""
    if not argument:
        raise ScriptError(f"{where}: @emotion needs an emotion, such as @emotion excited (or @emotion none)")
    if argument == NO_EMOTION:
        return None
    try:
        return check_emotion(argument, "@emotion", instead=f"@emotion {NO_EMOTION} ends it")
    except MessageError as error:
        raise ScriptError(f"{where}: {error}") from None


def _audio_anywhere(argument: str, base_dir: Path, where: str) -> Path:
    """A command-line script's file: the user chose the script, so any file it names, said plainly if missing."""
    path = base_dir / argument
    try:
        path = path.resolve()
        found = path.is_file()
    except (OSError, ValueError):  # ValueError: a NUL in the name
        found = False
    if not found:
        raise ScriptError(f"{where}: no audio file {argument} (looked for {path})")
    try:
        soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise ScriptError(f"{where}: {argument} is not audio the relay can decode ({error})") from None
    return path


def _audio_in_folder(argument: str, audio_dir: Path, where: str) -> Path:
    """A file named by a script from a request: a decodable regular file inside `audio_dir`, or one error
    that names only what was written (never a resolved path, never whether something exists)."""
    shown = escape_control(argument[:80])  # no control character reaches a log
    refused = ScriptError(
        f"{where}: no audio file {shown} in the audio folder: name a file in RELAY_AUDIO_DIR "
        "by its name or a path inside it"
    )
    written = Path(argument)
    if written.is_absolute() or ".." in written.parts:
        raise refused
    folder = audio_dir.resolve()
    try:
        path = (folder / written).resolve(strict=True)
        if not path.is_relative_to(folder) or not stat.S_ISREG(path.stat().st_mode):
            raise refused
        soundfile.info(str(path))
    except (OSError, ValueError, RuntimeError, soundfile.LibsndfileError):  # ValueError: a NUL in the name
        raise refused from None
    return path


class ScriptVoice(Protocol):
    """What the runner needs of the relay (relay/core.py's Relay): speak a step as any request is spoken, the
    room to wait for the face in, the tracker that says when the face stopped, and the events to tell."""

    @property
    def room(self) -> RelayRoom: ...
    @property
    def tracker(self) -> UtteranceTracker: ...
    @property
    def events(self) -> EventLog: ...

    def speak_text(self, echo: echo_messages.TextEcho) -> dict[str, Any]: ...
    def speak_file(self, path: Path, *, inference_id: str | None = None) -> dict[str, Any]: ...


class ScriptRunner:
    """Plays a loaded script through the relay: a step at a time (next) or all that is left (play).

    One step runs at a time, on a thread of its own; `stop` (and any interrupt,
    through `halt`) ends a run at once, whatever it is waiting for.
    """

    def __init__(self, relay: ScriptVoice, *, line_timeout_s: float) -> None:
        self._relay = relay
        self._line_timeout_s = line_timeout_s
        self._steps: list[Step] = []
        self._name = ""
        self._position = 0
        self._running: threading.Thread | None = None
        self._stop = threading.Event()
        self._over = threading.Event()  # the run ended: finished, failed or stopped
        self._finished = False
        self.failed = False  # a line could not be spoken (not: stopped by an interrupt or Ctrl-C)
        self._lock = threading.Lock()

    def load(self, steps: list[Step], name: str) -> dict[str, Any]:
        self.stop()
        with self._lock:
            self._steps, self._name, self._position, self._finished, self.failed = steps, name, 0, False, False
            self._over.clear()
        self._publish("loaded")
        return self.state()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "name": self._name,
                "steps": [step.as_dict() for step in self._steps],
                "position": self._position,
                "playing": self._running is not None and self._running.is_alive(),
                "finished": self._finished,
            }

    def next(self) -> dict[str, Any]:
        """Play the next step (and only it)."""
        return self._start(all_of_it=False)

    def play(self) -> dict[str, Any]:
        """Play every step that is left, each after the last."""
        return self._start(all_of_it=True)

    def halt(self) -> None:
        """Ask a run to end (an interrupt does): it stops at once, whatever it waits for, and says so."""
        self._stop.set()

    def stop(self) -> None:
        """End a run and wait for it to have ended; the step being played is not resumed."""
        self.halt()
        with self._lock:
            running = self._running
        if running is not None:
            running.join(5)

    def wait_until_over(self, timeout: float | None = None) -> bool:
        """Until a run ended (finished, failed or stopped)."""
        return self._over.wait(timeout)

    def _start(self, *, all_of_it: bool) -> dict[str, Any]:
        with self._lock:
            if not self._steps:
                raise ScriptNotReady("no script is loaded: POST /script with {\"script\": \"...\"} first")
            if self._running is not None and self._running.is_alive():
                raise ScriptNotReady("a line is still playing: wait for it, or POST /script/stop")
            if self._position >= len(self._steps):
                raise ScriptNotReady("the script is finished: load it again (POST /script) to play it from the start")
            self._stop.clear()
            self._running = threading.Thread(target=self._run, args=(all_of_it,), name="relay-script", daemon=True)
            self._running.start()
        return self.state()

    def _run(self, all_of_it: bool) -> None:
        try:
            if self._wait_for_the_face_to_join():
                self._play_steps(all_of_it)
            if self._stop.is_set():
                self._publish("stopped")
        finally:
            if all_of_it or self._finished or self._stop.is_set():
                self._over.set()

    def _wait_for_the_face_to_join(self) -> bool:
        """A cold start can take minutes: the first line waits for the face, however long, until stopped."""
        room = self._relay.room
        if not room.replica_present:
            log.info("script %s: waiting for the face to join the room", self._name)
        while not room.wait_for_replica(0.2):
            if self._stop.is_set():
                return False
        return True

    def _play_steps(self, all_of_it: bool) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._position >= len(self._steps):
                    break
                step, index = self._steps[self._position], self._position
            if not self._play(step, index):
                return
            with self._lock:
                self._position += 1
            if not all_of_it:
                break
        with self._lock:
            self._finished = self._position >= len(self._steps) and not self._stop.is_set()
        if self._finished:
            self._publish("finished")

    def _play(self, step: Step, index: int) -> bool:
        """One step, and the wait for the face; False when the run must end (stopped, or the step failed).

        A spoken step's events carry its `inference_id`, so the console can put
        what the face reports saying under the line it belongs to."""
        if step.kind == "pause":
            self._publish("playing", step, index)
            if self._stop.wait(step.seconds):
                return False
            self._publish("done", step, index)
            return True
        inference_id = echo_messages.new_inference_id()
        self._publish("playing", step, index, inference_id=inference_id)
        try:
            if step.kind == "say":
                self._relay.speak_text(echo_messages.TextEcho(step.spoken_text(), inference_id=inference_id))
            else:
                assert step.path is not None  # an audio step always has its file
                self._relay.speak_file(step.path, inference_id=inference_id)
        except RelayError as error:
            if not self._stop.is_set():  # an interrupt that stops the run also cuts the line: not a failure
                self.failed = True
                self._publish("failed", step, index, error=str(error), inference_id=inference_id)
            return False
        heard = self._wait_for_the_face(inference_id)
        if heard == "spoken":
            self._publish("spoken", step, index, inference_id=inference_id)
        elif heard == "gone":  # the next line will say why it cannot be spoken
            self._publish("face_gone", step, index, inference_id=inference_id)
        elif not self._stop.is_set():
            self._publish("timed_out", step, index, waited_s=self._line_timeout_s, inference_id=inference_id)
        return not self._stop.is_set()

    def _wait_for_the_face(self, inference_id: str) -> str:
        """Until the face stopped saying `inference_id` ("spoken"), left or the call ended ("gone"), or neither
        came in time or a stop came ("waited")."""
        room = self._relay.room
        heard = self._relay.tracker.wait(
            inference_id, "spoken", self._line_timeout_s,
            give_up=lambda: self._stop.is_set() or room.delivery_problem() is not None,
        )
        if heard is not None:
            return "spoken"
        return "gone" if room.delivery_problem() is not None and not self._stop.is_set() else "waited"

    def _publish(self, state: str, step: Step | None = None, index: int | None = None, **extra: Any) -> None:
        fields: dict[str, Any] = {"state": state, "name": self._name, "total": len(self._steps), **extra}
        if step is not None:
            fields |= {"index": index, **step.as_dict()}
        self._relay.events.publish("relay.script", **fields)
        where = (
            f" line {step.line} ({(index or 0) + 1}/{len(self._steps)}): {step.as_dict()['text'][:70]}" if step else ""
        )
        error = f": {extra['error']}" if "error" in extra else ""
        log.info("script %s: %s%s%s", self._name, state.replace("_", " "), where, error)
