"""One run of `python app.py`: check, bind, (create a conversation), join, serve, stop.

The order is what keeps mistakes cheap: every setting, the record file and the
script are checked, then the listening address is bound, so a taken port or a
bad RELAY_HOST fails before a room is joined or a billed conversation is
created; and once the quickstart has created a conversation, every way out (a
failed join, Ctrl-C or SIGTERM at any point, an error) ends it. Ctrl-C and
SIGTERM are turned into KeyboardInterrupt here, in one place, for the whole run.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import ConfigError, Settings, check_room_url
from relay import quickstart
from relay.core import Relay
from relay.dry_run import DryRunRoom
from relay.errors import JoinError
from relay.logs import exit_with_error, say
from relay.microphone import CountingMicrophoneDevice
from relay.options import Mode, Options
from relay.recorder import check_record_file
from relay.room import Room, hide_native_logs_unless_shown, join_client_settings
from relay.room_urls import conversation_id_from_url, redact_url
from relay.script import ScriptError, Step, parse_script
from relay.server import ListenError, bind, create_server, stop_serving
from tavus_client import TavusAPIError

log = logging.getLogger("echo_relay")

JOIN_PROGRESS_S = 5.0  # while Daily is being joined, a line this often says the relay is alive

MakeApp = Callable[[Relay], Any]  # app.app_for: the WSGI app that serves a relay


@dataclass(frozen=True)
class Daily:
    """daily's CallClient and microphone factories (tests stand in for them)."""

    client_factory: Callable[..., Any]
    microphone_factory: Callable[[int], Any]


@dataclass(frozen=True)
class Demo:
    """A script to play once serving (--script), and whether to stop when it is over (--exit-after-script)."""

    steps: list[Step]
    name: str
    exit_after: bool


class Stopping:
    """The one handler of Ctrl-C and SIGTERM: run what must stop first (the event streams), then KeyboardInterrupt."""

    def __init__(self) -> None:
        self.first: list[Callable[[], None]] = []
        self.lock = threading.Lock()
        self.signalled = False  # the user (or --exit-after-script, through the same handler) asked to stop
        self.script_ended = False  # it was --exit-after-script

    def __call__(self, signum: int, frame: Any) -> None:
        with self.lock:
            self.signalled = True
        for stop in self.first:
            stop()
        raise KeyboardInterrupt


@contextmanager
def signals_stop_the_run() -> Iterator[Stopping]:
    """Ctrl-C and SIGTERM stop the run at any point, whatever was inherited (a background job has SIGINT ignored)."""
    stopping = Stopping()
    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(options: Options, settings: Settings, daily: Daily, make_app: MakeApp) -> int:
    """Every mode; the exit code. Everything is checked, then bound, before anything is created or joined."""
    with signals_stop_the_run() as stopping:
        try:
            demo = check_before_start(options, settings)
            sock = bind(settings)
        except (ConfigError, ScriptError) as error:
            return exit_with_error(str(error), 2)
        except ListenError as error:
            return exit_with_error(str(error), 1)
        except KeyboardInterrupt:
            return 0
        try:
            return Run(options, settings, daily, make_app, sock, stopping, demo).start()
        finally:
            sock.close()


def check_before_start(options: Options, settings: Settings) -> Demo | None:
    """Everything that can be wrong without the network: found before a port is taken or a conversation billed."""
    check_record_file(settings.record_file)
    if options.mode is Mode.ROOM and options.conversation_url:
        check_room_url(options.conversation_url)
    if options.mode is Mode.QUICKSTART:
        quickstart.check(settings)
    return load_demo(options)


def load_demo(options: Options) -> Demo | None:
    """The script, checked whole: a bad one sends nothing."""
    if not options.script:
        return None
    path = Path(options.script)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ScriptError(
            f"cannot read the script {options.script}: {getattr(error, 'strerror', None) or error}"
        ) from None
    return Demo(parse_script(text, path.resolve().parent, name=path.name), path.name, options.exit_after_script)


