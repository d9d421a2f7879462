"""Scripted demos: the format, and the runner against the Daily stand-in, whose face answers as Tavus's does."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

import app
from config import Settings
from relay.events import MAX_EVENT_TEXT_CHARS
from relay.script import MAX_SCRIPT_LINE_CHARS, MAX_SCRIPT_LINES, ScriptError, parse_script
from tests.conftest import CONVERSATION_URL, REPLICA, free_port, sent_messages, wait_until
from tests.fake_daily import VIEWER
from tests.test_app_participants import handled, stopped
from tests.test_quickstart import interrupt_when


def write_wav(path: Path, seconds: float = 0.1) -> Path:
    soundfile.write(path, np.zeros(int(16000 * seconds), dtype="float32"), 16000, subtype="PCM_16")
    return path


# --- the format ---------------------------------------------------------------------------------


def test_each_line_is_a_step_comments_and_blanks_are_skipped(tmp_path):
    write_wav(tmp_path / "hi.wav")

    steps = parse_script(
        "# intro\n\nHello there!\n@pause 1.5\n@audio hi.wav\n\\@handle me\n\\# not a comment", tmp_path
    )

    assert [step.as_dict() for step in steps] == [
        {"line": 3, "kind": "say", "text": "Hello there!"},
        {"line": 4, "kind": "pause", "text": "pause 1.5 s"},
        {"line": 5, "kind": "audio", "text": "audio hi.wav"},
        {"line": 6, "kind": "say", "text": "@handle me"},
        {"line": 7, "kind": "say", "text": "# not a comment"},
    ]
    assert steps[2].path == (tmp_path / "hi.wav").resolve()


@pytest.mark.parametrize(
    "script, error",
    [
        ("Hi.\n@paws 2", "demo.txt line 2: unknown directive @paws: use @audio FILE, @pause SECONDS or @emotion NAME"),
        ("Hi.\n\n@audio nowhere.wav", "demo.txt line 3: no audio file nowhere.wav"),
        ("@audio", "demo.txt line 1: @audio needs a file"),
        ("@audio notes.txt", "demo.txt line 1: notes.txt is not audio the relay can decode"),
        ("@pause soon", "demo.txt line 1: @pause needs seconds, such as @pause 1.5, got 'soon'"),
        ("@pause 9999", "demo.txt line 1: @pause takes 0 to 600 seconds, got 9999"),
        ("# only comments\n\n", "demo.txt has nothing to play"),
        ("@emotion excited\n", "demo.txt has nothing to play"),
        ("Hi.\n@emotion", "demo.txt line 2: @emotion needs an emotion, such as @emotion excited (or @emotion none)"),
        ("Hi.\n\n@emotion exited\nWe did it!",
         ('demo.txt line 3: @emotion "exited" is not one of Tavus\'s emotions: did you mean "excited"? (Tavus lists '
         "neutral, angry, excited, elated, content, sad, dejected, scared, contempt, disgusted, surprised; "
         "@emotion none ends it)")),
    ],
)
def test_a_bad_script_names_its_line(tmp_path, script, error):
    (tmp_path / "notes.txt").write_text("not audio")

    with pytest.raises(ScriptError) as raised:
        parse_script(script, tmp_path, name="demo.txt")

    assert str(raised.value).startswith(error)


def test_a_script_of_too_many_lines_is_refused_before_a_line_is_read(tmp_path):
    script = "a\r\n" * MAX_SCRIPT_LINES + "b\u2028c"

    with pytest.raises(ScriptError) as raised:
        parse_script(script, tmp_path, name="demo.txt")

    assert str(raised.value) == (
        f"demo.txt has {MAX_SCRIPT_LINES + 2} lines, more than a script may have ({MAX_SCRIPT_LINES}): "
        "split it into several scripts"
    )


def test_a_script_of_as_many_lines_as_it_may_have_loads(tmp_path):
    assert len(parse_script("a\r\n" * (MAX_SCRIPT_LINES - 1) + "b", tmp_path)) == MAX_SCRIPT_LINES


def test_a_line_too_long_for_a_script_names_its_line_and_the_bound(tmp_path):
    script = "Hello.\n" + "x" * (MAX_SCRIPT_LINE_CHARS + 1)

    with pytest.raises(ScriptError) as raised:
        parse_script(script, tmp_path, name="demo.txt")

    assert str(raised.value) == (
        f"demo.txt line 2 has {MAX_SCRIPT_LINE_CHARS + 1} characters, more than a script line may have "
        f"({MAX_SCRIPT_LINE_CHARS}): split it over several lines, or send it as one request"
    )


def test_a_long_line_is_shown_as_an_excerpt_and_said_whole(tmp_path):
    line = "y" * MAX_SCRIPT_LINE_CHARS

    (step,) = parse_script(line, tmp_path)

    assert step.as_dict() == {"line": 1, "kind": "say", "text": "y" * (MAX_EVENT_TEXT_CHARS - 1) + "…"}
    assert step.spoken_text() == line


def test_an_emotion_holds_for_the_lines_after_it_until_the_next_and_none_ends_it(tmp_path):
    write_wav(tmp_path / "hi.wav")

    steps = parse_script(
        "Calm first.\n@emotion excited\nWe did it!\n@audio hi.wav\nAnd more.\n"
        "@emotion sad\nAlas.\n@emotion none\nDone.",
        tmp_path,
    )

    assert [(step.line, step.kind, step.emotion) for step in steps] == [
        (1, "say", None), (3, "say", "excited"), (4, "audio", None), (5, "say", "excited"), (7, "say", "sad"),
        (9, "say", None),
    ]
    assert [step.spoken_text() for step in steps if step.kind == "say"] == [
        "Calm first.", '<emotion value="excited"/>We did it!', '<emotion value="excited"/>And more.',
        '<emotion value="sad"/>Alas.', "Done.",
    ]
    assert steps[1].as_dict() == {"line": 3, "kind": "say", "text": "We did it!", "emotion": "excited"}


def test_markup_inside_a_line_passes_through_as_written():
    (step,) = parse_script('[laughter] That was <break time="1s"/> something: <spell>A1B2</spell>.', Path.cwd())

    assert step.spoken_text() == '[laughter] That was <break time="1s"/> something: <spell>A1B2</spell>.'


# --- a script from a request names audio only in RELAY_AUDIO_DIR -------------------------------------


@pytest.fixture
def audio_dir(tmp_path):
    folder = tmp_path / "audio"
    (folder / "sub").mkdir(parents=True)
    write_wav(folder / "hi.wav")
    write_wav(folder / "sub" / "deep.wav")
    write_wav(tmp_path / "outside.wav")
    (folder / "leak.wav").symlink_to(tmp_path / "outside.wav")
    (folder / "dir.wav").mkdir()
    return folder


def test_a_request_script_plays_files_inside_the_audio_folder(audio_dir):
    steps = parse_script("@audio hi.wav\n@audio sub/deep.wav", audio_dir, confined=True)

    assert [(step.file_name, step.path) for step in steps] == [
        ("hi.wav", (audio_dir / "hi.wav").resolve()), ("sub/deep.wav", (audio_dir / "sub" / "deep.wav").resolve())
    ]


@pytest.mark.parametrize(
    "name", ["{outside}", "../outside.wav", "sub/../../outside.wav", "leak.wav", "dir.wav", "nowhere.wav",
             "/etc/shadow", "/proc/self/environ", "/root/.ssh/id_rsa", "../../../../etc/passwd"]
)
def test_a_request_script_names_nothing_outside_the_audio_folder_and_says_only_the_name(audio_dir, name):
    name = name.format(outside=audio_dir.parent / "outside.wav")

    with pytest.raises(ScriptError) as raised:
        parse_script(f"@audio {name}", audio_dir, name="console", confined=True)

    assert str(raised.value) == (
        f"console line 1: no audio file {name[:80]} in the audio folder: "
        "name a file in RELAY_AUDIO_DIR by its name or a path inside it"
    )


def test_the_shipped_demo_loads_in_the_console_with_the_defaults(client):
    demo = (Path(__file__).resolve().parent.parent / "examples" / "demo.txt").read_text()

    response = client.post("/script", json={"script": demo, "name": "demo.txt"})

    assert response.status_code == 200, response.get_json()
    assert "audio hello.wav" in [step["text"] for step in response.get_json()["steps"]]


def test_a_name_with_control_characters_is_shown_escaped():
    with pytest.raises(ScriptError, match=r"no audio file a\\x1b\[2Jb.wav in the audio folder"):
        parse_script("@audio a\x1b[2Jb.wav", Path.cwd(), confined=True)


@pytest.mark.parametrize("confined", [True, False])
def test_a_nul_in_an_audio_name_is_the_scripts_mistake_not_a_500(audio_dir, confined):
    """Found by an attacker's pass: Path.resolve() raises ValueError on an embedded NUL."""
    with pytest.raises(ScriptError) as raised:
        parse_script("@audio hello.wav\x00x", audio_dir, name="console", confined=confined)

    assert str(raised.value).startswith("console line 1: no audio file ")


