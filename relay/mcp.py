"""`python -m relay.mcp`: an MCP server over stdio, so that an agent (Claude Code, Claude Desktop, Cursor) makes
the face speak through a running relay.

Each tool is one or two calls to the relay's HTTP API (RELAY_URL, with RELAY_AUTH_TOKEN as the bearer token),
and the relay's answers and error sentences are passed on unchanged: the server holds no rules of its own,
so the relay's checks, limits and words stay in one place. It connects per call, never at start: an agent
host starts every server it knows at once, and one that waited for a relay not yet running would hold the
others. Nothing but the protocol goes to stdout; log lines go to stderr.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import shlex
import stat
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from config import CHECKOUT_DIR, ConfigError, McpSettings
from echo_messages import new_inference_id
from relay.http_client import RelayConnection, RelayRefused, RelayTimeout, poll
from relay.options import OneLineParser, UsageError
from relay.utterances import DONE_STATES

log = logging.getLogger("echo_relay.mcp")

SERVER_NAME = "echo-relay"
MAX_EVENT_TEXT_CHARS = 300  # recent_events cuts a longer text (a participant chooses what it sends)
MAX_EVENT_ITEMS = 20  # ... and a longer list
MAX_EVENT_DEPTH = 6  # ... and nesting deeper than this
DEFAULT_EVENTS = 20
SCRIPT_NAME = "agent"

Wait = Literal["spoken", "started", "none"]

COSTS = (
    "It costs nothing beyond the Tavus conversation already running: no tool here creates or ends a conversation."
)
INSTRUCTIONS = (
    "Drives a Tavus face through the echo relay (a local service that has joined the conversation's room): "
    "say makes it speak, interrupt stops it, face_status and recent_events tell what it is doing. "
    "The relay must be running (python app.py); its dry run has a stand-in face that needs no account."
)


# --- the tools -------------------------------------------------------------------------------------------


def _reached(utterance: Mapping[str, Any], wait: Wait) -> bool:
    """The relay's own states: done (spoken, interrupted, failed), and for "started" also speaking."""
    state = utterance.get("state")
    return state in DONE_STATES or (wait == "started" and state == "speaking")


def _outcome(utterance: Mapping[str, Any] | None, wait: Wait) -> str:
    if utterance is None:
        return "not sent yet"
    state = str(utterance.get("state"))
    if _reached(utterance, wait):
        return "started" if state == "speaking" else state
    return "still speaking" if state == "speaking" else "not started yet"


