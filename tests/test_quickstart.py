"""`python app.py --quickstart` end to end: fake Tavus over real HTTP, fake CallClient, a real SIGTERM.

main() runs in pytest's main thread (signal handlers need it); a helper thread
acts as the user: waits for the relay, makes the face speak, then sends SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
from typing import Any

import pytest
import requests

import app
from tavus_client import TavusClient, persona_id_of
from tests.conftest import FakeBehaviour, free_port, wait_for_relay
from tests.conftest import signal_when as interrupt_when
from tests.docs import page
from tests.fake_daily import participant
from tests.fake_tavus import API_KEY, STOCK_FACES

TAVUS_PAGE = page("docs/tavus.md")


@pytest.fixture
def quickstart_env(monkeypatch, tmp_path, fake_tavus):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for key in list(os.environ):
        if key.startswith(("TAVUS_", "RELAY_")):
            monkeypatch.delenv(key)
    port = free_port()
    monkeypatch.setenv("TAVUS_API_KEY", API_KEY)
    monkeypatch.setenv("TAVUS_API_BASE_URL", fake_tavus.base_url)
    monkeypatch.setenv("RELAY_PORT", str(port))
    monkeypatch.setenv("RELAY_REPLICA_TIMEOUT", "5")
    return port


class User(threading.Thread):
    """Waits for the relay, says one thing, then stops the relay with SIGTERM."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.response: Any = None

    def run(self) -> None:
        if not wait_for_relay(self.port):
            return  # main() never served: do not signal a process that has no handler installed
        self.response = requests.post(
            f"http://127.0.0.1:{self.port}/send_text_message", json={"text": "Hello there!"}, timeout=10
        )
        os.kill(os.getpid(), signal.SIGTERM)


def run_quickstart(argv: list[str], port: int, fake_daily: FakeBehaviour) -> tuple[int, User]:
    user = User(port)
    user.start()
    code = app.main(argv, client_factory=fake_daily.factory, microphone_factory=fake_daily.microphone_factory)
    user.join(10)
    return code, user


def test_quickstart_creates_joins_speaks_and_ends_the_conversation_on_sigterm(
    quickstart_env, fake_tavus, fake_daily, capsys
):
    code, user = run_quickstart(["--quickstart"], quickstart_env, fake_daily)

    assert code == 0
    assert [(c.method, c.path) for c in fake_tavus.requests] == [
        ("POST", "/v2/personas"),
        ("POST", "/v2/conversations"),
        ("POST", "/v2/conversations/c123/end"),
    ]
    assert fake_tavus.requests[0].body == {"persona_name": "Echo Assistant", "pipeline_mode": "echo"}
    assert fake_tavus.requests[1].body == {
        "persona_id": "p123", "conversation_name": "Echo relay", "properties": {"max_call_duration": 3600}
    }
    assert user.response.status_code == 200
    fake = fake_daily.client
    assert fake.joined_with["url"] == "https://tavus.daily.co/c123"
    assert [m["properties"]["text"] for m in fake.sent] == ["Hello there!"]
    assert fake.sent[0]["conversation_id"] == "c123"
    assert fake.left and fake.released
    out, err = capsys.readouterr()
    assert "https://tavus.daily.co/c123" in out
    assert f"curl -s -X POST http://127.0.0.1:{quickstart_env}/send_text_message" in out
    assert "ended conversation c123" in err
    assert API_KEY not in out + err


def test_quickstart_reuses_tavus_persona_id_and_passes_the_replica(quickstart_env, fake_tavus, fake_daily, monkeypatch):
    monkeypatch.setenv("TAVUS_PERSONA_ID", "p-existing")

    code, _ = run_quickstart(["--quickstart", "--replica-id", "r77", "--name", "Demo"], quickstart_env, fake_daily)

    assert code == 0
    assert fake_tavus.calls("POST", "/v2/personas") == []
    assert fake_tavus.calls("POST", "/v2/conversations")[0].body == {
        "persona_id": "p-existing",
        "replica_id": "r77",
        "conversation_name": "Demo",
        "properties": {"max_call_duration": 3600},
    }
    assert fake_tavus.contract_violations == []
    assert len(fake_tavus.calls("POST", "/v2/conversations/c123/end")) == 1