class Run:
    """One run, once checked and bound: what each mode does, and serving."""

    def __init__(
        self,
        options: Options,
        settings: Settings,
        daily: Daily,
        make_app: MakeApp,
        sock: socket.socket,
        stopping: Stopping,
        demo: Demo | None,
    ) -> None:
        self.options, self.settings, self.daily, self.make_app = options, settings, daily, make_app
        self.sock, self.stopping, self.demo = sock, stopping, demo
        self.port: int = sock.getsockname()[1]

    def start(self) -> int:
        try:
            if self.options.mode is Mode.QUICKSTART:
                return quickstart.run(self.options, self.settings, self)
            if self.options.mode is Mode.ROOM:
                url = self.options.conversation_url
                assert url
                names = quickstart.persona_names(self.settings, conversation_id_from_url(url))
                return self.join_and_serve(url, self.options.meeting_token, face_names=names)
            hide_native_logs_unless_shown()  # a room's join does it with Daily's init; the dry run decodes MP3s too
            room = DryRunRoom(verbose=self.options.verbose)
            return self.serve(
                Relay(self.settings, room, CountingMicrophoneDevice(self.settings.sample_rate)), self.dry_run_banner
            )
        except ConfigError as error:
            return exit_with_error(str(error), 2)
        except JoinError as error:
            return exit_with_error(str(error), 1)
        except TavusAPIError as error:
            return exit_with_error(str(error), 1)
        except KeyboardInterrupt:
            return 0

    # --- joining ---

    def room(self, url: str, meeting_token: str | None, face_names: tuple[str, ...] = ()) -> tuple[Room, Any]:
        """The Room and its microphone device (None without --microphone); the device exists before the join."""
        microphone = self.options.microphone
        device = self.daily.microphone_factory(self.settings.sample_rate) if microphone else None
        room = Room(
            url,
            meeting_token=meeting_token,
            client_factory=self.daily.client_factory,
            client_settings=join_client_settings(microphone=microphone),
            face_names=face_names,
        )
        return room, device

    def join_and_serve(
        self,
        url: str,
        meeting_token: str | None,
        banner: Callable[[], None] | None = None,
        *,
        created: bool = False,
        face_names: tuple[str, ...] = (),
    ) -> int:
        """Join (JoinError is one sentence), serve, and always leave and release, however the run ends.

        `face_names`: the persona's name, when the run knows it: the face's user name is that name.
        """
        room, device = self.room(url, meeting_token, face_names)
        leaving = threading.Thread(target=room.leave, name="relay-leave", daemon=True)

        def leave_now() -> None:
            """Ctrl-C or SIGTERM with the face absent: leave before in-flight requests are waited for.

            A request waiting for the face then answers at once instead of after
            RELAY_REPLICA_TIMEOUT; with the face present nothing is cut short: sends finish first.
            """
            if not room.replica_present and leaving.ident is None:
                leaving.start()

        try:
            join(room, created=created)
            self.stopping.first.append(leave_now)
            return self.serve(Relay(self.settings, room, device), banner or self.room_banner)
        finally:
            if leave_now in self.stopping.first:
                self.stopping.first.remove(leave_now)
            if leaving.ident is not None:
                leaving.join()
            room.leave()

    # --- serving ---

    def serve(self, relay: Relay, banner: Callable[[], None]) -> int:
        """Serve until Ctrl-C, SIGTERM or the end of --exit-after-script; in-flight requests finish first."""
        relay.start()
        connections: dict[int, Any] = {}
        server = create_server(self.make_app(relay), self.sock, self.settings, connections)
        # Open event streams end first, so stopping does not wait on them.
        self.stopping.first.append(relay.events.close)
        try:
            log.info("echo relay (%s) listening on %s", relay.room.mode, self.address())
            banner()
            try:
                if self.demo is not None:
                    start_demo(self.demo, relay, server, self.stopping)
                # Returns after Ctrl-C/SIGTERM (waitress catches the KeyboardInterrupt), in-flight requests done.
                server.run()
            except KeyboardInterrupt:
                pass  # it came before run() began
        finally:
            self.stopping.first.remove(relay.events.close)
            server.task_dispatcher.shutdown()
            for connection in list(connections.values()):
                connection.close()
            relay.close()
            log.info("stopped")
        script_failed = self.stopping.script_ended and relay.script.failed
        return 1 if script_failed else 0  # Ctrl-C is the user stopping the relay, wherever it lands: 0

    # --- what the user reads once serving ---

    def address(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    def first_curl(self) -> str:
        # never the token itself: the user's shell fills it in (export RELAY_AUTH_TOKEN=... there)
        auth = ' -H "Authorization: Bearer $RELAY_AUTH_TOKEN"' if self.settings.auth_token else ""
        return (
            f"curl -s -X POST {self.address()}/send_text_message{auth} "
            f"-H \"Content-Type: application/json\" -d '{{\"text\": \"Hello there!\"}}'"
        )

    def where(self) -> str:
        """Where the console is and a first request to try: what a user needs first, in every mode."""
        token_note = "  (with RELAY_AUTH_TOKEN exported in your shell)" if self.settings.auth_token else ""
        return f"The console: {self.address()}/ (open it in a browser)\nTry: {self.first_curl()}{token_note}\n"

    def dry_run_banner(self) -> None:
        say(
            "Dry run: no room is joined; every message is checked, built and printed as it would be sent.\n"
            f"{self.where()}Press Ctrl-C to stop."
        )

    def room_banner(self) -> None:
        say(f"{self.where()}Press Ctrl-C to stop: the relay leaves the room.")


def join(room: Room, *, created: bool) -> None:
    """Join, saying so at once and every JOIN_PROGRESS_S while Daily answers; Ctrl-C here says what was left."""
    url = redact_url(room.conversation_url)
    log.info("joining %s%s ...", url, " (private room, with its meeting token)" if room.private else "")
    joined = threading.Event()
    threading.Thread(target=_say_still_joining, args=(url, joined), name="relay-joining", daemon=True).start()
    try:
        room.join()
    except KeyboardInterrupt:
        say(
            "stopped while joining: the relay leaves, and ends the conversation it created"
            if created
            else "stopped while joining; nothing was left running"
        )
        raise
    finally:
        joined.set()
    log.info("joined conversation %s", room.conversation_id)


def _say_still_joining(url: str, joined: threading.Event) -> None:
    waited = 0.0
    while not joined.wait(JOIN_PROGRESS_S):
        waited += JOIN_PROGRESS_S
        log.info("still joining %s (%g s): waiting for Daily; Ctrl-C stops", url, waited)


def start_demo(demo: Demo, relay: Relay, server: Any, stopping: Stopping) -> None:
    """Play the script (it waits for the face first); with --exit-after-script, stop serving when it is over."""
    relay.script.load(demo.steps, demo.name)
    relay.script.play()
    if demo.exit_after:
        threading.Thread(
            target=_stop_when_over, args=(relay.script, server, stopping), name="relay-demo-exit", daemon=True
        ).start()


def _stop_when_over(script: Any, server: Any, stopping: Stopping) -> None:
    """Once the script is over, stop as Ctrl-C does, unless the user stopped first (a script cut short by that
    is no failure).
    """
    script.wait_until_over()
    with stopping.lock:
        if stopping.signalled:
            return
        stopping.script_ended = True
    stop_serving(server)
