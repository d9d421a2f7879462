"""A fake Tavus API v2 on 127.0.0.1: real HTTP, answering as Tavus documents (PROTOCOL.md section 8).

It checks `x-api-key` (401 `{"message": "Invalid access token"}`), checks each
request body against the request schema the docs give (REQUEST_SCHEMAS: the
fields, their types, the required ones; a violation is a 400 and is kept in
`contract_violations`), keeps the conversations it created (unknown ids are
400 `{"error": "Invalid conversation_id"}`), gives a `meeting_token` only to
a conversation created with `require_auth`, and creates `test_mode` ones
already `ended`. Tests script other failures with `fail_next`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API_KEY = "tk-test-key-0123456789"
CREATED_AT = "2026-11-21T12:00:00Z"
FIRST_CONVERSATION = 123  # the first conversation created is c123


@dataclass(frozen=True)
class Schema:
    """A request body as the docs describe it: each field's type, and which are required."""

    fields: dict[str, type | tuple[type, ...]]
    required: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()  # at least one of these
    nested: dict[str, Schema] = field(default_factory=dict)

    def violations(self, body: Any) -> list[str]:
        if not isinstance(body, dict):
            return ["the body must be a JSON object"]
        found = [f"{name} is required" for name in self.required if name not in body]
        if self.one_of and not any(name in body for name in self.one_of):
            found.append(f"one of {', '.join(self.one_of)} is required")
        for name, value in body.items():
            expected = self.fields.get(name)
            if expected is None:
                found.append(f"unknown field {name}")
            elif not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
                found.append(f"{name} must be {getattr(expected, '__name__', expected)}")
            elif name in self.nested:
                found += [f"{name}.{problem}" for problem in self.nested[name].violations(value)]
        return found


_PIPELINE = {"pipeline_mode": str, "system_prompt": str, "layers": dict, "context": str,
             "document_ids": list, "document_tags": list}
REQUEST_SCHEMAS = {
    ("POST", "personas"): Schema({"persona_name": str, "default_replica_id": str, **_PIPELINE}),
    ("POST", "pals"): Schema({"pal_name": str, "default_face_id": str, **_PIPELINE}, required=("default_face_id",)),
    ("POST", "conversations"): Schema(
        {
            "persona_id": str, "pal_id": str, "replica_id": str, "face_id": str, "conversation_name": str,
            "conversational_context": str, "custom_greeting": str, "callback_url": str, "audio_only": bool,
            "test_mode": bool, "require_auth": bool, "properties": dict,
        },
        one_of=("persona_id", "pal_id"),
        nested={
            "properties": Schema({
                "max_call_duration": int, "participant_left_timeout": int, "participant_absent_timeout": int,
                "enable_recording": bool, "language": str, "apply_greenscreen": bool,
            })
        },
    ),
}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Scripted:
    method: str
    path: str
    status: int
    body: Any
    times: int
    delay_s: float = 0.0


