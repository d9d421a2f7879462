"""What the command line asked for, parsed once: one frozen object, the mode decided in one place."""

from __future__ import annotations

import argparse
import enum
from dataclasses import dataclass
from typing import NoReturn


class Mode(enum.Enum):
    """What `python app.py` does; decided once, from the command line and TAVUS_CONVERSATION_URL."""

    DRY_RUN = "dry run"
    ROOM = "room"
    QUICKSTART = "quickstart"


class UsageError(Exception):
    """The command line is wrong (a typo, flags that contradict each other); main prints one line and exits 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line naming the help to read (no usage block), raised as UsageError.

    Both command lines (python app.py, python tavus_client.py) use it, so each
    exits through its own one error path, with the same words for the same kind of mistake.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)")


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
