"""One run of `python app.py`: bind, (create a conversation), join, serve, stop.

The order is what keeps mistakes cheap: the listening address is bound first,
so a taken port or a bad RELAY_HOST fails before a room is joined or a billed
conversation is created; and once the quickstart has created a conversation,
every way out (a failed join, Ctrl-C or SIGTERM at any point, an error) ends it.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import waitress
from waitress import wasyncore

from config import Settings
from relay.errors import JoinError
from relay.events import MAX_EVENT_LISTENERS, EventLog
from relay.logs import say
from relay.microphone import CountingMicrophoneDevice
from relay.room import DryRunRoom, Room, conversation_id_from_url, hide_native_logs_unless_shown, join_client_settings
from relay.script import ScriptError, Step, parse_script
from tavus_client import TavusAPIError, TavusClient, persona_id_of

log = logging.getLogger("echo_relay")

SERVER_THREADS = 16  # for requests; event streams get MAX_EVENT_LISTENERS more
QUICKSTART_PERSONA_NAME = "Echo Assistant"
QUICKSTART_CONVERSATION_NAME = "Echo relay"

MakeApp = Callable[..., Any]  # create_app(settings, room, microphone_device=...)


class ListenError(Exception):
    """The server cannot bind its address; the run prints it and exits 1."""


def fail(message: str, code: int) -> int:
    say(f"error: {message}")
    return code


@dataclass(frozen=True)
class Joining:
    """How to join a room: the client and microphone factories (tests stand in for daily's) and the options."""

    client_factory: Callable[..., Any]
    microphone_factory: Callable[[int], Any]
    microphone: bool = False
    meeting_token: str | None = None

    def room(self, url: str, settings: Settings) -> tuple[Room, Any]:
        """The Room and its microphone device (None without --microphone); the device exists before the join."""
        device = self.microphone_factory(settings.sample_rate) if self.microphone else None
        room = Room(
            url,
            meeting_token=self.meeting_token,
            client_factory=self.client_factory,
            client_settings=join_client_settings(microphone=self.microphone),
        )
        return room, device


class AppSlot:
    """The WSGI app the bound server serves; it is set once the room is joined and the app exists.

    The server does not run before then, so a request meanwhile waits in the
    socket's backlog; the 503 is only for a server run without an app. It also
    carries the demo script to play once serving.
    """

    def __init__(self, demo: Demo | None = None) -> None:
        self.app: Any = None
        self.demo = demo

    def __call__(self, environ: Any, start_response: Any) -> Any:
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"error": "the relay is still starting: try again in a moment"}']
        return self.app(environ, start_response)


@dataclass(frozen=True)
class Demo:
    """A script to play once serving (--script), and whether to stop when it is over (--exit-after-script)."""

    steps: list[Step]
    name: str
    exit_after: bool


def load_demo(args: argparse.Namespace) -> Demo | None:
    """The script, checked whole before anything is bound, created or joined: a bad one sends nothing."""
    if not args.script:
        return None
    path = Path(args.script)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ScriptError(f"cannot read the script {args.script}: {getattr(error, 'strerror', None) or error}") from None
    return Demo(parse_script(text, path.resolve().parent, name=path.name), path.name, args.exit_after_script)


def run(args: argparse.Namespace, settings: Settings, joining: Joining, make_app: MakeApp) -> int:
    """Every mode; the exit code. Nothing is joined or created before the address is bound."""
    url = None if args.dry_run or args.quickstart else (args.conversation_url or settings.tavus_conversation_url)
    if url:
        conversation_id_from_url(url)  # a malformed URL is the caller's mistake (ConfigError), found before anything
    try:
        demo = load_demo(args)
    except ScriptError as error:
        return fail(str(error), 2)
    slot = AppSlot(demo)
    try:
        server = listen(slot, settings)
    except ListenError as error:
        return fail(str(error), 1)
    try:
        if args.quickstart:
            return run_quickstart(server, slot, settings, args, joining, make_app)
        if not url:
            hide_native_logs_unless_shown()  # a room's join does it with Daily's init; the dry run decodes MP3s too
            room = DryRunRoom()
            return serve(server, slot, settings, make_app(settings, room, microphone_device=CountingMicrophoneDevice(settings.sample_rate)))
        return join_and_serve(server, slot, settings, *joining.room(url, settings), make_app=make_app)
    except JoinError as error:
        return fail(str(error), 1)
    except KeyboardInterrupt:
        return 0
    finally:
        close_server(server)


