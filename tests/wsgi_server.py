"""Serve a WSGI app with waitress on a free loopback port, as `python app.py` does; for tests and benches."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import waitress

from relay.events import MAX_EVENT_LISTENERS
from relay.run import SERVER_THREADS, stop_server


@contextmanager
def serve_wsgi(app: Any) -> Iterator[int]:
    """Serve a WSGI app with waitress on a free loopback port, as `python app.py` does.

    Like the relay's own Ctrl-C, stopping first ends the relay's event streams
    (when `app` is the relay), so the server does not wait on listeners.
    """
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=SERVER_THREADS + MAX_EVENT_LISTENERS)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.effective_port  # type: ignore[union-attr]
    finally:
        relay = getattr(app, "extensions", {}).get("relay")
        if relay is not None:
            relay.events.close()
        # Finish in-flight requests, then close every channel from the loop's own
        # thread: closing from here would race the loop's next poll.
        server.task_dispatcher.shutdown()
        stop_server(server)  # as the relay stops: a loop that already ended is no error
        thread.join(5)


