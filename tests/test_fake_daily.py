"""The stand-in for daily-python, held to the installed `daily` module.

Most tests run the relay against tests/fake_daily.py, so where it differs from
Daily they prove the wrong thing. Here every signature the relay uses is
compared with the real module's, and every behaviour the real one shows
offline is run on both and must come out the same.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

import pytest

from relay.room import _DailyCallbacks
from tests.fake_daily import FakeBehaviour, FakeCallClient, FakeMicrophoneDevice

UNPARSABLE_URL = "https://tavus.daily.co:99999/c123"  # Daily fails to parse it at once: no network needed
CALL_CLIENT_METHODS = (
    "join", "leave", "release", "send_app_message", "participants", "update_subscription_profiles",
)


def test_every_call_client_method_the_relay_uses_has_the_real_signature(real_daily):
    for name in CALL_CLIENT_METHODS:
        assert str(inspect.signature(getattr(FakeCallClient, name))) == str(
            inspect.signature(getattr(real_daily.CallClient, name))
        ), name


def test_the_microphone_device_has_the_real_signature(real_daily):
    assert str(inspect.signature(FakeMicrophoneDevice.write_frames)) == str(
        inspect.signature(real_daily.VirtualMicrophoneDevice.write_frames)
    )


def test_every_event_handler_the_relay_implements_has_the_real_parameters(real_daily):
    handlers = [name for name in vars(_DailyCallbacks) if name.startswith("on_")]
    assert len(handlers) == 7
    for name in handlers:
        real = list(inspect.signature(getattr(real_daily.EventHandler, name)).parameters)
        relay = list(inspect.signature(getattr(_DailyCallbacks, name)).parameters)
        assert relay == real, name


# --- the same scenario on the real client and on the stand-in ------------------------


class Recorder:
    """Records what a client calls back, in order; `wait` until a number of completions arrived."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self._changed = threading.Condition()

    def note(self, *entry: Any) -> None:
        with self._changed:
            self.seen.append(entry)
            self._changed.notify_all()

    def completion(self, name: str) -> Callable[..., None]:
        return lambda *args: self.note(name, *[None if arg is None else str(arg) for arg in args])

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[Any, ...]]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.seen) >= count, timeout), self.seen
            return list(self.seen)


def recording_handler(real_daily: Any, recorder: Recorder) -> Any:
    class Handler(real_daily.EventHandler):
        def on_error(self, message: str) -> None:
            recorder.note("on_error", message)

        def on_call_state_updated(self, state: str) -> None:
            recorder.note("state", state)

    return Handler()


@pytest.fixture(params=["real", "fake"])
def make_client(request, real_daily) -> Any:
    """A client of each kind, released after the test (if the test did not)."""
    made: list[Any] = []

    def make(recorder: Recorder, behaviour: FakeBehaviour | None = None) -> Any:
        handler = recording_handler(real_daily, recorder)
        if request.param == "real":
            client = real_daily.CallClient(event_handler=handler)
        else:
            client = (behaviour or FakeBehaviour()).factory(handler)
        made.append(client)
        return client

    yield make
    for client in made:
        try:
            client.release()
        except RuntimeError:
            pass


def test_a_send_before_the_join_fails_channel_not_open_then_on_error(make_client):
    recorder = Recorder()
    client = make_client(recorder)

    client.send_app_message({"hello": 1}, completion=recorder.completion("sent"))

    assert recorder.wait_for(2) == [
        ("sent", "AppMessage(Signalling(ChannelNotOpen))"),
        ("on_error", "Error handling sendAppMessage: AppMessage(Signalling(ChannelNotOpen))"),
    ]


def test_an_unparsable_url_fails_the_join_at_once_then_on_error_with_no_state_events(make_client):
    recorder = Recorder()
    behaviour = FakeBehaviour()
    behaviour.join_failure = "bad_url"
    client = make_client(recorder, behaviour)

    client.join(UNPARSABLE_URL, completion=recorder.completion("joined"))

    error = f'Failed to parse url: InvalidUrl("{UNPARSABLE_URL}", InvalidPort)'
    assert recorder.wait_for(2) == [("joined", None, error), ("on_error", f"Error handling join: {error}")]