def test_a_request_script_cannot_name_a_file_elsewhere(client, tmp_path):
    write_wav(tmp_path / "x.wav")

    response = client.post("/script", json={"script": f"@audio {tmp_path / 'x.wav'}"})

    assert response.status_code == 400 and str(tmp_path) in response.get_json()["error"]  # only as written
    assert "looked for" not in response.get_json()["error"]


def test_relay_audio_dir_chooses_the_folder(room, make_app, tmp_path):
    write_wav(tmp_path / "mine.wav")
    client = make_app(Settings(audio_dir=str(tmp_path)), room).test_client()

    assert client.post("/script", json={"script": "@audio mine.wav"}).status_code == 200
    assert client.post("/script", json={"script": "@audio hello.wav"}).status_code == 400


# --- the runner, on the Daily stand-in -----------------------------------------------------------------------


class Face:
    """The room's face: after each echo utterance it reports stopped_speaking for its inference_id (unless lost)."""

    def __init__(self, fake: Any, *, unified: bool = False, lose: set[int] | None = None) -> None:
        self.fake, self.unified, self.lose = fake, unified, lose or set()
        self.heard: list[str] = []
        original = fake.send_app_message

        def send(message: Any, participant_id: Any = None, completion: Any = None) -> None:
            original(message, participant_id, completion)
            properties = message.get("properties", {})
            if message.get("event_type") == "conversation.echo" and properties.get("done"):
                self.heard.append(properties["inference_id"])
                if len(self.heard) - 1 not in self.lose:
                    threading.Timer(0.05, self.stopped, args=(properties["inference_id"],)).start()

        fake.send_app_message = send

    def stopped(self, inference_id: str) -> None:
        if self.unified:
            message = {"event_type": "conversation.stopped_speaking", "inference_id": inference_id,
                       "properties": {"role": "replica"}}
        else:
            message = {"event_type": "conversation.replica.stopped_speaking", "inference_id": inference_id,
                       "properties": {"interrupted": False}}
        self.fake.room_sends(message, REPLICA["id"])


