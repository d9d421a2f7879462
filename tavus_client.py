"""A thin client for the Tavus REST API v2 (`python tavus_client.py` runs its command line, relay/tavus_cli.py).

Just what Echo Mode needs: personas (and PALs, their newer name), conversations,
faces (and replicas, their older name). One `requests.Session`, a timeout on every call, retries from
urllib3's `Retry` for what is safe to repeat, and one error type whose message
says which call failed and why. The API key never appears in a repr, a log
line or an error.
"""

from __future__ import annotations

import runpy
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.util.retry import Retry

from config import (
    DEFAULT_TAVUS_API_BASE_URL,
    DEFAULT_TAVUS_RETRY_BACKOFF_S,
    DEFAULT_TAVUS_TIMEOUT_S,
    ConfigError,
    Settings,
)

__version__ = "0.1.0"

DEFAULT_TIMEOUT_S = DEFAULT_TAVUS_TIMEOUT_S
RETRIES = 3
READ_RETRIES = 1  # a Tavus that took the request and never answered is asked once more, not three times
# `on_slow` hears of a call still unanswered after SLOW_NOTICE_S (or after the timeout, if shorter), then again
# every SLOW_REPEAT_S while the wait goes on: a terminal is never silent for long. Not settings: what the user
# may change is how long to wait (TAVUS_TIMEOUT), not how often to hear about it.
SLOW_NOTICE_S = 5.0
SLOW_REPEAT_S = 15.0
MISSING_KEY = "set TAVUS_API_KEY (in the environment or .env) to your Tavus API key"
RETRY_BACKOFF_S = DEFAULT_TAVUS_RETRY_BACKOFF_S  # TAVUS_RETRY_BACKOFF: urllib3 doubles it per retry after the first
RETRY_STATUSES = (429, 502, 503, 504)
SAFE_METHODS = frozenset({"GET", "DELETE"})
# Under /conversations/ the only POST is /conversations/{id}/end, which is safe to repeat.
# POST /conversations itself (no trailing slash) is not under this prefix: retrying it
# after it may have reached Tavus could start a second billed conversation.
ENDABLE_PREFIX = "/conversations/"


