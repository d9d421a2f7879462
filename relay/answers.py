"""What a request gets back: a status and a JSON body, written one way whichever layer answers.

The guard's refusals, the fast path and the Flask views all answer through
`Answer`, so the JSON style, the headers and the status line are decided here
once (an answer's bytes were written in three places before, and drifted).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

JSON_TYPE = "application/json"
STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}  # made once, not per answer


def json_bytes(value: Any) -> bytes:
    """Every answer is written this one way: keys in the order the relay put them, `", "` and `": "` between."""
    return json.dumps(value).encode()


@dataclass(frozen=True)
class Answer:
    """A status, a JSON body, any extra headers, and the fields of the request's log line."""

    status: int
    body: bytes
    log_fields: Mapping[str, Any] = field(default_factory=dict)
    extra_headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, value: Any, status: int = 200, **log_fields: Any) -> Answer:
        return cls(status, json_bytes(value), log_fields)

    @classmethod
    def error(cls, text: str, status: int, *extra_headers: tuple[str, str]) -> Answer:
        """Every error's shape, whichever layer refuses: `{"error": "<one line naming the fix>"}`."""
        return cls(status, json_bytes({"error": text}), extra_headers=extra_headers)

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [("Content-Type", JSON_TYPE), ("Content-Length", str(len(self.body))), *self.extra_headers]

    @property
    def status_line(self) -> str:
        return STATUS_LINES[self.status]

    def start(self, start_response: Callable[..., Any]) -> list[bytes]:
        """The answer as a WSGI response: for the layers below Flask (the guard, the fast path)."""
        start_response(self.status_line, self.headers)
        return [self.body]
