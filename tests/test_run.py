"""The run underneath `python app.py`: binding, the server's limits, and what it refuses before starting."""

from __future__ import annotations

import io
import json
import socket
from contextlib import ExitStack

import pytest
import requests

from config import ConfigError, Settings
from relay.dry_run import DryRunRoom
from relay.events import MAX_EVENT_LISTENERS
from relay.server import ListenError, bind
from tests.wsgi_server import serve_wsgi

SLOW_CLIENTS = 200


@pytest.fixture
def dry_relay(make_app):
    def serve(settings: Settings | None = None):
        return serve_wsgi(make_app(settings or Settings(), DryRunRoom(io.StringIO())))

    return serve


# --- what is refused before binding -------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_listening_beyond_loopback_without_a_token_is_refused_naming_relay_auth_token(host):
    with pytest.raises(ConfigError) as refused:
        bind(Settings(host=host, port=0))

    assert "set RELAY_AUTH_TOKEN" in str(refused.value) and f"RELAY_HOST {host} listens beyond this machine" in str(
        refused.value
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_needs_no_token(host):
    bind(Settings(host=host, port=0)).close()


def test_beyond_loopback_with_a_token_listens():
    bind(Settings(host="0.0.0.0", port=0, auth_token="a-long-secret")).close()


def test_a_port_in_use_is_a_listen_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            bind(Settings(port=port))


# --- the server's limits ------------------------------------------------------------


def test_health_and_a_send_answer_while_200_slow_clients_and_64_event_streams_are_open(dry_relay):
    """Slow headers hold no thread but count as connections; streams hold threads the API does not need."""
    with dry_relay() as port, ExitStack() as stack:
        for _ in range(SLOW_CLIENTS):
            slow = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            slow.sendall(b"POST /send_text_message HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
        for _ in range(MAX_EVENT_LISTENERS):
            stream = stack.enter_context(
                requests.get(f"http://127.0.0.1:{port}/events", headers={"Accept": "text/event-stream"}, stream=True,
                             timeout=10)
            )
            assert stream.status_code == 200  # its headers arrived: it holds a server thread now

        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=10)
        sent = requests.post(f"http://127.0.0.1:{port}/send_text_message", json={"text": "Still here"}, timeout=10)

    assert health.status_code == 200
    assert sent.status_code == 200 and sent.json()["messages_sent"] == 1


LIMIT = 100_000


def refused_at_once(port: int, head: bytes) -> bytes:
    """Send only the head of a request whose body is over the limit; the answer comes before any body byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_body_over_the_limit_by_content_length_is_refused_before_it_is_sent(dry_relay):
    with dry_relay(Settings(max_body_bytes=LIMIT)) as port:
        answer = refused_at_once(
            port,
            b"POST /send_audio_message HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\n"
            b"Content-Length: 300000000\r\n\r\n",
        )

    status, _, body = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"Request Entity Too Large\r\n\r\nexceeds max_body of 100001" in body


def test_a_chunked_body_over_the_limit_is_refused_once_it_passes_it(dry_relay):
    chunk = b"x" * 60_000
    with (
        dry_relay(Settings(max_body_bytes=LIMIT)) as port,
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(
            b"POST /send_audio_message HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(2):  # 120 000 bytes: past the limit, never the end of the body
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = sock.recv(65536)

    assert answer.startswith(b"HTTP/1.1 413 Request Entity Too Large")


def test_a_body_of_exactly_the_limit_reaches_the_relay(dry_relay):
    body = b'{"text": "' + b"a" * (LIMIT - 12) + b'"}'
    assert len(body) == LIMIT
    with dry_relay(Settings(max_body_bytes=LIMIT)) as port:
        answer = requests.post(f"http://127.0.0.1:{port}/send_text_message", data=body,
                               headers={"Content-Type": "application/json"}, timeout=30)

    assert answer.status_code == 200


# --- each route's own body limit, over a real server ----------------------------------------------

ROUTE_LIMIT = 20_000


def chunked_post(port: int, path: str, chunks: int, chunk: bytes) -> bytes:
    """POST `chunks` times `chunk` as a chunked body, to its end; the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
        )
        for _ in range(chunks):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"0\r\n\r\n")
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer


@pytest.mark.parametrize(
    "path, settings, setting",
    [
        ("/send_text_message", Settings(max_text_body_bytes=ROUTE_LIMIT), "RELAY_MAX_TEXT_BODY_BYTES"),
        ("/script", Settings(max_script_body_bytes=ROUTE_LIMIT), "RELAY_MAX_SCRIPT_BODY_BYTES"),
    ],
)
def test_a_chunked_body_over_its_routes_limit_is_refused_naming_the_setting(dry_relay, path, settings, setting):
    """waitress takes a chunked body up to RELAY_MAX_BODY_BYTES and then says how long it was: the route's own
    limit is kept all the same."""
    with dry_relay(settings) as port:
        answer = chunked_post(port, path, chunks=3, chunk=b" " * 10_000)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 Request Entity Too Large")
    assert json.loads(body) == {
        "error": f"the body is over {setting} ({ROUTE_LIMIT} bytes): send less or raise the limit"
    }


def test_a_chunked_body_within_the_text_routes_limit_is_spoken(dry_relay):
    text = b"Said in chunks. " * 1000
    with dry_relay(Settings(max_text_body_bytes=ROUTE_LIMIT)) as port:
        answer = chunked_post(port, "/send_text_message", chunks=1, chunk=b'{"text": "%s"}' % text)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and json.loads(body)["messages_sent"] == 5