def test_a_failed_join_still_ends_the_conversation(quickstart_env, fake_tavus, fake_daily, capsys):
    fake_daily.join_failure = "unreachable"

    code = app.main(["--quickstart"], client_factory=fake_daily.factory)

    assert code == 1
    assert len(fake_tavus.calls("POST", "/v2/conversations/c123/end")) == 1
    err = capsys.readouterr().err
    assert "error: could not reach Daily to look up https://tavus.daily.co/c123: check your network connection" in err
    assert "ended conversation c123: it no longer bills" in err


def test_a_port_in_use_creates_nothing_at_all(quickstart_env, fake_tavus, fake_daily, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", quickstart_env))
        taken.listen()

        code = app.main(["--quickstart"], client_factory=fake_daily.factory)

    assert code == 1
    err = capsys.readouterr().err
    assert f"error: cannot listen on 127.0.0.1:{quickstart_env}: Address already in use; set RELAY_PORT" in err
    assert fake_tavus.requests == [] and fake_daily.clients == []


@pytest.mark.parametrize("delivered_to", ["main thread", "another thread", "started ignored"])
def test_ctrl_c_during_the_join_stops_at_once_and_ends_the_conversation(
    quickstart_env, fake_tavus, fake_daily, capsys, delivered_to
):
    """The kernel hands a process's signal to any thread: Daily's, not the main one, is the case that hung.

    With SIGINT blocked in the main thread (and so in every thread it starts), only the
    watcher thread, started before, can receive it. A relay started as a background job
    inherits SIGINT ignored; Ctrl-C (SIGINT) must stop it all the same.
    """
    fake_daily.join_failure, fake_daily.join_delay_s = "unreachable", 60  # like Daily's ~19 s on a dead network
    interrupt_when(lambda: fake_daily.clients and fake_daily.client.joined_with)
    blocked = {signal.SIGINT} if delivered_to == "another thread" else set()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    inherited = signal.signal(
        signal.SIGINT, signal.SIG_IGN if delivered_to == "started ignored" else signal.default_int_handler
    )
    try:
        code = app.main(["--quickstart"], client_factory=fake_daily.factory)  # "started ignored": a background job's
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        signal.signal(signal.SIGINT, inherited)

    assert code == 0
    assert not fake_daily.network_answers.is_set()  # it did not wait for Daily to give up on the join
    assert fake_daily.client.left and fake_daily.client.released
    assert len(fake_tavus.calls("POST", "/v2/conversations/c123/end")) == 1
    err = capsys.readouterr().err
    assert "stopped while joining: the relay leaves, and ends the conversation it created" in err
    assert "ended conversation c123: it no longer bills" in err
    fake_daily.network_answers.set()


def test_sigterm_while_a_request_waits_for_the_face_ends_the_conversation(
    quickstart_env, fake_tavus, fake_daily, monkeypatch
):
    """The request is seen waiting (the room is asked for the face) before SIGTERM; its answer comes at once."""
    from relay.room import Room

    fake_daily.replica_in_room = False  # a cold start: the face is not there yet
    monkeypatch.setenv("RELAY_REPLICA_TIMEOUT", "300")  # only the SIGTERM can end the wait
    waiting = threading.Event()
    wait_for_replica = Room.wait_for_replica

    def seen_waiting(room: Room, timeout: float) -> bool:
        waiting.set()
        return wait_for_replica(room, timeout)

    monkeypatch.setattr(Room, "wait_for_replica", seen_waiting)
    answers: list[requests.Response] = []

    def user() -> None:
        if wait_for_relay(quickstart_env):
            answers.append(requests.post(f"http://127.0.0.1:{quickstart_env}/send_text_message",
                                         json={"text": "Hi"}, timeout=20))

    threading.Thread(target=user, daemon=True).start()
    interrupt_when(waiting.is_set, signal.SIGTERM)

    code = app.main(["--quickstart"], client_factory=fake_daily.factory)

    assert code == 0
    assert len(fake_tavus.calls("POST", "/v2/conversations/c123/end")) == 1
    assert fake_daily.client.sent == []
    [answer] = answers  # answered when the relay left the room, not after RELAY_REPLICA_TIMEOUT (300 s)
    assert answer.status_code == 503 and set(answer.json()) == {"error"}


def test_an_unwritable_record_file_is_found_before_anything_is_created(
    quickstart_env, fake_tavus, fake_daily, monkeypatch, capsys
):
    monkeypatch.setenv("RELAY_RECORD_FILE", "/no/such/dir/record.jsonl")

    code = app.main(["--quickstart"], client_factory=fake_daily.factory)

    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "error: RELAY_RECORD_FILE '/no/such/dir/record.jsonl' cannot be opened for appending: No such file or directory"
    )
    assert fake_tavus.requests == [] and fake_daily.clients == []


