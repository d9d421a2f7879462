"""The relay's HTTP API seen from outside: how the MCP server (relay/mcp.py) reaches a running relay.

One requests.Session per tool call, a timeout on every request, and every
failure as the ToolError an agent reads: the relay's own sentence when it
answered with an error, else what to check (RELAY_URL, whether the relay runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Self, TypeVar

import requests
from mcp.server.mcpserver.exceptions import ToolError
from urllib3.exceptions import NewConnectionError

from config import McpSettings

CONNECT_TIMEOUT_S = 2.0  # a relay that is not running is said within this (on loopback it is refused at once)
ANSWER_TIMEOUT_S = 20.0  # an interrupt waits for Daily's confirmation (RELAY_SEND_TIMEOUT, 10 s by default)
FIRST_POLL_S = 0.1  # a wait asks the relay again after this, then half as long again each time, up to MAX_POLL_S:
MAX_POLL_S = 0.5  # the relay logs one line per request, and a face speaks for seconds

T = TypeVar("T")


class RelayTimeout(ToolError):
    """The relay did not answer within the time the call allows (a say's answer can be held while the face is
    not in the room)."""


class RelayRefused(ToolError):
    """The relay answered with an error; the text is its own sentence."""

    def __init__(self, text: str, status: int) -> None:
        super().__init__(text)
        self.status = status


class RelayConnection:
    """The relay's HTTP API for one tool call: one requests.Session, closed after the call.

    Every failure is a ToolError an agent can act on: the relay's own sentence
    when it answered with an error, else what to check (RELAY_URL, the relay
    running). Every request has a timeout, the connection's CONNECT_TIMEOUT_S.
    """

    def __init__(self, settings: McpSettings) -> None:
        self.url = settings.relay_url
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy or .netrc from the environment between this server and the relay
        if settings.auth_token:
            self._session.headers["Authorization"] = f"Bearer {settings.auth_token}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._session.close()

    def call(self, method: str, path: str, *, timeout: float = ANSWER_TIMEOUT_S, **kwargs: Any) -> Any:
        """The relay's JSON answer to `method path`; a ToolError for anything else."""
        try:
            response = self._session.request(
                method, self.url + path, timeout=(CONNECT_TIMEOUT_S, timeout), allow_redirects=False, **kwargs
            )
        except requests.ConnectionError as error:  # ConnectTimeout included
            raise self._unreachable(error, method, path) from None
        except requests.Timeout:
            raise RelayTimeout(
                f"the relay at {self.url} (RELAY_URL) did not answer {method} {path} within {timeout:g} s"
            ) from None
        return _answer(response, method, path)

    def _unreachable(self, error: requests.ConnectionError, method: str, path: str) -> ToolError:
        cause = error.args[0] if error.args else None
        if isinstance(error, requests.ConnectTimeout) or isinstance(getattr(cause, "reason", None), NewConnectionError):
            return ToolError(
                f"no relay answers at {self.url} (RELAY_URL): start it (python app.py, in the relay's folder; "
                "with no room it runs a dry run), or set RELAY_URL to the address it listens on"
            )
        return ToolError(f"the connection to the relay at {self.url} (RELAY_URL) broke during {method} {path}")


def _answer(response: requests.Response, method: str, path: str) -> Any:
    """A 2xx's JSON; otherwise the relay's own `{"error": ...}` sentence, unchanged, as the ToolError's text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.ok and body is not None:
        return body
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        raise RelayRefused(body["error"], response.status_code)
    shown = " ".join(response.text.split())[:200]  # waitress's own 413 is plain text
    raise RelayRefused(f"the relay answered {method} {path} with {response.status_code}: {shown}", response.status_code)


def poll(read: Callable[[], T], done: Callable[[T], bool], deadline: float) -> T:
    """`read()` until `done` holds for its value or the deadline passed, asking less and less often."""
    interval = FIRST_POLL_S
    while True:
        value = read()
        left = deadline - time.monotonic()
        if done(value) or left <= 0:
            return value
        time.sleep(min(interval, left))
        interval = min(interval * 1.5, MAX_POLL_S)
