"""RELAY_RECORD_FILE: every message in and out, one JSON line each."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from config import ConfigError


def check_record_file(path: str | None) -> None:
    """RELAY_RECORD_FILE can be appended to: checked at start, before a conversation is created or a room joined."""
    if path:
        Recorder(path).close()


class Recorder:
    """Appends every message, out to the room and in from it, to RELAY_RECORD_FILE as one JSON line."""

    def __init__(self, path: str | None) -> None:
        try:
            self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 (closed in close())
        except OSError as error:
            raise ConfigError(f"RELAY_RECORD_FILE {path!r} cannot be opened for appending: {error.strerror}") from None
        self._lock = threading.Lock()

    def record(self, direction: str, message: Any, **extra: Any) -> None:
        """One line; dropped once the recorder is closed (the relay stopping while a send is on its way)."""
        if self._file is None:  # no record file: skip the JSON (a second look under the lock decides the write)
            return
        line = json.dumps(
            {"time": time.time(), "direction": direction, **extra, "message": message}, ensure_ascii=False
        )
        with self._lock:
            if self._file is None:
                return
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
