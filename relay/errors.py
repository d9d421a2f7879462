"""Every error a request can end in, and the one table from error to HTTP status.

A module raises the error that says what went wrong; it never picks a status.
`status_of` looks the status up here (relay/answers.py writes the one JSON
shape every route answers with), so a status changes in one place. Errors
that end the run rather than a request (`JoinError`, config.ConfigError)
carry no status.
"""

from __future__ import annotations

import copy
from typing import Self


class RelayError(Exception):
    """A request could not be done as asked; its text is one line that names what to fix."""

    def with_detail(self, detail: str) -> Self:
        """The same error (same class, same status) with `detail` added to its text."""
        extended = copy.copy(self)
        extended.args = (f"{self} {detail}",)
        return extended


# --- the caller's mistakes (4xx) ---------------------------------------------------


class MessageError(RelayError):
    """The request is wrong: the text names the field and the fix."""


class Unauthorized(RelayError):
    """The bearer token is missing or wrong."""


class Forbidden(RelayError):
    """The request came from somewhere the relay does not trust (another web page, an unknown Host)."""


class NotFound(RelayError):
    """No such endpoint, or no such thing behind it."""


class MethodNotAllowed(RelayError):
    """The endpoint exists, but not for this method."""


class Interrupted(RelayError):
    """An interrupt dropped the request, or cut it short."""


class ModeError(RelayError):
    """The endpoint does not work in the mode the relay runs in."""


class ScriptNotReady(RelayError):
    """A script command that does not fit what the runner is doing (a line is playing, none is loaded)."""


class UtteranceClosed(RelayError):
    """A chunk for an utterance the relay already closed because it idled (RELAY_UTTERANCE_IDLE_CLOSE)."""


class TooLarge(RelayError):
    """The body or the audio is over one of the relay's limits."""


class AudioTooLong(TooLarge):
    """The audio lasts longer than RELAY_MAX_AUDIO_SECONDS."""


class UnsupportedMediaType(RelayError):
    """The Content-Type is not one this endpoint reads."""


class UnsupportedAudio(UnsupportedMediaType):
    """The audio could not be decoded."""


class QueueFull(RelayError):
    """A bounded queue is full: try again once it drained."""


# --- the room's and Daily's answers (5xx) ---------------------------------------------


class SendError(RelayError):
    """Daily refused a send."""


class Unavailable(RelayError):
    """The relay cannot send now: not joined, the face is absent, the call ended, a bound was reached."""


class NotJoined(Unavailable):
    pass


class ReplicaAbsent(Unavailable):
    pass


class ConversationEnded(Unavailable):
    pass


class TooManyListeners(Unavailable):
    pass


class ConnectionDown(Unavailable):
    """Daily's signalling connection (which carries app messages) stayed down past RELAY_CONNECTION_TIMEOUT."""


class SendTimeout(RelayError):
    """Daily did not confirm a send in time."""


STATUS_OF: dict[type[RelayError], int] = {
    MessageError: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    Interrupted: 409,
    ModeError: 409,
    ScriptNotReady: 409,
    UtteranceClosed: 409,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    QueueFull: 429,
    SendError: 502,
    Unavailable: 503,
    SendTimeout: 504,
}
INTERNAL_ERROR = "internal error in the relay; the details are in its log"


def status_of(error: RelayError) -> int:
    """The HTTP status of `error`: its own class's entry, else its nearest ancestor's; 500 for a bare RelayError."""
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


class JoinError(Exception):
    """The room could not be joined; the run prints it as one line and exits 1."""