def test_a_tavus_error_before_any_conversation_exits_1_and_ends_nothing(quickstart_env, fake_tavus, fake_daily, capsys):
    fake_tavus.fail_next(
        "POST", "/v2/conversations", 400, {"message": "User has reached maximum concurrent conversations"}
    )

    code = app.main(["--quickstart"], client_factory=fake_daily.factory)

    assert code == 1
    assert "maximum concurrent conversations" in capsys.readouterr().err
    assert fake_tavus.calls("POST", "/v2/conversations/c123/end") == []
    assert fake_daily.clients == []


def test_quickstart_without_a_key_exits_2(quickstart_env, fake_tavus, fake_daily, monkeypatch, capsys):
    monkeypatch.delenv("TAVUS_API_KEY")

    assert app.main(["--quickstart"], client_factory=fake_daily.factory) == 2
    assert "needs TAVUS_API_KEY" in capsys.readouterr().err
    assert fake_tavus.requests == []


def test_joining_a_url_never_ends_a_conversation_it_did_not_create(quickstart_env, fake_tavus, fake_daily, capsys):
    code, user = run_quickstart(["https://tavus.daily.co/c555"], quickstart_env, fake_daily)

    assert code == 0 and user.response.status_code == 200
    assert [(r.method, r.path) for r in fake_tavus.requests] == [("GET", "/v2/conversations/c555")]
    assert fake_daily.client.left and fake_daily.client.released
    err = capsys.readouterr().err
    assert f"The console: http://127.0.0.1:{quickstart_env}/ (open it in a browser)" in err
    assert "Press Ctrl-C to stop: the relay leaves the room." in err


def test_joining_a_url_with_a_key_knows_the_face_by_its_personas_name(quickstart_env, fake_tavus, fake_daily, caplog):
    """A face whose user id says nothing of Tavus, named as the conversation's persona: the relay looks the name up."""
    tavus = TavusClient(API_KEY, base_url=fake_tavus.base_url)
    persona_id = persona_id_of(tavus.create_persona("Ada the Echo"))
    conversation = tavus.create_conversation(persona_id=persona_id)
    tavus.close()
    fake_daily.replica_in_room = False
    fake_daily.others_in_room = [participant("p-9", "u-7f3a", "Ada the Echo"), participant("p-2", "u-viewer", "Bob")]

    code, user = run_quickstart([conversation["conversation_url"]], quickstart_env, fake_daily)

    assert code == 0 and user.response.status_code == 200
    assert [m["properties"]["text"] for m in fake_daily.client.sent] == ["Hello there!"]
    assert "the face's name in the room: Ada the Echo (its persona's)" in caplog.text


def test_a_name_tavus_cannot_give_leaves_the_face_to_its_user_id(quickstart_env, fake_tavus, fake_daily, capsys):
    code, user = run_quickstart(["https://tavus.daily.co/c555"], quickstart_env, fake_daily)

    assert code == 0 and user.response.status_code == 200  # the stand-in's face has a tavus-replica user id
    assert "could not look up the face's name for conversation c555" in capsys.readouterr().err


# --- PALs with a face, private rooms, test mode -------------------------------------------


