"""`python tavus_client.py` (relay/tavus_cli.py) against a fake Tavus on 127.0.0.1: what it prints, how it exits."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from relay.tavus_cli import ECHO_HAS_NO_PROMPT, NO_FACE, build_parser
from relay.tavus_cli import main as tavus_main
from tests.conftest import assert_no_secret, free_port
from tests.docs import code_blocks, page, section
from tests.fake_tavus import API_KEY

ROOT = Path(__file__).resolve().parent.parent


def cli(
    *args: str, fake_tavus, key: str | None = API_KEY, cwd: Path, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAVUS_", "RELAY_"))}
    env["TAVUS_API_BASE_URL"] = fake_tavus.base_url
    env["TAVUS_RETRY_BACKOFF"] = "0.01"  # a retried call is retried at once, not after 0.5 s, 1 s, 2 s
    env.update(settings)
    if key:
        env["TAVUS_API_KEY"] = key
    result = subprocess.run(
        [sys.executable, str(ROOT / "tavus_client.py"), *args],
        check=False,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_no_secret(result.stderr + without_the_meeting_token(result.stdout))
    return result


def without_the_meeting_token(answer: str) -> str:
    """The answer to creating a private conversation shows its meeting_token: the one place the CLI prints one."""
    return "\n".join(line for line in answer.splitlines() if not line.strip().startswith('"meeting_token":'))


@pytest.mark.parametrize(
    "args, method, path, body, answer_key",
    [
        (["create-persona"], "POST", "/v2/personas",
         {"persona_name": "Echo Assistant", "pipeline_mode": "echo"}, "persona_id"),
        (["create-persona", "--pal", "--name", "Mine", "--face-id", "r1"], "POST", "/v2/pals",
         {"pal_name": "Mine", "pipeline_mode": "echo", "default_face_id": "r1"}, "pal_id"),
        (["create-conversation", "--pal-id", "pal1", "--face-id", "r1", "--test-mode", "--audio-only", "--private",
          "--participant-left-timeout", "10", "--participant-absent-timeout", "60"], "POST", "/v2/conversations",
         {"pal_id": "pal1", "face_id": "r1", "audio_only": True, "test_mode": True, "require_auth": True,
          "properties": {"participant_left_timeout": 10, "participant_absent_timeout": 60}}, "meeting_token"),
        (["get-conversation", "c1", "--verbose"], "GET", "/v2/conversations/c1", None, "events"),
        (["get-pal", "pal1"], "GET", "/v2/pals/pal1", None, "pal_id"),
        (["delete-pal", "pal1"], "DELETE", "/v2/pals/pal1", None, "deleted"),
        (["list-pals"], "GET", "/v2/pals", None, "data"),
        (["list-faces", "--verbose", "--type", "user"], "GET", "/v2/faces", None, "data"),
        (["create-conversation", "--persona-id", "p1", "--name", "Echo Test", "--greeting", "Hi",
          "--max-call-duration", "120"],
         "POST", "/v2/conversations",
         {"persona_id": "p1", "conversation_name": "Echo Test", "custom_greeting": "Hi",
          "properties": {"max_call_duration": 120}},
         "conversation_url"),
        (["get-conversation", "c1"], "GET", "/v2/conversations/c1", None, "status"),
        (["list-conversations", "--status", "active"], "GET", "/v2/conversations", None, "data"),
        (["end-conversation", "c1"], "POST", "/v2/conversations/c1/end", None, "status"),
        (["delete-persona", "p1"], "DELETE", "/v2/personas/p1", None, "deleted"),
        (["list-personas"], "GET", "/v2/personas", None, "data"),
        (["list-replicas", "--limit", "2"], "GET", "/v2/replicas", None, "data"),
        (["delete-conversation", "c1"], "DELETE", "/v2/conversations/c1", None, "deleted"),
        (["patch-persona", "p1", '[{"op": "replace", "path": "/persona_name", "value": "Echo 2"}]'], "PATCH",
         "/v2/personas/p1", [{"op": "replace", "path": "/persona_name", "value": "Echo 2"}], "persona_name"),
        (["patch-pal", "pal1", '[{"op": "add", "path": "/layers", "value": {"stt": {}}}]'], "PATCH", "/v2/pals/pal1",
         [{"op": "add", "path": "/layers", "value": {"stt": {}}}], "layers"),
        (["create-conversation", "--persona-id", "p1", "--max-call-duration", "600", "--properties",
          ('{"language": "german", "enable_closed_captions": true, "apply_greenscreen": true, "max_participants": 3,'
          ' "a_property_tavus_adds_later": "x"}')], "POST", "/v2/conversations",
         {"persona_id": "p1", "properties": {"language": "german", "enable_closed_captions": True,
                                             "apply_greenscreen": True, "max_participants": 3,
                                             "a_property_tavus_adds_later": "x", "max_call_duration": 600}},
         "conversation_url"),
    ],
)
def test_cli_commands_print_the_json_answer(fake_tavus, tmp_path, args, method, path, body, answer_key):
    result = cli(*args, fake_tavus=fake_tavus, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert answer_key in json.loads(result.stdout)
    (call,) = fake_tavus.requests
    assert (call.method, call.path, call.body) == (method, path, body)
    assert fake_tavus.contract_violations == []


@pytest.mark.parametrize(
    "args, path, query",
    [
        (["list-pals", "--type", "user", "--sort", "desc", "--limit", "5"], "/v2/pals",
         {"pal_type": ["user"], "sort": ["desc"], "limit": ["5"]}),
        (["get-pal", "pal1", "--include-settings"], "/v2/pals/pal1", {"include_settings": ["true"]}),
        (["list-faces", "--type", "system"], "/v2/faces", {"face_type": ["system"]}),
    ],
)
def test_cli_filters_are_sent_as_tavus_names_them(fake_tavus, tmp_path, args, path, query):
    result = cli(*args, fake_tavus=fake_tavus, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    (call,) = fake_tavus.requests
    assert (call.path, call.query) == (path, query)


def test_cli_without_a_key_exits_2_saying_what_to_set(fake_tavus, tmp_path):
    result = cli("list-replicas", fake_tavus=fake_tavus, key=None, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip() == "error: set TAVUS_API_KEY (in the environment or .env) to your Tavus API key"
    assert fake_tavus.requests == []


def test_cli_reads_the_key_from_dotenv(fake_tavus, tmp_path):
    (tmp_path / ".env").write_text(f"TAVUS_API_KEY={API_KEY}\n")

    assert cli("list-replicas", fake_tavus=fake_tavus, key=None, cwd=tmp_path).returncode == 0


def test_cli_api_error_exits_1_with_one_line(fake_tavus, tmp_path):
    fake_tavus.fail_next(
        "POST", "/v2/conversations", 400, {"message": "User has reached maximum concurrent conversations"}
    )

    result = cli("create-conversation", "--persona-id", "p1", fake_tavus=fake_tavus, cwd=tmp_path)

    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "error: Tavus API POST /conversations failed with 400: User has reached maximum concurrent conversations\n"
    )


def test_cli_help_lists_every_command(tmp_path, fake_tavus):
    result = cli("--help", fake_tavus=fake_tavus, cwd=tmp_path)

    for command in ("create-persona", "create-conversation", "get-conversation", "list-conversations",
                    "end-conversation", "delete-conversation", "delete-persona", "list-personas", "list-replicas",
                    "list-faces", "list-pals", "get-pal", "delete-pal", "patch-persona", "patch-pal"):
        assert command in result.stdout
    assert cli("create-conversation", "--help", fake_tavus=fake_tavus, cwd=tmp_path).returncode == 0


def test_cli_refuses_a_pal_without_a_face_in_one_line_with_the_quickstarts_words(fake_tavus, tmp_path):
    result = cli("create-persona", "--pal", fake_tavus=fake_tavus, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr == (
        "error: a PAL needs a face: pass --face-id F (or set TAVUS_REPLICA_ID); "
        "list the faces you can use with: python tavus_client.py list-faces\n"
    ) == f"error: {NO_FACE}\n"
    assert fake_tavus.requests == []


def test_cli_creates_a_pal_with_the_face_from_tavus_replica_id(fake_tavus, tmp_path):
    result = cli("create-persona", "--pal", fake_tavus=fake_tavus, cwd=tmp_path, TAVUS_REPLICA_ID="r9")

    assert result.returncode == 0, result.stderr
    assert fake_tavus.requests[0].body == {
        "pal_name": "Echo Assistant", "pipeline_mode": "echo", "default_face_id": "r9"
    }


def test_cli_says_a_mistyped_id_is_wrong_instead_of_ended(fake_tavus, tmp_path):
    result = cli("end-conversation", "cTYPO", fake_tavus=fake_tavus, cwd=tmp_path)

    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "error: Tavus API POST /conversations/cTYPO/end failed with 400: Invalid conversation_id\n"


def test_every_command_has_a_description_and_every_argument_an_explanation(capsys):
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))

    for name, parser in commands.choices.items():
        assert parser.description, name
        unexplained = [a.dest for a in parser._actions if not a.help and not isinstance(a, argparse._HelpAction)]
        assert unexplained == [], name
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(["--help"])
        assert exited.value.code == 0 and parser.description in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "args, message",
    [
        (["create-persona", "--system-prompt", "Be brief."], ECHO_HAS_NO_PROMPT),
        (["create-conversation", "--persona-id", "p1", "--max-call-duration", "60", "--properties",
          '{"max_call_duration": 120}'],
         "max_call_duration is given twice (--max-call-duration and --properties): give it once"),
        (["create-conversation", "--persona-id", "p1", "--properties", "[1]"],
         ("argument --properties: --properties must be a JSON object such as '{\"language\": \"english\"}' "
         "(see: python tavus_client.py create-conversation --help)")),
        (["patch-pal", "pal1", "{not json"],
         ("argument patch: the patch is not valid JSON (Expecting property name enclosed in double quotes: "
         "line 1 column 2 (char 1)): "
         "give a list such as '[{\"op\": \"replace\", \"path\": \"/persona_name\", \"value\": \"Echo 2\"}]' "
         "(see: python tavus_client.py patch-pal --help)")),
        (["create-conversation"], ("one of the arguments --persona-id --pal-id is required "
                                  "(see: python tavus_client.py create-conversation --help)")),
        (["list-faces", "--typo"], "unrecognized arguments: --typo (see: python tavus_client.py --help)"),
    ],
)
def test_cli_mistakes_are_one_line_and_exit_2_before_calling_tavus(fake_tavus, tmp_path, args, message):
    result = cli(*args, fake_tavus=fake_tavus, cwd=tmp_path)

    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"error: {message}\n")
    assert fake_tavus.requests == []


def test_cli_says_it_waits_then_that_tavus_did_not_answer_within_tavus_timeout(silent_tavus, tmp_path):
    result = cli("list-faces", fake_tavus=silent_tavus, cwd=tmp_path, TAVUS_TIMEOUT="1")

    assert result.returncode == 1
    assert result.stderr == (
        "waiting for Tavus to answer GET /faces (up to 1 s, TAVUS_TIMEOUT, then asked once more) ...\n"
        "error: Tavus API GET /faces failed: Tavus did not answer within 1 s (TAVUS_TIMEOUT), asked twice\n"
    )


def test_cli_with_tavus_unreachable_prints_only_its_own_line(tmp_path):
    port = free_port()
    result = cli("list-faces", fake_tavus=SimpleNamespace(base_url=f"http://127.0.0.1:{port}/v2"), cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr == (
        f"error: Tavus API GET /faces failed: could not connect to 127.0.0.1:{port} (ConnectionError)\n"
    )


def documented_commands() -> list[list[str]]:
    """Every `python tavus_client.py ...` line of docs/tavus.md's command line section, as the shell would split it."""
    block = code_blocks(section(page("docs/tavus.md"), "## The Tavus command line"), "sh")[0].replace("\\\n", " ")
    return [
        shlex.split(line, comments=True)[2:]
        for line in block.splitlines()
        if line.startswith("python tavus_client.py")
    ]


def test_every_documented_command_works_as_written(fake_tavus, tmp_path, monkeypatch, capsys):
    for name in [name for name in os.environ if name.startswith(("TAVUS_", "RELAY_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TAVUS_API_KEY", API_KEY)
    monkeypatch.setenv("TAVUS_API_BASE_URL", fake_tavus.base_url)
    monkeypatch.chdir(tmp_path)
    commands = documented_commands()
    assert {command[0] for command in commands} >= {"delete-conversation", "patch-persona", "patch-pal", "list-pals"}

    for command in commands:
        try:
            code = tavus_main(command)
        except SystemExit as exited:  # --help
            code = int(exited.code or 0)
        assert code == 0, (command, capsys.readouterr().err)
    assert fake_tavus.contract_violations == []
