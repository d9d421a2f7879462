"""The layer every request passes: other pages, other names and other machines get nothing done or read.

Each check runs on both paths a request can take (the fast path for plain
text, and Flask), since the guard wraps them both; the last tests attack a
real relay from a hostile page in headless Chromium.
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from app import create_app
from config import ConfigError, Settings
from relay.dry_run import DryRunRoom
from tests.browser import chromium
from tests.conftest import CONVERSATION_ID, sent_messages
from tests.wsgi_server import serve_wsgi

EVIL = "http://evil.example:9999"
ORIGIN_ERROR = (
    "a web page on another origin may not use this relay; to allow one on purpose, "
    "add its origin (such as http://localhost:3000) to RELAY_ALLOWED_ORIGINS"
)
HOST_ERROR = (
    "this relay answers only to its own names (127.0.0.1, localhost, [::1]); "
    "to reach it by another name, add that name to RELAY_ALLOWED_HOSTS"
)
WAV_HEADER = (
    b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\xc0]\x00\x00\x80\xbb\x00\x00\x02\x00\x10\x00"
    b"data\x00\x00\x00\x00"
)


@pytest.fixture(params=[True, False], ids=["fast-path", "flask-only"])
def make_app(make_app, request):
    return functools.partial(make_app, fast_path=request.param)


@pytest.fixture
def app(room, make_app):
    return make_app(Settings(), room, microphone_device=io.BytesIO())


# --- other pages in the presenter's browser (CSRF) -------------------------------------------

# Every request a page on another origin can send without a CORS preflight, and a JSON one it may try.
CROSS_SITE_WRITES = [
    ("/send_text_message", {"data": '{"text": "pwned"}', "content_type": "text/plain"}),
    ("/send_text_message", {"data": '{"text": "pwned"}', "content_type": "application/x-www-form-urlencoded"}),
    ("/send_text_message", {"data": '{"text": "pwned"}', "content_type": ""}),
    ("/send_text_message", {"data": '{"text": "pwned"}', "content_type": "application/json"}),
    ("/send_audio_message", {"data": '{"audio": "AAAA", "done": true}', "content_type": "text/plain"}),
    ("/send_audio_message", "upload"),
    ("/microphone", "upload"),
    ("/interrupt", {}),
    ("/script", {"data": '{"script": "pwned"}', "content_type": "text/plain"}),
    ("/script/play", {}),
    ("/script/next", {}),
    ("/script/stop", {}),
]


@pytest.mark.parametrize("path, kwargs", CROSS_SITE_WRITES)
@pytest.mark.parametrize(
    "marks",
    [
        {"Origin": EVIL},
        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},  # a sandboxed frame or a file:// page
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},  # another local dev server
    ],
)
def test_a_request_from_another_pages_origin_is_403_and_sends_nothing(app, fake_call_client, path, kwargs, marks):
    if kwargs == "upload":
        kwargs = {"data": {"file": (io.BytesIO(WAV_HEADER), "a.wav")}, "content_type": "multipart/form-data"}

    response = app.test_client().post(path, headers=marks, **kwargs)

    assert response.status_code == 403
    assert response.get_json() == {"error": ORIGIN_ERROR}
    assert sent_messages(fake_call_client) == []


@pytest.mark.parametrize("path", ["/events", "/room", "/health", "/script"])
def test_another_pages_origin_reads_nothing_either(app, path):
    response = app.test_client().get(path, headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})

    assert response.status_code == 403
    assert CONVERSATION_ID not in response.get_data(as_text=True)


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain"])
def test_curl_and_scripts_send_no_origin_and_keep_working(app, fake_call_client, content_type):
    """`curl -d '{"text": "hi"}'` with no header at all, or with one: no Origin, no Sec-Fetch-Site."""
    client = app.test_client()
    kwargs = {"content_type": content_type} if content_type else {}

    response = client.post("/send_text_message", data='{"text": "hi"}', **kwargs)

    assert response.status_code == 200
    assert [m["properties"]["text"] for m in sent_messages(fake_call_client)] == ["hi"]


def test_the_console_served_by_the_relay_keeps_working(app, fake_call_client):
    """What Chromium sends from the relay's own page: its own origin, same-origin."""
    headers = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}

    response = app.test_client().post("/send_text_message", json={"text": "hi"}, headers=headers)

    assert response.status_code == 200
    assert len(sent_messages(fake_call_client)) == 1


