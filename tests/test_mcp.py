"""`python -m relay.mcp` as an agent host runs it: the SDK's stdio client, a real server process, a dry-run relay.

One dry-run relay and one agent session serve the module (each test starts with the face quiet); the tests
that need another setting (no relay, a token) start their own. A few rules are checked in-process, on the
tools themselves, where no protocol is involved.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import wave
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.server.mcpserver.exceptions import ToolError

import config
from config import ConfigError, McpSettings
from relay import mcp as relay_mcp
from relay.http_client import CONNECT_TIMEOUT_S
from relay.mcp import MAX_EVENT_ITEMS, MAX_EVENT_TEXT_CHARS, FaceTools, excerpt
from tests.conftest import assert_no_secret, free_port, wait_until
from tests.docs import code_blocks, page
from tests.test_app_main import relay_env
from tests.wsgi_server import serve_wsgi

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30
CALL_TIMEOUT_S = 60  # generous: a hung call fails the test with a clear error instead of holding the run
TOOLS = {"say", "play_audio", "interrupt", "face_status", "recent_events", "run_script", "next_line", "stop_script"}
TOKEN = "s3cret-token"  # in conftest's SECRETS: no output may show it
LONG_TEXT = " ".join(["word"] * 60)  # the dry run's face takes 24 s to say it (150 words a minute)


# --- a dry-run relay, and an agent host ------------------------------------------------------------------


@contextmanager
def dry_run_relay(folder: Path, **env: str) -> Iterator[str]:
    """`python app.py` (the dry run) on a port the OS picks; its URL. Its output goes to a file, read for the
    port and, at the end, for secrets."""
    output = folder / "relay.log"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py")], cwd=folder, stdout=sink, stderr=subprocess.STDOUT,
            env=relay_env(RELAY_SPOKEN_TIMEOUT="5", **env),
        )
        try:
            yield f"http://127.0.0.1:{_listening_port(process, output)}"
        finally:
            process.terminate()
            process.wait(30)
    assert_no_secret(output.read_text())


def _listening_port(process: subprocess.Popen[bytes], output: Path) -> int:
    def listening() -> re.Match[str] | None:
        assert process.poll() is None, f"the relay did not start: {output.read_text()}"
        return re.search(r"listening on http://127\.0\.0\.1:(\d+)", output.read_text())

    return int(wait_until(listening, lambda: f"the relay to start: {output.read_text()}", START_TIMEOUT_S).group(1))


def server_env(relay_url: str, **env: str) -> dict[str, str]:
    """The MCP server's settings, every one given, so that no `.env` in the checkout changes a test."""
    return {
        "PYTHONPATH": str(ROOT), "RELAY_URL": relay_url, "RELAY_AUTH_TOKEN": "", "RELAY_MCP_SAY_TIMEOUT": "30",
        "RELAY_AUDIO_DIR": "", **env,
    }


class Agent:
    """What an agent host has: an initialized MCP session with `python -m relay.mcp`, over the SDK's stdio client."""

    def __init__(self, portal: BlockingPortal, session: ClientSession) -> None:
        self.portal = portal
        self.session = session

    def call(self, tool: str, **arguments: Any) -> Any:
        return self.portal.call(self._call, tool, arguments)

    def start(self, tool: str, **arguments: Any) -> Future[Any]:
        """A call that runs while the test goes on (a say, while another tool interrupts it)."""
        return self.portal.start_task_soon(self._call, tool, arguments)

    def list_tools(self) -> Any:
        return self.portal.call(self.session.list_tools)

    async def _call(self, tool: str, arguments: dict[str, Any]) -> Any:
        return await self.session.call_tool(tool, arguments, read_timeout_seconds=CALL_TIMEOUT_S)


@contextmanager
def agent_session(portal: BlockingPortal, folder: Path, relay_url: str, **env: str) -> Iterator[Agent]:
    errors = folder / f"mcp-server-{time.monotonic_ns()}.log"
    with errors.open("w") as errlog, portal.wrap_async_context_manager(_session(relay_url, env, errlog)) as session:
        yield Agent(portal, session)
    printed = errors.read_text()
    assert_no_secret(printed)
    assert "Traceback" not in printed, printed


