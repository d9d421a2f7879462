"""Every error a request can end in has one status, looked up in one table."""

from __future__ import annotations

import pytest

from relay import errors
from relay.errors import STATUS_OF, RelayError, status_of


def every_error_class() -> list[type[RelayError]]:
    found, waiting = [], [RelayError]
    while waiting:
        cls = waiting.pop()
        found.append(cls)
        waiting.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__ == errors.__name__]


@pytest.mark.parametrize("cls", [cls for cls in every_error_class() if cls is not RelayError], ids=lambda c: c.__name__)
def test_every_error_has_a_4xx_or_5xx_status_from_the_table(cls):
    assert 400 <= status_of(cls("x")) <= 504


def test_an_error_without_its_own_entry_takes_its_nearest_ancestors():
    assert errors.AudioTooLong not in STATUS_OF and status_of(errors.AudioTooLong("x")) == STATUS_OF[errors.TooLarge]
    assert status_of(errors.ReplicaAbsent("x")) == 503 and status_of(errors.UnsupportedAudio("x")) == 415


def test_a_bare_relay_error_is_a_500():
    assert status_of(RelayError("x")) == 500


def test_with_detail_keeps_the_class_and_so_the_status():
    extended = errors.ReplicaAbsent("the face left").with_detail("(after 3 message(s) were sent)")

    assert type(extended) is errors.ReplicaAbsent and status_of(extended) == 503
    assert str(extended) == "the face left (after 3 message(s) were sent)"