def test_a_pal_without_a_face_takes_tavus_first_stock_face_and_says_how_to_choose(
    quickstart_env, fake_tavus, fake_daily, capsys
):
    code, user = run_quickstart(["--quickstart", "--pal"], quickstart_env, fake_daily)

    assert code == 0 and user.response.status_code == 200
    [faces] = fake_tavus.calls("GET", "/v2/faces")
    assert faces.query == {"face_type": ["system"]}
    first = STOCK_FACES[0]["face_id"]
    assert fake_tavus.calls("POST", "/v2/pals")[0].body["default_face_id"] == first
    assert fake_tavus.calls("POST", "/v2/conversations")[0].body["face_id"] == first
    assert (
        f"Using Tavus's stock face {first} (Anna (stock)): choose another with --face-id F "
        "(list them with: python tavus_client.py list-faces)"
    ) in capsys.readouterr().err


@pytest.mark.parametrize("how", [["--face-id", "r79"], ["--replica-id", "r79"], "TAVUS_FACE_ID", "TAVUS_REPLICA_ID"])
def test_a_pal_quickstart_sends_its_face(quickstart_env, fake_tavus, fake_daily, monkeypatch, how):
    if isinstance(how, str):
        monkeypatch.setenv(how, "r79")
    flags = how if isinstance(how, list) else []

    code, user = run_quickstart(["--quickstart", "--pal", *flags], quickstart_env, fake_daily)

    assert code == 0 and user.response.status_code == 200
    assert fake_tavus.calls("POST", "/v2/pals")[0].body == {
        "pal_name": "Echo Assistant", "pipeline_mode": "echo", "default_face_id": "r79"
    }
    assert fake_tavus.calls("POST", "/v2/conversations")[0].body == {
        "pal_id": "pal123",
        "face_id": "r79",
        "conversation_name": "Echo relay",
        "properties": {"max_call_duration": 3600},
    }
    assert fake_tavus.contract_violations == []


@pytest.mark.shows_token_once
def test_a_private_quickstart_joins_with_the_token_and_shows_it_only_in_the_banner(
    quickstart_env, fake_tavus, fake_daily, capsys, caplog
):
    code, user = run_quickstart(["--quickstart", "--private"], quickstart_env, fake_daily)

    assert code == 0 and user.response.status_code == 200
    assert fake_tavus.calls("POST", "/v2/conversations")[0].body == {
        "persona_id": "p123",
        "conversation_name": "Echo relay",
        "require_auth": True,
        "properties": {"max_call_duration": 3600},
    }
    token = "mt-c123-SECRET"
    assert fake_daily.client.joined_with["meeting_token"] == token
    assert fake_daily.client.joined_with["url"] == "https://tavus.daily.co/c123"
    out, err = capsys.readouterr()
    assert out.count(token) == 1 and f"https://tavus.daily.co/c123?t={token}" in out
    assert "shown only here" in out
    assert token not in err + caplog.text


def test_a_test_mode_quickstart_says_no_face_will_join(quickstart_env, fake_tavus, fake_daily, monkeypatch, capsys):
    fake_daily.replica_in_room = False
    monkeypatch.setenv("RELAY_REPLICA_TIMEOUT", "0.2")

    code, user = run_quickstart(["--quickstart", "--test-mode"], quickstart_env, fake_daily)

    assert code == 0 and user.response.status_code == 503
    assert fake_tavus.calls("POST", "/v2/conversations")[0].body["test_mode"] is True
    err = capsys.readouterr().err
    assert "Test mode: conversation c123 is not billed and no face will join it" in err
    assert "ended conversation c123 (it had already ended): it no longer bills" in err


def test_the_conversation_ends_itself_after_max_call_seconds_and_the_banner_says_when(
    quickstart_env, fake_tavus, fake_daily, capsys
):
    code, _ = run_quickstart(["--quickstart", "--max-call-duration", "600"], quickstart_env, fake_daily)

    assert code == 0
    assert fake_tavus.calls("POST", "/v2/conversations")[0].body["properties"] == {"max_call_duration": 600}
    assert fake_tavus.contract_violations == []
    assert (
        "Tavus ends it by itself after 10 min (RELAY_MAX_CALL_SECONDS, --max-call-duration)" in capsys.readouterr().out
    )


def test_a_microphone_quickstart_says_where_to_enable_the_microphone(quickstart_env, fake_tavus, fake_daily, capsys):
    code, _ = run_quickstart(["--quickstart", "--microphone"], quickstart_env, fake_daily)

    assert code == 0
    assert (
        "Microphone echo needs the microphone enabled in the persona's Transport layer (Tavus's Echo Mode page); "
        "Tavus documents no API setting for it: enable it for persona p123 in the Tavus platform, "
        "or ask Tavus support, then reuse it with TAVUS_PERSONA_ID=p123."
    ) in capsys.readouterr().out


