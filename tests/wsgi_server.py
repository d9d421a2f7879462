"""Serve a WSGI app with waitress on a free loopback port, tuned as `python app.py` tunes it; for tests and benches."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from waitress import wasyncore

from config import Settings
from relay.server import create_server


@contextmanager
def serve_wsgi(app: Any) -> Iterator[int]:
    """Serve a WSGI app with the relay's own server settings on a free loopback port, on a thread of its own.

    Like the relay's own Ctrl-C, stopping first ends the relay's event streams
    (when `app` is the relay), so the server does not wait on listeners.
    """
    relay = getattr(app, "extensions", {}).get("relay")
    settings = relay.settings if relay is not None else Settings()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    connections: dict[int, Any] = {}
    server = create_server(app, sock, settings, connections)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        if relay is not None:
            relay.events.close()
        # Finish in-flight requests, then close every channel from the loop's own thread: closing from here
        # would race the loop's next poll. (The relay stops on its main thread with a KeyboardInterrupt, which
        # a server on another thread cannot receive: so this test helper reaches into waitress's loop.)
        server.task_dispatcher.shutdown()
        try:
            server.trigger.pull_trigger(lambda: wasyncore.close_all(connections))
        except OSError:
            pass  # the loop ended already
        thread.join(5)
        sock.close()
