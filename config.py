"""Settings for the echo relay, read once from the environment and a `.env` file.

Every value is checked here so that a typo fails at start with one line naming
the variable, instead of surfacing later as a confusing error mid-conversation.
Secrets (`TAVUS_API_KEY`, `TAVUS_MEETING_TOKEN`, `RELAY_AUTH_TOKEN`) never appear in a repr or an error.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import ParseResult, urlparse, urlunparse

from dotenv import dotenv_values, find_dotenv

from echo_messages import MAX_MESSAGE_BYTES, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from relay.hosts import HostPort, never_this_relay, parse_host, parse_origin

DEFAULT_TAVUS_API_BASE_URL = "https://tavusapi.com/v2"
DEFAULT_SAMPLE_RATE = 24000
DEFAULT_MAX_BODY_BYTES = 50 * 1024 * 1024
# The text route's own limit: a 10 MB text, with room to spare for JSON's escapes (a body costs a few times its size).
DEFAULT_MAX_TEXT_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_SCRIPT_BODY_BYTES = 1024 * 1024  # a script: thousands of lines to say
MIN_BODY_BYTES = 1024
DEFAULT_REPLICA_TIMEOUT_S = 300.0  # Tavus's own CLI waits this long: a cold start can take minutes
DEFAULT_CONNECTION_TIMEOUT_S = 30.0
DEFAULT_SEND_TIMEOUT_S = 10.0
# A request (headers and body) must arrive whole within this of its connection opening or its last answer:
# trickling clients would otherwise hold every connection the server takes (relay/server.py).
DEFAULT_REQUEST_DEADLINE_S = 30.0
MIN_REQUEST_DEADLINE_S = 1.0  # the server looks for late requests once a second: a shorter deadline cannot be kept
DEFAULT_MAX_AUDIO_SECONDS = 600.0
# Decoding costs a file's frames times channels: by default what RELAY_MAX_AUDIO_SECONDS of 48 kHz stereo holds.
AUDIO_SAMPLES_PER_SECOND = 48000 * 2
DEFAULT_MAX_AUDIO_SAMPLES = int(DEFAULT_MAX_AUDIO_SECONDS * AUDIO_SAMPLES_PER_SECOND)
DEFAULT_MAX_MICROPHONE_QUEUE_SECONDS = 600.0
DEFAULT_EVENT_BUFFER = 1000
DEFAULT_EVENT_BUFFER_BYTES = 2 * 1024 * 1024  # the events' frames as sent: 1000 events of 2 KB
MIN_EVENT_BUFFER_BYTES = 64 * 1024  # the largest event the relay publishes fits many times over
# Requests answered only once the face spoke ("wait"): each holds a server thread meanwhile (relay/server.py gives
# them threads of their own, beyond those /health, /interrupt and plain sends use).
DEFAULT_MAX_WAITING_FOR_FACE = 8
MAX_MAX_WAITING_FOR_FACE = 256  # a thread each
DEFAULT_SCRIPT_LINE_TIMEOUT_S = 60.0
DEFAULT_TAVUS_TIMEOUT_S = 30.0
# Before the n-th retry of a Tavus call after the first (which is at once), urllib3 waits this × 2^(n-1) s.
DEFAULT_TAVUS_RETRY_BACKOFF_S = 0.5
MAX_TAVUS_RETRY_BACKOFF_S = 60.0  # urllib3 caps each wait at 120 s anyway
DEFAULT_SPOKEN_TIMEOUT_S = 60.0
DEFAULT_UTTERANCE_IDLE_CLOSE_S = 5.0
CHECKOUT_DIR = Path(__file__).resolve().parent  # the relay's repository folder
EXAMPLES_DIR = CHECKOUT_DIR / "examples"  # the default RELAY_AUDIO_DIR: the shipped demo works
DEFAULT_RELAY_URL = "http://127.0.0.1:8000"  # where `python -m relay.mcp` finds the relay
DEFAULT_MCP_SAY_TIMEOUT_S = 30.0  # the longest an agent's say waits for the face; agent hosts give up on a tool
# call after about a minute
DEFAULT_MAX_CALL_SECONDS = 3600  # the quickstart's conversation: Tavus ends it by itself after this
# A host under daily.co, written as DNS names are (a space or a bracket would pass .endswith and fail in Daily's join).
DAILY_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+daily\.co")
ROOM_URL_SHAPE = "https://<domain>.daily.co/<conversation_id>, such as https://tavus.daily.co/c123"

# Below this an echo envelope plus a few samples of audio no longer fits.
MIN_MAX_MESSAGE_BYTES = 512


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    tavus_api_key: str | None = field(default=None, repr=False)
    tavus_api_base_url: str = DEFAULT_TAVUS_API_BASE_URL
    tavus_persona_id: str | None = None
    tavus_replica_id: str | None = None
    tavus_conversation_url: str | None = None
    tavus_meeting_token: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8000
    auth_token: str | None = field(default=None, repr=False)
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    sample_rate: int = DEFAULT_SAMPLE_RATE
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_text_body_bytes: int = DEFAULT_MAX_TEXT_BODY_BYTES
    max_script_body_bytes: int = DEFAULT_MAX_SCRIPT_BODY_BYTES
    replica_timeout_s: float = DEFAULT_REPLICA_TIMEOUT_S
    send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S
    connection_timeout_s: float = DEFAULT_CONNECTION_TIMEOUT_S
    request_deadline_s: float = DEFAULT_REQUEST_DEADLINE_S
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS
    max_audio_samples: int = DEFAULT_MAX_AUDIO_SAMPLES
    max_microphone_queue_seconds: float = DEFAULT_MAX_MICROPHONE_QUEUE_SECONDS
    event_buffer: int = DEFAULT_EVENT_BUFFER
    event_buffer_bytes: int = DEFAULT_EVENT_BUFFER_BYTES
    max_waiting_for_face: int = DEFAULT_MAX_WAITING_FOR_FACE
    record_file: str | None = None
    script_line_timeout_s: float = DEFAULT_SCRIPT_LINE_TIMEOUT_S
    tavus_timeout_s: float = DEFAULT_TAVUS_TIMEOUT_S
    tavus_retry_backoff_s: float = DEFAULT_TAVUS_RETRY_BACKOFF_S
    spoken_timeout_s: float = DEFAULT_SPOKEN_TIMEOUT_S
    utterance_idle_close_s: float = DEFAULT_UTTERANCE_IDLE_CLOSE_S
    audio_dir: str | None = None

    def audio_folder(self) -> Path:
        """RELAY_AUDIO_DIR, the only folder a script sent over HTTP may name audio in (default: examples/)."""
        return Path(self.audio_dir) if self.audio_dir else EXAMPLES_DIR
    # the run's (python app.py)
    max_call_seconds: int = DEFAULT_MAX_CALL_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `env`, or from os.environ plus `./.env` when None.

        Values already in the environment win over `.env` (as with
        `load_dotenv(override=False)`), so a shell export can override the file
        without editing it. Empty values count as unset, which lets a copied
        `.env.example` work as is.
        """
        if env is None:
            env = {**_dotenv_in_cwd(), **os.environ}
        read = _Reader(env)
        max_audio_seconds = read.number("RELAY_MAX_AUDIO_SECONDS", DEFAULT_MAX_AUDIO_SECONDS, float, minimum=0.001)
        return cls(
            tavus_api_key=read.text("TAVUS_API_KEY"),
            tavus_api_base_url=read.url("TAVUS_API_BASE_URL", DEFAULT_TAVUS_API_BASE_URL).rstrip("/"),
            tavus_persona_id=read.text("TAVUS_PERSONA_ID") or read.text("TAVUS_PAL_ID"),
            tavus_replica_id=read.text("TAVUS_REPLICA_ID") or read.text("TAVUS_FACE_ID"),
            tavus_conversation_url=read.room_url("TAVUS_CONVERSATION_URL"),
            tavus_meeting_token=read.text("TAVUS_MEETING_TOKEN"),
            host=read.text("RELAY_HOST") or "127.0.0.1",
            port=read.number("RELAY_PORT", 8000, int, minimum=0, maximum=65535),
            auth_token=read.text("RELAY_AUTH_TOKEN"),
            allowed_hosts=read.host_names("RELAY_ALLOWED_HOSTS"),
            allowed_origins=read.origins("RELAY_ALLOWED_ORIGINS"),
            sample_rate=read.sample_rate("RELAY_SAMPLE_RATE"),
            max_message_bytes=read.number(
                "RELAY_MAX_MESSAGE_BYTES", MAX_MESSAGE_BYTES, int, minimum=MIN_MAX_MESSAGE_BYTES
            ),
            max_body_bytes=read.number("RELAY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, int, minimum=MIN_BODY_BYTES),
            max_text_body_bytes=read.number(
                "RELAY_MAX_TEXT_BODY_BYTES", DEFAULT_MAX_TEXT_BODY_BYTES, int, minimum=MIN_BODY_BYTES
            ),
            max_script_body_bytes=read.number(
                "RELAY_MAX_SCRIPT_BODY_BYTES", DEFAULT_MAX_SCRIPT_BODY_BYTES, int, minimum=MIN_BODY_BYTES
            ),
            replica_timeout_s=read.number("RELAY_REPLICA_TIMEOUT", DEFAULT_REPLICA_TIMEOUT_S, float, minimum=0),
            send_timeout_s=read.number("RELAY_SEND_TIMEOUT", DEFAULT_SEND_TIMEOUT_S, float, minimum=0.001),
            connection_timeout_s=read.number(
                "RELAY_CONNECTION_TIMEOUT", DEFAULT_CONNECTION_TIMEOUT_S, float, minimum=0
            ),
            request_deadline_s=read.number(
                "RELAY_REQUEST_DEADLINE", DEFAULT_REQUEST_DEADLINE_S, float, minimum=MIN_REQUEST_DEADLINE_S
            ),
            max_audio_seconds=max_audio_seconds,
            max_audio_samples=read.number(
                "RELAY_MAX_AUDIO_SAMPLES", int(max_audio_seconds * AUDIO_SAMPLES_PER_SECOND), int, minimum=1
            ),
            max_microphone_queue_seconds=read.number(
                "RELAY_MAX_MICROPHONE_QUEUE_SECONDS", DEFAULT_MAX_MICROPHONE_QUEUE_SECONDS, float, minimum=0.001
            ),
            event_buffer=read.number("RELAY_EVENT_BUFFER", DEFAULT_EVENT_BUFFER, int, minimum=1),
            event_buffer_bytes=read.number(
                "RELAY_EVENT_BUFFER_BYTES", DEFAULT_EVENT_BUFFER_BYTES, int, minimum=MIN_EVENT_BUFFER_BYTES
            ),
            max_waiting_for_face=read.number(
                "RELAY_MAX_WAITING_FOR_FACE", DEFAULT_MAX_WAITING_FOR_FACE, int, minimum=1,
                maximum=MAX_MAX_WAITING_FOR_FACE,
            ),
            record_file=read.text("RELAY_RECORD_FILE"),
            script_line_timeout_s=read.number(
                "RELAY_SCRIPT_LINE_TIMEOUT", DEFAULT_SCRIPT_LINE_TIMEOUT_S, float, minimum=0.1
            ),
            tavus_timeout_s=read.number("TAVUS_TIMEOUT", DEFAULT_TAVUS_TIMEOUT_S, float, minimum=0.01),
            tavus_retry_backoff_s=read.number(
                "TAVUS_RETRY_BACKOFF",
                DEFAULT_TAVUS_RETRY_BACKOFF_S,
                float,
                minimum=0,
                maximum=MAX_TAVUS_RETRY_BACKOFF_S,
            ),
            spoken_timeout_s=read.number("RELAY_SPOKEN_TIMEOUT", DEFAULT_SPOKEN_TIMEOUT_S, float, minimum=0),
            utterance_idle_close_s=read.number(
                "RELAY_UTTERANCE_IDLE_CLOSE", DEFAULT_UTTERANCE_IDLE_CLOSE_S, float, minimum=0
            ),
            audio_dir=read.directory("RELAY_AUDIO_DIR"),
            max_call_seconds=read.number("RELAY_MAX_CALL_SECONDS", DEFAULT_MAX_CALL_SECONDS, int, minimum=60),
        )


@dataclass(frozen=True)
class McpSettings:
    """What `python -m relay.mcp` (the agents' entry) reads: where the relay is, its token, how long a say may
    hold an agent, and the one folder play_audio may read when RELAY_AUDIO_DIR is set."""

    relay_url: str = DEFAULT_RELAY_URL
    auth_token: str | None = field(default=None, repr=False)
    say_timeout_s: float = DEFAULT_MCP_SAY_TIMEOUT_S
    audio_dir: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> McpSettings:
        """Read from `env`, or from os.environ plus the `.env` of the relay's repository folder when None.

        Not the working folder's, as the relay reads: an agent host starts the
        server in a folder of its own choosing, and the `.env` the relay is
        started with is the one in its repository folder. The environment wins.
        """
        if env is None:
            env = {**_dotenv_values(CHECKOUT_DIR / ".env"), **os.environ}
        read = _Reader(env)
        return cls(
            relay_url=read.url("RELAY_URL", DEFAULT_RELAY_URL, example=DEFAULT_RELAY_URL).rstrip("/"),
            auth_token=read.text("RELAY_AUTH_TOKEN"),
            say_timeout_s=read.number("RELAY_MCP_SAY_TIMEOUT", DEFAULT_MCP_SAY_TIMEOUT_S, float, minimum=1),
            audio_dir=read.directory("RELAY_AUDIO_DIR"),
        )


def check_room_url(url: str, source: str = "the conversation URL") -> str:
    """A Daily room URL, or ConfigError at once: anything else would be tried for ~19 s before Daily gives up.

    The one place the shape is checked: https, a host under daily.co, one path
    segment (the room, named after the conversation); `?t=<meeting token>` may follow.
    """
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower()
    segments = [segment for segment in parsed.path.split("/") if segment]
    if parsed.scheme != "https" or not DAILY_HOST.fullmatch(host) or len(segments) != 1 or not _has_valid_port(parsed):
        shown = urlunparse(parsed._replace(query="", fragment=""))  # a ?t= meeting token is never shown
        raise ConfigError(f"{source} {shown!r} is not a Daily room URL: expected {ROOM_URL_SHAPE}")
    return url


def _has_valid_port(parsed: ParseResult) -> bool:
    """No port, or one from 0 to 65535 (`:99999` would pass every other check and fail only inside Daily's join)."""
    try:
        parsed.port  # noqa: B018 (reading it is the check: urllib raises ValueError for a port out of range)
    except ValueError:
        return False
    return True


def _without_password(url: str) -> str:
    """`http://user:pw@h` -> `http://user:***@h`: an error line never shows a password."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def _dotenv_in_cwd() -> dict[str, str]:
    """The `.env` of the directory the relay is started from, as docs/settings.md says."""
    return _dotenv_values(find_dotenv(usecwd=True))


def _dotenv_values(path: str | Path) -> dict[str, str]:
    if not path or not Path(path).is_file():
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


class _Reader:
    """Reads one variable at a time, raising ConfigError that names it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def number(
        self,
        name: str,
        default: T,
        kind: Callable[[str], T],
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        noun = "a whole number" if kind is int else "a number"
        try:
            value = kind(raw)
            if isinstance(value, float) and math.isnan(value):  # it compares with nothing: no bound would hold it
                raise ValueError(raw)
        except ValueError:
            raise ConfigError(f"{name} must be {noun}, got {raw!r}") from None
        if minimum is not None and value < minimum:  # type: ignore[operator]
            raise ConfigError(f"{name} must be at least {minimum:g}, got {raw}")
        if maximum is not None and value > maximum:  # type: ignore[operator]
            raise ConfigError(f"{name} must be at most {maximum:g}, got {raw}")
        return value

    def sample_rate(self, name: str) -> int:
        """Whole 10 ms frames (a rate divisible by 100): the virtual microphone pads anything else with silence."""
        rate = self.number(
            name, DEFAULT_SAMPLE_RATE, int, minimum=MIN_SAMPLE_RATE, maximum=MAX_SAMPLE_RATE
        )
        if rate % 100:
            raise ConfigError(
                f"{name} must be a multiple of 100 Hz (whole 10 ms frames), got {rate}: use 24000 (or 16000, 48000)"
            )
        return rate

    def directory(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is not None and not Path(raw).is_dir():
            raise ConfigError(f"{name} must be an existing folder, got {raw!r}")
        return raw
    def room_url(self, name: str) -> str | None:
        raw = self.text(name)
        return None if raw is None else check_room_url(raw, name)

    def words(self, name: str) -> tuple[str, ...]:
        """A comma- or space-separated list."""
        return tuple(word for word in (self.text(name) or "").replace(",", " ").split() if word)

    def host_names(self, name: str) -> tuple[str, ...]:
        """Names the relay answers to besides its own (a reverse proxy's, a LAN name), as a Host header writes
        them: `relay.lan` for any port, `relay.lan:8000` for that port only."""
        return tuple(str(self._allowed_host(name, word)) for word in self.words(name))

    def _allowed_host(self, name: str, word: str) -> HostPort:
        try:
            host = parse_host(word)
        except ValueError as why:
            raise ConfigError(
                f"{name} lists host names such as relay.lan or relay.lan:8000: {why}, got {word!r}"
            ) from None
        refusal = never_this_relay(host.name)
        if refusal is not None:
            raise ConfigError(f"{name} lists host names such as relay.lan or relay.lan:8000: {refusal}, got {word!r}")
        return host

    def origins(self, name: str) -> tuple[str, ...]:
        """Web pages allowed to use the relay: whole origins, as a browser sends them in `Origin`."""
        origins = []
        for word in self.words(name):
            try:
                origins.append(parse_origin(word))
            except ValueError as why:
                raise ConfigError(
                    f"{name} lists origins such as http://localhost:3000 (scheme, host, port): {why}, "
                    f"got {_without_password(word)!r}"
                ) from None
        return tuple(origins)

    def url(self, name: str, default: str, *, example: str = "https://tavus.daily.co/c123") -> str:
        return self.optional_url(name, example=example) or default

    def optional_url(self, name: str, *, example: str = "https://tavus.daily.co/c123") -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        parsed = urlparse(raw)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"{name} must be an http(s) URL such as {example}, got {raw!r}")
        return raw
