"""TavusClient and its command line against a fake Tavus on 127.0.0.1 (real sockets, real requests)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tavus_client import TavusAPIError, TavusClient, __version__
from tests.conftest import assert_no_secret, free_port
from tests.fake_tavus import API_KEY

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
    with pytest.raises(TavusAPIError, match="failed with 400: Invalid request: default_face_id is required"):
        tavus.create_pal("Echo Assistant")


@pytest.mark.parametrize(
    "call, method, path, query",
    [
        (lambda t: t.get_persona("p1"), "GET", "/v2/personas/p1", {}),
        (lambda t: t.list_personas(limit=5, page=2), "GET", "/v2/personas", {"limit": ["5"], "page": ["2"]}),
        (lambda t: t.delete_persona("p1"), "DELETE", "/v2/personas/p1", {}),
        (lambda t: t.get_pal("pal1"), "GET", "/v2/pals/pal1", {}),
        (lambda t: t.list_pals(), "GET", "/v2/pals", {}),
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

    with pytest.raises(TavusAPIError, match=r"Tavus API POST /personas timed out after 2 s") as caught:
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

    assert tavus.list_replicas()["total_count"] == 1
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


def cli(*args: str, fake_tavus, key: str | None = API_KEY, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAVUS_", "RELAY_"))}
    env["TAVUS_API_BASE_URL"] = fake_tavus.base_url
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
    ],
)
def test_cli_commands_print_the_json_answer(fake_tavus, tmp_path, args, method, path, body, answer_key):
    result = cli(*args, fake_tavus=fake_tavus, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert answer_key in json.loads(result.stdout)
    (call,) = fake_tavus.requests
    assert (call.method, call.path, call.body) == (method, path, body)


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
                    "end-conversation", "delete-persona", "list-personas", "list-replicas", "list-faces",
                    "list-pals", "get-pal", "delete-pal"):
        assert command in result.stdout
    assert cli("create-conversation", "--help", fake_tavus=fake_tavus, cwd=tmp_path).returncode == 0


def test_cli_refuses_a_pal_without_a_face_before_calling_tavus(fake_tavus, tmp_path):
    result = cli("create-persona", "--pal", fake_tavus=fake_tavus, cwd=tmp_path)

    assert result.returncode == 2
    assert "a PAL needs a face: pass --face-id F (list the faces you can use: python tavus_client.py list-faces)" in result.stderr
    assert fake_tavus.requests == []


def test_cli_says_a_mistyped_id_is_wrong_instead_of_ended(fake_tavus, tmp_path):
    result = cli("end-conversation", "cTYPO", fake_tavus=fake_tavus, cwd=tmp_path)

    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "error: Tavus API POST /conversations/cTYPO/end failed with 400: Invalid conversation_id\n"


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
]


@pytest.mark.parametrize("call", CONTRACT_CALLS)
def test_every_request_body_fits_the_documented_schema(tavus, fake_tavus, call):
    call(tavus)

    assert fake_tavus.contract_violations == []


def test_the_contract_catches_a_missing_required_field_or_a_wrong_type(tavus, fake_tavus):
    with pytest.raises(TavusAPIError):
        tavus.create_conversation(persona_id="p123", properties={"max_call_duration": "60"})

    assert fake_tavus.contract_violations == ["properties.max_call_duration must be int"]
