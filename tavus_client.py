"""A thin client for the Tavus REST API v2, and a command line over it.

Just what Echo Mode needs: personas (and PALs, their newer name), conversations,
faces (and replicas, their older name). One `requests.Session`, a timeout on every call, retries from
urllib3's `Retry` for what is safe to repeat, and one error type whose message
says which call failed and why. The API key never appears in a repr, a log
line or an error.

    python tavus_client.py --help
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.util.retry import Retry

from config import DEFAULT_TAVUS_API_BASE_URL, DEFAULT_TAVUS_TIMEOUT_S, ConfigError, Settings
from relay.logs import quiet_other_loggers
from relay.options import OneLineParser, UsageError

__version__ = "0.1.0"

DEFAULT_TIMEOUT_S = DEFAULT_TAVUS_TIMEOUT_S
RETRIES = 3
READ_RETRIES = 1  # a Tavus that took the request and never answered is asked once more, not three times
SLOW_NOTICE_S = 5.0  # `on_slow` hears of a call still unanswered after this long (or after the timeout, if shorter)
MISSING_KEY = "set TAVUS_API_KEY (in the environment or .env) to your Tavus API key"
RETRY_BACKOFF_S = 0.5  # urllib3 doubles it per retry after the first, which is immediate
RETRY_STATUSES = (429, 502, 503, 504)
SAFE_METHODS = frozenset({"GET", "DELETE"})
# Under /conversations/ the only POST is /conversations/{id}/end, which is safe to repeat.
# POST /conversations itself (no trailing slash) is not under this prefix: retrying it
# after it may have reached Tavus could start a second billed conversation.
ENDABLE_PREFIX = "/conversations/"


class TavusAPIError(Exception):
    """A Tavus API call failed: an HTTP error (`status_code`) or no answer at all (`status_code` None)."""

    def __init__(self, message: str, *, status_code: int | None, body: Any = None, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.method = method
        self.path = path


class TavusClient:
    """One session against one Tavus API base URL."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_TAVUS_API_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT_S,
        session: requests.Session | None = None,
        retry_backoff_s: float = RETRY_BACKOFF_S,
        on_slow: Callable[[str], None] | None = None,
    ) -> None:
        """`on_slow(message)` is called (on a timer thread) when a call is still unanswered after SLOW_NOTICE_S."""
        if not api_key:
            raise ConfigError(MISSING_KEY)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._on_slow = on_slow
        self._api_key = api_key
        self._session = session or requests.Session()
        self._session.headers.update({"x-api-key": api_key, "User-Agent": f"tavus-echo-relay/{__version__}"})
        self._session.mount(self.base_url + "/", HTTPAdapter(max_retries=_retry(SAFE_METHODS, retry_backoff_s)))
        self._session.mount(
            self.base_url + ENDABLE_PREFIX, HTTPAdapter(max_retries=_retry(SAFE_METHODS | {"POST"}, retry_backoff_s))
        )

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> TavusClient:
        """The client the settings describe: TAVUS_API_KEY, TAVUS_API_BASE_URL, TAVUS_TIMEOUT."""
        return cls(
            settings.tavus_api_key or "", base_url=settings.tavus_api_base_url, timeout=settings.tavus_timeout_s, **options
        )

    def __repr__(self) -> str:
        return f"TavusClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    # --- personas (pipeline_mode "echo" for Echo Mode) ---

    def create_persona(
        self,
        name: str,
        *,
        pipeline_mode: str = "echo",
        system_prompt: str | None = None,
        default_replica_id: str | None = None,
        layers: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        body = _without_none(
            persona_name=name,
            pipeline_mode=pipeline_mode,
            system_prompt=system_prompt,
            default_replica_id=default_replica_id,
            layers=layers,
            **extra,
        )
        return self._request("POST", "/personas", json=body)

    def get_persona(self, persona_id: str) -> dict[str, Any]:
        return self._request("GET", f"/personas/{persona_id}")

    def list_personas(self, limit: int | None = None, page: int | None = None) -> dict[str, Any]:
        return self._request("GET", "/personas", params=_without_none(limit=limit, page=page))

    def patch_persona(self, persona_id: str, operations: Sequence[Mapping[str, Any]]) -> Any:
        """Change a persona with a JSON Patch list (`[{"op": "replace", "path": "/persona_name", "value": "E"}]`)."""
        return self._request("PATCH", f"/personas/{persona_id}", json=[dict(operation) for operation in operations])

    def delete_persona(self, persona_id: str) -> None:
        self._request("DELETE", f"/personas/{persona_id}")

    # --- PALs: Tavus's newer name for personas (pal_name, pal_id, default_face_id) ---

    def create_pal(
        self,
        name: str,
        *,
        pipeline_mode: str = "echo",
        system_prompt: str | None = None,
        default_face_id: str | None = None,
        layers: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        body = _without_none(
            pal_name=name,
            pipeline_mode=pipeline_mode,
            system_prompt=system_prompt,
            default_face_id=default_face_id,
            layers=layers,
            **extra,
        )
        return self._request("POST", "/pals", json=body)

    def get_pal(self, pal_id: str, *, include_settings: bool = False) -> dict[str, Any]:
        """One PAL; `include_settings` adds its layers and pipeline settings."""
        return self._request("GET", f"/pals/{pal_id}", params={"include_settings": "true"} if include_settings else None)

    def list_pals(
        self, limit: int | None = None, page: int | None = None, *, pal_type: str | None = None, sort: str | None = None
    ) -> dict[str, Any]:
        """PALs; `pal_type` "user" or "system", `sort` "asc" or "desc" (by creation)."""
        return self._request("GET", "/pals", params=_without_none(limit=limit, page=page, pal_type=pal_type, sort=sort))

    def patch_pal(self, pal_id: str, operations: Sequence[Mapping[str, Any]]) -> Any:
        """Change a PAL with a JSON Patch list, as patch_persona."""
        return self._request("PATCH", f"/pals/{pal_id}", json=[dict(operation) for operation in operations])

    def delete_pal(self, pal_id: str) -> None:
        self._request("DELETE", f"/pals/{pal_id}")

    # --- conversations ---

    def create_conversation(
        self,
        *,
        persona_id: str | None = None,
        pal_id: str | None = None,
        face_id: str | None = None,
        replica_id: str | None = None,
        conversation_name: str | None = None,
        conversational_context: str | None = None,
        custom_greeting: str | None = None,
        callback_url: str | None = None,
        audio_only: bool | None = None,
        test_mode: bool | None = None,
        require_auth: bool | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a (billed) conversation. Never retried once it may have reached Tavus.

        A PAL's conversation names its face `face_id`; a persona's, `replica_id`
        (the legacy name). `require_auth` makes the room private: the answer
        then carries the `meeting_token` needed to join it. `test_mode` creates
        it without a face joining, and without billing.
        """
        if not persona_id and not pal_id:
            raise ValueError("create_conversation needs persona_id or pal_id")
        body = _without_none(
            persona_id=persona_id,
            pal_id=pal_id,
            face_id=face_id,
            replica_id=replica_id,
            conversation_name=conversation_name,
            conversational_context=conversational_context,
            custom_greeting=custom_greeting,
            callback_url=callback_url,
            audio_only=audio_only,
            test_mode=test_mode,
            require_auth=require_auth,
            properties=dict(properties) if properties else None,
        )
        return self._request("POST", "/conversations", json=body)

    def get_conversation(self, conversation_id: str, *, verbose: bool = False) -> dict[str, Any]:
        """One conversation; `verbose` adds its events."""
        return self._request("GET", f"/conversations/{conversation_id}", params={"verbose": "true"} if verbose else None)

    def list_conversations(
        self, limit: int | None = None, page: int | None = None, status: str | None = None
    ) -> dict[str, Any]:
        return self._request("GET", "/conversations", params=_without_none(limit=limit, page=page, status=status))

    def end_conversation(self, conversation_id: str) -> dict[str, Any]:
        """End a conversation so it stops billing; safe to call twice.

        When Tavus refuses to end it, the conversation is looked up: if its
        status is `ended`, that is what the caller wanted and the answer is
        `{"conversation_id", "status": "ended", "already_ended": true}`. A
        status code alone never decides it: Tavus answers 400
        `Invalid conversation_id` for a mistyped id too, and that is an error.
        """
        try:
            answer = self._request("POST", f"/conversations/{conversation_id}/end")
        except TavusAPIError as error:
            if error.status_code is None or not self._has_ended(conversation_id):
                raise
            return {"conversation_id": conversation_id, "status": "ended", "already_ended": True}
        return answer or {"conversation_id": conversation_id, "status": "ended"}

    def _has_ended(self, conversation_id: str) -> bool:
        try:
            return self.get_conversation(conversation_id).get("status") == "ended"
        except TavusAPIError:
            return False

    def delete_conversation(self, conversation_id: str) -> None:
        self._request("DELETE", f"/conversations/{conversation_id}")

    # --- faces (replicas, their legacy name) ---

    def list_faces(
        self, limit: int | None = None, page: int | None = None, *, verbose: bool = False, face_type: str | None = None
    ) -> dict[str, Any]:
        """Faces you can use (`face_type` "user" for yours, "system" for Tavus's stock faces)."""
        params = _without_none(limit=limit, page=page, verbose="true" if verbose else None, face_type=face_type)
        return self._request("GET", "/faces", params=params)

    def list_replicas(
        self, limit: int | None = None, page: int | None = None, *, verbose: bool = False, replica_type: str | None = None
    ) -> dict[str, Any]:
        """The legacy path of list_faces."""
        params = _without_none(limit=limit, page=page, verbose="true" if verbose else None, replica_type=replica_type)
        return self._request("GET", "/replicas", params=params)

    # --- one way in and out ---

    def _request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """Every call: a timeout, no redirects (they could carry the key elsewhere), one error type."""
        notice = self._slow_notice(method, path)
        try:
            response = self._session.request(
                method, self.base_url + path, json=json, params=params, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as error:
            reason = self._no_answer(error)
            raise self._error(f"Tavus API {method} {path} failed: {reason}", None, None, method, path) from None
        finally:
            if notice is not None:
                notice.cancel()
        body = _body_of(response)
        if response.status_code >= 300:
            reason = _reason(body) or response.reason or "no reason given"
            raise self._error(
                f"Tavus API {method} {path} failed with {response.status_code}: {reason}",
                response.status_code,
                body,
                method,
                path,
            )
        return body

    def _slow_notice(self, method: str, path: str) -> threading.Timer | None:
        """A timer telling `on_slow` that this call is taking long, so a terminal is not silent for a minute."""
        if self._on_slow is None:
            return None
        message = f"waiting for Tavus to answer {method} {path} (up to {self.timeout:g} s, TAVUS_TIMEOUT) ..."
        timer = threading.Timer(min(SLOW_NOTICE_S, self.timeout), self._on_slow, args=(message,))
        timer.daemon = True
        timer.start()
        return timer

    def _no_answer(self, error: requests.RequestException) -> str:
        """Why no answer came: Tavus took the request and did not answer in time, or it could not be reached."""
        cause = error.args[0] if error.args else None
        if isinstance(error, requests.ReadTimeout):
            return f"Tavus did not answer within {self.timeout:g} s (TAVUS_TIMEOUT)"
        if isinstance(cause, MaxRetryError) and isinstance(cause.reason, ReadTimeoutError):
            return f"Tavus did not answer within {self.timeout:g} s (TAVUS_TIMEOUT), asked twice"
        host = urlparse(self.base_url).netloc
        if isinstance(error, requests.ConnectTimeout):
            return f"could not connect to {host} within {self.timeout:g} s (TAVUS_TIMEOUT)"
        return f"could not connect to {host} ({type(error).__name__})"

    def _error(self, message: str, status: int | None, body: Any, method: str, path: str) -> TavusAPIError:
        """Build the error, scrubbing the key should Tavus ever echo it back."""
        return TavusAPIError(
            message.replace(self._api_key, "***"), status_code=status, body=body, method=method, path=path
        )


def _retry(methods: frozenset[str], backoff_s: float) -> Retry:
    return Retry(
        total=RETRIES,
        connect=RETRIES,
        read=READ_RETRIES,
        status=RETRIES,
        redirect=0,
        allowed_methods=methods,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_s,
        raise_on_status=False,  # the last answer is turned into a TavusAPIError with its status
        respect_retry_after_header=True,
    )


def _without_none(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _body_of(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text[:300]


def _reason(body: Any) -> str | None:
    """Tavus puts its reason in `error` or in `message`, depending on the endpoint."""
    if isinstance(body, Mapping):
        reason = body.get("error") or body.get("message")
        return str(reason) if reason else None
    text = str(body or "").strip()
    return text or None


def persona_id_of(created: Mapping[str, Any]) -> str:
    """The id from create_persona or create_pal, whichever name Tavus answered with."""
    return str(created.get("pal_id") or created.get("persona_id"))


# --- command line ---------------------------------------------------------------


NO_FACE = (
    "a PAL needs a face: pass --face-id F (or set TAVUS_REPLICA_ID); "
    "list the faces you can use with: python tavus_client.py list-faces"
)
ECHO_HAS_NO_PROMPT = (
    "--system-prompt is not for an echo persona: it speaks only what you send it, and Tavus takes "
    "system_prompt (and context) only for pipeline_mode full; drop --system-prompt"
)
PATCH_EXAMPLE = '[{"op": "replace", "path": "/persona_name", "value": "Echo 2"}]'


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python tavus_client.py",
        description="Call the Tavus API; prints the JSON answer. Reads TAVUS_API_KEY from the environment or .env.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, summary: str, details: str = "") -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. {details}".strip())

    persona = command("create-persona", "create an echo persona (or a PAL with --pal)",
                      "Sends pipeline_mode echo: the face says what the relay sends, nothing else.")
    persona.add_argument("--name", default="Echo Assistant", help="its name (default: Echo Assistant)")
    persona.add_argument("--pal", action="store_true", help="create a PAL (POST /pals, Tavus's newer name) instead")
    persona.add_argument("--face-id", "--replica-id", dest="face_id", metavar="F",
                         help="its default face (a PAL needs one: this or TAVUS_REPLICA_ID)")
    persona.add_argument("--system-prompt", metavar="TEXT",
                         help="refused: Tavus takes a system prompt only for pipeline_mode full, never for echo")

    conversation = command("create-conversation", "start a conversation (billed until it ends)",
                           "Prints its conversation_url (and meeting_token with --private).")
    owner = conversation.add_mutually_exclusive_group(required=True)
    owner.add_argument("--persona-id", metavar="ID", help="the echo persona to use, e.g. p123")
    owner.add_argument("--pal-id", metavar="ID", help="the echo PAL to use, e.g. pal123")
    face = conversation.add_mutually_exclusive_group()
    face.add_argument("--face-id", metavar="F", help="face to use instead of the PAL's default")
    face.add_argument("--replica-id", metavar="R", help="replica to use instead of the persona's default (a face's legacy name)")
    conversation.add_argument("--name", help="conversation name")
    conversation.add_argument("--context", help="conversational context")
    conversation.add_argument("--greeting", help="custom greeting the face says first")
    conversation.add_argument("--callback-url", metavar="URL", help="URL Tavus posts conversation events to")
    conversation.add_argument("--max-call-duration", type=int, metavar="S", help="end the call after S seconds")
    conversation.add_argument(
        "--participant-left-timeout", type=int, metavar="S", help="end the call S seconds after the last participant left"
    )
    conversation.add_argument(
        "--participant-absent-timeout", type=int, metavar="S", help="end the call if nobody joins within S seconds"
    )
    conversation.add_argument(
        "--properties", type=_json_object, metavar="JSON", default={},
        help="more conversation properties as a JSON object, e.g. '{\"language\": \"english\", \"enable_recording\": true}'"
        " (any Tavus documents, passed as given); merged with the flags above",
    )
    conversation.add_argument("--private", action="store_true", help="require a meeting token to join (require_auth)")
    conversation.add_argument("--audio-only", action="store_true", help="an audio-only conversation")
    conversation.add_argument("--test-mode", action="store_true", help="create it without a face joining (not billed)")

    for name, summary, what in (
        ("get-conversation", "show one conversation", "the conversation's id, e.g. c123"),
        ("end-conversation", "end a conversation (stops billing; fine if it already ended)", "the conversation's id"),
        ("delete-conversation", "delete a conversation (Tavus ends it first if it is active)", "the conversation's id"),
        ("get-persona", "show one persona", "the persona's id, e.g. p123"),
        ("delete-persona", "delete a persona", "the persona's id"),
        ("get-pal", "show one PAL", "the PAL's id, e.g. pal123"),
        ("delete-pal", "delete a PAL", "the PAL's id"),
        ("patch-persona", "change a persona with a JSON Patch list", "the persona's id"),
        ("patch-pal", "change a PAL with a JSON Patch list", "the PAL's id"),
    ):
        one = command(name, summary)
        one.add_argument("id", help=what)
        if name.startswith("patch-"):
            example = PATCH_EXAMPLE.replace("persona_name", "pal_name") if name == "patch-pal" else PATCH_EXAMPLE
            one.add_argument("patch", type=_json_patch, help=f"the operations (RFC 6902), e.g. '{example}'")
    get = commands.choices["get-conversation"]
    get.add_argument("--verbose", action="store_true", help="include the conversation's events")
    commands.choices["get-pal"].add_argument(
        "--include-settings", action="store_true", help="include its layers and pipeline settings"
    )

    for name, summary in (
        ("list-conversations", "list conversations"),
        ("list-personas", "list personas"),
        ("list-pals", "list PALs"),
        ("list-faces", "list faces (yours and Tavus's stock faces)"),
        ("list-replicas", "list replicas (the legacy name of faces)"),
    ):
        listing = command(name, summary, "Prints {\"data\": [...], \"total_count\": N}.")
        listing.add_argument("--limit", type=int, metavar="N", help="at most N per page")
        listing.add_argument("--page", type=int, metavar="N", help="which page (from 1)")
        if name == "list-conversations":
            listing.add_argument("--status", choices=["active", "ended"], help="only active or only ended ones")
        if name in ("list-faces", "list-replicas", "list-pals"):
            listing.add_argument("--type", choices=["user", "system"], help="user: yours; system: Tavus's stock ones")
        if name in ("list-faces", "list-replicas"):
            listing.add_argument("--verbose", action="store_true", help="include each face's type and details")
        if name == "list-pals":
            listing.add_argument("--sort", choices=["asc", "desc"], help="oldest (asc) or newest (desc) first")
    return parser


def _json_object(text: str) -> dict[str, Any]:
    value = _json(text, "--properties", "an object such as '{\"language\": \"english\"}'")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--properties must be a JSON object such as '{\"language\": \"english\"}'")
    return value


def _json_patch(text: str) -> list[dict[str, Any]]:
    value = _json(text, "the patch", f"a list such as '{PATCH_EXAMPLE}'")
    if not isinstance(value, list) or not all(isinstance(operation, dict) for operation in value):
        raise argparse.ArgumentTypeError(f"the patch must be a JSON list of operations such as '{PATCH_EXAMPLE}'")
    return value


def _json(text: str, what: str, shape: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{what} is not valid JSON ({error}): give {shape}") from None


def conversation_properties(args: argparse.Namespace) -> dict[str, Any] | None:
    """The flags' properties merged with --properties; one given both ways is a mistake, not a silent choice."""
    flags = _without_none(
        max_call_duration=args.max_call_duration,
        participant_left_timeout=args.participant_left_timeout,
        participant_absent_timeout=args.participant_absent_timeout,
    )
    if twice := sorted(set(flags) & set(args.properties)):
        flag = "--" + twice[0].replace("_", "-")
        raise UsageError(f"{twice[0]} is given twice ({flag} and --properties): give it once")
    return {**args.properties, **flags} or None


def run_command(client: TavusClient, args: argparse.Namespace, settings: Settings) -> Any:
    match args.command:
        case "create-persona" if args.system_prompt:
            raise UsageError(ECHO_HAS_NO_PROMPT)
        case "create-persona" if args.pal:
            return client.create_pal(args.name, default_face_id=args.face_id or settings.tavus_replica_id)
        case "create-persona":
            return client.create_persona(args.name, default_replica_id=args.face_id)
        case "create-conversation":
            return client.create_conversation(
                persona_id=args.persona_id,
                pal_id=args.pal_id,
                face_id=args.face_id,
                replica_id=args.replica_id,
                conversation_name=args.name,
                conversational_context=args.context,
                custom_greeting=args.greeting,
                callback_url=args.callback_url,
                audio_only=args.audio_only or None,
                test_mode=args.test_mode or None,
                require_auth=args.private or None,
                properties=conversation_properties(args),
            )
        case "get-conversation":
            return client.get_conversation(args.id, verbose=args.verbose)
        case "end-conversation":
            return client.end_conversation(args.id)
        case "delete-conversation":
            client.delete_conversation(args.id)
            return {"conversation_id": args.id, "deleted": True}
        case "get-persona":
            return client.get_persona(args.id)
        case "patch-persona":
            return client.patch_persona(args.id, args.patch) or {"persona_id": args.id, "patched": True}
        case "delete-persona":
            client.delete_persona(args.id)
            return {"persona_id": args.id, "deleted": True}
        case "get-pal":
            return client.get_pal(args.id, include_settings=args.include_settings)
        case "patch-pal":
            return client.patch_pal(args.id, args.patch) or {"pal_id": args.id, "patched": True}
        case "delete-pal":
            client.delete_pal(args.id)
            return {"pal_id": args.id, "deleted": True}
        case "list-conversations":
            return client.list_conversations(args.limit, args.page, args.status)
        case "list-personas":
            return client.list_personas(args.limit, args.page)
        case "list-pals":
            return client.list_pals(args.limit, args.page, pal_type=args.type, sort=args.sort)
        case "list-faces":
            return client.list_faces(args.limit, args.page, verbose=args.verbose, face_type=args.type)
        case "list-replicas":
            return client.list_replicas(args.limit, args.page, verbose=args.verbose, replica_type=args.type)
    raise AssertionError(f"unhandled command {args.command}")


def exit_with(message: str, code: int) -> int:
    """The command line's one way out on an error: one line on stderr, and the exit code to return."""
    print(f"error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """2: the command line or a setting is wrong (nothing was sent); 1: Tavus failed or did not answer."""
    quiet_other_loggers(verbose=False)
    try:
        args = build_parser().parse_args(argv)
        settings = Settings.from_env()
        if args.command == "create-persona" and args.pal and not (args.face_id or settings.tavus_replica_id):
            raise UsageError(NO_FACE)
        client = TavusClient.from_settings(settings, on_slow=lambda message: print(message, file=sys.stderr))
    except (UsageError, ConfigError) as error:
        return exit_with(str(error), 2)
    try:
        answer = run_command(client, args, settings)
    except UsageError as error:
        return exit_with(str(error), 2)
    except TavusAPIError as error:
        return exit_with(str(error), 1)
    finally:
        client.close()
    print(json.dumps(answer, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
