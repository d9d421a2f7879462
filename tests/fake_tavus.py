"""A fake Tavus API v2 on 127.0.0.1: real HTTP, answering as Tavus documents (its API v2 reference).

It checks `x-api-key` (401 `{"message": "Invalid access token"}`), checks each
request body against the request schema the docs give (REQUEST_SCHEMAS, JSON
Schema checked by jsonschema: the fields, their types, the required ones;
conversation properties Tavus may add later pass; a violation is a 400 and is
kept in `contract_violations`), applies JSON Patch lists to personas and PALs,
answers `GET /faces?face_type=system` with Tavus's stock faces (STOCK_FACES), keeps the conversations it
created (unknown ids are 400 `{"error": "Invalid conversation_id"}`), gives a `meeting_token` only to
a conversation created with `require_auth`, and creates `test_mode` ones
already `ended`. Tests script other failures with `fail_next`, and hold a
call unanswered with `hold_next` (a user pressing Ctrl-C while Tavus thinks).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from jsonschema import Draft202012Validator

API_KEY = "tk-test-key-0123456789"
CREATED_AT = "2026-11-21T12:00:00Z"
FIRST_CONVERSATION = 123  # the first conversation created is c123


def _object(properties: dict[str, Any], *, required: tuple[str, ...] = (), extra: bool = False) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": extra}


STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_PIPELINE = {"pipeline_mode": {"enum": ["full", "echo"]}, "system_prompt": STRING, "layers": {"type": "object"},
             "context": STRING, "document_ids": {"type": "array"}, "document_tags": {"type": "array"}}
# The documented conversation properties; others are passed through, as Tavus adds new ones.
CONVERSATION_PROPERTIES = _object({
    "max_call_duration": INTEGER, "participant_left_timeout": INTEGER, "participant_absent_timeout": INTEGER,
    "enable_recording": BOOLEAN, "enable_closed_captions": BOOLEAN, "enable_transcription": BOOLEAN,
    "apply_greenscreen": BOOLEAN, "language": STRING, "max_participants": INTEGER,
    "recording_s3_bucket_name": STRING, "recording_s3_bucket_region": STRING, "aws_assume_role_arn": STRING,
}, extra=True)
JSON_PATCH = {"type": "array", "items": _object(
    {"op": {"enum": ["add", "remove", "replace", "copy", "move", "test"]}, "path": {"type": "string", "pattern": "^/"},
     "value": {}, "from": STRING},
    required=("op", "path"),
)}
REQUEST_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "personas"): _object({"persona_name": STRING, "default_replica_id": STRING, **_PIPELINE}),
    ("POST", "pals"): _object(
        {"pal_name": STRING, "default_face_id": STRING, **_PIPELINE}, required=("default_face_id",)
    ),
    ("POST", "conversations"): {
        **_object({
            "persona_id": STRING, "pal_id": STRING, "replica_id": STRING, "face_id": STRING,
            "conversation_name": STRING,
            "conversational_context": STRING, "custom_greeting": STRING, "callback_url": STRING, "audio_only": BOOLEAN,
            "test_mode": BOOLEAN, "require_auth": BOOLEAN, "properties": CONVERSATION_PROPERTIES,
        }),
        "anyOf": [{"required": ["persona_id"]}, {"required": ["pal_id"]}],
    },
    ("PATCH", "personas/*"): JSON_PATCH,
    ("PATCH", "pals/*"): JSON_PATCH,
}


def violations(schema: dict[str, Any], body: Any) -> list[str]:
    """What is wrong with `body`, each as `where: what` (jsonschema's words), in a stable order."""
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=lambda error: list(error.absolute_path))
    return [".".join(map(str, error.absolute_path)) + ": " + error.message if error.absolute_path else error.message
            for error in errors]


# Tavus's stock faces (GET /faces?face_type=system): the quickstart takes the first one.
STOCK_FACES = [
    {"face_id": "r79e1c033f", "face_name": "Anna (stock)", "face_type": "system"},
    {"face_id": "rb17cf590e", "face_name": "Ben (stock)", "face_type": "system"},
]
USER_FACES = [{"face_id": "r1", "face_name": "Anna", "face_type": "user"}]


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
    held: bool = False