@asynccontextmanager
async def _session(relay_url: str, env: dict[str, str], errlog: Any) -> AsyncIterator[ClientSession]:
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "relay.mcp"], cwd=ROOT, env=server_env(relay_url, **env)
    )
    async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def answer(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    structured: dict[str, Any] = result.structured_content
    return structured


def tool_error(result: Any) -> str:
    assert result.is_error, result.structured_content
    text: str = result.content[0].text
    return text


def health(relay_url: str) -> dict[str, Any]:
    found: dict[str, Any] = requests.get(f"{relay_url}/health", timeout=5).json()
    return found


def wait_until_speaking(relay_url: str) -> None:
    wait_until(lambda: health(relay_url)["replica_speaking"], "the face started speaking")


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as portal:
        yield portal


@pytest.fixture(scope="module")
def relay_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dry_run_relay(tmp_path_factory.mktemp("relay")) as url:
        yield url


@pytest.fixture(scope="module")
def agent(portal: BlockingPortal, relay_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    with agent_session(portal, tmp_path_factory.mktemp("agent"), relay_url) as agent:
        yield agent


@pytest.fixture
def quiet_relay(relay_url: str) -> str:
    """The shared relay with its face silent and no script running, whatever the test before left."""
    requests.post(f"{relay_url}/script/stop", timeout=10).raise_for_status()
    requests.post(f"{relay_url}/interrupt", timeout=10).raise_for_status()
    return relay_url


# --- what an agent sees ----------------------------------------------------------------------------------


def test_an_agent_lists_the_eight_tools_with_their_input_schemas(agent):
    tools = {tool.name: tool for tool in agent.list_tools().tools}

    assert set(tools) == TOOLS
    say = tools["say"].input_schema
    assert say["required"] == ["text"]
    assert set(say["properties"]) == {"text", "emotion", "wait", "interrupt_first"}
    assert say["properties"]["wait"]["enum"] == ["spoken", "started", "none"]
    assert tools["play_audio"].input_schema["required"] == ["path"]
    assert set(tools["recent_events"].input_schema["properties"]) == {"after", "limit"}
    assert all("costs nothing beyond the Tavus conversation already running" in t.description for t in tools.values())


def test_say_answers_spoken_with_the_faces_latency(agent, quiet_relay):
    said = answer(agent.call("say", text="Hello there!"))

    assert said["outcome"] == "spoken"
    assert isinstance(said["started_after_ms"], int) and said["duration_s"] > 0
    relay_says = requests.get(f"{quiet_relay}/utterances/{said['inference_id']}", timeout=5).json()
    assert said["utterance"] == relay_says and relay_says["state"] == "spoken"
    assert said["sent"]["status"] == "Message sent successfully" and said["sent"]["mode"] == "dry-run"


def test_say_with_wait_none_answers_once_daily_confirmed_it(agent, quiet_relay):
    said = answer(agent.call("say", text="Hi", wait="none"))

    assert said["outcome"] == "sent" and said["sent"]["messages_sent"] == 1
    assert said["sent"]["inference_id"] == said["inference_id"]


def test_say_with_an_unknown_emotion_is_the_relays_own_400_sentence(agent, quiet_relay):
    refused = requests.post(
        f"{quiet_relay}/send_text_message", json={"text": "Hi", "emotion": "no-such-emotion"}, timeout=10
    )
    assert refused.status_code == 400

    error = tool_error(agent.call("say", text="Hi", emotion="no-such-emotion"))

    assert error == f"Error executing tool say: {refused.json()['error']}"


def test_interrupt_during_a_long_say_makes_that_say_answer_interrupted(agent, quiet_relay):
    long_say = agent.start("say", text=LONG_TEXT)
    wait_until_speaking(quiet_relay)

    cut = answer(agent.call("interrupt"))

    assert cut["status"] == "Interrupted" and cut["face_was_speaking"] is True
    said = answer(long_say.result(CALL_TIMEOUT_S))
    assert said["outcome"] == "interrupted" and said["utterance"]["interrupted"] is True


def test_a_say_cut_off_before_the_face_started_it_answers_interrupted(agent, quiet_relay):
    long_say = agent.start("say", text=LONG_TEXT)
    wait_until_speaking(quiet_relay)
    sent_before = health(quiet_relay)["messages_sent"]
    queued_say = agent.start("say", text="After that.")  # the face says it once it finished the long one
    wait_until(lambda: health(quiet_relay)["messages_sent"] > sent_before, "the second say was sent")

    answer(agent.call("interrupt"))

    said = answer(queued_say.result(CALL_TIMEOUT_S))
    assert said["outcome"] == "interrupted" and said["utterance"]["started_speaking_at"] is None
    assert said["sent"]["messages_sent"] == 1  # the relay's own answer: sent, then cut off before the face began
    assert answer(long_say.result(CALL_TIMEOUT_S))["outcome"] == "interrupted"


def test_say_with_interrupt_first_cuts_off_what_the_face_is_saying(agent, quiet_relay):
    long_say = agent.start("say", text=LONG_TEXT)
    wait_until_speaking(quiet_relay)

    said = answer(agent.call("say", text="Sorry.", interrupt_first=True))

    assert said["outcome"] == "spoken"
    assert answer(long_say.result(CALL_TIMEOUT_S))["outcome"] == "interrupted"


def write_wav(path: Path, milliseconds: int, rate: int = 24000) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(bytes(2 * rate * milliseconds // 1000))
    return path


def test_play_audio_speaks_a_wav_file_the_agent_names(agent, quiet_relay, tmp_path):
    clip = write_wav(tmp_path / "clip.wav", 300)

    said = answer(agent.call("play_audio", path=str(clip)))

    assert said["outcome"] == "spoken"
    assert said["sent"]["audio_ms"] == 300 and said["sent"]["sample_rate"] == 24000


def test_recent_events_after_a_cursor_lists_only_what_came_since(agent, quiet_relay):
    cursor = answer(agent.call("recent_events"))["next_after"]
    said = answer(agent.call("say", text="Hi"))

    heard = answer(agent.call("recent_events", after=cursor, limit=100))

    assert heard["events"] and all(event["id"] > cursor for event in heard["events"])
    assert heard["next_after"] == heard["events"][-1]["id"]
    spoke = [e for e in heard["events"] if e["type"] == "relay.speaking" and e["inference_id"] == said["inference_id"]]
    assert [e["speaking"] for e in spoke] == [True, False]
    assert len(answer(agent.call("recent_events", after=cursor, limit=2))["events"]) == 2


def test_the_script_tools_load_step_and_stop_a_script(agent, quiet_relay):
    loaded = answer(agent.call("run_script", text="First line.\n@pause 0.1\nThird line.", step=True))
    assert [step["kind"] for step in loaded["steps"]] == ["say", "pause", "say"] and loaded["position"] == 0

    stepped = answer(agent.call("next_line"))
    assert stepped["position"] == 1 and stepped["playing"] is False

    playing = answer(agent.call("run_script", text=LONG_TEXT))
    assert playing["playing"] is True
    stopped = answer(agent.call("stop_script"))
    assert stopped["playing"] is False and stopped["position"] == 0


def test_a_script_tool_passes_the_relays_409_sentence_on(agent, quiet_relay):
    answer(agent.call("run_script", text="Only line.", step=True))
    answer(agent.call("next_line"))

    error = tool_error(agent.call("next_line"))

    assert error == (
        "Error executing tool next_line: the script is finished: load it again (POST /script) to play it from the start"
    )


def test_face_status_is_the_relays_health(agent, quiet_relay):
    status = answer(agent.call("face_status"))

    assert status["mode"] == "dry-run" and status["face"]["present"] is True
    assert set(status["latency"]) == {"p50_ms", "p95_ms", "utterances"} and status["connection"] == "connected"


# --- the protocol by hand ----------------------------------------------------------------------------------


class StdioPeer:
    """`python -m relay.mcp` spoken to as the protocol says: one JSON-RPC message per line on stdin and stdout."""

    def __init__(self, relay_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relay.mcp"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**relay_env(), **server_env(relay_url)},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        """The next line on stdout, which must be one JSON-RPC 2.0 message."""
        message: dict[str, Any] = json.loads(self.lines.get(timeout=CALL_TIMEOUT_S))
        assert message["jsonrpc"] == "2.0"
        return message

    def close(self) -> str:
        assert self.process.stdin is not None
        assert self.process.stderr is not None
        self.process.stdin.close()  # how an MCP client ends a stdio server
        self.process.wait(30)
        self._reader.join(10)
        return self.process.stderr.read()


def test_the_server_speaks_newline_delimited_json_rpc_on_stdio(relay_url, quiet_relay):
    peer = StdioPeer(relay_url)
    try:
        peer.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "by-hand", "version": "1"}}})
        initialized = peer.receive()
        peer.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        peer.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        listed = peer.receive()
        peer.send(
            {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "say", "arguments": {"text": "Hi"}}}
        )
        called = peer.receive()
    finally:
        stderr = peer.close()

    assert initialized["id"] == 1 and initialized["result"]["protocolVersion"] == "2025-06-18"
    assert initialized["result"]["serverInfo"]["name"] == "echo-relay"
    assert listed["id"] == 2 and {tool["name"] for tool in listed["result"]["tools"]} == TOOLS
    assert called["id"] == 3 and called["result"]["isError"] is False
    assert json.loads(called["result"]["content"][0]["text"])["outcome"] == "spoken"
    assert peer.lines.empty() and peer.process.returncode == 0, stderr  # nothing but the three answers on stdout


# --- no relay, and a relay with a token --------------------------------------------------------------------


def test_with_no_relay_the_server_still_answers_and_say_says_to_start_the_relay(portal, tmp_path):
    nobody = f"http://127.0.0.1:{free_port()}"
    with agent_session(portal, tmp_path, nobody) as agent:  # initialize answered, with no relay
        listed = {tool.name for tool in agent.list_tools().tools}
        error = tool_error(agent.call("say", text="Hello?"))

    assert listed == TOOLS
    assert error.startswith(
        f"Error executing tool say: no relay answers at {nobody} (RELAY_URL): start it (python app.py"
    )


def test_every_call_to_the_relay_gives_up_connecting_within_2_s(monkeypatch):
    """What makes a call with no relay (or an address that never answers) fail within 2 s."""
    asked: list[Any] = []

    def request(self: Any, method: str, url: str, **kwargs: Any) -> Any:
        asked.append(kwargs["timeout"])
        raise requests.ConnectTimeout("connect timed out")

    monkeypatch.setattr(requests.Session, "request", request)
    tools = FaceTools(McpSettings(relay_url="http://192.0.2.1:8000"))

    with pytest.raises(ToolError, match=r"no relay answers at http://192\.0\.2\.1:8000 \(RELAY_URL\)"):
        tools.face_status()
    assert CONNECT_TIMEOUT_S <= 2 and [connect for connect, _ in asked] == [CONNECT_TIMEOUT_S]


@pytest.fixture(scope="module")
def relay_with_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dry_run_relay(tmp_path_factory.mktemp("relay-token"), RELAY_AUTH_TOKEN=TOKEN) as url:
        yield url


def test_without_the_relays_token_a_tool_answers_the_relays_401_sentence(portal, relay_with_token, tmp_path):
    refused = requests.post(f"{relay_with_token}/send_text_message", json={"text": "Hi"}, timeout=10)
    assert refused.status_code == 401

    with agent_session(portal, tmp_path, relay_with_token) as agent:
        error = tool_error(agent.call("say", text="Hi"))

    assert error == f"Error executing tool say: {refused.json()['error']}"


def test_with_the_relays_token_the_face_speaks(portal, relay_with_token, tmp_path):
    with agent_session(portal, tmp_path, relay_with_token, RELAY_AUTH_TOKEN=TOKEN) as agent:
        said = answer(agent.call("say", text="Hi"))

    assert said["outcome"] == "spoken"


# --- the tools' own bounds, in-process -----------------------------------------------------------------------


def test_say_answers_still_speaking_with_its_inference_id_at_the_bound(quiet_relay):
    tools = FaceTools(McpSettings(relay_url=quiet_relay, say_timeout_s=1))

    said = tools.say(LONG_TEXT)

    assert said["outcome"] == "still speaking" and said["utterance"]["state"] == "speaking"
    assert said["inference_id"] == said["utterance"]["inference_id"] and "RELAY_MCP_SAY_TIMEOUT" in said["note"]


def test_a_say_the_relay_holds_past_the_bound_answers_not_sent_yet():
    """A relay holds a say while the face is not in the room: the agent gets its inference_id, not a hang."""
    release = threading.Event()

    def holding_relay(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["REQUEST_METHOD"] == "POST":
            release.wait(10)
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [json.dumps({"error": "no utterance 'x' among the last 1000: check the inference_id"}).encode()]

    with serve_wsgi(holding_relay) as port:
        try:
            said = FaceTools(McpSettings(relay_url=f"http://127.0.0.1:{port}", say_timeout_s=1)).say("Hi")
        finally:
            release.set()

    assert said["outcome"] == "not sent yet" and len(said["inference_id"]) == 32
    assert "RELAY_MCP_SAY_TIMEOUT" in said["note"]


def test_play_audio_reads_only_regular_files_inside_relay_audio_dir(quiet_relay, tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    write_wav(folder / "inside.wav", 100)
    outside = write_wav(tmp_path / "outside.wav", 100)
    (folder / "link.wav").symlink_to(outside)
    os.mkfifo(folder / "pipe.wav")
    tools = FaceTools(McpSettings(relay_url=quiet_relay, audio_dir=str(folder)))

    assert tools.play_audio("inside.wav")["outcome"] == "spoken"
    assert tools.play_audio(str(folder / "inside.wav"), wait="none")["outcome"] == "sent"
    for name in (str(outside), "../outside.wav", "link.wav", str(tmp_path / "missing.wav")):
        with pytest.raises(ToolError, match=r"is not inside RELAY_AUDIO_DIR \("):
            tools.play_audio(name)
    with pytest.raises(ToolError, match="is not a regular file"):
        tools.play_audio("pipe.wav")
    with pytest.raises(ToolError, match="no audio file missing.wav"):
        tools.play_audio("missing.wav")


def test_recent_events_cuts_long_texts_and_lists_short():
    event = {"id": 1, "type": "conversation.utterance", "message": {"properties": {
        "speech": "x" * 1000, "words": list(range(100)), "short": "hi"}}}

    cut = excerpt(event)["message"]["properties"]

    assert cut["speech"] == "x" * MAX_EVENT_TEXT_CHARS + "… (1000 characters)" and cut["short"] == "hi"
    assert cut["words"] == [*range(MAX_EVENT_ITEMS), "… (100 items)"]


# --- settings and the command line ----------------------------------------------------------------------------


def test_settings_come_from_the_environment_over_the_checkouts_dotenv(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("RELAY_URL=http://127.0.0.1:9001\nRELAY_MCP_SAY_TIMEOUT=5\n")
    monkeypatch.setattr(config, "CHECKOUT_DIR", tmp_path)
    for name in ("RELAY_URL", "RELAY_AUTH_TOKEN", "RELAY_MCP_SAY_TIMEOUT", "RELAY_AUDIO_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RELAY_MCP_SAY_TIMEOUT", "12")

    settings = McpSettings.from_env()

    assert settings == McpSettings(relay_url="http://127.0.0.1:9001", say_timeout_s=12.0)
    assert McpSettings.from_env({}) == McpSettings(relay_url="http://127.0.0.1:8000", say_timeout_s=30.0)


@pytest.mark.parametrize(
    ("env", "named"),
    [({"RELAY_URL": "127.0.0.1:8000"}, "RELAY_URL"), ({"RELAY_MCP_SAY_TIMEOUT": "0.5"}, "RELAY_MCP_SAY_TIMEOUT"),
     ({"RELAY_AUDIO_DIR": "/no/such/folder"}, "RELAY_AUDIO_DIR")],
)
def test_a_bad_setting_is_one_line_naming_it(env, named):
    with pytest.raises(ConfigError, match=f"^{named} "):
        McpSettings.from_env(env)


def test_a_bad_setting_stops_the_server_at_start_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("RELAY_URL", "relay:8000")

    assert relay_mcp.main([]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err == (
        "error: RELAY_URL must be an http(s) URL such as http://127.0.0.1:8000, got 'relay:8000'\n"
    )


def test_print_config_shows_the_three_entries_with_this_machines_paths():
    printed = subprocess.run(
        [sys.executable, "-m", "relay.mcp", "--print-config"], cwd=ROOT, capture_output=True, text=True,
        env=relay_env(), timeout=60, check=True,
    ).stdout

    entry = {"command": sys.executable, "args": ["-m", "relay.mcp"], "env": {"PYTHONPATH": str(ROOT)}}
    blocks = re.findall(r"^\{$.*?^\}$", printed, flags=re.MULTILINE | re.DOTALL)
    assert [json.loads(block) for block in blocks] == [{"mcpServers": {"echo-relay": entry}}] * 2
    assert f"claude mcp add --scope user echo-relay --env PYTHONPATH={ROOT} -- {sys.executable} -m relay.mcp" in printed
    assert "Claude Desktop" in printed and "Cursor" in printed
    assert "RELAY_URL, RELAY_AUTH_TOKEN, RELAY_MCP_SAY_TIMEOUT and RELAY_AUDIO_DIR" in printed  # what McpSettings reads


def test_the_docs_show_print_config_as_it_prints_for_their_example_checkout():
    shown = code_blocks(page("docs/mcp.md"), "text")[0]

    assert shown == relay_mcp.agent_entries("/home/me/echo-relay/.venv/bin/python", Path("/home/me/echo-relay"))
