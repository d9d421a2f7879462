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
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from config import DEFAULT_TAVUS_API_BASE_URL, ConfigError, Settings

__version__ = "0.1.0"

DEFAULT_TIMEOUT_S = 30.0
RETRIES = 3
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
    ) -> None:
        if not api_key:
            raise ValueError("a Tavus API key is required: set TAVUS_API_KEY")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        self._session = session or requests.Session()
        self._session.headers.update({"x-api-key": api_key, "User-Agent": f"tavus-echo-relay/{__version__}"})
        self._session.mount(self.base_url + "/", HTTPAdapter(max_retries=_retry(SAFE_METHODS, retry_backoff_s)))
        self._session.mount(
            self.base_url + ENDABLE_PREFIX, HTTPAdapter(max_retries=_retry(SAFE_METHODS | {"POST"}, retry_backoff_s))
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

    def get_pal(self, pal_id: str) -> dict[str, Any]:
        return self._request("GET", f"/pals/{pal_id}")

    def list_pals(self, limit: int | None = None, page: int | None = None) -> dict[str, Any]:
        return self._request("GET", "/pals", params=_without_none(limit=limit, page=page))

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
        try:
            response = self._session.request(
                method, self.base_url + path, json=json, params=params, timeout=self.timeout, allow_redirects=False
            )
        except requests.Timeout:
            raise self._error(f"Tavus API {method} {path} timed out after {self.timeout:g} s", None, None, method, path) from None
        except requests.RequestException as error:
            reason = f"could not connect to {urlparse(self.base_url).netloc} ({type(error).__name__})"
            raise self._error(f"Tavus API {method} {path} failed: {reason}", None, None, method, path) from None
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

    def _error(self, message: str, status: int | None, body: Any, method: str, path: str) -> TavusAPIError:
        """Build the error, scrubbing the key should Tavus ever echo it back."""
        return TavusAPIError(
            message.replace(self._api_key, "***"), status_code=status, body=body, method=method, path=path
        )


def _retry(methods: frozenset[str], backoff_s: float) -> Retry:
    return Retry(
        total=RETRIES,
        connect=RETRIES,
        read=RETRIES,
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


NO_FACE = "a PAL needs a face: pass --face-id F (list the faces you can use: python tavus_client.py list-faces)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python tavus_client.py",
        description="Call the Tavus API; prints the JSON answer. Reads TAVUS_API_KEY from the environment or .env.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    persona = commands.add_parser("create-persona", help="create an echo persona (or a PAL with --pal)")
    persona.add_argument("--name", default="Echo Assistant", help="persona name (default: Echo Assistant)")
    persona.add_argument("--pal", action="store_true", help="create a PAL (POST /pals) instead of a persona")
    persona.add_argument("--face-id", "--replica-id", dest="face_id", help="default face (required for a PAL)")
    persona.add_argument("--system-prompt", help="system prompt (only needed for pipeline_mode full)")

    conversation = commands.add_parser("create-conversation", help="start a conversation (billed until it ends)")
    owner = conversation.add_mutually_exclusive_group(required=True)
    owner.add_argument("--persona-id", help="the echo persona to use")
    owner.add_argument("--pal-id", help="the echo PAL to use")
    face = conversation.add_mutually_exclusive_group()
    face.add_argument("--face-id", help="face to use instead of the PAL's default")
    face.add_argument("--replica-id", help="replica to use instead of the persona's default (legacy name of a face)")
    conversation.add_argument("--name", help="conversation name")
    conversation.add_argument("--context", help="conversational context")
    conversation.add_argument("--greeting", help="custom greeting the face says first")
    conversation.add_argument("--callback-url", help="URL Tavus posts conversation events to")
    conversation.add_argument("--max-call-duration", type=int, metavar="S", help="end the call after S seconds")
    conversation.add_argument(
        "--participant-left-timeout", type=int, metavar="S", help="end the call S seconds after the last participant left"
    )
    conversation.add_argument(
        "--participant-absent-timeout", type=int, metavar="S", help="end the call if nobody joins within S seconds"
    )
    conversation.add_argument("--private", action="store_true", help="require a meeting token to join (require_auth)")
    conversation.add_argument("--audio-only", action="store_true", help="an audio-only conversation")
    conversation.add_argument("--test-mode", action="store_true", help="create it without a face joining (not billed)")

    get = commands.add_parser("get-conversation", help="show one conversation")
    get.add_argument("id")
    get.add_argument("--verbose", action="store_true", help="include the conversation's events")

    for name, help_text in (
        ("end-conversation", "end a conversation (stops billing; fine if it already ended)"),
        ("get-persona", "show one persona"),
        ("delete-persona", "delete a persona"),
        ("get-pal", "show one PAL"),
        ("delete-pal", "delete a PAL"),
    ):
        commands.add_parser(name, help=help_text).add_argument("id")

    for name, help_text in (
        ("list-conversations", "list conversations"),
        ("list-personas", "list personas"),
        ("list-pals", "list PALs"),
        ("list-faces", "list faces (yours and Tavus's stock faces)"),
        ("list-replicas", "list replicas (the legacy name of faces)"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--limit", type=int)
        command.add_argument("--page", type=int)
        if name == "list-conversations":
            command.add_argument("--status", choices=["active", "ended"])
        if name in ("list-faces", "list-replicas"):
            command.add_argument("--verbose", action="store_true", help="include each face's type and details")
            command.add_argument("--type", choices=["user", "system"], help="user: your faces; system: stock faces")
    return parser


def conversation_properties(args: argparse.Namespace) -> dict[str, Any] | None:
    properties = _without_none(
        max_call_duration=args.max_call_duration,
        participant_left_timeout=args.participant_left_timeout,
        participant_absent_timeout=args.participant_absent_timeout,
    )
    return properties or None


def run_command(client: TavusClient, args: argparse.Namespace) -> Any:
    match args.command:
        case "create-persona" if args.pal:
            return client.create_pal(args.name, default_face_id=args.face_id, system_prompt=args.system_prompt)
        case "create-persona":
            return client.create_persona(args.name, default_replica_id=args.face_id, system_prompt=args.system_prompt)
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
        case "get-persona":
            return client.get_persona(args.id)
        case "delete-persona":
            client.delete_persona(args.id)
            return {"persona_id": args.id, "deleted": True}
        case "get-pal":
            return client.get_pal(args.id)
        case "delete-pal":
            client.delete_pal(args.id)
            return {"pal_id": args.id, "deleted": True}
        case "list-conversations":
            return client.list_conversations(args.limit, args.page, args.status)
        case "list-personas":
            return client.list_personas(args.limit, args.page)
        case "list-pals":
            return client.list_pals(args.limit, args.page)
        case "list-faces":
            return client.list_faces(args.limit, args.page, verbose=args.verbose, face_type=args.type)
        case "list-replicas":
            return client.list_replicas(args.limit, args.page, verbose=args.verbose, replica_type=args.type)
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "create-persona" and args.pal and not args.face_id:
        parser.error(NO_FACE)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not settings.tavus_api_key:
        print("error: set TAVUS_API_KEY (in the environment or .env) to your Tavus API key", file=sys.stderr)
        return 2
    client = TavusClient(settings.tavus_api_key, base_url=settings.tavus_api_base_url)
    try:
        answer = run_command(client, args)
    except TavusAPIError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(json.dumps(answer, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
