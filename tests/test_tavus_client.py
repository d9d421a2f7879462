"""TavusClient and its command line against a fake Tavus on 127.0.0.1 (real sockets, real requests)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from config import ConfigError
from tavus_client import ECHO_HAS_NO_PROMPT, NO_FACE, TavusAPIError, TavusClient, __version__, build_parser
from tavus_client import main as tavus_main
from tests.conftest import assert_no_secret, free_port
from tests.fake_tavus import API_KEY, STOCK_FACES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tavus(fake_tavus):
    client = TavusClient(API_KEY, base_url=fake_tavus.base_url, timeout=2, retry_backoff_s=0.01)
    yield client
    client.close()


# --- each call: method, path, exact body -----------------------------------------


def test_create_persona_posts_an_echo_persona(tavus, fake_tavus):
    answer = tavus.create_persona("Echo Assistant")

    (call,) = fake_tavus.requests
    assert (call.method, call.path, call.body) == ("POST", "/v2/personas", {"persona_name": "Echo Assistant", "pipeline_mode": "echo"})
    assert call.headers["x-api-key"] == API_KEY
    assert call.headers["User-Agent"] == f"tavus-echo-relay/{__version__}"
    assert answer["persona_id"] == "p123"


def test_create_persona_sends_only_given_extras(tavus, fake_tavus):
    tavus.create_persona("E", system_prompt="Be brief.", default_replica_id="r9", layers={"tts": {"tts_engine": "x"}})

    assert fake_tavus.requests[0].body == {
        "persona_name": "E", "pipeline_mode": "echo", "system_prompt": "Be brief.",
        "default_replica_id": "r9", "layers": {"tts": {"tts_engine": "x"}},
    }


def test_create_pal_posts_pal_name_to_pals(tavus, fake_tavus):
    answer = tavus.create_pal("Echo Assistant", default_face_id="r9")

    (call,) = fake_tavus.requests
    assert (call.method, call.path, call.body) == (
        "POST", "/v2/pals", {"pal_name": "Echo Assistant", "pipeline_mode": "echo", "default_face_id": "r9"}
    )
    assert answer["pal_id"] == "pal123"


def test_create_conversation_omits_absent_fields(tavus, fake_tavus):
    answer = tavus.create_conversation(persona_id="p123", conversation_name="Echo Test")

    (call,) = fake_tavus.requests
    assert (call.method, call.path, call.body) == ("POST", "/v2/conversations", {"persona_id": "p123", "conversation_name": "Echo Test"})
    assert answer["conversation_url"] == "https://tavus.daily.co/c123"


def test_create_conversation_sends_every_field_given(tavus, fake_tavus):
    tavus.create_conversation(
        pal_id="pal1", face_id="r1", conversation_name="n", conversational_context="ctx", custom_greeting="Hi",
        callback_url="https://example.com/cb", audio_only=False, test_mode=True, require_auth=True,
        properties={"max_call_duration": 60, "participant_left_timeout": 5},
    )

    assert fake_tavus.requests[0].body == {
        "pal_id": "pal1", "face_id": "r1", "conversation_name": "n", "conversational_context": "ctx",
        "custom_greeting": "Hi", "callback_url": "https://example.com/cb", "audio_only": False, "test_mode": True,
        "require_auth": True, "properties": {"max_call_duration": 60, "participant_left_timeout": 5},
    }


def test_a_private_conversation_comes_with_a_meeting_token_and_a_public_one_without(tavus):
    private = tavus.create_conversation(persona_id="p123", require_auth=True)
    public = tavus.create_conversation(persona_id="p123")

    assert private["meeting_token"] and "meeting_token" not in public


def test_a_test_mode_conversation_is_created_ended(tavus):
    assert tavus.create_conversation(persona_id="p123", test_mode=True)["status"] == "ended"


def test_the_fake_refuses_a_pal_without_a_face_as_tavus_does(tavus, fake_tavus):
    with pytest.raises(TavusAPIError, match="failed with 400: Invalid request: 'default_face_id' is a required property"):
        tavus.create_pal("Echo Assistant")


@pytest.mark.parametrize(
    "call, method, path, query",
    [
        (lambda t: t.get_persona("p1"), "GET", "/v2/personas/p1", {}),
        (lambda t: t.list_personas(limit=5, page=2), "GET", "/v2/personas", {"limit": ["5"], "page": ["2"]}),
        (lambda t: t.delete_persona("p1"), "DELETE", "/v2/personas/p1", {}),
        (lambda t: t.get_pal("pal1"), "GET", "/v2/pals/pal1", {}),
        (lambda t: t.list_pals(), "GET", "/v2/pals", {}),
        (lambda t: t.list_pals(pal_type="user", sort="desc"), "GET", "/v2/pals", {"pal_type": ["user"], "sort": ["desc"]}),
        (lambda t: t.get_pal("pal1", include_settings=True), "GET", "/v2/pals/pal1", {"include_settings": ["true"]}),
        (lambda t: t.patch_pal("pal1", [{"op": "replace", "path": "/pal_name", "value": "E"}]), "PATCH", "/v2/pals/pal1", {}),
        (lambda t: t.patch_persona("p1", [{"op": "remove", "path": "/pipeline_mode"}]), "PATCH", "/v2/personas/p1", {}),
        (lambda t: t.delete_pal("pal1"), "DELETE", "/v2/pals/pal1", {}),
        (lambda t: t.get_conversation("c1"), "GET", "/v2/conversations/c1", {}),
        (lambda t: t.get_conversation("c1", verbose=True), "GET", "/v2/conversations/c1", {"verbose": ["true"]}),
        (lambda t: t.list_conversations(10, 1, "active"), "GET", "/v2/conversations", {"limit": ["10"], "page": ["1"], "status": ["active"]}),
        (lambda t: t.end_conversation("c1"), "POST", "/v2/conversations/c1/end", {}),
        (lambda t: t.delete_conversation("c1"), "DELETE", "/v2/conversations/c1", {}),
        (lambda t: t.list_replicas(limit=3), "GET", "/v2/replicas", {"limit": ["3"]}),
        (lambda t: t.list_replicas(verbose=True, replica_type="user"), "GET", "/v2/replicas",
         {"verbose": ["true"], "replica_type": ["user"]}),
        (lambda t: t.list_faces(page=2, verbose=True, face_type="system"), "GET", "/v2/faces",
         {"page": ["2"], "verbose": ["true"], "face_type": ["system"]}),
    ],
)
def test_each_call_hits_its_endpoint(tavus, fake_tavus, call, method, path, query):
    call(tavus)

    (recorded,) = fake_tavus.requests
    assert (recorded.method, recorded.path, recorded.query) == (method, path, query)


def test_ending_twice_is_not_an_error_because_tavus_says_it_has_ended(tavus, fake_tavus):
    assert tavus.end_conversation("c1") == {"conversation_id": "c1", "status": "ended"}
    assert tavus.end_conversation("c1") == {"conversation_id": "c1", "status": "ended", "already_ended": True}
    assert [(c.method, c.path) for c in fake_tavus.requests][-2:] == [
        ("POST", "/v2/conversations/c1/end"), ("GET", "/v2/conversations/c1"),
    ]


def test_a_mistyped_id_is_an_error_not_already_ended(tavus):
    with pytest.raises(TavusAPIError) as raised:
        tavus.end_conversation("cTYPO")

    assert str(raised.value) == "Tavus API POST /conversations/cTYPO/end failed with 400: Invalid conversation_id"


def test_a_refused_end_of_a_conversation_still_active_is_an_error(tavus, fake_tavus):
    fake_tavus.fail_next("POST", "/v2/conversations/c1/end", 409, {"error": "Conversation is busy"})

    with pytest.raises(TavusAPIError, match="409: Conversation is busy"):
        tavus.end_conversation("c1")


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, body, message",
    [
        (400, {"error": "Invalid persona_id"}, "Tavus API POST /conversations failed with 400: Invalid persona_id"),
        (400, {"message": "User has reached maximum concurrent conversations"},
         "Tavus API POST /conversations failed with 400: User has reached maximum concurrent conversations"),
        (404, {"error": "Not found"}, "Tavus API POST /conversations failed with 404: Not found"),
        (500, None, "Tavus API POST /conversations failed with 500: Internal Server Error"),
    ],
)
def test_http_errors_name_the_call_status_and_tavus_reason(tavus, fake_tavus, status, body, message):
    fake_tavus.fail_next("POST", "/v2/conversations", status, body)

    with pytest.raises(TavusAPIError) as caught:
        tavus.create_conversation(persona_id="p1")

    assert str(caught.value) == message
    assert (caught.value.status_code, caught.value.method, caught.value.path) == (status, "POST", "/conversations")


def test_wrong_key_is_401_with_tavus_message(fake_tavus):
    client = TavusClient("wrong-key", base_url=fake_tavus.base_url)

    with pytest.raises(TavusAPIError, match="failed with 401: Invalid access token") as caught:
        client.list_replicas()

    assert caught.value.status_code == 401


def test_timeout_is_the_same_error_with_no_status(tavus, fake_tavus):
    fake_tavus.fail_next("POST", "/v2/personas", 200, {}, delay_s=3)

    with pytest.raises(TavusAPIError, match=r"^Tavus API POST /personas failed: Tavus did not answer within 2 s \(TAVUS_TIMEOUT\)$") as caught:
        tavus.create_persona("E")

    assert caught.value.status_code is None
    assert len(fake_tavus.calls("POST", "/v2/personas")) == 1


def test_refused_connection_is_the_same_error_with_no_status():
    port = free_port()
    client = TavusClient(API_KEY, base_url=f"http://127.0.0.1:{port}/v2", retry_backoff_s=0.01)

    with pytest.raises(TavusAPIError, match=rf"Tavus API GET /replicas failed: could not connect to 127.0.0.1:{port}") as caught:
        client.list_replicas()

    assert caught.value.status_code is None


# --- retries ---------------------------------------------------------------------------


def test_get_is_retried_after_503(tavus, fake_tavus):
    fake_tavus.fail_next("GET", "/v2/replicas", 503, {"error": "busy"})

    assert tavus.list_replicas()["total_count"] == 1 + len(STOCK_FACES)
    assert len(fake_tavus.calls("GET", "/v2/replicas")) == 2


def test_get_gives_up_after_three_retries_with_the_last_status(tavus, fake_tavus):
    fake_tavus.fail_next("GET", "/v2/replicas", 429, {"message": "slow down"}, times=10)

    with pytest.raises(TavusAPIError, match="failed with 429: slow down"):
        tavus.list_replicas()

    assert len(fake_tavus.calls("GET", "/v2/replicas")) == 4


def test_creating_a_conversation_is_never_retried(tavus, fake_tavus):
    fake_tavus.fail_next("POST", "/v2/conversations", 503, {"error": "busy"})

    with pytest.raises(TavusAPIError, match="failed with 503"):
        tavus.create_conversation(persona_id="p1")

    assert len(fake_tavus.calls("POST", "/v2/conversations")) == 1


def test_creating_a_persona_is_never_retried(tavus, fake_tavus):
    fake_tavus.fail_next("POST", "/v2/personas", 502, None)

    with pytest.raises(TavusAPIError, match="failed with 502"):
        tavus.create_persona("E")

    assert len(fake_tavus.calls("POST", "/v2/personas")) == 1


def test_ending_is_retried_after_503(tavus, fake_tavus):
    fake_tavus.fail_next("POST", "/v2/conversations/c1/end", 503, None)

    assert tavus.end_conversation("c1")["status"] == "ended"
    assert len(fake_tavus.calls("POST", "/v2/conversations/c1/end")) == 2


# --- the key stays secret ------------------------------------------------------------------


def test_the_key_never_shows_in_repr_errors_or_logs(fake_tavus, caplog):
    caplog.set_level(logging.DEBUG)
    client = TavusClient(API_KEY, base_url=fake_tavus.base_url, retry_backoff_s=0.01)
    fake_tavus.fail_next("POST", "/v2/conversations", 400, {"error": f"bad key {API_KEY}"})
    fake_tavus.fail_next("GET", "/v2/replicas", 503, None, times=10)
    errors = []
    for call in (lambda: client.create_conversation(persona_id="p"), client.list_replicas):
        with pytest.raises(TavusAPIError) as caught:
            call()
        errors.append(caught.value)

    assert API_KEY not in repr(client)
    assert all(API_KEY not in str(error) and API_KEY not in repr(error) for error in errors)
    assert "***" in str(errors[0])
    assert API_KEY not in caplog.text


def test_no_redirect_is_followed(tavus, fake_tavus):
    fake_tavus.fail_next("GET", "/v2/replicas", 302, None)

    with pytest.raises(TavusAPIError, match="failed with 302"):
        tavus.list_replicas()

    assert len(fake_tavus.requests) == 1


# --- the command line ---------------------------------------------------------------------------


def cli(
    *args: str, fake_tavus, key: str | None = API_KEY, cwd: Path, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAVUS_", "RELAY_"))}
    env["TAVUS_API_BASE_URL"] = fake_tavus.base_url
    env.update(settings)
    if key:
        env["TAVUS_API_KEY"] = key
    result = subprocess.run(
        [sys.executable, str(ROOT / "tavus_client.py"), *args], check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert_no_secret(result.stderr + without_the_meeting_token(result.stdout))
    return result


def without_the_meeting_token(answer: str) -> str:
    """The answer to creating a private conversation shows its meeting_token: the one place the CLI prints one."""
    return "\n".join(line for line in answer.splitlines() if not line.strip().startswith('"meeting_token":'))


@pytest.mark.parametrize(
    "args, method, path, body, answer_key",
    [
        (["create-persona"], "POST", "/v2/personas", {"persona_name": "Echo Assistant", "pipeline_mode": "echo"}, "persona_id"),
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
        (["create-conversation", "--persona-id", "p1", "--name", "Echo Test", "--greeting", "Hi", "--max-call-duration", "120"],
         "POST", "/v2/conversations",
         {"persona_id": "p1", "conversation_name": "Echo Test", "custom_greeting": "Hi", "properties": {"max_call_duration": 120}},
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
         {"persona_id": "p1", "properties": {"language": "german", "enable_closed_captions": True, "apply_greenscreen": True,
                                             "max_participants": 3, "a_property_tavus_adds_later": "x",
                                             "max_call_duration": 600}}, "conversation_url"),
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
    fake_tavus.fail_next("POST", "/v2/conversations", 400, {"message": "User has reached maximum concurrent conversations"})

    result = cli("create-conversation", "--persona-id", "p1", fake_tavus=fake_tavus, cwd=tmp_path)

    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "error: Tavus API POST /conversations failed with 400: User has reached maximum concurrent conversations\n"


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
    assert fake_tavus.requests[0].body == {"pal_name": "Echo Assistant", "pipeline_mode": "echo", "default_face_id": "r9"}


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
         ("argument patch: the patch is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
         "(char 1)): give a list such as '[{\"op\": \"replace\", \"path\": \"/persona_name\", \"value\": \"Echo 2\"}]' "
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


def test_a_client_without_a_key_raises_the_projects_config_error_naming_the_setting():
    with pytest.raises(ConfigError, match="^set TAVUS_API_KEY \\(in the environment or .env\\) to your Tavus API key$"):
        TavusClient("")


# --- a Tavus that takes the request and never answers ------------------------------------------


@pytest.fixture
def silent_tavus() -> Iterator[SimpleNamespace]:
    """A server that accepts every connection and never answers (each connection kept in `accepted`)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield SimpleNamespace(base_url=f"http://127.0.0.1:{server.getsockname()[1]}/v2", accepted=accepted)
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    for connection in accepted:
        connection.close()