class TavusAPIError(Exception):
    """A Tavus API call failed: an HTTP error (`status_code`) or no answer at all (`status_code` None)."""

    def __init__(self, message: str, *, status_code: int | None, body: Any = None, method: str = "", path: str = ""):
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
        read_retries: int = READ_RETRIES,
        on_slow: Callable[[str], None] | None = None,
        slow_notice_s: float | None = None,
        slow_repeat_s: float | None = None,
    ) -> None:
        """`on_slow(message)` is called (on a thread of its own) while a call waits for its answer.

        First after `slow_notice_s` (SLOW_NOTICE_S), then every `slow_repeat_s`
        (SLOW_REPEAT_S). `read_retries`: how often a call that may be repeated is
        asked again when Tavus took it and did not answer (0: asked once).
        """
        if not api_key:
            raise ConfigError(MISSING_KEY)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.read_retries = read_retries
        self._on_slow = on_slow
        self._slow_notice_s = SLOW_NOTICE_S if slow_notice_s is None else slow_notice_s
        self._slow_repeat_s = SLOW_REPEAT_S if slow_repeat_s is None else slow_repeat_s
        self._api_key = api_key
        self._session = session or requests.Session()
        self._session.headers.update({"x-api-key": api_key, "User-Agent": f"tavus-echo-relay/{__version__}"})
        for prefix in ("/", ENDABLE_PREFIX):
            retry = _retry(repeatable_methods(prefix), retry_backoff_s, read_retries)
            self._session.mount(self.base_url + prefix, HTTPAdapter(max_retries=retry))

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> TavusClient:
        """The client the settings describe: TAVUS_API_KEY, TAVUS_API_BASE_URL, TAVUS_TIMEOUT, TAVUS_RETRY_BACKOFF."""
        options.setdefault("retry_backoff_s", settings.tavus_retry_backoff_s)
        return cls(
            settings.tavus_api_key or "",
            base_url=settings.tavus_api_base_url,
            timeout=settings.tavus_timeout_s,
            **options,
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
        fields = {"pipeline_mode": pipeline_mode, "system_prompt": system_prompt, "layers": layers, **extra}
        body = without_none(persona_name=name, default_replica_id=default_replica_id, **fields)
        return self._request("POST", "/personas", json=body)

    def get_persona(self, persona_id: str) -> dict[str, Any]:
        return self._request("GET", f"/personas/{persona_id}")

    def list_personas(self, limit: int | None = None, page: int | None = None) -> dict[str, Any]:
        return self._request("GET", "/personas", params=without_none(limit=limit, page=page))

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
        fields = {"pipeline_mode": pipeline_mode, "system_prompt": system_prompt, "layers": layers, **extra}
        body = without_none(pal_name=name, default_face_id=default_face_id, **fields)
        return self._request("POST", "/pals", json=body)

    def get_pal(self, pal_id: str, *, include_settings: bool = False) -> dict[str, Any]:
        """One PAL; `include_settings` adds its layers and pipeline settings."""
        params = {"include_settings": "true"} if include_settings else None
        return self._request("GET", f"/pals/{pal_id}", params=params)

    def list_pals(
        self, limit: int | None = None, page: int | None = None, *, pal_type: str | None = None, sort: str | None = None
    ) -> dict[str, Any]:
        """PALs; `pal_type` "user" or "system", `sort` "asc" or "desc" (by creation)."""
        return self._request("GET", "/pals", params=without_none(limit=limit, page=page, pal_type=pal_type, sort=sort))

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
        body = without_none(
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
        params = {"verbose": "true"} if verbose else None
        return self._request("GET", f"/conversations/{conversation_id}", params=params)

    def list_conversations(
        self, limit: int | None = None, page: int | None = None, status: str | None = None
    ) -> dict[str, Any]:
        return self._request("GET", "/conversations", params=without_none(limit=limit, page=page, status=status))

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
        params = without_none(limit=limit, page=page, verbose="true" if verbose else None, face_type=face_type)
        return self._request("GET", "/faces", params=params)

    def list_replicas(
        self,
        limit: int | None = None,
        page: int | None = None,
        *,
        verbose: bool = False,
        replica_type: str | None = None,
    ) -> dict[str, Any]:
        """The legacy path of list_faces."""
        params = without_none(limit=limit, page=page, verbose="true" if verbose else None, replica_type=replica_type)
        return self._request("GET", "/replicas", params=params)

    # --- one way in and out ---

    def _request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """Every call: a timeout, no redirects (they could carry the key elsewhere), one error type."""
        answered = threading.Event()
        self._tell_while_waiting(method, path, answered)
        try:
            response = self._session.request(
                method, self.base_url + path, json=json, params=params, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as error:
            reason = self._no_answer(error)
            raise self._error(f"Tavus API {method} {path} failed: {reason}", None, None, method, path) from None
        finally:
            answered.set()  # Ctrl-C included: no notice comes after the call ended
        body = _body_of(response)
        if response.status_code >= 300:
            reason = _reason(body) or response.reason or "no reason given"
            message = f"Tavus API {method} {path} failed with {response.status_code}: {reason}"
            raise self._error(message, response.status_code, body, method, path)
        return body

    def _tell_while_waiting(self, method: str, path: str, answered: threading.Event) -> None:
        """Tell `on_slow` that this call is taking long, and again while it does, so a terminal is never silent."""
        if self._on_slow is None:
            return
        threading.Thread(
            target=self._notices, args=(self._on_slow, method, path, answered), name="tavus-slow-notice", daemon=True
        ).start()

    def _notices(self, on_slow: Callable[[str], None], method: str, path: str, answered: threading.Event) -> None:
        started = time.monotonic()
        if answered.wait(min(self._slow_notice_s, self.timeout)):
            return
        on_slow(f"waiting for Tavus to answer {method} {path} ({self._longest_wait(method, path)}) ...")
        while not answered.wait(self._slow_repeat_s):
            on_slow(
                f"still waiting for Tavus to answer {method} {path} ({time.monotonic() - started:.0f} s so far) ..."
            )

    def _longest_wait(self, method: str, path: str) -> str:
        """`up to 30 s, TAVUS_TIMEOUT`, and whether the call is asked again once that passed without an answer."""
        again = self.read_retries if method in repeatable_methods(path) else 0
        then = "" if not again else ", then asked once more" if again == 1 else f", then asked {again} more times"
        return f"up to {self.timeout:g} s, TAVUS_TIMEOUT{then}"

    def _no_answer(self, error: requests.RequestException) -> str:
        """Why no answer came: Tavus took the request and did not answer in time, or it could not be reached."""
        cause = error.args[0] if error.args else None
        if isinstance(error, requests.ReadTimeout):
            return f"Tavus did not answer within {self.timeout:g} s (TAVUS_TIMEOUT)"
        if isinstance(cause, MaxRetryError) and isinstance(cause.reason, ReadTimeoutError):
            asked = "twice" if self.read_retries == 1 else f"{self.read_retries + 1} times"
            return f"Tavus did not answer within {self.timeout:g} s (TAVUS_TIMEOUT), asked {asked}"
        host = urlparse(self.base_url).netloc
        if isinstance(error, requests.ConnectTimeout):
            return f"could not connect to {host} within {self.timeout:g} s (TAVUS_TIMEOUT)"
        return f"could not connect to {host} ({type(error).__name__})"

    def _error(self, message: str, status: int | None, body: Any, method: str, path: str) -> TavusAPIError:
        """Build the error, scrubbing the key should Tavus ever echo it back."""
        message = message.replace(self._api_key, "***")
        return TavusAPIError(message, status_code=status, body=body, method=method, path=path)


def repeatable_methods(path: str) -> frozenset[str]:
    """The methods safe to send again on `path` (a path under the base URL): what the client retries."""
    return SAFE_METHODS | {"POST"} if path.startswith(ENDABLE_PREFIX) else SAFE_METHODS


def _retry(methods: frozenset[str], backoff_s: float, read_retries: int) -> Retry:
    return Retry(
        total=RETRIES,
        connect=RETRIES,
        read=read_retries or False,  # False: a read error is raised as it is, not as "retries exhausted"
        status=RETRIES,
        redirect=0,
        allowed_methods=methods,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_s,
        raise_on_status=False,  # the last answer is turned into a TavusAPIError with its status
        respect_retry_after_header=True,
    )


def without_none(**fields: Any) -> dict[str, Any]:
    """Fields that are None are left out: Tavus takes an absent field as its default, a null as a value."""
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


if __name__ == "__main__":  # python tavus_client.py is the command line, relay/tavus_cli.py, run as the program
    runpy.run_module("relay.tavus_cli", run_name="__main__", alter_sys=True)
