"""The command line of `python app.py`: its parser, and what it asked for as one frozen object, the mode decided
once.
"""

from __future__ import annotations

import argparse
import enum
from dataclasses import dataclass
from typing import NoReturn

from config import Settings

CONVERSATION_NAME = "Echo relay"  # the quickstart's conversation, unless --name says otherwise


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
    name: str = CONVERSATION_NAME
    max_call_seconds: int | None = None  # None: RELAY_MAX_CALL_SECONDS


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python app.py",
        description=(
            "Relay POSTed text and audio to a Tavus face in Echo Mode. With no URL (and no "
            "TAVUS_CONVERSATION_URL) it runs a dry run: messages are printed, not sent."
        ),
    )
    parser.add_argument(
        "conversation_url", nargs="?",
        help="the conversation_url Tavus returned, https://<domain>.daily.co/<conversation_id> "
        "(a private room's may end in ?t=<token>)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print messages instead of joining a room")
    parser.add_argument(
        "--quickstart",
        action="store_true",
        help="with TAVUS_API_KEY: create an echo persona (or reuse TAVUS_PERSONA_ID) and a conversation, "
        "join it and serve; the conversation is ended when the relay stops",
    )
    parser.add_argument(
        "--microphone",
        action="store_true",
        help="join with a virtual microphone for microphone echo (POST /microphone plays audio through it)",
    )
    parser.add_argument("--meeting-token", help="a private room's meeting token (default: TAVUS_MEETING_TOKEN)")
    parser.add_argument(
        "--script",
        metavar="FILE",
        help="play a demo script once the face is in the room, each line after the last is spoken",
    )
    parser.add_argument(
        "--exit-after-script",
        action="store_true",
        help="with --script: stop when it is over (a quickstart ends its conversation)",
    )
    quickstart = parser.add_argument_group("quickstart options")
    quickstart.add_argument(
        "--pal", action="store_true",
        help="create a PAL (POST /pals), not a persona; with no face given, Tavus's first stock face",
    )
    quickstart.add_argument(
        "--face-id", "--replica-id", dest="face_id", metavar="F",
        help="the face (replica) to use (default: TAVUS_REPLICA_ID or TAVUS_FACE_ID)",
    )
    quickstart.add_argument(
        "--private", action="store_true", help="create a private room (require_auth) and join it with its meeting token"
    )
    quickstart.add_argument(
        "--test-mode", action="store_true", help="create a conversation that is not billed (no face joins it)"
    )
    quickstart.add_argument("--name", default=CONVERSATION_NAME, help="the conversation's name")
    quickstart.add_argument(
        "--max-call-duration", dest="max_call_seconds", type=int, metavar="S",
        help="Tavus ends the conversation by itself after S seconds, should the relay not "
        "(default: RELAY_MAX_CALL_SECONDS, 3600)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging, and daily's own log lines on stderr")
    return parser


def parse_args(argv: list[str] | None, settings: Settings) -> Options:
    """The command line (and TAVUS_CONVERSATION_URL, TAVUS_MEETING_TOKEN) as one Options; the mode is decided here."""
    args = build_parser().parse_args(argv)
    if args.quickstart and (args.conversation_url or args.dry_run):
        raise UsageError("--quickstart creates its own conversation: give no URL and no --dry-run")
    if args.dry_run and args.conversation_url:
        raise UsageError("--dry-run joins no room: give no URL (--dry-run is for ignoring TAVUS_CONVERSATION_URL)")
    if args.exit_after_script and not args.script:
        raise UsageError("--exit-after-script goes with --script FILE")
    if args.quickstart and args.meeting_token:
        raise UsageError("--meeting-token is for joining a room by URL; --quickstart --private gets its own token")
    if args.max_call_seconds is not None and args.max_call_seconds < 60:
        raise UsageError(f"--max-call-duration must be at least 60, got {args.max_call_seconds}")
    given = [flag for flag, on in (("--pal", args.pal), ("--face-id", args.face_id), ("--private", args.private),
                                   ("--test-mode", args.test_mode), ("--max-call-duration", args.max_call_seconds))
             if on]
    if given and not args.quickstart:
        raise UsageError(f"{', '.join(given)} go{'es' if len(given) == 1 else ''} with --quickstart")
    url = None if args.dry_run or args.quickstart else (args.conversation_url or settings.tavus_conversation_url)
    if args.quickstart:
        mode = Mode.QUICKSTART
    elif url:
        mode = Mode.ROOM  # its shape is checked with every other setting, before binding (relay.run)
    else:
        mode = Mode.DRY_RUN
    return Options(
        mode=mode,
        conversation_url=url,
        meeting_token=(args.meeting_token or settings.tavus_meeting_token) if mode is Mode.ROOM else None,
        microphone=args.microphone,
        script=args.script,
        exit_after_script=args.exit_after_script,
        verbose=args.verbose,
        pal=args.pal,
        face_id=args.face_id,
        private=args.private,
        test_mode=args.test_mode,
        name=args.name,
        max_call_seconds=args.max_call_seconds,
    )
