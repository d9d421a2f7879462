"""A fake Tavus API v2 on 127.0.0.1: real HTTP, the schemas of PROTOCOL.md section 8.

It checks `x-api-key`, records every request (method, path, query, headers,
JSON body) and answers like Tavus. Tests script failures with `fail_next`.
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
    ended: set[str] = field(default_factory=set)
    conversation_url: str = "https://tavus.daily.co/c123"

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v2"

    def fail_next(self, method: str, path: str, status: int, body: Any = None, *, times: int = 1, delay_s: float = 0.0) -> None:
        """The next `times` requests to method+path answer `status` with `body` (after `delay_s`)."""
        self.scripted.append(Scripted(method, path, status, body, times, delay_s))

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path)]

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any, float]:
        for script in self.scripted:
            if script.method == method and script.path == path and script.times > 0:
                script.times -= 1
                return script.status, script.body, script.delay_s
        return (*self.route(method, path, body), 0.0)

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p][1:]  # drop "v2"
        match method, parts:
            case "POST", ["personas"]:
                return 200, {"persona_id": "p123", "persona_name": body.get("persona_name"), "created_at": CREATED_AT}
            case "POST", ["pals"]:
                return 200, {"pal_id": "pal123", "pal_name": body.get("pal_name"), "created_at": CREATED_AT}
            case "GET", ["personas" | "pals" as kind]:
                return 200, {"data": [{f"{kind[:-1]}_id": "p123"}], "total_count": 1}
            case "GET", ["personas" | "pals" as kind, item]:
                return 200, {f"{kind[:-1]}_id": item, "pipeline_mode": "echo"}
            case "DELETE", ["personas" | "pals" | "conversations", _]:
                return 204, None
            case "POST", ["conversations"]:
                return 200, {
                    "conversation_id": "c123",
                    "conversation_name": body.get("conversation_name", "New Conversation"),
                    "conversation_url": self.conversation_url,
                    "status": "active",
                    "persona_id": body.get("persona_id") or body.get("pal_id"),
                    "replica_id": body.get("replica_id", "r-default"),
                    "created_at": CREATED_AT,
                }
            case "GET", ["conversations"]:
                return 200, {"data": [{"conversation_id": "c123", "status": "active"}], "total_count": 1}
            case "GET", ["conversations", item]:
                return 200, {"conversation_id": item, "status": "ended" if item in self.ended else "active"}
            case "POST", ["conversations", item, "end"]:
                if item in self.ended:
                    return 400, {"error": "Conversation has already ended"}
                self.ended.add(item)
                return 200, {"conversation_id": item, "status": "ended"}
            case "GET", ["replicas"]:
                return 200, {"data": [{"replica_id": "r1", "replica_name": "Anna"}], "total_count": 1}
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
            fake.requests.append(Recorded(self.command, url.path, parse_qs(url.query), dict(self.headers), body))
            if self.headers.get("x-api-key") != API_KEY:
                status, answer, delay = 401, {"message": "Invalid access token"}, 0.0
            else:
                status, answer, delay = fake.answer(self.command, url.path, body if isinstance(body, dict) else {})
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