@pytest.fixture
def scripted(room, fake_call_client, make_app):
    relay = make_app(
        Settings(replica_timeout_s=2.0, send_timeout_s=1.0, script_line_timeout_s=5.0), room
    ).extensions["relay"]
    return relay


def script_events(relay: Any) -> list[tuple[str, Any]]:
    return [(e.fields["state"], e.fields.get("line")) for e in relay.events.after(0)[0] if e.type == "relay.script"]


@pytest.mark.parametrize("unified", [False, True])
def test_lines_go_out_in_order_each_after_the_face_stopped_the_last(scripted, fake_call_client, unified):
    face = Face(fake_call_client, unified=unified)
    scripted.script.load(parse_script("One.\nTwo.\nThree.", Path.cwd()), "demo")

    scripted.script.play()
    assert scripted.script.wait_until_over(10)

    messages = sent_messages(fake_call_client)
    assert [m["properties"]["text"] for m in messages] == ["One.", "Two.", "Three."]
    assert len(face.heard) == 3
    assert script_events(scripted) == [
        ("loaded", None), ("playing", 1), ("spoken", 1), ("playing", 2), ("spoken", 2),
        ("playing", 3), ("spoken", 3), ("finished", None),
    ]


def test_a_scripts_emotion_reaches_the_face_as_tavuss_tag_before_the_line(scripted, fake_call_client):
    Face(fake_call_client)
    scripted.script.load(parse_script("@emotion excited\nWe did it!\n@emotion none\nThanks.", Path.cwd()), "demo")

    scripted.script.play()
    assert scripted.script.wait_until_over(10)

    assert [m["properties"]["text"] for m in sent_messages(fake_call_client)] == [
        '<emotion value="excited"/>We did it!', "Thanks."
    ]
    playing = [
        e.fields
        for e in scripted.events.after(0)[0]
        if e.type == "relay.script" and e.fields["state"] == "playing"
    ]
    assert [(e["text"], e.get("emotion")) for e in playing] == [("We did it!", "excited"), ("Thanks.", None)]
    spoken = [
        e.fields
        for e in scripted.events.after(0)[0]
        if e.type == "relay.script" and e.fields["state"] == "spoken"
    ]
    assert [e["inference_id"] for e in spoken] == [e["inference_id"] for e in playing]  # the console matches them


