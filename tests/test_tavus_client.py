"""TavusClient against a fake Tavus on 127.0.0.1 (real sockets, real requests)."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import pytest
from urllib3.util.retry import RequestHistory

from config import ConfigError, Settings
from tavus_client import TavusAPIError, TavusClient, __version__
from tests.conftest import free_port, wait_until
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
    assert (call.method, call.path, call.body) == (
        "POST", "/v2/personas", {"persona_name": "Echo Assistant", "pipeline_mode": "echo"}
    )
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
    assert (call.method, call.path, call.body) == (
        "POST", "/v2/conversations", {"persona_id": "p123", "conversation_name": "Echo Test"}
    )
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
    with pytest.raises(
        TavusAPIError, match="failed with 400: Invalid request: 'default_face_id' is a required property"
    ):
        tavus.create_pal("Echo Assistant")


@pytest.mark.parametrize(
    "call, method, path, query",
    [
        (lambda t: t.get_persona("p1"), "GET", "/v2/personas/p1", {}),
        (lambda t: t.list_personas(limit=5, page=2), "GET", "/v2/personas", {"limit": ["5"], "page": ["2"]}),
        (lambda t: t.delete_persona("p1"), "DELETE", "/v2/personas/p1", {}),
        (lambda t: t.get_pal("pal1"), "GET", "/v2/pals/pal1", {}),
        (lambda t: t.list_pals(), "GET", "/v2/pals", {}),
        (lambda t: t.list_pals(pal_type="user", sort="desc"), "GET", "/v2/pals",
         {"pal_type": ["user"], "sort": ["desc"]}),
        (lambda t: t.get_pal("pal1", include_settings=True), "GET", "/v2/pals/pal1", {"include_settings": ["true"]}),
        (lambda t: t.patch_pal("pal1", [{"op": "replace", "path": "/pal_name", "value": "E"}]),
         "PATCH", "/v2/pals/pal1", {}),
        (lambda t: t.patch_persona("p1", [{"op": "remove", "path": "/pipeline_mode"}]), "PATCH", "/v2/personas/p1", {}),
        (lambda t: t.delete_pal("pal1"), "DELETE", "/v2/pals/pal1", {}),
        (lambda t: t.get_conversation("c1"), "GET", "/v2/conversations/c1", {}),
        (lambda t: t.get_conversation("c1", verbose=True), "GET", "/v2/conversations/c1", {"verbose": ["true"]}),
        (lambda t: t.list_conversations(10, 1, "active"), "GET", "/v2/conversations",
         {"limit": ["10"], "page": ["1"], "status": ["active"]}),
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

    with pytest.raises(
        TavusAPIError, match=r"^Tavus API POST /personas failed: Tavus did not answer within 2 s \(TAVUS_TIMEOUT\)$"
    ) as caught:
        tavus.create_persona("E")

    assert caught.value.status_code is None
    assert len(fake_tavus.calls("POST", "/v2/personas")) == 1


@pytest.mark.parametrize("backoff_s", [0.0, 0.5, 2.0])
def test_the_wait_between_retries_is_tavus_retry_backoff(backoff_s):
    """urllib3 waits TAVUS_RETRY_BACKOFF × 2^(n-1) s before the n-th retry after the first (which is at once)."""
    settings = Settings(tavus_api_key=API_KEY, tavus_retry_backoff_s=backoff_s)
    client = TavusClient.from_settings(settings)

    failed = RequestHistory("GET", None, None, 503, None)
    for path in ("/replicas", "/conversations/c1/end"):
        retry = client._session.get_adapter(settings.tavus_api_base_url + path).max_retries
        assert [retry.new(history=(failed,) * tries).get_backoff_time() for tries in (1, 2, 3)] == [
            0, backoff_s * 2, backoff_s * 4
        ]


def test_refused_connection_is_the_same_error_with_no_status():
    port = free_port()
    client = TavusClient(API_KEY, base_url=f"http://127.0.0.1:{port}/v2", retry_backoff_s=0.01)

    with pytest.raises(
        TavusAPIError, match=rf"Tavus API GET /replicas failed: could not connect to 127.0.0.1:{port}"
    ) as caught:
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


def test_a_client_without_a_key_raises_the_projects_config_error_naming_the_setting():
    with pytest.raises(ConfigError, match="^set TAVUS_API_KEY \\(in the environment or .env\\) to your Tavus API key$"):
        TavusClient("")


# --- a Tavus that takes the request and never answers ------------------------------------------


def test_a_tavus_that_never_answers_is_asked_once_more_then_named_as_not_answering(silent_tavus):
    client = TavusClient(API_KEY, base_url=silent_tavus.base_url, timeout=0.2, retry_backoff_s=0.01)

    with pytest.raises(TavusAPIError) as caught:
        client.list_faces()

    assert str(caught.value) == (
        "Tavus API GET /faces failed: Tavus did not answer within 0.2 s (TAVUS_TIMEOUT), asked twice"
    )
    assert len(silent_tavus.accepted) == 2


def test_a_client_told_to_ask_once_asks_once_and_says_only_that_tavus_did_not_answer(silent_tavus):
    client = TavusClient(API_KEY, base_url=silent_tavus.base_url, timeout=0.2, read_retries=0)

    with pytest.raises(TavusAPIError) as caught:
        client.get_conversation("c555")

    assert str(caught.value) == (
        "Tavus API GET /conversations/c555 failed: Tavus did not answer within 0.2 s (TAVUS_TIMEOUT)"
    )
    assert len(silent_tavus.accepted) == 1


# --- a wait is never silent: a notice after SLOW_NOTICE_S, and again every SLOW_REPEAT_S ----------


def call_in_background(call) -> tuple[threading.Thread, list[TavusAPIError]]:
    """Run `call` on a thread, expecting it to fail (a Tavus that never answers); the thread and its error, once it
    came.
    """
    failed: list[TavusAPIError] = []

    def run() -> None:
        with pytest.raises(TavusAPIError) as caught:
            call()
        failed.append(caught.value)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, failed


def hang_up(silent_tavus, thread) -> None:
    """Close every connection the silent Tavus holds (a retry opens another) until the call gave up."""

    def closed_all() -> bool:
        for connection in list(silent_tavus.accepted):
            connection.close()
        return not thread.is_alive()

    wait_until(closed_all, "the call to give up once Tavus hung up")


@pytest.mark.parametrize("call, method_path, asked_again", [
    (lambda t: t.create_persona("Echo Assistant"), "POST /personas", ""),
    (lambda t: t.create_conversation(persona_id="p1"), "POST /conversations", ""),
    (lambda t: t.list_faces(), "GET /faces", ", then asked once more"),
    (lambda t: t.end_conversation("c1"), "POST /conversations/c1/end", ", then asked once more"),
])
def test_a_call_waiting_for_tavus_says_so_and_again_while_the_wait_goes_on(
    silent_tavus, call, method_path, asked_again
):
    notices: list[str] = []
    client = TavusClient(
        API_KEY, base_url=silent_tavus.base_url, on_slow=notices.append, slow_notice_s=0.01, slow_repeat_s=0.01
    )
    thread, _ = call_in_background(lambda: call(client))

    wait_until(lambda: len(notices) >= 3, "three notices")
    hang_up(silent_tavus, thread)

    first, *again = notices
    assert first == f"waiting for Tavus to answer {method_path} (up to 30 s, TAVUS_TIMEOUT{asked_again}) ..."
    assert again and all(
        re.fullmatch(rf"still waiting for Tavus to answer {re.escape(method_path)} \(\d+ s so far\) \.\.\.", notice)
        for notice in again
    ), again


def test_a_call_that_is_told_to_ask_once_does_not_say_it_asks_again(silent_tavus):
    notices: list[str] = []
    client = TavusClient(API_KEY, base_url=silent_tavus.base_url, on_slow=notices.append, slow_notice_s=0.01,
                         read_retries=0)
    thread, _ = call_in_background(lambda: client.get_conversation("c555"))

    wait_until(lambda: notices, "the notice")
    hang_up(silent_tavus, thread)

    assert notices == ["waiting for Tavus to answer GET /conversations/c555 (up to 30 s, TAVUS_TIMEOUT) ..."]


def test_the_notices_stop_once_the_call_ends(silent_tavus):
    notices: list[str] = []
    client = TavusClient(API_KEY, base_url=silent_tavus.base_url, on_slow=notices.append, slow_notice_s=0.01,
                         slow_repeat_s=0.01)
    thread, failed = call_in_background(lambda: client.create_persona("Echo Assistant"))
    wait_until(lambda: notices, "the notice")

    hang_up(silent_tavus, thread)

    assert failed
    wait_until(lambda: not [t for t in threading.enumerate() if t.name == "tavus-slow-notice"], "the notices to stop")


def test_an_answer_before_slow_notice_s_says_nothing(tavus):
    notices: list[str] = []
    client = TavusClient(API_KEY, base_url=tavus.base_url, on_slow=notices.append)

    client.list_faces()

    assert notices == []


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