def test_a_link_or_window_from_another_page_cannot_open_the_console(app):
    """Opened by another page (a link, window.open), the console would take keystrokes meant for that page."""
    client = app.test_client()
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}

    response = client.get("/", headers=link)

    assert response.status_code == 403
    assert response.get_json()["error"].startswith("the relay opens only from its own address")
    assert client.get("/", headers={"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}).status_code == 200


def test_an_origin_allowed_on_purpose_may_use_the_relay(room, make_app, fake_call_client):
    client = make_app(Settings(allowed_origins=("http://localhost:3000",)), room).test_client()
    headers = {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"}

    assert client.post("/send_text_message", json={"text": "hi"}, headers=headers).status_code == 200
    assert client.post("/send_text_message", json={"text": "hi"}, headers={"Origin": EVIL}).status_code == 403
    assert len(sent_messages(fake_call_client)) == 1


# --- a page allowed on purpose (CORS) -----------------------------------------------------------

ALLOWED = "http://localhost:3000"
PREFLIGHT = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type", "Sec-Fetch-Site": "same-site"}
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers")


@pytest.fixture
def allowing(room, make_app):
    """A relay with a token that allows the page at ALLOWED on purpose."""
    return make_app(Settings(allowed_origins=(ALLOWED,), auth_token="s3cret-token"), room).test_client()


def test_an_allowed_pages_preflight_is_answered_without_the_token(allowing, fake_call_client):
    """A browser asks before a page's JSON POST or one with a token; the question itself never carries the token."""
    response = allowing.options("/send_text_message", headers=PREFLIGHT)

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert {"content-type", "authorization"} <= {
        name.strip().lower() for name in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert response.headers["Vary"] == "Origin"
    assert sent_messages(fake_call_client) == []


@pytest.mark.parametrize(
    "kwargs, status",
    [
        ({"json": {"text": "hi"}, "headers": {"Authorization": "Bearer s3cret-token"}}, 200),
        ({"json": {"text": "hi"}}, 401),  # the page can read why
        ({"json": {"txt": "hi"}, "headers": {"Authorization": "Bearer s3cret-token"}}, 400),
    ],
    ids=["sent", "no-token", "bad-body"],
)
def test_every_answer_to_an_allowed_page_is_readable_by_it(allowing, kwargs, status):
    headers = {"Origin": ALLOWED, "Sec-Fetch-Site": "same-site", **kwargs.get("headers", {})}

    response = allowing.post("/send_text_message", headers=headers, json=kwargs["json"])

    assert response.status_code == status
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED and response.headers["Vary"] == "Origin"


@pytest.mark.parametrize(
    "method, headers",
    [
        ("OPTIONS", {**PREFLIGHT, "Origin": EVIL, "Sec-Fetch-Site": "cross-site"}),
        ("OPTIONS", {**PREFLIGHT, "Origin": "http://localhost:3001"}),
        ("POST", {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Authorization": "Bearer s3cret-token"}),
    ],
    ids=["preflight-from-another-page", "preflight-from-another-port", "post-from-another-page"],
)
def test_any_other_page_gets_no_cors_answer_and_stays_refused(allowing, fake_call_client, method, headers):
    response = allowing.open("/send_text_message", method=method, headers=headers, json={"text": "pwned"})

    assert response.status_code == 403
    assert not any(name in response.headers for name in (*CORS_HEADERS, "Vary"))
    assert sent_messages(fake_call_client) == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}],
    ids=["curl", "the-console"],
)
def test_requests_that_are_no_other_pages_get_no_cors_headers(allowing, headers):
    response = allowing.get("/health", headers={"Authorization": "Bearer s3cret-token", **headers})

    assert response.status_code == 200
    assert not any(name in response.headers for name in CORS_HEADERS)


# --- other names for 127.0.0.1 (DNS rebinding) ---------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/events", "/room", "/script", "/", "/openapi.json"])
def test_a_host_that_is_not_a_name_of_the_relay_is_403_for_every_route(app, path):
    response = app.test_client().get(path, headers={"Host": "evil.example:8000"})

    assert response.status_code == 403
    assert response.get_json() == {"error": HOST_ERROR}


def test_a_rebound_name_cannot_make_the_face_speak(app, fake_call_client):
    response = app.test_client().post("/send_text_message", json={"text": "pwned"}, headers={"Host": "evil.example"})

    assert response.status_code == 403
    assert sent_messages(fake_call_client) == []


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000", "localhost.", "127.0.0.1"]
)
def test_the_relays_own_names_are_answered(app, host):
    assert app.test_client().get("/health", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "0.0.0.0:8000",  # Chromium sends no Sec-Fetch-Site there: a page's GET would pass as curl's
        "[::]:8000",
        "[::ffff:127.0.0.1]:8000",
        "[::1].evil.example",
        "[::1]evil.example",
        "localhost:8000.evil.example",
        "127.0.0.1:evil",
        "fe80::1%evil.example",
        "[fe80::1%25evil]",
        "192.168.1.20:8000",  # another address of this machine: only when the relay listens beyond loopback
        "",
    ],
)
def test_a_malformed_or_unspecified_host_is_refused(app, host):
    """Found by an attacker's pass: these passed as the relay's own names or as addresses."""
    assert app.test_client().get("/health", headers={"Host": host}).status_code == 403


def test_listening_beyond_loopback_the_machines_addresses_are_answered(room, make_app):
    client = make_app(Settings(host="0.0.0.0", auth_token="s3cret-token"), room).test_client()
    bearer = {"Authorization": "Bearer s3cret-token"}

    assert client.get("/health", headers={"Host": "192.168.1.20:8000", **bearer}).status_code == 200
    assert client.get("/health", headers={"Host": "0.0.0.0:8000", **bearer}).status_code == 403
    assert client.get("/health", headers={"Host": "relay.lan:8000", **bearer}).status_code == 403


def test_a_name_allowed_on_purpose_is_answered(room, make_app):
    client = make_app(Settings(allowed_hosts=("relay.lan",)), room).test_client()

    assert client.get("/health", headers={"Host": "relay.lan:8000"}).status_code == 200
    assert client.get("/health", headers={"Host": "evil.example:8000"}).status_code == 403


@pytest.mark.parametrize(
    "host, status",
    [("relay2.lan:8000", 200), ("RELAY2.LAN.:8000", 200), ("relay2.lan:9999", 403), ("relay2.lan", 403)],
    ids=["its-port", "its-port-written-otherwise", "another-port", "no-port-is-80"],
)
def test_a_port_in_an_allowed_host_means_that_port_only(room, make_app, host, status):
    client = make_app(Settings.from_env({"RELAY_ALLOWED_HOSTS": "relay2.lan:8000"}), room).test_client()

    assert client.get("/health", headers={"Host": host}).status_code == status


def test_a_host_without_a_port_is_the_schemes_default_port(room, make_app):
    client = make_app(Settings.from_env({"RELAY_ALLOWED_HOSTS": "relay.lan:80"}), room).test_client()

    assert client.get("/health", headers={"Host": "relay.lan"}).status_code == 200
    assert client.get("/health", headers={"Host": "relay.lan:8000"}).status_code == 403


def test_the_log_line_of_a_refused_host_does_not_echo_it(app, caplog):
    caplog.set_level("INFO", logger="echo_relay")

    app.test_client().get("/health", headers={"Host": "evil.example:8000"})

    assert "evil.example" not in caplog.text


@pytest.mark.parametrize(
    "variable, value, words",
    [
        ("RELAY_ALLOWED_ORIGINS", "localhost:3000", "RELAY_ALLOWED_ORIGINS lists origins such as http://localhost:3000"),
        ("RELAY_ALLOWED_ORIGINS", "http://a.example/path", "RELAY_ALLOWED_ORIGINS lists origins such as"),
        ("RELAY_ALLOWED_HOSTS", "http://relay.lan", "RELAY_ALLOWED_HOSTS lists host names such as relay.lan"),
    ],
)
def test_a_malformed_allow_list_is_one_line_naming_the_variable(variable, value, words):
    with pytest.raises(ConfigError, match=words):
        Settings.from_env({variable: value})


def test_allow_lists_take_commas_or_spaces():
    settings = Settings.from_env(
        {"RELAY_ALLOWED_ORIGINS": "http://a.example:1, http://b.example", "RELAY_ALLOWED_HOSTS": "a b"}
    )

    assert settings.allowed_origins == ("http://a.example:1", "http://b.example")
    assert settings.allowed_hosts == ("a", "b")


# --- what /health says without the token --------------------------------------------------------


def test_with_a_token_health_without_it_says_only_that_the_relay_is_up(room, make_app):
    client = make_app(Settings(auth_token="s3cret-token"), room).test_client()

    anonymous = client.get("/health")
    with_token = client.get("/health", headers={"Authorization": "Bearer s3cret-token"})

    assert anonymous.status_code == 200
    assert anonymous.get_json() == {"status": "ok", "auth_required": True}
    assert with_token.get_json()["conversation_id"] == CONVERSATION_ID
    assert "messages_sent" in with_token.get_json() and "replica_speaking" in with_token.get_json()


def test_without_a_token_health_tells_everything(app):
    health = app.test_client().get("/health").get_json()

    assert health["conversation_id"] == CONVERSATION_ID and health["auth_required"] is False


def test_a_body_over_the_limit_is_refused_by_its_length_before_it_is_read(room, make_app, fake_call_client):
    app = make_app(Settings(max_body_bytes=2048), room)
    environ_seen: list[Any] = []
    original = app.wsgi_app._app  # the path inside the guard

    def inner(environ: Any, start_response: Any) -> Any:
        environ_seen.append(environ)
        return original(environ, start_response)

    app.wsgi_app._app = inner

    response = app.test_client().post("/send_text_message", json={"text": "x" * 5000})

    assert response.status_code == 413
    assert response.get_json()["error"] == (
        "the body is over RELAY_MAX_BODY_BYTES (2048 bytes): send less or raise the limit"
    )
    assert environ_seen == []  # nothing behind the guard ran, so nothing read the body
    assert sent_messages(fake_call_client) == []


@pytest.mark.parametrize(
    "path, body, setting",
    [
        ("/send_text_message", {"text": "x" * 5000}, "RELAY_MAX_TEXT_BODY_BYTES"),
        ("/script", {"script": "x" * 5000}, "RELAY_MAX_SCRIPT_BODY_BYTES"),
    ],
)
def test_the_text_and_script_routes_have_limits_of_their_own(room, make_app, fake_call_client, path, body, setting):
    app = make_app(Settings(max_text_body_bytes=2048, max_script_body_bytes=2048), room)

    response = app.test_client().post(path, json=body)

    assert response.status_code == 413
    assert response.get_json()["error"] == f"the body is over {setting} (2048 bytes): send less or raise the limit"
    assert sent_messages(fake_call_client) == []


def test_audio_takes_bodies_up_to_the_largest_limit(room, make_app, fake_call_client):
    app = make_app(Settings(max_text_body_bytes=2048, max_script_body_bytes=2048), room)
    pcm = base64.b64encode(bytes(9600)).decode()  # 12,800 bytes of base64: over the text route's limit

    response = app.test_client().post("/send_audio_message", json={"audio": pcm, "sample_rate": 24000, "done": True})

    assert response.status_code == 200 and response.get_json()["messages_sent"] == 4


def test_a_routes_own_limit_is_never_above_relay_max_body_bytes(room, make_app, fake_call_client):
    app = make_app(Settings(max_body_bytes=2048), room)  # the text route's own default is 16 MiB

    response = app.test_client().post("/script", json={"script": "x" * 5000})

    assert response.get_json()["error"] == (
        "the body is over RELAY_MAX_BODY_BYTES (2048 bytes): send less or raise the limit"
    )


# --- a hostile page in a real browser --------------------------------------------------------------

ATTACK_PAGE = """<!doctype html><title>a page on the web</title><body><script>
const relay = %(relay)s;
const body = JSON.stringify({text: "pwned by a page"});
async function attack() {
  const tries = [
    [relay + "/send_text_message", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body}],
    [relay + "/send_text_message", {method: "POST", mode: "no-cors", body}],
    [relay + "/send_text_message", {method: "POST", mode: "no-cors",
      headers: {"Content-Type": "application/x-www-form-urlencoded"}, body}],
    [relay + "/send_audio_message", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
      body: JSON.stringify({audio: "AAAAAAAA", done: true})}],
    [relay + "/interrupt", {method: "POST", mode: "no-cors"}],
    [relay + "/script", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
      body: JSON.stringify({script: "pwned by a script"})}],
    [relay + "/script/play", {method: "POST", mode: "no-cors"}],
    [relay + "/events", {method: "HEAD", mode: "no-cors", headers: {"Accept": "text/event-stream"}}],
  ];
  for (const [url, init] of tries) { try { await fetch(url, init); } catch (e) {} }
  const form = document.createElement("form");
  form.method = "POST"; form.action = relay + "/send_text_message"; form.enctype = "text/plain";
  form.target = "sink";
  const field = document.createElement("input");
  field.name = '{"text": "pwned by a form", "x": "'; field.value = '"}';
  form.appendChild(field);
  const sink = document.createElement("iframe"); sink.name = "sink"; document.body.appendChild(sink);
  document.body.appendChild(form);
  const loaded = new Promise(resolve => sink.onload = resolve);
  form.submit();
  await loaded;
  document.title = "done";
}
attack();
</script></body>"""

REBOUND_PAGE = """<!doctype html><title>rebound</title><body><script>
async function read(path, init) {
  const response = await fetch(path, init);
  return [path, response.status, await response.text()];
}
(async () => {
  const results = [];
  for (const path of ["/health", "/room", "/events", "/script"]) results.push(await read(path, {}));
  results.push(await read("/send_text_message", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({text: "pwned by rebinding"})}));
  window.results = results;
  document.title = "done";
})();
</script></body>"""


# Chromium's own Private Network Access check would stop the rebound page before the relay sees it; Firefox
# and Safari have none, so it is turned off here to test the relay's own defence.
NO_PRIVATE_NETWORK_CHECKS = (
    ("--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
    "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks"),
)


class AttackSite:
    """A second local origin: a plain HTTP server on another port that serves the hostile page."""

    def __init__(self, page: str) -> None:
        body = page.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dry_run_relay() -> Iterator[tuple[int, io.StringIO]]:
    """The relay as `python app.py` serves it (the fast path on: the guard is in front of both paths anyway)."""
    printed = io.StringIO()
    app = create_app(Settings(), DryRunRoom(printed))
    try:
        with serve_wsgi(app) as port:
            yield port, printed
    finally:
        app.extensions["relay"].close()


def spoken(printed: io.StringIO) -> list[str]:
    """What the dry run sent out (one JSON line per message)."""
    lines = [line for line in printed.getvalue().splitlines() if line.startswith("{")]
    return [json.loads(line).get("properties", {}).get("text", "") for line in lines]


@pytest.mark.slow
@pytest.mark.parametrize("attacker_host", ["127.0.0.1", "evil.example"])
def test_a_page_on_another_origin_in_chromium_makes_the_face_say_nothing(dry_run_relay, attacker_host):
    port, printed = dry_run_relay
    site = AttackSite(ATTACK_PAGE % {"relay": json.dumps(f"http://127.0.0.1:{port}")})
    try:
        with chromium("--host-resolver-rules=MAP evil.example 127.0.0.1") as browser:
            page = browser.new_page()
            page.goto(f"http://{attacker_host}:{site.port}/")
            page.wait_for_function("document.title === 'done'", timeout=15000)
            console = browser.new_page()
            console.goto(f"http://127.0.0.1:{port}/")
            status = console.evaluate(
                """async () => (await fetch("/send_text_message", {method: "POST",
                   headers: {"Content-Type": "application/json"},
                   body: JSON.stringify({text: "from the console"})})).status"""
            )
    finally:
        site.close()

    assert status == 200
    assert spoken(printed) == ["from the console"]


@pytest.mark.slow
def test_a_rebound_name_in_chromium_reads_nothing_and_sends_nothing(dry_run_relay):
    """evil.example resolves to 127.0.0.1 (the rebinding): to the browser, the relay is that page's own origin."""
    port, printed = dry_run_relay
    with chromium("--host-resolver-rules=MAP evil.example 127.0.0.1", *NO_PRIVATE_NETWORK_CHECKS) as browser:
        page = browser.new_page()
        page.route(
            f"http://evil.example:{port}/attack",
            lambda route: route.fulfill(status=200, content_type="text/html", body=REBOUND_PAGE),
        )
        page.goto(f"http://evil.example:{port}/attack")
        page.wait_for_function("document.title === 'done'", timeout=15000)
        results = page.evaluate("window.results")

    assert [(path, status) for path, status, _ in results] == [
        ("/health", 403), ("/room", 403), ("/events", 403), ("/script", 403), ("/send_text_message", 403)
    ]
    assert all(json.loads(text) == {"error": HOST_ERROR} for _, _, text in results)
    assert spoken(printed) == []


# --- a page allowed on purpose, in a real browser -----------------------------------------------------

BLANK_PAGE = "<!doctype html><title>a page that may use the relay</title>"
# From the page's own origin: a JSON POST with the token, which a browser sends only after a preflight.
SEND_FROM_THE_PAGE = """async ([relay, token, text]) => {
  try {
    const response = await fetch(relay + "/send_text_message", {method: "POST",
      headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token},
      body: JSON.stringify({text})});
    return {status: response.status, answer: await response.json()};
  } catch (error) {
    return {error: String(error)};
  }
}"""


@pytest.mark.slow
def test_a_page_on_an_allowed_origin_in_chromium_sends_with_the_token_and_reads_the_answer_and_no_other_page_can():
    allowed, other = AttackSite(BLANK_PAGE), AttackSite(BLANK_PAGE)
    printed = io.StringIO()
    settings = Settings.from_env(
        {"RELAY_ALLOWED_ORIGINS": f"http://127.0.0.1:{allowed.port}", "RELAY_AUTH_TOKEN": "s3cret-token"}
    )
    app = create_app(settings, DryRunRoom(printed))
    try:
        with serve_wsgi(app) as port, chromium() as browser:
            relay = f"http://127.0.0.1:{port}"
            results = {}
            for name, site in (("allowed", allowed), ("other", other)):
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{site.port}/")
                results[name] = page.evaluate(SEND_FROM_THE_PAGE, [relay, "s3cret-token", f"from the {name} page"])
    finally:
        allowed.close()
        other.close()
        app.extensions["relay"].close()

    assert results["allowed"].get("status") == 200, results["allowed"]  # not "Failed to fetch"
    assert results["allowed"]["answer"]["messages_sent"] == 1
    assert results["other"] == {"error": "TypeError: Failed to fetch"}
    assert spoken(printed) == ["from the allowed page"]