def test_a_tavus_that_never_answers_is_asked_once_more_then_named_as_not_answering(silent_tavus):
    client = TavusClient(API_KEY, base_url=silent_tavus.base_url, timeout=0.2, retry_backoff_s=0.01)

    with pytest.raises(TavusAPIError) as caught:
        client.list_faces()

    assert str(caught.value) == "Tavus API GET /faces failed: Tavus did not answer within 0.2 s (TAVUS_TIMEOUT), asked twice"
    assert len(silent_tavus.accepted) == 2


def test_cli_says_it_waits_then_that_tavus_did_not_answer_within_tavus_timeout(silent_tavus, tmp_path):
    result = cli("list-faces", fake_tavus=silent_tavus, cwd=tmp_path, TAVUS_TIMEOUT="1")

    assert result.returncode == 1
    assert result.stderr == (
        "waiting for Tavus to answer GET /faces (up to 1 s, TAVUS_TIMEOUT) ...\n"
        "error: Tavus API GET /faces failed: Tavus did not answer within 1 s (TAVUS_TIMEOUT), asked twice\n"
    )


def test_cli_with_tavus_unreachable_prints_only_its_own_line(tmp_path):
    port = free_port()
    result = cli("list-faces", fake_tavus=SimpleNamespace(base_url=f"http://127.0.0.1:{port}/v2"), cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr == f"error: Tavus API GET /faces failed: could not connect to 127.0.0.1:{port} (ConnectionError)\n"


# --- the fake answers as Tavus documents -----------------------------------------------------------


def test_the_fake_lists_tavus_stock_faces_for_face_type_system(tavus):
    assert tavus.list_faces(face_type="system")["data"] == STOCK_FACES


def test_a_patch_changes_what_get_answers_and_a_deleted_conversation_is_gone(tavus):
    tavus.patch_persona("p1", [{"op": "replace", "path": "/persona_name", "value": "Echo 2"}])
    tavus.delete_conversation("c1")

    assert tavus.get_persona("p1")["persona_name"] == "Echo 2"
    with pytest.raises(TavusAPIError, match="400: Invalid conversation_id"):
        tavus.get_conversation("c1")


def test_the_fake_refuses_a_patch_that_is_not_a_json_patch_list(tavus, fake_tavus):
    with pytest.raises(TavusAPIError, match="400: Invalid request"):
        tavus.patch_pal("pal1", [{"op": "rename", "path": "pal_name"}])

    assert fake_tavus.contract_violations == [
        "0.op: 'rename' is not one of ['add', 'remove', 'replace', 'copy', 'move', 'test']",
        "0.path: 'pal_name' does not match '^/'",
    ]


# --- the contract: every request the client can send fits the schema the docs give -------------


CONTRACT_CALLS = [
    lambda t: t.create_persona("Echo Assistant"),
    lambda t: t.create_persona("E", system_prompt="Be brief.", default_replica_id="r9", layers={"tts": {}}),
    lambda t: t.create_pal("Echo Assistant", default_face_id="r9"),
    lambda t: t.create_conversation(persona_id="p123", replica_id="r9", conversation_name="Echo relay"),
    lambda t: t.create_conversation(pal_id="pal123", face_id="r9", conversation_name="Echo relay", require_auth=True),
    lambda t: t.create_conversation(
        persona_id="p123", conversational_context="c", custom_greeting="Hi", callback_url="https://example.com/cb",
        audio_only=True, test_mode=True, properties={"max_call_duration": 60, "participant_left_timeout": 5,
                                                      "participant_absent_timeout": 30},
    ),
    lambda t: t.create_conversation(persona_id="p123", properties={
        "language": "english", "enable_recording": True, "enable_closed_captions": True, "apply_greenscreen": False,
        "max_participants": 2, "a_property_tavus_adds_later": {"x": 1},
    }),
    lambda t: t.patch_persona("p123", [{"op": "replace", "path": "/persona_name", "value": "E"}]),
    lambda t: t.patch_pal("pal123", [{"op": "add", "path": "/layers", "value": {}}]),
]


@pytest.mark.parametrize("call", CONTRACT_CALLS)
def test_every_request_body_fits_the_documented_schema(tavus, fake_tavus, call):
    call(tavus)

    assert fake_tavus.contract_violations == []


def test_the_contract_catches_a_missing_required_field_or_a_wrong_type(tavus, fake_tavus):
    with pytest.raises(TavusAPIError):
        tavus.create_conversation(persona_id="p123", properties={"max_call_duration": "60"})

    assert fake_tavus.contract_violations == ["properties.max_call_duration: '60' is not of type 'integer'"]


def readme_commands() -> list[list[str]]:
    """Every `python tavus_client.py ...` line of the README's command line section, as the shell would split it."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### The Tavus command line", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [shlex.split(line, comments=True)[2:] for line in block.splitlines() if line.startswith("python tavus_client.py")]


def test_every_readme_command_works_as_written(fake_tavus, tmp_path, monkeypatch, capsys):
    for name in [name for name in os.environ if name.startswith(("TAVUS_", "RELAY_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TAVUS_API_KEY", API_KEY)
    monkeypatch.setenv("TAVUS_API_BASE_URL", fake_tavus.base_url)
    monkeypatch.chdir(tmp_path)
    commands = readme_commands()
    assert {command[0] for command in commands} >= {"delete-conversation", "patch-persona", "patch-pal", "list-pals"}

    for command in commands:
        try:
            code = tavus_main(command)
        except SystemExit as exited:  # --help
            code = int(exited.code or 0)
        assert code == 0, (command, capsys.readouterr().err)
    assert fake_tavus.contract_violations == []
