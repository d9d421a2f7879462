"""The layer every request passes, whichever path answers it: who may ask, how much, and one log line.

It wraps both the fast path for plain text and Flask, so a check added here
applies to every request and can never be skipped on the busy path:
1. the Host must be a name of this relay (DNS rebinding: a page whose name
   resolves to 127.0.0.1 would otherwise be same-origin to the browser);
2. a request a browser sent from a page the relay did not serve changes and
   reads nothing (cross-site requests need no CORS preflight to make the face
   speak); clients that send no `Origin` (curl, scripts) are not browsers' pages;
   a page in RELAY_ALLOWED_ORIGINS gets its CORS preflight answered here and
   every answer readable (`Access-Control-Allow-Origin`), any other none of it;
3. the bearer token, when one is set;
4. a body over its route's limit (`body_limit`) is refused by its Content-Length, before the relay reads a byte
   (waitress has the whole body by then, a chunked one too, and sets its length).
Then the request is answered, and one line is logged (never a body, audio or token).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from config import Settings
from echo_messages import TEXT_ENDPOINT
from relay.answers import Answer
from relay.errors import Forbidden, RelayError, TooLarge, Unauthorized, status_of
from relay.hosts import DEFAULT_PORTS, HostPort, never_this_relay, parse_host, parse_origin
from relay.server import is_loopback

log = logging.getLogger("echo_relay")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

LOCAL_HOSTS = frozenset(HostPort(name) for name in ("localhost", "127.0.0.1", "::1"))  # on any port
# Need no token: they carry nothing from the conversation (the console page asks for the token itself);
# /health without the token says only that the relay is up.
PUBLIC_PATHS = ("/health", "/openapi.json", "/")
PUBLIC_PREFIXES = ("/static/",)
QUIET_PATHS = ("/health", "/")  # the console polls /health every second: logged only with --verbose
REQUEST_LINE = "%s %s %d %.1fms inference_id=%s messages_sent=%s"  # never a body, audio or token
# What a view or the fast path puts in the environ for the log line, and what the guard tells them.
LOG_FIELDS_KEY = "relay.log_fields"
AUTHORIZED_KEY = "relay.authorized"
# What a page in RELAY_ALLOWED_ORIGINS may send after its preflight: the relay's methods, and the headers it reads.
CORS_METHODS = "GET, POST"
CORS_HEADERS = "Content-Type, Authorization, Last-Event-ID"
CORS_MAX_AGE_S = 600  # how long a browser may keep a preflight's answer before asking again
# Routes with a body limit of their own, below RELAY_MAX_BODY_BYTES: (the setting's field, its name).
ROUTE_BODY_LIMITS = {
    TEXT_ENDPOINT: ("max_text_body_bytes", "RELAY_MAX_TEXT_BODY_BYTES"),
    "/script": ("max_script_body_bytes", "RELAY_MAX_SCRIPT_BODY_BYTES"),
}


@dataclass(frozen=True)
class BodyLimit:
    """The most bytes a route's body may have, and the setting that says so (named in its 413)."""

    bytes: int
    setting: str


def body_limit(settings: Settings, path: str) -> BodyLimit:
    """The body limit of `path`: its route's own where it has one (text, scripts: a body costs a few times its size
    to read, and these need far less than audio does), never above RELAY_MAX_BODY_BYTES, the largest, which waitress
    enforces as it reads; the setting that gives the smaller one is named."""
    largest = BodyLimit(settings.max_body_bytes, "RELAY_MAX_BODY_BYTES")
    if path not in ROUTE_BODY_LIMITS:
        return largest
    field, setting = ROUTE_BODY_LIMITS[path]
    own: int = getattr(settings, field)
    return BodyLimit(own, setting) if own <= largest.bytes else largest


def bearer_matches(authorization: str, token: str) -> bool:
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def request_host(host_header: str) -> HostPort | None:
    """The Host a request names, by the one parser RELAY_ALLOWED_HOSTS is read with; None if malformed."""
    try:
        return parse_host(host_header.strip())
    except ValueError:
        return None


