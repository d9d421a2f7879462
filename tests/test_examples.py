"""The examples under examples/ do what their comments and docs/ say, run as a user runs them."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.test_app_main import finish, start, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


def run_example(
    command: list[str], cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run an example in its own process group; if it hangs, end that group (the relays it started too) and fail."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"{command} did not finish in {timeout} s; stdout {out!r}, stderr {err!r}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def said(record_file: Path) -> list[str]:
    """The texts a relay sent to its face, from its RELAY_RECORD_FILE."""
    lines = [json.loads(line) for line in record_file.read_text().splitlines()]
    return [line["message"]["properties"]["text"] for line in lines if line["direction"] == "out"]


TWO_RELAYS = ["sh", str(ROOT / "examples" / "two_relays.sh")]


def example_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RELAY_", "TAVUS_", "PORT_"))}
    return env | {"PYTHON": sys.executable} | extra


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("curl") is None, reason="the example talks to the relays with curl: apt-get install curl"
)
@pytest.mark.parametrize("ports_from", ["options", "variables"])
def test_two_relays_serve_two_conversations_each_with_its_own_port_token_and_record_file(tmp_path, ports_from):
    port_a, port_b = free_port(), free_port()
    if ports_from == "options":
        command, env = [*TWO_RELAYS, "--port-a", str(port_a), "--port-b", str(port_b)], example_env()
    else:
        command, env = TWO_RELAYS, example_env(PORT_A=str(port_a), PORT_B=str(port_b))

    result = run_example(command, tmp_path, env)

    assert result.returncode == 0, result.stderr
    assert f"listening on http://127.0.0.1:{port_a}" in (tmp_path / "relay-a.log").read_text()
    assert f"listening on http://127.0.0.1:{port_b}" in (tmp_path / "relay-b.log").read_text()
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [answer.get("status") for answer in answers[:2]] == ["Message sent successfully"] * 2
    assert answers[2] == {
        "error": "missing or wrong bearer token: send the header 'Authorization: Bearer <RELAY_AUTH_TOKEN>'"
    }
    assert said(tmp_path / "conversation-a.jsonl") == ["Hello from the relay of conversation A."]
    assert said(tmp_path / "conversation-b.jsonl") == ["Hello from the relay of conversation B."]
    for log in ("relay-a.log", "relay-b.log"):
        assert "stopped" in (tmp_path / log).read_text()  # each relay was stopped by the script, not left running


def test_two_relays_help_shows_the_port_options_and_starts_nothing(tmp_path):
    result = run_example([*TWO_RELAYS, "--help"], tmp_path, example_env())

    assert (result.returncode, result.stderr) == (0, "")
    assert "usage: sh examples/two_relays.sh [--port-a N] [--port-b N] [URL_A URL_B]" in result.stdout
    assert "--port-a N  conversation A's relay listens on port N (default: $PORT_A, or 8001)" in result.stdout
    assert "--port-b N  conversation B's relay listens on port N (default: $PORT_B, or 8002)" in result.stdout
    assert list(tmp_path.iterdir()) == []  # no relay was started: no log, no record file


@pytest.mark.parametrize("args, message", [
    (["--port-a"], "--port-a needs a port number, such as --port-a 8001"),
    (["--port-b", "http"], "--port-b needs a port number, such as --port-b 8002, got 'http'"),
    (["--port", "9000"], "unknown option --port"),
])
def test_two_relays_with_a_wrong_option_says_so_in_one_line_and_exits_2(tmp_path, args, message):
    result = run_example([*TWO_RELAYS, *args], tmp_path, example_env())

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: {message} (see: sh examples/two_relays.sh --help)\n"


def test_stream_chunks_sends_a_wav_as_one_utterance_in_order_with_done_only_last_and_stops_at_a_refusal(tmp_path):
    record = tmp_path / "record.jsonl"
    relay = start([], tmp_path, RELAY_RECORD_FILE=str(record), RELAY_PORT="0", RELAY_AUTH_TOKEN="s3cret-token")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RELAY_", "TAVUS_"))}
    command = [sys.executable, str(ROOT / "examples" / "stream_chunks.py"), str(ROOT / "examples" / "hello.wav")]
    try:
        command.append(f"http://127.0.0.1:{wait_for_port(relay)}")
        refused = run_example(command, tmp_path, env)  # no token: the first chunk is refused
        streamed = run_example(command, tmp_path, {**env, "RELAY_AUTH_TOKEN": "s3cret-token"})
    finally:
        relay.terminate()
        finish(relay)

    assert refused.returncode == 1 and len(refused.stdout.splitlines()) == 1 and refused.stdout.startswith("401 ")
    assert "chunk 1 of 12 refused: nothing more is sent for " in refused.stderr
    assert streamed.returncode == 0, streamed.stderr
    answers = [line.split(" ", 1) for line in streamed.stdout.splitlines()]
    assert [status for status, _ in answers] == ["200"] * 12  # hello.wav: 1.2 s, 12 chunks of 100 ms
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    sent = [line["message"]["properties"] for line in lines if line["direction"] == "out"]
    assert len({p["inference_id"] for p in sent}) == 1 and {p["sample_rate"] for p in sent} == {16000}
    assert [p["done"] for p in sent] == [False] * (len(sent) - 1) + [True]
    with wave.open(str(ROOT / "examples" / "hello.wav")) as wav:
        assert b"".join(base64.b64decode(p["audio"]) for p in sent) == wav.readframes(wav.getnframes())  # in order