@dataclass
class FakeTavus:
    server: ThreadingHTTPServer
    requests: list[Recorded] = field(default_factory=list)
    scripted: list[Scripted] = field(default_factory=list)
    contract_violations: list[str] = field(default_factory=list)
    personas: set[str] = field(default_factory=lambda: {"p123", "p1"})
    pals: set[str] = field(default_factory=lambda: {"pal123", "pal1"})
    conversations: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"c1": {"conversation_id": "c1", "status": "active"}}
    )
    created: int = 0

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v2"

    @property
    def ended(self) -> set[str]:
        return {cid for cid, conversation in self.conversations.items() if conversation["status"] == "ended"}

    def fail_next(self, method: str, path: str, status: int, body: Any = None, *, times: int = 1, delay_s: float = 0.0) -> None:
        """The next `times` requests to method+path answer `status` with `body` (after `delay_s`)."""
        self.scripted.append(Scripted(method, path, status, body, times, delay_s))

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path)]

    def answer(self, method: str, path: str, body: Any, query: dict[str, list[str]]) -> tuple[int, Any, float]:
        for script in self.scripted:
            if script.method == method and script.path == path and script.times > 0:
                script.times -= 1
                return script.status, script.body, script.delay_s
        return (*self.route(method, path, body, query), 0.0)

    def route(self, method: str, path: str, body: Any, query: dict[str, list[str]]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p][1:]  # drop "v2"
        schema = REQUEST_SCHEMAS.get((method, "/".join(parts)))
        if schema is not None and (problems := schema.violations(body)):
            self.contract_violations += problems
            return 400, {"error": f"Invalid request: {'; '.join(problems)}"}
        match method, parts:
            case "POST", ["personas"]:
                self.personas.add("p123")
                return 200, {"persona_id": "p123", "persona_name": body.get("persona_name"), "created_at": CREATED_AT}
            case "POST", ["pals"]:
                self.pals.add("pal123")
                return 200, {"pal_id": "pal123", "pal_name": body.get("pal_name"),
                             "default_face_id": body["default_face_id"], "created_at": CREATED_AT}
            case "GET", ["personas" | "pals" as kind]:
                ids = self.personas if kind == "personas" else self.pals
                return 200, {"data": [{f"{kind[:-1]}_id": item} for item in sorted(ids)], "total_count": len(ids)}
            case "GET" | "DELETE", ["personas" | "pals" as kind, item]:
                ids = self.personas if kind == "personas" else self.pals
                if item not in ids:
                    return 400, {"error": f"Invalid {kind[:-1]}_id"}
                if method == "DELETE":
                    ids.discard(item)
                    return 204, None
                return 200, {f"{kind[:-1]}_id": item, "pipeline_mode": "echo"}
            case "POST", ["conversations"]:
                return 200, self._create_conversation(body)
            case "GET", ["conversations"]:
                status = (query.get("status") or [None])[0]
                data = [c for c in self.conversations.values() if status in (None, c["status"])]
                return 200, {"data": data, "total_count": len(data)}
            case "GET" | "DELETE" | "POST", ["conversations", item, *rest]:
                conversation = self.conversations.get(item)
                if conversation is None:
                    return 400, {"error": "Invalid conversation_id"}
                return self._conversation_call(method, conversation, rest, query)
            case "GET", ["faces" | "replicas" as kind]:
                key = "face" if kind == "faces" else "replica"
                return 200, {"data": [{f"{key}_id": "r1", f"{key}_name": "Anna"}], "total_count": 1}
        return 404, {"error": "Not found"}

    def _create_conversation(self, body: dict[str, Any]) -> dict[str, Any]:
        conversation_id = f"c{FIRST_CONVERSATION + self.created}"
        self.created += 1
        conversation = {
            "conversation_id": conversation_id,
            "conversation_name": body.get("conversation_name", "New Conversation"),
            "conversation_url": f"https://tavus.daily.co/{conversation_id}",
            "status": "ended" if body.get("test_mode") else "active",
            "persona_id": body.get("persona_id") or body.get("pal_id"),
            "replica_id": body.get("face_id") or body.get("replica_id") or "r-default",
            "created_at": CREATED_AT,
        }
        if body.get("require_auth"):
            conversation["meeting_token"] = f"mt-{conversation_id}-SECRET"
        self.conversations[conversation_id] = conversation
        return conversation

    @staticmethod
    def _conversation_call(
        method: str, conversation: dict[str, Any], rest: list[str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        match method, rest:
            case "GET", []:
                shown = {key: value for key, value in conversation.items() if key != "meeting_token"}
                if query.get("verbose") == ["true"]:
                    shown["events"] = []
                return 200, shown
            case "DELETE", []:
                return 204, None
            case "POST", ["end"]:
                if conversation["status"] == "ended":
                    return 400, {"error": "Conversation has already ended"}
                conversation["status"] = "ended"
                return 200, {"conversation_id": conversation["conversation_id"], "status": "ended"}
        return 404, {"error": "Not found"}


def start_fake_tavus() -> FakeTavus:
    fake: FakeTavus

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def _handle(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            query = parse_qs(url.query)
            fake.requests.append(Recorded(self.command, url.path, query, dict(self.headers), body))
            if self.headers.get("x-api-key") != API_KEY:
                status, answer, delay = 401, {"message": "Invalid access token"}, 0.0
            else:
                status, answer, delay = fake.answer(self.command, url.path, body, query)
            time.sleep(delay)
            data = b"" if answer is None else json.dumps(answer).encode()
            try:
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        do_GET = do_POST = do_DELETE = do_PATCH = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake = FakeTavus(server)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return fake