def listen(app: Any, settings: Settings) -> Any:
    """Bind and listen now (requests queue until the server runs); a bad address is one line naming the setting."""
    try:
        return waitress.create_server(
            app, host=settings.host, port=settings.port, threads=SERVER_THREADS + MAX_EVENT_LISTENERS
        )
    except ValueError:  # waitress's words for a host it cannot resolve or parse
        raise ListenError(
            f"RELAY_HOST {settings.host!r} is not an address this machine can listen on: "
            "set RELAY_HOST to 127.0.0.1 (or another address of this machine)"
        ) from None
    except OSError as error:
        if error.errno == errno.EADDRNOTAVAIL:
            raise ListenError(
                f"RELAY_HOST {settings.host!r} is not an address of this machine: set RELAY_HOST to 127.0.0.1 "
                "(or another address of this machine)"
            ) from None
        raise ListenError(
            f"cannot listen on {settings.host}:{settings.port}: {error.strerror or error}; "
            "set RELAY_PORT (or RELAY_HOST) to a free address, or stop the other relay"
        ) from None


def close_server(server: Any) -> None:
    server.task_dispatcher.shutdown()
    server.close()


def join_and_serve(
    server: Any,
    slot: AppSlot,
    settings: Settings,
    room: Room,
    microphone_device: Any,
    *,
    make_app: MakeApp,
    on_listening: Callable[[int], None] | None = None,
) -> int:
    """Join (JoinError is one sentence), serve, and always leave and release, however the run ends."""
    try:
        log.info("joining %s%s ...", room.conversation_url, " (private room, with its meeting token)" if room.private else "")
        room.join()
        log.info("joined conversation %s", room.conversation_id)
        app = make_app(settings, room, microphone_device=microphone_device)
        return serve(server, slot, settings, app, on_listening)
    finally:
        room.leave()


def serve(
    server: Any, slot: AppSlot, settings: Settings, app: Any, on_listening: Callable[[int], None] | None = None
) -> int:
    """Serve until Ctrl-C or SIGTERM; in-flight requests finish (waitress), then the relay's threads stop."""
    relay = app.extensions["relay"]
    slot.app = app
    try:
        with _stopping_closes(relay.events):
            port = server.effective_port
            log.info("echo relay (%s) listening on http://%s:%s", relay.room.mode, settings.host, port)
            if on_listening:
                on_listening(port)
            if slot.demo is not None:
                start_demo(slot.demo, relay, server)
            server.run()  # returns after Ctrl-C/SIGTERM (or --exit-after-script), once in-flight requests finished
    finally:
        relay.close()
        log.info("stopped")
    return 1 if slot.demo is not None and slot.demo.exit_after and relay.script.failed else 0  # Ctrl-C: 0


def start_demo(demo: Demo, relay: Any, server: Any) -> None:
    """Play the script (it waits for the face first); with --exit-after-script, stop serving when it is over."""
    relay.script.load(demo.steps, demo.name)
    relay.script.play()
    if demo.exit_after:
        threading.Thread(target=_stop_when_over, args=(relay.script, server), name="relay-demo-exit", daemon=True).start()


def _stop_when_over(script: Any, server: Any) -> None:
    script.wait_until_over()
    stop_server(server)


def stop_server(server: Any) -> None:
    """Make server.run() return, from any thread: its loop ends once every channel is closed, on its own thread."""
    try:
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    except OSError:
        pass  # it stopped already (Ctrl-C came first): nothing left to stop


@contextmanager
def _stopping_closes(events: EventLog) -> Iterator[None]:
    """While serving, Ctrl-C and SIGTERM first end the event streams, then stop the server."""

    def stop(signum: int, frame: Any) -> None:
        events.close()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- the quickstart ------------------------------------------------------------------