class FaceTools:
    """The tools, each a method reaching the relay through a RelayConnection of its own."""

    def __init__(self, settings: McpSettings) -> None:
        self.settings = settings

    def _relay(self) -> RelayConnection:
        return RelayConnection(self.settings)

    # --- speaking ------------------------------------------------------------------------------------

    def say(
        self,
        text: Annotated[str, Field(description="What the face says, as written.")],
        emotion: Annotated[
            str | None,
            Field(description="How the face and its voice feel while saying it, such as excited, sad or surprised."),
        ] = None,
        wait: Annotated[
            Wait,
            Field(
                description='Answer once the face finished saying it ("spoken"), once it started ("started"), '
                'or once Daily confirmed the delivery ("none").'
            ),
        ] = "spoken",
        interrupt_first: Annotated[bool, Field(description="Cut off whatever the face is saying first.")] = False,
    ) -> dict[str, Any]:
        inference_id = new_inference_id()
        body: dict[str, Any] = {"text": text, "inference_id": inference_id}
        if emotion is not None:
            body["emotion"] = emotion
        if interrupt_first:
            body["interrupt"] = True
        with self._relay() as relay:
            return self._speak(
                relay,
                wait,
                inference_id,
                lambda timeout: relay.call("POST", "/send_text_message", json=body, timeout=timeout),
            )

    def play_audio(
        self,
        path: Annotated[str, Field(description="The audio file: WAV, MP3, FLAC or OGG.")],
        wait: Annotated[
            Wait,
            Field(description='As for say: "spoken", "started" or "none".'),
        ] = "spoken",
    ) -> dict[str, Any]:
        file = self._audio_file(path)
        content_type = mimetypes.guess_type(file.name)[0] or ""
        if not content_type.startswith("audio/"):
            content_type = "application/octet-stream"  # the relay recognises the format from the bytes
        inference_id = new_inference_id()
        params = {"inference_id": inference_id}
        with file.open("rb") as audio, self._relay() as relay:
            return self._speak(
                relay,
                wait,
                inference_id,
                lambda timeout: relay.call(
                    "POST", "/send_audio_message", params=params, data=audio,
                    headers={"Content-Type": content_type}, timeout=timeout,
                ),
            )

    def _speak(
        self, relay: RelayConnection, wait: Wait, inference_id: str, send: Callable[[float], dict[str, Any]]
    ) -> dict[str, Any]:
        """Send (the relay answers once Daily confirmed), then follow the utterance at GET /utterances/<id>
        until the face reached `wait`, all within RELAY_MCP_SAY_TIMEOUT.

        Not the relay's own `wait`: the agent's bound is its own (shorter than
        RELAY_SPOKEN_TIMEOUT, and also covering a send held while the face is
        not in the room), and at the bound the answer still says how far the
        utterance got, from the utterance's own state.
        """
        bound = self.settings.say_timeout_s
        deadline = time.monotonic() + bound
        path = f"/utterances/{quote(inference_id, safe='')}"
        try:
            sent: dict[str, Any] | None = send(bound)
        except RelayTimeout:
            sent = None
        if sent is not None and wait == "none":
            return {"outcome": "sent", "inference_id": inference_id, "sent": sent}
        utterance = self._utterance(relay, path) if sent is None else poll(
            lambda: relay.call("GET", path), lambda found: _reached(found, wait), deadline
        )
        answer: dict[str, Any] = {"outcome": _outcome(utterance, wait), "inference_id": inference_id}
        if utterance is not None:
            answer |= {key: utterance.get(key) for key in ("started_after_ms", "duration_s")}
            answer["utterance"] = utterance
        if sent is not None:
            answer["sent"] = sent
        if utterance is None or not _reached(utterance, wait):
            answer["note"] = (
                f"the face had not {'finished' if wait == 'spoken' else 'started'} it after {bound:g} s "
                "(RELAY_MCP_SAY_TIMEOUT); follow it with recent_events, or stop it with interrupt"
            )
        return answer

    @staticmethod
    def _utterance(relay: RelayConnection, path: str) -> dict[str, Any] | None:
        """The utterance as the relay knows it, None if it does not yet (still waiting to take its turn)."""
        try:
            found: dict[str, Any] = relay.call("GET", path)
        except RelayTimeout:
            return None
        except RelayRefused as error:
            if error.status == 404:
                return None
            raise
        return found

    def _audio_file(self, written: str) -> Path:
        """The file play_audio may read: a regular file, inside RELAY_AUDIO_DIR when that is set.

        Outside the folder, the error is the same whether or not something is
        there, so the tool cannot be used to learn what exists elsewhere.
        """
        folder = Path(self.settings.audio_dir).resolve() if self.settings.audio_dir else None
        try:
            path = ((folder or Path.cwd()) / Path(written).expanduser()).resolve()  # an absolute path replaces folder
        except (OSError, ValueError, RuntimeError):  # ValueError: a NUL in the name; RuntimeError: a symlink loop
            raise ToolError(f"no audio file {written}") from None
        if folder is not None and not path.is_relative_to(folder):
            raise ToolError(f"{written} is not inside RELAY_AUDIO_DIR ({folder}): play_audio reads only files there")
        try:
            mode = path.stat().st_mode  # before opening: opening a FIFO would block
        except (OSError, ValueError):
            raise ToolError(f"no audio file {written} (looked for {path})") from None
        if not stat.S_ISREG(mode):
            raise ToolError(f"{written} is not a regular file: play_audio reads audio files only")
        return path

    # --- the rest --------------------------------------------------------------------------------------

    def interrupt(self) -> dict[str, Any]:
        with self._relay() as relay:
            speaking = relay.call("GET", "/health").get("replica_speaking")
            answer: dict[str, Any] = relay.call("POST", "/interrupt")
        return {**answer, "face_was_speaking": speaking}

    def face_status(self) -> dict[str, Any]:
        with self._relay() as relay:
            health: dict[str, Any] = relay.call("GET", "/health")
        return health

    def recent_events(
        self,
        after: Annotated[
            int | None,
            Field(description="Only events after this id: the next_after of the last answer. Default: the last few."),
        ] = None,
        limit: Annotated[int, Field(description="At most this many events.")] = DEFAULT_EVENTS,
    ) -> dict[str, Any]:
        with self._relay() as relay:
            if after is None:
                last = relay.call("GET", "/health").get("last_event_id")
                after = max(0, last - limit) if isinstance(last, int) else 0
            events = relay.call("GET", "/events", params={"after": after, "limit": limit})
        ids = [event["id"] for event in events if isinstance(event.get("id"), int)]
        return {"events": [excerpt(event) for event in events], "next_after": ids[-1] if ids else after}

    def run_script(
        self,
        text: Annotated[
            str,
            Field(
                description="The script: one line per utterance; '@pause 1.5' waits; '@audio NAME' plays a file "
                "from the relay's RELAY_AUDIO_DIR; '#' starts a comment."
            ),
        ],
        step: Annotated[bool, Field(description="Only load it: next_line then plays one line at a time.")] = False,
    ) -> dict[str, Any]:
        with self._relay() as relay:
            loaded: dict[str, Any] = relay.call("POST", "/script", json={"script": text, "name": SCRIPT_NAME})
            return loaded if step else relay.call("POST", "/script/play")

    def next_line(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.settings.say_timeout_s
        with self._relay() as relay:
            state: dict[str, Any] = relay.call("POST", "/script/next")
            if state.get("playing"):
                state = poll(lambda: relay.call("GET", "/script"), lambda now: not now.get("playing"), deadline)
        return state

    def stop_script(self) -> dict[str, Any]:
        with self._relay() as relay:
            state: dict[str, Any] = relay.call("POST", "/script/stop")
        return state


def excerpt(value: Any, depth: int = 0) -> Any:
    """An event as the relay listed it, with long texts and lists cut short: an agent reads every word of it."""
    if isinstance(value, str) and len(value) > MAX_EVENT_TEXT_CHARS:
        return f"{value[:MAX_EVENT_TEXT_CHARS]}… ({len(value)} characters)"
    if isinstance(value, (dict, list)) and depth >= MAX_EVENT_DEPTH:
        return "…"
    if isinstance(value, dict):
        return {key: excerpt(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        cut = [excerpt(item, depth + 1) for item in value[:MAX_EVENT_ITEMS]]
        return cut + [f"… ({len(value)} items)"] if len(value) > MAX_EVENT_ITEMS else cut
    return value


# --- the server ------------------------------------------------------------------------------------------


def descriptions(settings: McpSettings) -> dict[str, str]:
    """What each tool does, in the face's terms, as the agent reads it."""
    bound = f"{settings.say_timeout_s:g} s (RELAY_MCP_SAY_TIMEOUT)"
    files = (
        f"Only regular files inside {Path(settings.audio_dir).resolve()} (RELAY_AUDIO_DIR); a relative path is taken "
        "inside that folder."
        if settings.audio_dir
        else "Any regular file this server may read (an absolute path is best; RELAY_AUDIO_DIR would hold it to one "
        "folder)."
    )
    return {
        "say": "Make the Tavus face say a text aloud, with its own voice and lips, in the conversation the echo "
        "relay has joined (in the relay's dry run, a stand-in face). Answers the inference_id and the outcome "
        "(spoken, interrupted, started, sent; at the bound of " + bound + ": still speaking, not started yet or "
        "not sent yet), started_after_ms (how long the face took to start: Tavus's latency) and duration_s (how "
        "long it spoke). " + COSTS,
        "play_audio": "Make the face speak an audio file from this machine (WAV, MP3, FLAC or OGG), lips in sync: "
        "this server reads the file and uploads it to the relay. " + files + " Answers as say does. " + COSTS,
        "interrupt": "Stop the face speaking now: what it is saying is cut off, and what the relay still held "
        "for it is dropped (and a script run stops). Answers what was cut off: face_was_speaking, "
        "requests_dropped. " + COSTS,
        "face_status": "Whether the face is in the room (face.present) and speaking (replica_speaking), the "
        "connection to the room, the relay's mode (room or dry-run), and the face's latency from a request to "
        "its starting to speak (latency.p50_ms, latency.p95_ms). Without the relay's token it says only "
        "auth_required. " + COSTS,
        "recent_events": "What the face and the room reported, and what the relay did: the face starting and "
        "stopping to speak, what was said, participants, interrupts, a script's progress; oldest first, long "
        "texts cut short. Pass after=<next_after of the last answer> to hear only what is new. " + COSTS,
        "run_script": "Rehearse a demo: load a script for the face and play it through, each line once the face "
        "finished the last (step=true only loads it, for next_line). " + COSTS,
        "next_line": "Play the next line of the loaded script and answer once the face finished it (at most "
        + bound + "): the script's position and whether a line still plays. " + COSTS,
        "stop_script": "Stop the script run; the line being played is not resumed (interrupt also stops the "
        "face). " + COSTS,
    }


def build_server(settings: McpSettings) -> MCPServer:
    """The MCP server with its eight tools; nothing here touches the network."""
    server: MCPServer = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, log_level="WARNING")
    tools = FaceTools(settings)
    for name, description in descriptions(settings).items():
        server.add_tool(getattr(tools, name), name=name, description=description)
    return server


# --- the command line --------------------------------------------------------------------------------------


def agent_entries(python: str, folder: Path) -> str:
    """The lines a user adds to an agent's configuration, with this machine's paths.

    The server runs as `python -m relay.mcp` with the repository on
    PYTHONPATH: agent hosts start it in a folder of their own choosing.
    """
    entry = {"command": python, "args": ["-m", "relay.mcp"], "env": {"PYTHONPATH": str(folder)}}
    config = json.dumps({"mcpServers": {SERVER_NAME: entry}}, indent=2)
    claude = shlex.join(
        ["claude", "mcp", "add", "--scope", "user", SERVER_NAME, "--env", f"PYTHONPATH={folder}", "--", python,
         "-m", "relay.mcp"]
    )
    return "\n".join(
        [
            "Claude Code (run it once):",
            f"  {claude}",
            "",
            'Claude Desktop (claude_desktop_config.json: Settings > Developer > Edit Config; merge into "mcpServers"):',
            config,
            "",
            'Cursor (~/.cursor/mcp.json, or .cursor/mcp.json in a project; merge into "mcpServers"):',
            config,
            "",
            (
                "The server reads RELAY_URL, RELAY_AUTH_TOKEN, RELAY_MCP_SAY_TIMEOUT and RELAY_AUDIO_DIR from its "
                "environment or "
                f"{folder / '.env'}."
            ),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m relay.mcp",
        description="An MCP server over stdio: an agent makes the face speak through the running relay (RELAY_URL).",
    )
    parser.add_argument(
        "--print-config", action="store_true",
        help="print the entries for Claude Code, Claude Desktop and Cursor, with this machine's paths, and exit",
    )
    try:
        args = parser.parse_args(argv)
        if args.print_config:
            print(agent_entries(sys.executable, CHECKOUT_DIR))
            return 0
        settings = McpSettings.from_env()
    except (UsageError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    log.info("MCP server on stdio for the relay at %s (RELAY_URL)", settings.relay_url)
    try:
        build_server(settings).run("stdio")
    except KeyboardInterrupt:  # Ctrl-C in a terminal: the end, not an error
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
