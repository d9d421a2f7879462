"""The dry run's room: what it prints for each message, and that it is a room like the Daily one."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from config import Settings
from echo_messages import MAX_MESSAGE_BYTES, audio_echo_messages, interrupt_message, serialized_size
from relay.dry_run import DryRunRoom
from tests.docs import page


def audio_messages(milliseconds: int, rate: int = 24000) -> list[dict]:
    pcm = bytes(2 * rate * milliseconds // 1000)
    return list(audio_echo_messages(pcm, sample_rate=rate, conversation_id="dry-run", inference_id="u1", done=True))


def test_each_audio_message_is_one_short_line_with_its_length_rate_id_and_size():
    out = io.StringIO()
    room = DryRunRoom(out, face=False)
    messages = audio_messages(100)

    for message in messages:
        room.send(message)

    lines = out.getvalue().splitlines()
    assert len(lines) == len(messages) == 2
    first, last = (serialized_size(message) for message in messages)
    first_ms = round(len(base64.b64decode(messages[0]["properties"]["audio"])) / 2 / 24000 * 1000)
    assert lines == [
        f'audio {first_ms} ms at 24000 Hz, inference_id "u1", {first} bytes',
        f'audio {100 - first_ms} ms at 24000 Hz, inference_id "u1" done, {last} bytes',
    ]


@pytest.mark.parametrize("rate", [16000, 24000])
def test_each_printed_size_is_the_size_the_limit_applies_to_so_none_is_over_4096(rate):
    """The size shown is the message as sent (compact JSON), not the spaced JSON the terminal shows for text."""
    out = io.StringIO()
    room = DryRunRoom(out, face=False)
    messages = audio_messages(1000, rate)

    for message in messages:
        room.send(message)

    sizes = [int(re.search(r", (\d+) bytes$", line)[1]) for line in out.getvalue().splitlines()]
    assert sizes == [serialized_size(message) for message in messages]
    assert max(sizes) <= MAX_MESSAGE_BYTES == 4096


def test_the_readmes_audio_line_is_what_the_dry_run_prints_for_a_60_ms_message():
    readme = page("README.md")
    out = io.StringIO()
    inference_id = "3f0c" * 8  # a uuid4 hex, as the relay makes them
    pcm = bytes(2 * 24000 * 120 // 1000)  # two messages: the first is a full one, not the last

    DryRunRoom(out, face=False).send(next(audio_echo_messages(
        pcm, sample_rate=24000, conversation_id="dry-run", inference_id=inference_id, done=True
    )))

    printed = out.getvalue().strip().replace(inference_id, "3f0c…")
    assert printed.startswith("audio 60 ms at 24000 Hz, ") and f"`{printed}`" in readme


def test_text_and_interrupts_are_printed_as_their_json():
    out = io.StringIO()
    room = DryRunRoom(out, face=False)
    text = {"message_type": "conversation", "event_type": "conversation.echo", "conversation_id": "dry-run",
            "properties": {"modality": "text", "text": "Hi", "inference_id": "t1", "done": True}}

    room.send(text)
    room.send(interrupt_message("dry-run"))

    assert [json.loads(line) for line in out.getvalue().splitlines()] == [text, interrupt_message("dry-run")]


def test_verbose_prints_every_audio_message_in_full():
    out = io.StringIO()
    room = DryRunRoom(out, face=False, verbose=True)
    messages = audio_messages(100)

    for message in messages:
        room.send(message)

    assert [json.loads(line) for line in out.getvalue().splitlines()] == messages


def test_an_inference_id_with_control_characters_cannot_forge_a_line():
    out = io.StringIO()
    message = audio_messages(10)[0]
    message["properties"]["inference_id"] = "x\n2026-11-30 INFO forged"

    DryRunRoom(out, face=False).send(message)

    assert len(out.getvalue().splitlines()) == 1 and '"x\\n2026-11-30 INFO forged"' in out.getvalue()


def test_the_record_file_keeps_the_full_json_while_the_terminal_shows_short_lines(tmp_path, make_app):
    out, record = io.StringIO(), tmp_path / "messages.jsonl"
    app = make_app(Settings(record_file=str(record)), DryRunRoom(out, face=False))
    audio = base64.b64encode(bytes(2 * 24000 // 10)).decode()

    response = app.test_client().post("/send_audio_message", json={"audio": audio, "sample_rate": 24000, "done": True})

    assert response.status_code == 200
    recorded = [json.loads(line)["message"] for line in record.read_text().splitlines()]
    assert len(recorded) == response.get_json()["messages_sent"] == len(out.getvalue().splitlines())
    assert all(line.startswith("audio ") for line in out.getvalue().splitlines())
    assert all(message["properties"]["audio"] for message in recorded)


def test_the_dry_run_room_says_its_face_and_connection_are_there():
    room = DryRunRoom(io.StringIO(), face=False)

    assert room.conversation_url is None and room.connection == "connected" and room.wait_for_connection(0)
    assert room.face == {"present": True, "signal": "simulated", "participant_id": "simulated-face"}


@pytest.mark.parametrize("verbose", [False, True])
def test_python_app_py_prints_audio_short_and_in_full_with_verbose(tmp_path, verbose):
    from tests.test_app_main import finish, start, wait_for_port

    process = start(["--verbose"] if verbose else [], tmp_path)
    try:
        port = wait_for_port(process)
        audio = base64.b64encode(bytes(2 * 24000 // 20)).decode()  # 50 ms: one message
        response = requests.post(
            f"http://127.0.0.1:{port}/send_audio_message",
            json={"audio": audio, "sample_rate": 24000, "inference_id": "u1", "done": True},
            timeout=10,
        )
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = finish(process)

    (line,) = stdout.splitlines()
    if verbose:
        assert json.loads(line)["properties"]["audio"] == audio
    else:
        assert line.startswith('audio 50 ms at 24000 Hz, inference_id "u1" done, ')


@pytest.mark.slow
def test_a_script_in_the_dry_run_prints_each_message_between_its_playing_and_spoken_lines(tmp_path):
    """The terminal (stdout and stderr, as one) shows things in the order they happened."""
    from tests.test_app_main import APP, relay_env

    shutil.copy(Path(__file__).resolve().parent.parent / "examples" / "hello.wav", tmp_path)
    (tmp_path / "demo.txt").write_text("First line.\n@pause 0.1\n@audio hello.wav\nLast line.\n")

    result = subprocess.run(
        [sys.executable, APP, "--script", "demo.txt", "--exit-after-script"], cwd=tmp_path, env=relay_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60, check=False,
    )

    assert result.returncode == 0, result.stdout
    shown = [_event(line) for line in result.stdout.splitlines()]
    assert [event for event in shown if event] == [
        "playing 1", "sent First line.", "spoken 1",
        "playing 2", "done 2",
        "playing 3", *["sent audio"] * shown.count("sent audio"), "spoken 3",
        "playing 4", "sent Last line.", "spoken 4",
    ]
    assert shown.count("sent audio") >= 20  # hello.wav: 1.2 s in 60 ms messages


def _event(line: str) -> str | None:
    """What one terminal line says happened: a script step's state and number, or a message sent; None for others."""
    if step := re.search(r"script demo\.txt: (playing|spoken|done) line \d+ \((\d)/4\)", line):
        return f"{step[1]} {step[2]}"
    if line.startswith("audio "):
        return "sent audio"
    if line.startswith("{"):
        return f"sent {json.loads(line)['properties']['text']}"
    return None
