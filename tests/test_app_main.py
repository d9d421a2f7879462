"""`python app.py` as a user runs it: a real process, real sockets, real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import DOCS_TEXT_BODY, assert_no_secret, signal_when, wait_until

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
START_TIMEOUT_S = 20


def relay_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TAVUS_", "RELAY_"))}
    return env | {"RELAY_PORT": "0", "PYTHONUNBUFFERED": "1"} | extra


def start(args: list[str], cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, APP, *args],
        cwd=cwd,
        env=relay_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait for the relay to exit; nothing it printed may hold a key or a token."""
    stdout, stderr = process.communicate(timeout=30)
    assert_no_secret(stdout + stderr)
    return stdout, stderr


def wait_for_port(process: subprocess.Popen[str]) -> int:
    """Read stderr until the 'listening on' line; RELAY_PORT=0 lets the OS pick a free port."""
    assert process.stderr is not None
    stderr = process.stderr

    def listening() -> re.Match[str] | None:
        line = stderr.readline()
        assert line or process.poll() is None, "the relay exited"
        return re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)

    try:
        return int(wait_until(listening, "the relay's 'listening on' line", START_TIMEOUT_S, interval=0).group(1))
    except (AssertionError, pytest.fail.Exception):
        process.kill()
        raise AssertionError(f"relay did not start: {process.communicate()}") from None


@pytest.fixture
def dry_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    process = start([], tmp_path, RELAY_RECORD_FILE=str(tmp_path / "out.jsonl"))
    try:
        yield process, wait_for_port(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_dry_run_answers_the_docs_curl_prints_the_message_and_exits_0_on_sigterm(dry_run, tmp_path):
    process, port = dry_run

    response = requests.post(
        f"http://127.0.0.1:{port}/send_text_message", json=DOCS_TEXT_BODY | {"conversation_id": "dry-run"}, timeout=10
    )
    health = requests.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = finish(process)

    assert response.status_code == 200 and response.json()["mode"] == "dry-run"
    assert health["mode"] == "dry-run" and health["messages_sent"] == 1
    assert process.returncode == 0, stderr
    expected = {
        "message_type": "conversation",
        "event_type": "conversation.echo",
        "conversation_id": "dry-run",
        "properties": {"modality": "text", "text": "Hello there!", "inference_id": "inference-id-123", "done": True},
    }
    assert [json.loads(line) for line in stdout.splitlines()] == [expected]
    recorded = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["message"] for r in recorded if r["direction"] == "out"] == [expected]
    log = without_timestamps(stderr)  # written by the log's own thread, and all of it by the time the relay exits
    requests_logged = [re.sub(r" [\d.]+ms ", " <ms> ", line) for line in log if line.startswith("INFO POST ")]
    assert requests_logged == ["INFO POST /send_text_message 200 <ms> inference_id=inference-id-123 messages_sent=1"]
    assert log[-1] == "INFO stopped"