def test_a_long_line_with_markup_reaches_the_face_with_every_tag_whole(scripted, fake_call_client):
    Face(fake_call_client)
    line = " ".join(f'<emotion value="sad"/>word{n} [sighs] word' for n in range(300))
    scripted.script.load(parse_script(line, Path.cwd()), "demo")

    scripted.script.play()
    assert scripted.script.wait_until_over(10)

    pieces = [m["properties"]["text"] for m in sent_messages(fake_call_client)]
    assert len(pieces) > 1 and "".join(pieces) == line
    assert (
        sum(p.count('<emotion value="sad"/>') for p in pieces) == 300 and sum(p.count("[sighs]") for p in pieces) == 300
    )


def test_a_long_lines_events_and_state_carry_an_excerpt_and_the_face_gets_it_whole(scripted, fake_call_client):
    Face(fake_call_client)
    line = "The face says it all. " * (MAX_SCRIPT_LINE_CHARS // 22)
    scripted.script.load(parse_script(line, Path.cwd()), "demo")

    scripted.script.play()
    assert scripted.script.wait_until_over(10)

    assert "".join(m["properties"]["text"] for m in sent_messages(fake_call_client)) == line.strip()
    shown = line[: MAX_EVENT_TEXT_CHARS - 1] + "…"
    texts = [e.fields["text"] for e in scripted.events.after(0)[0] if e.type == "relay.script" and "text" in e.fields]
    assert texts == [shown, shown] and scripted.script.state()["steps"][0]["text"] == shown  # playing, spoken


def test_a_line_is_not_sent_before_the_face_stopped_the_last(scripted, fake_call_client):
    Face(fake_call_client, lose={0})  # the face never says it stopped the first line
    scripted.script.load(parse_script("One.\nTwo.", Path.cwd()), "demo")

    scripted.script.play()
    time.sleep(0.3)  # a wait that could only let a wrong second line out, never make a right one fail

    assert [m["properties"]["text"] for m in sent_messages(fake_call_client)] == ["One."]
    scripted.script.stop()


def test_a_lost_event_times_out_and_the_demo_goes_on(room, fake_call_client, make_app):
    relay = make_app(Settings(script_line_timeout_s=0.3), room).extensions["relay"]
    Face(fake_call_client, lose={0})
    relay.script.load(parse_script("One.\nTwo.", Path.cwd()), "demo")

    relay.script.play()
    assert relay.script.wait_until_over(10)

    assert [m["properties"]["text"] for m in sent_messages(fake_call_client)] == ["One.", "Two."]
    assert ("timed_out", 1) in script_events(relay) and script_events(relay)[-1] == ("finished", None)


def test_stop_ends_the_run_at_once_and_next_plays_one_line(scripted, fake_call_client):
    Face(fake_call_client, lose={0})
    scripted.script.load(parse_script("One.\nTwo.", Path.cwd()), "demo")

    scripted.script.next()
    wait_until(lambda: sent_messages(fake_call_client), "the first line to go out")
    scripted.script.stop()

    assert script_events(scripted)[-1] == ("stopped", None)
    assert scripted.script.state()["position"] == 0 and not scripted.script.state()["playing"]
    assert [m["properties"]["text"] for m in sent_messages(fake_call_client)] == ["One."]


def test_the_first_line_waits_for_the_face_to_join(fake_daily, make_app):
    from relay.room import Room

    fake_daily.replica_in_room = False
    room = Room(CONVERSATION_URL, client_factory=fake_daily.factory)
    room.join(timeout=2)
    relay = make_app(Settings(replica_timeout_s=0.2), room).extensions["relay"]
    Face(fake_daily.client)
    relay.script.load(parse_script("Hello.", Path.cwd()), "demo")

    relay.script.play()
    time.sleep(0.5)  # longer than RELAY_REPLICA_TIMEOUT: a request would have failed with 503 by now
    assert fake_daily.client.sent == []
    fake_daily.client.replica_joins()

    assert relay.script.wait_until_over(10)
    assert [m["properties"]["text"] for m in fake_daily.client.sent] == ["Hello."]
    room.leave()


# --- over HTTP ------------------------------------------------------------------------------------------------


def test_the_console_endpoints_load_step_and_refuse_what_does_not_fit(client, fake_call_client):
    Face(fake_call_client)
    assert client.post("/script/next").status_code == 409

    loaded = client.post("/script", json={"script": "One.\nTwo.", "name": "demo"})
    assert loaded.status_code == 200 and [s["text"] for s in loaded.get_json()["steps"]] == ["One.", "Two."]
    assert client.post("/script/next").status_code == 202
    assert client.post("/script", json={"script": "x", "nmae": "typo"}).status_code == 400
    bad = client.post("/script", json={"script": "Hi.\n@wait 2"})
    assert bad.status_code == 400 and bad.get_json()["error"].startswith("the script line 2: unknown directive @wait")
    unknown = client.post("/script", json={"script": "@emotion happy\nHi.", "name": "console"})
    assert unknown.status_code == 400
    assert unknown.get_json()["error"].startswith('console line 1: @emotion "happy" is not one of Tavus\'s emotions')
    emotional = client.post("/script", json={"script": "@emotion content\nHi."}).get_json()
    assert emotional["steps"] == [{"line": 2, "kind": "say", "text": "Hi.", "emotion": "content"}]


def test_a_script_name_that_is_not_a_string_is_400(client):
    response = client.post("/script", json={"script": "Hi.", "name": {}})

    assert response.status_code == 400 and response.get_json() == {"error": "name must be a string, got {}"}


def test_an_interrupt_stops_a_script_run(client, fake_call_client):
    Face(fake_call_client, lose={0})
    client.post("/script", json={"script": "One.\nTwo."})
    client.post("/script/play")
    wait_until(lambda: sent_messages(fake_call_client), "the first line to go out")

    client.post("/interrupt")

    wait_until(lambda: not client.get("/script").get_json()["playing"], "the run to stop")
    state = client.get("/script").get_json()
    assert not state["playing"] and state["position"] == 0
    assert [m.get("properties", {}).get("text") for m in sent_messages(fake_call_client)] == ["One.", None]


def test_a_viewers_stop_does_not_start_the_next_line(client, fake_call_client):
    fake_call_client.participant_joins(VIEWER)
    client.post("/script", json={"script": "One.\nTwo."})
    client.post("/script/play")
    playing = wait_until(
        lambda: [e for e in client.get("/events?after=0").get_json() if e.get("state") == "playing"], "line 1 playing"
    )
    first = playing[0]["inference_id"]
    wait_until(lambda: client.get(f"/utterances/{first}").get_json()["state"] == "sent", "line 1 sent")

    fake_call_client.room_sends(stopped(first, 0.1), VIEWER["id"])  # every participant sees the line's inference_id
    handled(client, fake_call_client)

    assert client.get(f"/utterances/{first}").get_json()["state"] == "sent"
    assert [m["properties"]["text"] for m in sent_messages(fake_call_client)] == ["One."]
    fake_call_client.room_sends(stopped(first, 1.2))  # the face
    wait_until(lambda: len(sent_messages(fake_call_client)) == 2, "line 2 to go out once the face stopped line 1")
    assert sent_messages(fake_call_client)[1]["properties"]["text"] == "Two."
    client.post("/script/stop")


# --- from the command line -------------------------------------------------------------------------------------


def test_a_bad_script_file_exits_2_with_its_line_before_anything_is_joined(tmp_path, fake_daily, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo.txt").write_text("Hello.\n@audio gone.wav\n")

    code = app.main([CONVERSATION_URL, "--script", "demo.txt"], client_factory=fake_daily.factory)

    assert code == 2
    assert capsys.readouterr().err.startswith("error: demo.txt line 2: no audio file gone.wav")
    assert fake_daily.clients == []


def test_exit_after_script_plays_it_all_then_leaves(tmp_path, fake_daily, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RELAY_PORT", str(free_port()))
    write_wav(tmp_path / "hi.wav")
    (tmp_path / "demo.txt").write_text("Hello.\n@audio hi.wav\nBye.\n")
    face: list[Face] = []
    original = fake_daily.factory

    def factory(event_handler: Any = None) -> Any:
        client = original(event_handler)
        face.append(Face(client))
        return client

    code = app.main([CONVERSATION_URL, "--script", "demo.txt", "--exit-after-script"], client_factory=factory)

    assert code == 0
    kinds = [m["properties"].get("text", "audio") for m in fake_daily.client.sent if m["properties"].get("done")]
    assert kinds == ["Hello.", "audio", "Bye."]
    assert fake_daily.client.left and fake_daily.client.released


def test_ctrl_c_stops_a_script_run(tmp_path, fake_daily, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RELAY_PORT", str(free_port()))
    (tmp_path / "demo.txt").write_text("One.\nTwo.\n")  # the face never says it stopped: the run waits
    interrupt_when(lambda: fake_daily.clients and fake_daily.client.sent)

    code = app.main(
        [CONVERSATION_URL, "--script", "demo.txt", "--exit-after-script"], client_factory=fake_daily.factory
    )

    assert code == 0  # Ctrl-C is the user stopping the relay, wherever it lands
    assert [m["properties"]["text"] for m in fake_daily.client.sent] == ["One."]
    assert fake_daily.client.left and fake_daily.client.released


def test_exit_after_script_exits_1_when_a_line_fails(tmp_path, fake_daily, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RELAY_PORT", str(free_port()))
    (tmp_path / "demo.txt").write_text("One.\nTwo.\n")
    original = fake_daily.factory

    def factory(event_handler: Any = None) -> Any:
        client = original(event_handler)
        send = client.send_app_message

        def send_then_end(message: Any, participant_id: Any = None, completion: Any = None) -> None:
            send(message, participant_id, completion)
            client.call_ends("meeting ended")  # the call ends after the first line: the second cannot be spoken

        client.send_app_message = send_then_end
        return client

    code = app.main([CONVERSATION_URL, "--script", "demo.txt", "--exit-after-script"], client_factory=factory)

    assert code == 1
    assert "script demo.txt: failed line 2 (2/2): Two.: the conversation has ended" in caplog.text
    assert [m["properties"]["text"] for m in fake_daily.client.sent] == ["One."]
