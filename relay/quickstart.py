"""`python app.py --quickstart`: Tavus's Echo Mode quickstart in one command.

Create (or reuse TAVUS_PERSONA_ID) the echo persona or PAL and a conversation,
join it and serve; the conversation is ended on every way out the relay
controls, and created with a `max_call_duration` so that Tavus ends it by
itself on the ways it does not (power loss, kill -9, a closed laptop).

Each call to Tavus is said before it is asked, a slow answer is said while it
is awaited, and Ctrl-C while Tavus holds a call says what was stopped and what
Tavus may have made meanwhile, and how to find it (`asking`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from config import ConfigError, Settings
from relay.logs import say
from relay.options import Options
from tavus_client import TavusAPIError, TavusClient, persona_id_of

log = logging.getLogger("echo_relay")

PERSONA_NAME = "Echo Assistant"
STOCK_FACES = "system"  # GET /v2/faces?face_type=system: Tavus's stock faces, as Tavus's own CLI picks from
# Tavus documents no persona field that turns the microphone on in the Transport layer (its Echo Mode page only
# says microphone echo needs it enabled), so the relay says what to do instead of guessing a field.
MICROPHONE_NOTE = (
    "Microphone echo needs the microphone enabled in the persona's Transport layer (Tavus's Echo Mode page); "
    "Tavus documents no API setting for it: enable it for persona {persona_id} in the Tavus platform, "
    "or ask Tavus support, then reuse it with TAVUS_PERSONA_ID={persona_id}."
)
# What Ctrl-C leaves while Tavus holds a call (`asking`): said after "stopped while <what the relay asked>; ".
NOTHING_CREATED = "nothing was created"
NOTHING_LEFT_RUNNING = "nothing was left running"  # as a join stopped by Ctrl-C says it
MAY_BE_CREATED = (
    "Tavus may have created it already: list them with: python tavus_client.py list-{kinds}, "
    "delete one with: python tavus_client.py delete-{kind} ID"
)
MAY_BE_STARTED = (
    "Tavus may have started it already, and it is billed until it ends (Tavus ends it by itself after {within}): "
    "list the active ones with: python tavus_client.py list-conversations --status active, "
    "end it with: python tavus_client.py end-conversation ID"
)
PERSONA_KEPT = "; the echo {kind} {persona_id} made for it is kept: reuse it with TAVUS_PERSONA_ID={persona_id}"
MAY_STILL_BE_BILLED = (
    "it may still be running, and billed, until Tavus ends it by itself after {within}: "
    "end it with: python tavus_client.py end-conversation {conversation_id}"
)


class RoomRunner(Protocol):
    """What the quickstart needs of the run (relay/run.py's Run): join a room and serve it, and say where."""

    def join_and_serve(
        self,
        url: str,
        meeting_token: str | None,
        banner: Callable[[], None] | None = None,
        *,
        created: bool = False,
        face_names: tuple[str, ...] = (),
    ) -> int: ...

    def address(self) -> str: ...

    def first_curl(self) -> str: ...


def tavus_client(settings: Settings, **options: Any) -> TavusClient:
    """The relay's Tavus client: a call still waiting for its answer says so on the terminal, as the CLI's does."""
    return TavusClient.from_settings(settings, on_slow=_still_waiting, **options)


def _still_waiting(notice: str) -> None:
    log.info("%s", notice)


@contextmanager
def asking(what: str, if_stopped: str) -> Iterator[None]:
    """Say what is asked of Tavus before asking it; Ctrl-C while Tavus holds the call says what was stopped.

    `if_stopped` says what may be left: a create Tavus may have carried out
    before the answer came, and how to find it.
    """
    log.info("%s ...", what)
    try:
        yield
    except KeyboardInterrupt:
        say(f"stopped while {what}; {if_stopped}")
        raise


def persona_names(settings: Settings, conversation_id: str) -> tuple[str, ...]:
    """The name of the persona (or PAL) of a conversation created elsewhere: the face's user name in its room.

    Only with TAVUS_API_KEY; without one, or if Tavus cannot say, the face
    counts by its user id and Tavus's own messages (see docs/face.md). Each
    call is asked once, not once more after TAVUS_TIMEOUT: the name only helps
    to recognise the face, and must not hold the join for a minute.
    """
    if not settings.tavus_api_key:
        return ()
    tavus = tavus_client(settings, read_retries=0)
    try:
        with asking("looking up the conversation's face name", NOTHING_LEFT_RUNNING):
            name = _persona_name(tavus, conversation_id)
    except TavusAPIError as error:
        say(f"note: could not look up the face's name for conversation {conversation_id} ({error}); "
            "the face counts by its user id and Tavus's own messages")
        return ()
    finally:
        tavus.close()
    if name:
        log.info("the face's name in the room: %s (its persona's)", name)
    return (name,) if name else ()


def _persona_name(tavus: TavusClient, conversation_id: str) -> str | None:
    conversation = tavus.get_conversation(conversation_id)
    if conversation.get("pal_id"):
        return tavus.get_pal(conversation["pal_id"]).get("pal_name")
    if conversation.get("persona_id"):
        return tavus.get_persona(conversation["persona_id"]).get("persona_name")
    return None


def check(settings: Settings) -> None:
    """What the quickstart needs before anything is bound or created."""
    if not settings.tavus_api_key:
        raise ConfigError("--quickstart needs TAVUS_API_KEY (in the environment or .env)")


def run(options: Options, settings: Settings, runner: RoomRunner) -> int:
    """Create, join, serve; never leaves the conversation it created running."""
    assert settings.tavus_api_key
    tavus = tavus_client(settings)
    conversation: dict[str, Any] | None = None
    try:
        face_id = choose_face(tavus, options, settings)
        persona_id = persona(tavus, options, settings, face_id)
        conversation = create_conversation(tavus, options, settings, persona_id, face_id)
        token = conversation.get("meeting_token") if options.private else None
        if options.private and not token:
            raise TavusAPIError(
                "Tavus created a private conversation but sent no meeting_token: the relay cannot join it",
                status_code=None,
            )
        if options.test_mode:
            say(
                f"Test mode: conversation {conversation['conversation_id']} is not billed and no face will join it, "
                f"so requests wait RELAY_REPLICA_TIMEOUT ({settings.replica_timeout_s:g} s) and then get 503."
            )
        created = conversation

        def banner() -> None:
            print_banner(runner, options, settings, created, token, persona_id)

        # A persona it created is named PERSONA_NAME, the face's user name in the room; a reused one's is not known.
        names = () if settings.tavus_persona_id else (PERSONA_NAME,)
        return runner.join_and_serve(conversation["conversation_url"], token, banner, created=True, face_names=names)
    finally:
        if conversation is not None:
            end_created_conversation(tavus, conversation["conversation_id"], within=ends_by_itself(options, settings))
        tavus.close()


def choose_face(tavus: TavusClient, options: Options, settings: Settings) -> str | None:
    """--face-id, TAVUS_REPLICA_ID; for a new PAL with neither, Tavus's first stock face, saying how to choose."""
    face_id = options.face_id or settings.tavus_replica_id
    if face_id or not options.pal or settings.tavus_persona_id:
        return face_id
    with asking("looking up Tavus's stock faces", NOTHING_CREATED):
        faces = tavus.list_faces(face_type=STOCK_FACES).get("data") or []
    if not faces:
        raise ConfigError(
            "a PAL needs a face and Tavus lists no stock face: pass --face-id F; "
            "list the faces you can use with: python tavus_client.py list-faces"
        )
    first = faces[0]
    face_id = str(first.get("face_id") or first.get("replica_id"))
    name = first.get("face_name") or first.get("replica_name")
    say(
        f"Using Tavus's stock face {face_id}{f' ({name})' if name else ''}: choose another with --face-id F "
        "(list them with: python tavus_client.py list-faces)"
    )
    return face_id


def persona(tavus: TavusClient, options: Options, settings: Settings, face_id: str | None) -> str:
    """TAVUS_PERSONA_ID, or a new echo persona (or PAL)."""
    if settings.tavus_persona_id:
        id_field = "pal_id" if options.pal else "persona_id"
        log.info("reusing %s %s (TAVUS_PERSONA_ID)", id_field, settings.tavus_persona_id)
        return settings.tavus_persona_id
    kind = _persona_kind(options)
    with asking(f"creating an echo {kind}", MAY_BE_CREATED.format(kind=kind.lower(), kinds=f"{kind.lower()}s")):
        if options.pal:
            created = tavus.create_pal(PERSONA_NAME, default_face_id=face_id)
        else:
            created = tavus.create_persona(PERSONA_NAME)
    persona_id = persona_id_of(created)
    log.info("created echo %s %s", kind, persona_id)
    return persona_id


def _persona_kind(options: Options) -> str:
    return "PAL" if options.pal else "persona"


def create_conversation(
    tavus: TavusClient, options: Options, settings: Settings, persona_id: str, face_id: str | None
) -> dict[str, Any]:
    may_be_left = MAY_BE_STARTED.format(within=ends_by_itself(options, settings))
    if not settings.tavus_persona_id:  # made by this run, just now: the id the user needs to reuse it
        may_be_left += PERSONA_KEPT.format(kind=_persona_kind(options), persona_id=persona_id)
    with asking("creating a conversation", may_be_left):
        conversation = tavus.create_conversation(
            pal_id=persona_id if options.pal else None,
            persona_id=None if options.pal else persona_id,
            face_id=face_id if options.pal else None,
            replica_id=None if options.pal else face_id,
            conversation_name=options.name,
            require_auth=True if options.private else None,
            test_mode=True if options.test_mode else None,
            properties={"max_call_duration": max_call_seconds(options, settings)},
        )
    log.info("created conversation %s", conversation["conversation_id"])
    return conversation


def max_call_seconds(options: Options, settings: Settings) -> int:
    return options.max_call_seconds or settings.max_call_seconds


def ends_by_itself(options: Options, settings: Settings) -> str:
    """How long after its start Tavus ends a conversation the relay created, by itself (max_call_duration)."""
    return _duration(max_call_seconds(options, settings))


def end_created_conversation(tavus: TavusClient, conversation_id: str, *, within: str) -> None:
    """End it, whatever stopped the run; `within`: when Tavus ends it by itself if this cannot."""
    try:
        with asking(
            f"ending conversation {conversation_id}",
            MAY_STILL_BE_BILLED.format(within=within, conversation_id=conversation_id),
        ):
            answer = tavus.end_conversation(conversation_id)
    except TavusAPIError as error:
        say(
            f"warning: could not end conversation {conversation_id}: {error}. End it with: "
            f"python tavus_client.py end-conversation {conversation_id}"
        )
        return
    already = " (it had already ended)" if answer.get("already_ended") else ""
    say(f"ended conversation {conversation_id}{already}: it no longer bills")


def print_banner(
    runner: RoomRunner,
    options: Options,
    settings: Settings,
    conversation: Mapping[str, Any],
    token: str | None,
    persona_id: str,
) -> None:
    """The one place a meeting token is shown: the user needs the link with it to open a private room."""
    conversation_id = conversation["conversation_id"]
    url = conversation["conversation_url"]
    if token:
        link = (
            f"    {url}?t={token}\n"
            "    (this link carries the room's meeting token: it is shown only here, share it with care)\n"
        )
    else:
        link = f"    {url}\n"
    microphone = MICROPHONE_NOTE.format(persona_id=persona_id) + "\n" if options.microphone else ""
    say(
        f"Conversation {conversation_id} is live. Open it in a browser to see and hear the face:\n"
        f"{link}"
        "Make it speak:\n"
        f"    {runner.first_curl()}\n"
        f"The console: {runner.address()}/\n"
        f"{microphone}"
        f"Press Ctrl-C to stop: the relay then ends conversation {conversation_id} so it stops billing. "
        f"If the relay cannot (power loss, kill -9), Tavus ends it by itself after {ends_by_itself(options, settings)} "
        "(RELAY_MAX_CALL_SECONDS, --max-call-duration).",
        file=sys.stdout,
        flush=True,
    )


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