# --- no silent minute against Tavus: each call said before it is asked, a wait said while it lasts ----------


@pytest.fixture
def quick_notices(monkeypatch):
    """The slow-call notices at once and every 10 ms: what a minute of waiting for Tavus shows, in milliseconds."""
    import tavus_client

    monkeypatch.setattr(tavus_client, "SLOW_NOTICE_S", 0.01)
    monkeypatch.setattr(tavus_client, "SLOW_REPEAT_S", 0.01)


@pytest.fixture
def silent_env(quickstart_env, silent_tavus, monkeypatch):
    """The quickstart's settings with a Tavus that takes every request and never answers."""
    monkeypatch.setenv("TAVUS_API_BASE_URL", silent_tavus.base_url)
    return quickstart_env


def asked(caplog) -> list[str]:
    """What the relay said it was about to do (each such line ends with ' ...')."""
    return [message for message in caplog.messages if message.endswith(" ...") and "waiting" not in message]


@pytest.mark.parametrize(
    "argv, creating", [(["--quickstart"], []), (["--quickstart", "--pal"], ["looking up Tavus's stock faces"])],
    ids=["persona", "pal"],
)
def test_the_quickstart_says_each_tavus_call_before_it_asks(
    quickstart_env, fake_tavus, fake_daily, caplog, argv, creating
):
    code, _ = run_quickstart(argv, quickstart_env, fake_daily)

    assert code == 0
    kind = "PAL" if "--pal" in argv else "persona"
    assert asked(caplog) == [
        *(f"{step} ..." for step in creating),
        f"creating an echo {kind} ...",
        "creating a conversation ...",
        "joining https://tavus.daily.co/c123 ...",
        "ending conversation c123 ...",
    ]


def test_a_quickstart_waiting_for_tavus_says_so_and_again_while_it_waits(silent_env, fake_daily, quick_notices, caplog):
    interrupt_when(lambda: sum(message.startswith("still waiting") for message in caplog.messages) >= 2)

    code = app.main(["--quickstart"], client_factory=fake_daily.factory)

    assert code == 0
    creating, first, *again = caplog.messages
    assert creating == "creating an echo persona ..."
    assert first == "waiting for Tavus to answer POST /personas (up to 30 s, TAVUS_TIMEOUT) ..."
    assert again and all(message.startswith("still waiting for Tavus to answer POST /personas (") for message in again)


def test_joining_a_url_with_a_key_asks_tavus_for_the_faces_name_once(
    silent_env, silent_tavus, fake_daily, monkeypatch, capsys
):
    monkeypatch.setenv("TAVUS_TIMEOUT", "0.2")

    code, user = run_quickstart(["https://tavus.daily.co/c555"], silent_env, fake_daily)

    assert code == 0 and user.response.status_code == 200
    assert len(silent_tavus.accepted) == 1
    assert (
        "note: could not look up the face's name for conversation c555 (Tavus API GET /conversations/c555 failed: "
        "Tavus did not answer within 0.2 s (TAVUS_TIMEOUT)); the face counts by its user id and Tavus's own messages"
    ) in capsys.readouterr().err


def test_joining_a_url_says_it_looks_up_the_faces_name_and_that_it_waits(
    silent_env, fake_daily, quick_notices, caplog, capsys
):
    interrupt_when(lambda: any(message.startswith("still waiting") for message in caplog.messages))

    code = app.main(["https://tavus.daily.co/c555"], client_factory=fake_daily.factory)

    assert code == 0
    assert caplog.messages[:2] == [
        "looking up the conversation's face name ...",
        "waiting for Tavus to answer GET /conversations/c555 (up to 30 s, TAVUS_TIMEOUT) ...",
    ]
    assert capsys.readouterr().err.strip() == (
        "stopped while looking up the conversation's face name; nothing was left running"
    )
    assert fake_daily.clients == []


# --- Ctrl-C while Tavus holds a call: what was stopped, and what may be left ---------------------------------