def test_leave_goes_through_leaving_to_left_and_completes(make_client):
    recorder = Recorder()
    client = make_client(recorder)

    client.leave(completion=recorder.completion("left"))

    seen = recorder.wait_for(3)
    assert [entry for entry in seen if entry[0] == "state"] == [("state", "leaving"), ("state", "left")]
    assert ("left", None) in seen  # the completion may come before or after "left"


def test_release_twice_raises_and_so_does_any_call_after_it(make_client):
    client = make_client(Recorder())
    client.release()

    for call in (client.release, client.participants, lambda: client.send_app_message({"a": 1})):
        with pytest.raises(RuntimeError, match="this object has already been released"):
            call()


@pytest.mark.parametrize(
    "message, error",
    [(None, ValueError), ({1: 2}, TypeError), ({"a": "\ud800"}, UnicodeEncodeError), (b"x", Exception)],
)
def test_a_message_daily_cannot_encode_raises_at_once(make_client, message, error):
    recorder = Recorder()
    client = make_client(recorder)

    with pytest.raises(error):
        client.send_app_message(message, completion=recorder.completion("sent"))


@pytest.mark.parametrize("state, ok", [("unsubscribed", True), ("bogus", False)])
def test_subscription_profiles_are_checked_before_any_join(make_client, state, ok):
    recorder = Recorder()
    client = make_client(recorder)

    client.update_subscription_profiles({"base": {"camera": state}}, completion=recorder.completion("updated"))

    seen = recorder.wait_for(1 if ok else 2)
    if ok:
        assert seen == [("updated", None)]
    else:
        assert "Invalid subscription state: bogus" in seen[0][1]
        assert seen[1][1].startswith("Error handling updateSubscriptionProfiles: ")


def test_write_frames_outside_a_call_takes_nothing(real_daily):
    from relay.room import daily_microphone_device

    real = daily_microphone_device(24000)
    fake = FakeMicrophoneDevice(FakeBehaviour(), 24000, blocking=True)

    assert real.write_frames(bytes(480)) == fake.write_frames(bytes(480)) == 0


# --- what the stand-in does that cannot be seen offline, as daily-python 0.36 was observed to do it ---


def test_an_unreachable_room_reports_in_dailys_order():
    recorder = Recorder()
    behaviour = FakeBehaviour()
    behaviour.join_failure = "unreachable"
    client = behaviour.factory(type("H", (), {"on_error": lambda self, m: recorder.note("on_error", m[:40]),
                                              "on_call_state_updated": lambda self, s: recorder.note("state", s)})())

    client.join("https://tavus.daily.co/c123", completion=recorder.completion("joined"))

    seen = recorder.wait_for(5)
    assert [entry[0] for entry in seen] == ["on_error", "state", "state", "joined", "on_error"]
    assert seen[0][1] == "Failed to fetch room information: GET fa"
    assert [entry[1] for entry in seen[1:3]] == ["leaving", "left"]
    assert "RoomInfoFetchFailed" in seen[3][2] and seen[4][1].startswith("Error handling join: ")
    client.release()


def test_the_network_connection_handler_is_one_the_relay_implements_with_the_real_signature(real_daily):
    name = "on_network_connection_status_updated"
    real = list(inspect.signature(getattr(real_daily.EventHandler, name)).parameters)
    assert list(inspect.signature(getattr(_DailyCallbacks, name)).parameters) == real == ["self", "status"]


def test_participants_before_a_join_are_only_the_local_one_in_the_real_shape(make_client):
    client = make_client(Recorder(), FakeBehaviour())

    people = client.participants()

    assert list(people) == ["local"]
    assert isinstance(people["local"]["id"], str) and people["local"]["info"]["isLocal"] is True