@dataclass
class FakeTavus:
    server: ThreadingHTTPServer
    requests: list[Recorded] = field(default_factory=list)
    scripted: list[Scripted] = field(default_factory=list)
    contract_violations: list[str] = field(default_factory=list)
    personas: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        pid: {"persona_id": pid, "persona_name": "Echo Assistant", "pipeline_mode": "echo"} for pid in ("p1", "p123")
    })
    pals: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        pid: {"pal_id": pid, "pal_name": "Echo Assistant", "pipeline_mode": "echo", "pal_type": "user",
              "default_face_id": "r1"} for pid in ("pal1", "pal123")
    })
    conversations: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"c1": {"conversation_id": "c1", "status": "active"}}
    )
    created: int = 0
    released: threading.Event = field(default_factory=threading.Event)  # set when the test ends: held calls end

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v2"

    @property
    def ended(self) -> set[str]:
        return {cid for cid, conversation in self.conversations.items() if conversation["status"] == "ended"}

    def fail_next(
        self, method: str, path: str, status: int, body: Any = None, *, times: int = 1, delay_s: float = 0.0
    ) -> None:
        """The next `times` requests to method+path answer `status` with `body` (after `delay_s`)."""
        self.scripted.append(Scripted(method, path, status, body, times, delay_s))

    def hold_next(self, method: str, path: str) -> None:
        """The next request to method+path gets no answer until the test ends (then a 504 nobody reads)."""
        self.scripted.append(Scripted(method, path, 504, None, 1, held=True))

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path)]

    def answer(self, method: str, path: str, body: Any, query: dict[str, list[str]]) -> tuple[int, Any, float]:
        for script in self.scripted:
            if script.method == method and script.path == path and script.times > 0:
                script.times -= 1
                if script.held:
                    self.released.wait()
                return script.status, script.body, script.delay_s
        return (*self.route(method, path, body, query), 0.0)

    def route(self, method: str, path: str, body: Any, query: dict[str, list[str]]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p][1:]  # drop "v2"
        schema = REQUEST_SCHEMAS.get((method, "/".join(parts[:1] + ["*"] * len(parts[1:]))))
        if schema is not None and (problems := violations(schema, body)):
            self.contract_violations += problems
            return 400, {"error": f"Invalid request: {'; '.join(problems)}"}
        match method, parts:
            case "POST", ["personas"]:
                self.personas["p123"] = {"persona_id": "p123", **body, "created_at": CREATED_AT}
                return 200, {"persona_id": "p123", "persona_name": body.get("persona_name"), "created_at": CREATED_AT}
            case "POST", ["pals"]:
                self.pals["pal123"] = {"pal_id": "pal123", "pal_type": "user", **body, "created_at": CREATED_AT}
                return 200, {"pal_id": "pal123", "pal_name": body.get("pal_name"),
                             "default_face_id": body["default_face_id"], "created_at": CREATED_AT}
            case "GET", ["personas" | "pals" as kind]:
                return 200, self._listing(kind, query)
            case "GET" | "DELETE" | "PATCH", ["personas" | "pals" as kind, item]:
                return self._persona_call(method, kind, item, body, query)
            case "POST", ["conversations"]:
                return 200, self._create_conversation(body)
            case "GET", ["conversations"]:
                status = _first(query, "status")
                data = [c for c in self.conversations.values() if status in (None, c["status"])]
                return 200, {"data": data, "total_count": len(data)}
            case "GET" | "DELETE" | "POST", ["conversations", item, *rest]:
                conversation = self.conversations.get(item)
                if conversation is None:
                    return 400, {"error": "Invalid conversation_id"}
                if (method, rest) == ("DELETE", []):
                    del self.conversations[item]
                    return 204, None
                return self._conversation_call(method, conversation, rest, query)
            case "GET", ["faces" | "replicas" as kind]:
                return 200, self._faces(kind, query)
        return 404, {"error": "Not found"}

    def _listing(self, kind: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """GET /personas or /pals: `pal_type` filters, `sort` asc (oldest first) or desc."""
        items = list((self.personas if kind == "personas" else self.pals).values())
        if pal_type := _first(query, "pal_type"):
            items = [item for item in items if item.get("pal_type", "user") == pal_type]
        if query.get("sort") == ["desc"]:
            items.reverse()
        return {"data": items, "total_count": len(items)}

    def _persona_call(
        self, method: str, kind: str, item: str, body: Any, query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        items = self.personas if kind == "personas" else self.pals
        if item not in items:
            return 400, {"error": f"Invalid {kind[:-1]}_id"}
        match method:
            case "DELETE":
                del items[item]
                return 204, None
            case "PATCH":
                problem = apply_json_patch(items[item], body)
                return (400, {"error": problem}) if problem else (200, items[item])
        shown = dict(items[item])
        if query.get("include_settings") == ["true"]:
            shown["settings"] = {"layers": shown.get("layers", {})}
        return 200, shown

    def _faces(self, kind: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """Yours, then Tavus's stock faces; `face_type` (`replica_type` on /replicas) picks one kind."""
        key = "face" if kind == "faces" else "replica"
        wanted = _first(query, f"{key}_type")
        faces = [face for face in USER_FACES + STOCK_FACES if wanted in (None, face["face_type"])]
        data = [{f"{key}_{name.removeprefix('face_')}": value for name, value in face.items()} for face in faces]
        return {"data": data, "total_count": len(data)}

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
            case "POST", ["end"]:
                if conversation["status"] == "ended":
                    return 400, {"error": "Conversation has already ended"}
                conversation["status"] = "ended"
                return 200, {"conversation_id": conversation["conversation_id"], "status": "ended"}
        return 404, {"error": "Not found"}


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def apply_json_patch(document: dict[str, Any], operations: list[dict[str, Any]]) -> str | None:
    """add, replace and remove at a JSON Pointer (enough for personas); the error Tavus would give, or None."""
    for operation in operations:
        *parents, name = [part.replace("~1", "/").replace("~0", "~") for part in operation["path"][1:].split("/")]
        target: Any = document
        for part in parents:
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict) or (operation["op"] in ("replace", "remove") and name not in target):
            return f"Invalid patch: {operation['path']} does not exist"
        if operation["op"] == "remove":
            del target[name]
        elif operation["op"] in ("add", "replace"):
            target[name] = operation.get("value")
        else:
            return f"Invalid patch: {operation['op']} is not supported here"
    return None


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