def test_sigint_stops_the_dry_run_cleanly_too(dry_run):
    process, _ = dry_run
    process.send_signal(signal.SIGINT)
    _, stderr = finish(process)

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def without_timestamps(stderr: str) -> list[str]:
    return [re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", "", line) for line in stderr.splitlines()]


@pytest.mark.parametrize(
    "url", ["https://tavus.daily.co:99999/c123", "https://x y.daily.co/c123?t=SECRET-MEETING-TOKEN"]
)
def test_a_url_daily_could_not_parse_exits_2_at_once_like_every_url_refused_before_the_join(tmp_path, url):
    process = start([url], tmp_path)
    stdout, stderr = finish(process)

    assert process.returncode == 2 and stdout == ""
    shown = url.partition("?")[0]
    assert without_timestamps(stderr) == [
        (
            f"error: the conversation URL {shown!r} is not a Daily room URL: "
            "expected https://<domain>.daily.co/<conversation_id>, such as https://tavus.daily.co/c123"
        )
    ]


def start_joining_unchecked(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    """`python app.py ARGS` with the relay's URL check switched off, so that the real Daily gets a URL it fails
    to parse at once (no network needed): how Daily's own failures and log lines reach the terminal."""
    unchecked = (
        "import sys, relay.run; relay.run.check_room_url = lambda url, source='': url; "
        "import app; sys.exit(app.main(sys.argv[1:]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", unchecked, *args], cwd=cwd, env=relay_env(PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_real_daily_rejects_an_unparsable_url_in_one_sentence_and_exits_1(tmp_path):
    """The real `daily` module, not a fake: Daily fails to parse this port at once, no network needed."""
    process = start_joining_unchecked(["https://tavus.daily.co:99999/c123"], tmp_path)
    stdout, stderr = finish(process)

    assert process.returncode == 1 and stdout == ""
    assert without_timestamps(stderr) == [
        "INFO joining https://tavus.daily.co:99999/c123 ...",
        "error: https://tavus.daily.co:99999/c123 is not a valid room URL: check it (it looks like https://tavus.daily.co/c123)",
    ]


def test_verbose_lets_dailys_own_log_lines_through(tmp_path):
    process = start_joining_unchecked(["https://tavus.daily.co:99999/c123", "--verbose"], tmp_path)
    _, stderr = finish(process)

    assert process.returncode == 1
    assert '"target":"daily_core' in stderr and "Failed to parse url" in stderr


def test_a_token_on_the_url_is_never_printed(tmp_path):
    process = start_joining_unchecked(
        ["https://tavus.daily.co:99999/c123?t=SECRET-MEETING-TOKEN", "--verbose"], tmp_path
    )
    stdout, stderr = finish(process)

    assert process.returncode == 1
    assert "SECRET-MEETING-TOKEN" not in stdout + stderr
    assert "joining https://tavus.daily.co:99999/c123 (private room, with its meeting token) ..." in stderr


def test_a_port_in_use_is_found_before_joining_the_room(tmp_path):
    """https://tavus.daily.co/c123 cannot be reached here: a relay that joined first would wait ~19 s for Daily."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start(["https://tavus.daily.co/c123"], tmp_path, RELAY_PORT=str(port))
        _, stderr = finish(process)

    assert process.returncode == 1
    assert without_timestamps(stderr) == [
        (f"error: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "set RELAY_PORT (or RELAY_HOST) to a free address, or stop the other relay")
    ]


@pytest.mark.parametrize("host", ["999.1.1.1", "not a host"])
def test_a_bad_relay_host_is_one_line_naming_it(tmp_path, host):
    process = start([], tmp_path, RELAY_HOST=host)
    _, stderr = finish(process)

    assert process.returncode == 1
    assert stderr.splitlines() == [
        (f"error: RELAY_HOST {host!r} is not an address this machine can listen on: "
        "set RELAY_HOST to 127.0.0.1 (or another address of this machine)")
    ]


def test_a_url_with_no_conversation_id_exits_2_with_the_expected_shape(tmp_path):
    process = start(["https://tavus.daily.co/"], tmp_path)
    _, stderr = finish(process)

    assert process.returncode == 2
    assert "https://tavus.daily.co/c123" in stderr


def test_a_bad_setting_exits_2_naming_the_variable(tmp_path):
    process = start([], tmp_path, RELAY_PORT="eighty")
    _, stderr = finish(process)

    assert process.returncode == 2
    assert stderr.strip() == "error: RELAY_PORT must be a whole number, got 'eighty'"


def test_settings_come_from_a_dotenv_file_in_the_working_directory(tmp_path):
    (tmp_path / ".env").write_text("RELAY_SAMPLE_RATE=7\n")
    process = start([], tmp_path)
    _, stderr = finish(process)

    assert process.returncode == 2 and "RELAY_SAMPLE_RATE must be at least 8000" in stderr


def test_a_port_in_use_exits_1_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start([], tmp_path, RELAY_PORT=str(port))
        _, stderr = finish(process)

    assert process.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in stderr
    assert "Traceback" not in stderr


def test_an_unwritable_record_file_exits_2_naming_the_variable(tmp_path):
    process = start([], tmp_path, RELAY_RECORD_FILE=str(tmp_path / "no" / "such" / "dir.jsonl"))
    _, stderr = finish(process)

    assert process.returncode == 2
    assert (
        "error: RELAY_RECORD_FILE" in stderr and "cannot be opened for appending: No such file or directory" in stderr
    )
    assert "Traceback" not in stderr


# --- what the user reads: in this process, with the Daily stand-in ----------------------


@pytest.fixture
def relay_env_here(monkeypatch, tmp_path) -> int:
    """main() in this process (its signal handlers need the main thread), with no stray .env or setting."""
    from tests.conftest import free_port

    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("TAVUS_", "RELAY_")):
            monkeypatch.delenv(key)
    port = free_port()
    monkeypatch.setenv("RELAY_PORT", str(port))
    return port


def test_the_dry_run_says_where_the_console_is_and_a_first_curl_to_try(relay_env_here, capsys):
    import app
    from tests.conftest import wait_for_relay

    signal_when(lambda: wait_for_relay(relay_env_here), signal.SIGTERM)

    assert app.main([]) == 0

    err = capsys.readouterr().err
    assert f"The console: http://127.0.0.1:{relay_env_here}/ (open it in a browser)" in err
    assert (
        f"Try: curl -s -X POST http://127.0.0.1:{relay_env_here}/send_text_message "
        "-H \"Content-Type: application/json\" -d '{\"text\": \"Hello there!\"}'"
    ) in err


def test_the_readme_shows_what_the_dry_run_prints_at_start(relay_env_here, capsys, caplog):
    import app
    from tests.conftest import wait_for_relay
    from tests.docs import code_blocks, page, section

    shown = code_blocks(section(page("README.md"), "## Install and run"), "text")[0]
    signal_when(lambda: wait_for_relay(relay_env_here), signal.SIGTERM)

    assert app.main([]) == 0

    printed = capsys.readouterr().err.replace(f"127.0.0.1:{relay_env_here}", "127.0.0.1:8000")
    assert shown in printed
    logged = re.search(r"`(INFO [^`]*)`\) and says what to try", section(page("README.md"), "## Install and run"))
    assert logged and logged[1].removeprefix("INFO ") in caplog.text.replace(str(relay_env_here), "8000")


def test_a_long_join_says_it_is_still_joining_and_ctrl_c_says_nothing_was_left_running(
    relay_env_here, fake_daily, monkeypatch, capsys, caplog
):
    import app
    from relay import run

    monkeypatch.setattr(run, "JOIN_PROGRESS_S", 0.05)
    fake_daily.join_failure, fake_daily.join_delay_s = "unreachable", 60  # like Daily's ~19 s on a dead network
    signal_when(lambda: any(m.startswith("still joining") for m in caplog.messages))

    code = app.main(["https://tavus.daily.co/c123"], client_factory=fake_daily.factory)

    fake_daily.network_answers.set()
    assert code == 0
    assert caplog.messages[:2] == [
        "joining https://tavus.daily.co/c123 ...",
        "still joining https://tavus.daily.co/c123 (0.05 s): waiting for Daily; Ctrl-C stops",
    ]
    assert capsys.readouterr().err.strip() == "stopped while joining; nothing was left running"
    assert fake_daily.client.left and fake_daily.client.released


@pytest.mark.parametrize(
    "url",
    ["https://example.com/foo", "http://tavus.daily.co/c123", "https://tavus.daily.co/rooms/c123", "https://daily.co.evil/c1"],
)
def test_a_url_that_is_not_a_daily_room_exits_2_at_once_with_the_expected_shape(
    relay_env_here, fake_daily, capsys, url
):
    import app

    assert app.main([url], client_factory=fake_daily.factory) == 2

    assert capsys.readouterr().err.strip() == (
        f"error: the conversation URL {url!r} is not a Daily room URL: "
        "expected https://<domain>.daily.co/<conversation_id>, such as https://tavus.daily.co/c123"
    )
    assert fake_daily.clients == []


def test_tavus_conversation_url_is_checked_the_same_way(relay_env_here, fake_daily, monkeypatch, capsys):
    import app

    monkeypatch.setenv("TAVUS_CONVERSATION_URL", "https://example.com/foo?t=SECRET-MEETING-TOKEN")

    assert app.main([], client_factory=fake_daily.factory) == 2

    assert capsys.readouterr().err.strip() == (
        "error: TAVUS_CONVERSATION_URL 'https://example.com/foo' is not a Daily room URL: "
        "expected https://<domain>.daily.co/<conversation_id>, such as https://tavus.daily.co/c123"
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_listening_beyond_loopback_without_a_token_exits_2_before_binding(tmp_path, host):
    process = start([], tmp_path, RELAY_HOST=host)
    _, stderr = finish(process)

    assert process.returncode == 2
    assert stderr.splitlines() == [
        (f"error: RELAY_HOST {host} listens beyond this machine: set RELAY_AUTH_TOKEN (a long random secret) "
         "so others on the network cannot make the face speak or read the room, or use RELAY_HOST=127.0.0.1")
    ]


def test_a_usage_error_is_one_line_and_exits_2(tmp_path):
    process = start(["--exit-after-script"], tmp_path)
    _, stderr = finish(process)

    assert process.returncode == 2
    assert stderr.splitlines() == ["error: --exit-after-script goes with --script FILE"]


def test_an_unknown_option_is_one_line_through_the_same_exit(relay_env_here, capsys):
    import app

    assert app.main(["--bogus"]) == 2

    out, err = capsys.readouterr()
    assert out == "" and err == "error: unrecognized arguments: --bogus (see: python app.py --help)\n"


def test_a_url_with_dry_run_is_a_usage_error_not_a_silent_dry_run(relay_env_here, capsys):
    """Found by a new user: the URL was dropped without a word, and the relay answered as "dry-run"."""
    import app

    assert app.main(["--dry-run", "https://tavus.daily.co/c1"]) == 2

    out, err = capsys.readouterr()
    assert out == "" and err == (
        "error: --dry-run joins no room: give no URL (--dry-run is for ignoring TAVUS_CONVERSATION_URL)\n"
    )
