"""The examples under examples/ do what their comments and the README say, run as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def run_example(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
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


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="the example talks to the relays with curl: apt-get install curl")
def test_two_relays_serve_two_conversations_each_with_its_own_port_token_and_record_file(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RELAY_", "TAVUS_"))}
    env.update(PORT_A=str(free_port()), PORT_B=str(free_port()), PYTHON=sys.executable)

    result = run_example(["sh", str(ROOT / "examples" / "two_relays.sh")], tmp_path, env)

    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [answer.get("status") for answer in answers[:2]] == ["Message sent successfully"] * 2
    assert answers[2] == {"error": "missing or wrong bearer token: send the header 'Authorization: Bearer <RELAY_AUTH_TOKEN>'"}
    assert said(tmp_path / "conversation-a.jsonl") == ["Hello from the relay of conversation A."]
    assert said(tmp_path / "conversation-b.jsonl") == ["Hello from the relay of conversation B."]
    for log in ("relay-a.log", "relay-b.log"):
        assert "stopped" in (tmp_path / log).read_text()  # each relay was stopped by the script, not left running
