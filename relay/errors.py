"""What a request can end in; each error carries the HTTP status the caller gets."""

class RelayError(Exception):
    """A request could not be delivered; `status` is the HTTP status the caller gets."""

    status = 500


class NotJoined(RelayError):
    status = 503


class ReplicaAbsent(RelayError):
    status = 503


class ConversationEnded(RelayError):
    status = 503


class SendError(RelayError):
    status = 502


class SendTimeout(RelayError):
    status = 504


class Interrupted(RelayError):
    status = 409


class ModeError(RelayError):
    status = 409


class ScriptBusy(RelayError):
    """A script command that does not fit what the runner is doing (a line is playing, none is loaded)."""

    status = 409


class TooManyListeners(RelayError):
    status = 503


class JoinError(Exception):
    """The room could not be joined; main() prints it and exits non-zero."""