def is_reachable_address(name: str, *, beyond_loopback: bool) -> bool:
    """An address that a browser reached this relay at: DNS rebinding needs a name, so an address cannot be rebound.

    Never the unspecified or an IPv4-mapped address (relay.hosts.never_this_relay). A machine's other addresses
    only when the relay listens beyond loopback.
    """
    if never_this_relay(name) is not None:
        return False
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or beyond_loopback


class RequestGuard:
    """WSGI middleware around the whole relay: the checks above, then the answer, then the log line."""

    def __init__(self, app: WSGIApp, settings: Settings) -> None:
        self._app = app
        self._settings = settings
        self._allowed_hosts = {parse_host(name) for name in settings.allowed_hosts} | LOCAL_HOSTS
        self._beyond_loopback = not is_loopback(settings.host)  # then it is reached by this machine's addresses
        self._allowed_origins = {parse_origin(origin) for origin in settings.allowed_origins}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        fields: dict[str, Any] = {}
        environ[LOG_FIELDS_KEY] = fields
        statuses: list[int] = []
        page = self._allowed_page(environ)

        def note_status(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            statuses.append(int(status[:3]))
            return start_response(status, headers if page is None else readable_by(page, headers), exc_info)

        preflight = page is not None and is_preflight(environ)
        try:
            self._check(environ, page, preflight=preflight)
        except RelayError as refusal:
            result: Iterable[bytes] = refuse(refusal, note_status)
        else:
            result = answer_preflight(note_status) if preflight else self._app(environ, note_status)
        log_request(environ, statuses[-1] if statuses else 500, started, fields)
        return result

    def _allowed_page(self, environ: Mapping[str, Any]) -> str | None:
        """The request's `Origin` when it is a page in RELAY_ALLOWED_ORIGINS (a browser writes it as the list does)."""
        origin = environ.get("HTTP_ORIGIN")
        return origin if origin is not None and origin.rstrip("/").lower() in self._allowed_origins else None

    def _check(self, environ: dict[str, Any], page: str | None, *, preflight: bool) -> None:
        self._check_host(environ)
        if page is None:
            self._check_origin(environ)
        if preflight:
            return  # a browser's question before an allowed page's request: it never carries the token, nor a body
        self._check_token(environ)
        self._check_length(environ)

    def _check_host(self, environ: Mapping[str, Any]) -> None:
        given = environ.get("HTTP_HOST")
        if given is None and environ.get("SERVER_PROTOCOL") == "HTTP/1.0":
            return  # HTTP/1.0 may leave Host out; no browser does
        host = request_host(given or "")
        if host is not None and (
            self._is_allowed_host(host, environ.get("wsgi.url_scheme", "http"))
            or is_reachable_address(host.name, beyond_loopback=self._beyond_loopback)
        ):
            return
        raise Forbidden(
            "this relay answers only to its own names (127.0.0.1, localhost, [::1]); "
            "to reach it by another name, add that name to RELAY_ALLOWED_HOSTS"
        )

    def _is_allowed_host(self, host: HostPort, scheme: str) -> bool:
        """A name listed for any port, or for the port the request names (none: the scheme's default, as in a URL)."""
        port = host.port or DEFAULT_PORTS.get(scheme, DEFAULT_PORTS["http"])
        return HostPort(host.name) in self._allowed_hosts or HostPort(host.name, port) in self._allowed_hosts

    def _check_origin(self, environ: Mapping[str, Any]) -> None:
        """A browser marks what a page sends: a page the relay did not serve gets nothing done."""
        origin = environ.get("HTTP_ORIGIN")
        site = environ.get("HTTP_SEC_FETCH_SITE")
        if origin is None and site in (None, "same-origin", "none"):
            return  # curl and scripts send neither; "none" is the user typing the URL or a bookmark
        if origin is not None and site in (None, "same-origin") and self._is_own_origin(origin, environ):
            return
        if environ.get("HTTP_SEC_FETCH_MODE") == "navigate":
            # A link from another page: opened, the console would take keystrokes meant for that page.
            raise Forbidden(
                "the relay opens only from its own address: type it in the address bar (a link or form on "
                "another page cannot open it)"
            )
        raise Forbidden(
            "a web page on another origin may not use this relay; to allow one on purpose, "
            "add its origin (such as http://localhost:3000) to RELAY_ALLOWED_ORIGINS"
        )

    def _is_own_origin(self, origin: str, environ: Mapping[str, Any]) -> bool:
        host = environ.get("HTTP_HOST", "")
        return origin.rstrip("/").lower() in (f"http://{host}".lower(), f"https://{host}".lower())

    def _check_token(self, environ: dict[str, Any]) -> None:
        token = self._settings.auth_token
        if token is None:
            environ[AUTHORIZED_KEY] = True
            return
        environ[AUTHORIZED_KEY] = bearer_matches(environ.get("HTTP_AUTHORIZATION", ""), token)
        path = environ.get("PATH_INFO", "")
        if environ[AUTHORIZED_KEY] or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return
        raise Unauthorized("missing or wrong bearer token: send the header 'Authorization: Bearer <RELAY_AUTH_TOKEN>'")

    def _check_length(self, environ: Mapping[str, Any]) -> None:
        length = environ.get("CONTENT_LENGTH") or "0"  # a malformed length is the server's to refuse
        if not (length.isascii() and length.isdigit()):
            return
        limit = body_limit(self._settings, environ.get("PATH_INFO", ""))
        if int(length) > limit.bytes:
            raise body_too_large(limit)


def body_too_large(limit: BodyLimit) -> TooLarge:
    return TooLarge(f"the body is over {limit.setting} ({limit.bytes} bytes): send less or raise the limit")


def is_preflight(environ: Mapping[str, Any]) -> bool:
    """A browser asking whether a page may send a request that is not a simple one (JSON, a token)."""
    return environ.get("REQUEST_METHOD") == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ


def answer_preflight(start_response: Callable[..., Any]) -> list[bytes]:
    """Yes, for the relay's methods and headers (the page's origin is added with every answer's, by readable_by)."""
    start_response("204 No Content", [
        ("Access-Control-Allow-Methods", CORS_METHODS),
        ("Access-Control-Allow-Headers", CORS_HEADERS),
        ("Access-Control-Max-Age", str(CORS_MAX_AGE_S)),
    ])
    return []


def readable_by(page: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`headers` with the allowed page's origin, so its script may read the answer; `Vary: Origin` so no cache
    hands this answer to another page (an existing Vary is kept, Origin added to it)."""
    vary = [value for name, value in headers if name.lower() == "vary"]
    kept = [(name, value) for name, value in headers if name.lower() != "vary"]
    return [*kept, ("Access-Control-Allow-Origin", page), ("Vary", ", ".join([*vary, "Origin"]))]


def refuse(error: RelayError, start_response: Callable[..., Any]) -> list[bytes]:
    """A refusal's answer: the error shape every route uses; a 401 says how to authenticate."""
    status = status_of(error)
    challenge = (("WWW-Authenticate", "Bearer"),) if status == 401 else ()
    return Answer.error(str(error), status, *challenge).start(start_response)


def log_request(environ: Mapping[str, Any], status: int, started: float, fields: Mapping[str, Any]) -> None:
    """One line per request; the console's polling and files only with --verbose."""
    method, path = environ.get("REQUEST_METHOD", "-"), environ.get("PATH_INFO", "-")
    quiet = method == "GET" and (path in QUIET_PATHS or path.startswith(PUBLIC_PREFIXES))
    level = logging.DEBUG if quiet else logging.INFO
    if log.isEnabledFor(level):
        elapsed_ms = (time.perf_counter() - started) * 1000
        inference_id, sent = fields.get("inference_id", "-"), fields.get("messages_sent", "-")
        log.log(level, REQUEST_LINE, method, path, status, elapsed_ms, inference_id, sent)