LIST_PERSONAS = (
    "list them with: python tavus_client.py list-personas, delete one with: python tavus_client.py delete-persona ID"
)
LIST_PALS = "list them with: python tavus_client.py list-pals, delete one with: python tavus_client.py delete-pal ID"


@pytest.mark.parametrize("argv, held, stopped", [
    (["--quickstart", "--pal"], ("GET", "/v2/faces"),
     "stopped while looking up Tavus's stock faces; nothing was created"),
    (["--quickstart"], ("POST", "/v2/personas"),
     f"stopped while creating an echo persona; Tavus may have created it already: {LIST_PERSONAS}"),
    (["--quickstart", "--pal", "--face-id", "r79"], ("POST", "/v2/pals"),
     f"stopped while creating an echo PAL; Tavus may have created it already: {LIST_PALS}"),
], ids=["faces", "persona", "pal"])
def test_ctrl_c_while_tavus_holds_a_call_before_the_conversation_says_what_may_be_left(
    quickstart_env, fake_tavus, fake_daily, capsys, argv, held, stopped
):
    fake_tavus.hold_next(*held)
    interrupt_when(lambda: fake_tavus.calls(*held))

    code = app.main(argv, client_factory=fake_daily.factory)

    assert code == 0
    assert capsys.readouterr().err.strip() == stopped
    assert fake_tavus.calls("POST", "/v2/conversations") == [] and fake_daily.clients == []


@pytest.mark.parametrize("reused", [False, True], ids=["new persona", "TAVUS_PERSONA_ID"])
def test_ctrl_c_while_tavus_creates_the_conversation_says_how_to_find_and_end_it(
    quickstart_env, fake_tavus, fake_daily, monkeypatch, capsys, reused
):
    if reused:
        monkeypatch.setenv("TAVUS_PERSONA_ID", "p1")
    fake_tavus.hold_next("POST", "/v2/conversations")
    interrupt_when(lambda: fake_tavus.calls("POST", "/v2/conversations"))

    code = app.main(["--quickstart"], client_factory=fake_daily.factory)

    assert code == 0
    kept = "" if reused else "; the echo persona p123 made for it is kept: reuse it with TAVUS_PERSONA_ID=p123"
    stopped = (
        "stopped while creating a conversation; Tavus may have started it already, and it is billed until it ends "
        "(Tavus ends it by itself after 1 h): list the active ones with: python tavus_client.py list-conversations "
        f"--status active, end it with: python tavus_client.py end-conversation ID{kept}"
    )
    assert capsys.readouterr().err.strip() == stopped
    assert fake_daily.clients == []
    assert reused or f"`{stopped}`" in " ".join(TAVUS_PAGE.split())  # docs/tavus.md shows the line as it is


def test_the_commands_a_stopped_quickstart_names_are_commands_of_the_tavus_command_line():
    from relay import quickstart
    from relay.tavus_cli import build_parser

    said = f"{quickstart.MAY_BE_CREATED} {quickstart.MAY_BE_STARTED} {quickstart.MAY_STILL_BE_BILLED}"
    named = set(re.findall(r"python tavus_client\.py ([a-z{}-]+)", said))
    commands = {name.format(kind=kind, kinds=f"{kind}s") for name in named for kind in ("persona", "pal")}

    assert len(commands) == 6
    for command in commands:  # an unknown one raises the command line's usage error
        assert build_parser().parse_known_args([command, "ID"])[0].command == command


def test_ctrl_c_while_the_conversation_is_ended_says_it_may_still_be_billed_and_how_to_end_it(
    quickstart_env, fake_tavus, fake_daily, capsys
):
    fake_tavus.hold_next("POST", "/v2/conversations/c123/end")
    interrupt_when(lambda: fake_tavus.calls("POST", "/v2/conversations/c123/end"))

    code, user = run_quickstart(["--quickstart"], quickstart_env, fake_daily)  # the user stops the relay: it ends c123

    assert code == 0 and user.response.status_code == 200
    err = capsys.readouterr().err
    assert err.strip().endswith(
        "stopped while ending conversation c123; it may still be running, and billed, until Tavus ends it by itself "
        "after 1 h: end it with: python tavus_client.py end-conversation c123"
    )
    assert "ended conversation c123" not in err
