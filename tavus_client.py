"""A thin client for the Tavus REST API v2, and a command line over it.

Just what Echo Mode needs: personas (and PALs, their newer name), conversations,
replicas. One `requests.Session`, a timeout on every call, retries from
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
ALREADY_ENDED_STATUSES = (400, 404, 409, 410)


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
        replica_id: str | None = None,
        conversation_name: str | None = None,
        conversational_context: str | None = None,
        custom_greeting: str | None = None,
        callback_url: str | None = None,
        audio_only: bool | None = None,
        test_mode: bool | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a (billed) conversation. Never retried once it may have reached Tavus."""
        if not persona_id and not pal_id:
            raise ValueError("create_conversation needs persona_id or pal_id")
        body = _without_none(
            persona_id=persona_id,
            pal_id=pal_id,
            replica_id=replica_id,
            conversation_name=conversation_name,
            conversational_context=conversational_context,
            custom_greeting=custom_greeting,
            callback_url=callback_url,
            audio_only=audio_only,
            test_mode=test_mode,
            properties=dict(properties) if properties else None,
        )
        return self._request("POST", "/conversations", json=body)

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        return self._request("GET", f"/conversations/{conversation_id}")

    def list_conversations(
        self, limit: int | None = None, page: int | None = None, status: str | None = None
    ) -> dict[str, Any]:
        return self._request("GET", "/conversations", params=_without_none(limit=limit, page=page, status=status))

    def end_conversation(self, conversation_id: str) -> dict[str, Any]:
        """End a conversation so it stops billing; safe to call twice.

        A conversation that has already ended, or that Tavus does not know,
        is what the caller wanted: that answer (400/404/409/410) comes back as
        `{"conversation_id", "status": "ended", "already_ended": true}`
        instead of an error. Other failures (a bad key, no connection) raise.
        """
        try:
            answer = self._request("POST", f"/conversations/{conversation_id}/end")
        except TavusAPIError as error:
            if error.status_code not in ALREADY_ENDED_STATUSES:
                raise
            return {"conversation_id": conversation_id, "status": "ended", "already_ended": True}
        return answer or {"conversation_id": conversation_id, "status": "ended"}

    def delete_conversation(self, conversation_id: str) -> None:
        self._request("DELETE", f"/conversations/{conversation_id}")

    # --- replicas (faces) ---

    def list_replicas(self, limit: int | None = None, page: int | None = None) -> dict[str, Any]:
        return self._request("GET", "/replicas", params=_without_none(limit=limit, page=page))

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python tavus_client.py",
        description="Call the Tavus API; prints the JSON answer. Reads TAVUS_API_KEY from the environment or .env.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    persona = commands.add_parser("create-persona", help="create an echo persona (or PAL with --pal)")
    persona.add_argument("--name", default="Echo Assistant", help="persona name (default: Echo Assistant)")
    persona.add_argument("--pal", action="store_true", help="create a PAL (POST /pals) instead of a persona")
    persona.add_argument("--replica-id", help="default replica (face) of the persona")
    persona.add_argument("--system-prompt", help="system prompt (only needed for pipeline_mode full)")

    conversation = commands.add_parser("create-conversation", help="start a conversation (billed until it ends)")
    owner = conversation.add_mutually_exclusive_group(required=True)
    owner.add_argument("--persona-id", help="the echo persona to use")
    owner.add_argument("--pal-id", help="the echo PAL to use")
    conversation.add_argument("--replica-id", help="replica (face) to use instead of the persona's default")
    conversation.add_argument("--name", help="conversation name")
    conversation.add_argument("--context", help="conversational context")
    conversation.add_argument("--greeting", help="custom greeting the face says first")
    conversation.add_argument("--callback-url", help="URL Tavus posts conversation events to")
    conversation.add_argument("--max-call-duration", type=int, metavar="S", help="end the call after S seconds")

    for name, help_text in (
        ("get-conversation", "show one conversation"),
        ("end-conversation", "end a conversation (stops billing; fine if it already ended)"),
        ("delete-persona", "delete a persona"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("id")

    for name, help_text in (
        ("list-conversations", "list conversations"),
        ("list-personas", "list personas"),
        ("list-replicas", "list replicas (faces)"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--limit", type=int)
        command.add_argument("--page", type=int)
        if name == "list-conversations":
            command.add_argument("--status", choices=["active", "ended"])
    return parser


def run_command(client: TavusClient, args: argparse.Namespace) -> Any:
    match args.command:
        case "create-persona" if args.pal:
            return client.create_pal(args.name, default_face_id=args.replica_id, system_prompt=args.system_prompt)
        case "create-persona":
            return client.create_persona(args.name, default_replica_id=args.replica_id, system_prompt=args.system_prompt)
        case "create-conversation":
            return client.create_conversation(
                persona_id=args.persona_id,
                pal_id=args.pal_id,
                replica_id=args.replica_id,
                conversation_name=args.name,
                conversational_context=args.context,
                custom_greeting=args.greeting,
                callback_url=args.callback_url,
                properties={"max_call_duration": args.max_call_duration} if args.max_call_duration else None,
            )
        case "get-conversation":
            return client.get_conversation(args.id)
        case "end-conversation":
            return client.end_conversation(args.id)
        case "delete-persona":
            client.delete_persona(args.id)
            return {"persona_id": args.id, "deleted": True}
        case "list-conversations":
            return client.list_conversations(args.limit, args.page, args.status)
        case "list-personas":
            return client.list_personas(args.limit, args.page)
        case "list-replicas":
            return client.list_replicas(args.limit, args.page)
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