def run_quickstart(
    server: Any, slot: AppSlot, settings: Settings, args: argparse.Namespace, joining: Joining, make_app: MakeApp
) -> int:
    """Tavus's Echo Mode quickstart in one command; never leaves the conversation it created running."""
    if not settings.tavus_api_key:
        return fail("--quickstart needs TAVUS_API_KEY (in the environment or .env)", 2)
    face_id = args.face_id or settings.tavus_replica_id
    if args.pal and not face_id and not settings.tavus_persona_id:
        return fail(
            "a PAL needs a face: pass --face-id F (or set TAVUS_REPLICA_ID); "
            "list the faces you can use with: python tavus_client.py list-faces",
            2,
        )
    tavus = TavusClient.from_settings(settings)
    conversation: dict[str, Any] | None = None
    try:
        conversation = start_conversation(tavus, settings, args, face_id)
        token = conversation.get("meeting_token") if args.private else None
        if args.private and not token:
            return fail("Tavus created a private conversation but sent no meeting_token: the relay cannot join it", 1)
        room, device = replace(joining, meeting_token=token).room(conversation["conversation_url"], settings)
        if args.test_mode:
            say(
                f"Test mode: conversation {conversation['conversation_id']} is not billed and no face will join it, "
                f"so requests wait RELAY_REPLICA_TIMEOUT ({settings.replica_timeout_s:g} s) and then get 503."
            )
        return join_and_serve(
            server,
            slot,
            settings,
            room,
            device,
            make_app=make_app,
            on_listening=lambda port: print_quickstart_banner(conversation, token, settings, port),
        )
    except TavusAPIError as error:
        return fail(str(error), 1)
    finally:
        if conversation is not None:
            end_created_conversation(tavus, conversation["conversation_id"])
        tavus.close()


def start_conversation(
    tavus: TavusClient, settings: Settings, args: argparse.Namespace, face_id: str | None
) -> dict[str, Any]:
    """Create (or reuse TAVUS_PERSONA_ID) the echo persona or PAL, then the conversation."""
    owner_key = "pal_id" if args.pal else "persona_id"
    persona_id = settings.tavus_persona_id
    if persona_id:
        log.info("reusing %s %s (TAVUS_PERSONA_ID)", owner_key, persona_id)
    elif args.pal:
        persona_id = persona_id_of(tavus.create_pal(QUICKSTART_PERSONA_NAME, default_face_id=face_id))
        log.info("created echo PAL %s", persona_id)
    else:
        persona_id = persona_id_of(tavus.create_persona(QUICKSTART_PERSONA_NAME))
        log.info("created echo persona %s", persona_id)
    face = {"face_id": face_id} if args.pal else {"replica_id": face_id}
    conversation = tavus.create_conversation(
        **{owner_key: persona_id},
        **face,
        conversation_name=args.name,
        require_auth=True if args.private else None,
        test_mode=True if args.test_mode else None,
    )
    log.info("created conversation %s", conversation["conversation_id"])
    return conversation


def end_created_conversation(tavus: TavusClient, conversation_id: str) -> None:
    try:
        answer = tavus.end_conversation(conversation_id)
    except TavusAPIError as error:
        say(
            f"warning: could not end conversation {conversation_id}: {error}. End it with: "
            f"python tavus_client.py end-conversation {conversation_id}"
        )
        return
    already = " (it had already ended)" if answer.get("already_ended") else ""
    say(f"ended conversation {conversation_id}{already}: it no longer bills")


def print_quickstart_banner(conversation: Mapping[str, Any], token: str | None, settings: Settings, port: int) -> None:
    """The one place a meeting token is shown: the user needs the link with it to open a private room."""
    auth = ' -H "Authorization: Bearer $RELAY_AUTH_TOKEN"' if settings.auth_token else ""
    conversation_id = conversation["conversation_id"]
    url = conversation["conversation_url"]
    if token:
        link = f"    {url}?t={token}\n    (this link carries the room's meeting token: it is shown only here, share it with care)\n"
    else:
        link = f"    {url}\n"
    say(
        f"Conversation {conversation_id} is live. Open it in a browser to see and hear the face:\n"
        f"{link}"
        "Make it speak:\n"
        f"    curl -s -X POST http://{settings.host}:{port}/send_text_message{auth} "
        f"-H \"Content-Type: application/json\" -d '{{\"text\": \"Hello there!\"}}'\n"
        f"Press Ctrl-C to stop: the relay then ends conversation {conversation_id} so it stops billing.",
        file=sys.stdout,
        flush=True,
    )

