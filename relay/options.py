"""What the command line asked for, parsed once: one frozen object, the mode decided in one place."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Mode(enum.Enum):
    """What `python app.py` does; decided once, from the command line and TAVUS_CONVERSATION_URL."""

    DRY_RUN = "dry run"
    ROOM = "room"
    QUICKSTART = "quickstart"


class UsageError(Exception):
    """The command line contradicts itself; main prints one line and exits 2."""


@dataclass(frozen=True)
class Options:
    mode: Mode
    conversation_url: str | None = None  # ROOM only
    meeting_token: str | None = None  # ROOM: --meeting-token or TAVUS_MEETING_TOKEN (or ?t= on the URL)
    microphone: bool = False
    script: str | None = None
    exit_after_script: bool = False
    verbose: bool = False
    # the quickstart's
    pal: bool = False
    face_id: str | None = None
    private: bool = False
    test_mode: bool = False
    name: str = "Echo relay"
    max_call_seconds: int | None = None  # None: RELAY_MAX_CALL_SECONDS
