"""Settings: defaults, every variable, and one clear line per bad value."""

from __future__ import annotations

import pytest

from config import ConfigError, Settings, check_room_url


def test_defaults_need_nothing_set():
    settings = Settings.from_env({})

    assert (settings.host, settings.port, settings.sample_rate, settings.max_message_bytes) == (
        "127.0.0.1", 8000, 24000, 4096
    )
    assert settings.max_body_bytes == 50 * 1024 * 1024
    assert settings.tavus_api_base_url == "https://tavusapi.com/v2"
    assert settings.tavus_api_key is None and settings.auth_token is None
    assert settings.max_call_seconds == 3600


def test_every_variable_is_read():
    settings = Settings.from_env(
        {
            "TAVUS_API_KEY": "key",
            "TAVUS_API_BASE_URL": "http://127.0.0.1:9/v2/",
            "TAVUS_PERSONA_ID": "p1",
            "TAVUS_REPLICA_ID": "r1",
            "TAVUS_CONVERSATION_URL": "https://tavus.daily.co/c1",
            "TAVUS_MEETING_TOKEN": "mt",
            "RELAY_HOST": "0.0.0.0",
            "RELAY_PORT": "9000",
            "RELAY_AUTH_TOKEN": "tok",
            "RELAY_SAMPLE_RATE": "16000",
            "RELAY_MAX_MESSAGE_BYTES": "8000",
            "RELAY_MAX_BODY_BYTES": "2048",
            "RELAY_REPLICA_TIMEOUT": "1.5",
            "RELAY_SEND_TIMEOUT": "3",
            "RELAY_MAX_AUDIO_SECONDS": "30",
            "RELAY_RECORD_FILE": "out.jsonl",
            "RELAY_MAX_CALL_SECONDS": "600",
        }
    )

    assert settings == Settings(
        tavus_api_key="key",
        tavus_api_base_url="http://127.0.0.1:9/v2",
        tavus_persona_id="p1",
        tavus_replica_id="r1",
        tavus_conversation_url="https://tavus.daily.co/c1",
        tavus_meeting_token="mt",
        host="0.0.0.0",
        port=9000,
        auth_token="tok",
        sample_rate=16000,
        max_message_bytes=8000,
        max_body_bytes=2048,
        replica_timeout_s=1.5,
        send_timeout_s=3.0,
        max_audio_seconds=30.0,
        max_audio_samples=30 * 48000 * 2,  # derived: RELAY_MAX_AUDIO_SECONDS of 48 kHz stereo
        record_file="out.jsonl",
        max_call_seconds=600,
    )


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("RELAY_PORT", "eighty", "RELAY_PORT must be a whole number"),
        ("RELAY_PORT", "70000", "RELAY_PORT must be at most 65535"),
        ("RELAY_SAMPLE_RATE", "100", "RELAY_SAMPLE_RATE must be at least 8000"),
        ("RELAY_SAMPLE_RATE", "22050",
         "RELAY_SAMPLE_RATE must be a multiple of 100 Hz (whole 10 ms frames), got 22050: use 24000 (or 16000, 48000)"),
        ("RELAY_MAX_MESSAGE_BYTES", "100", "RELAY_MAX_MESSAGE_BYTES must be at least 512"),
        ("RELAY_SEND_TIMEOUT", "soon", "RELAY_SEND_TIMEOUT must be a number"),
        ("RELAY_REPLICA_TIMEOUT", "-1", "RELAY_REPLICA_TIMEOUT must be at least 0"),
        ("RELAY_MAX_AUDIO_SAMPLES", "lots", "RELAY_MAX_AUDIO_SAMPLES must be a whole number"),
        ("RELAY_MAX_MICROPHONE_QUEUE_SECONDS", "0", "RELAY_MAX_MICROPHONE_QUEUE_SECONDS must be at least 0.001"),
        ("TAVUS_CONVERSATION_URL", "tavus.daily.co/c1",
         "TAVUS_CONVERSATION_URL 'tavus.daily.co/c1' is not a Daily room URL"),
        ("TAVUS_CONVERSATION_URL", "https://example.com/foo",
         "TAVUS_CONVERSATION_URL 'https://example.com/foo' is not a Daily room URL: expected https://<domain>.daily.co/"),
        ("RELAY_MAX_CALL_SECONDS", "30", "RELAY_MAX_CALL_SECONDS must be at least 60"),
        ("TAVUS_API_BASE_URL", "ftp://x", "TAVUS_API_BASE_URL must be an http(s) URL"),
    ],
)
def test_a_bad_value_fails_with_one_line_naming_the_variable(name, value, words):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})

    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_empty_values_count_as_unset():
    assert Settings.from_env({"RELAY_PORT": "", "TAVUS_API_KEY": "  "}) == Settings()


def test_secrets_never_show_in_repr():
    text = repr(Settings(tavus_api_key="key-123", auth_token="tok-456", tavus_meeting_token="mt-789"))

    assert "key-123" not in text and "tok-456" not in text and "mt-789" not in text


def test_tavus_pal_id_is_read_when_tavus_persona_id_is_not_set():
    assert Settings.from_env({"TAVUS_PAL_ID": "pal1"}).tavus_persona_id == "pal1"
    assert Settings.from_env({"TAVUS_PAL_ID": "pal1", "TAVUS_PERSONA_ID": "p1"}).tavus_persona_id == "p1"


def test_tavus_timeout_is_read_and_checked():
    assert Settings.from_env({"TAVUS_TIMEOUT": "2.5"}).tavus_timeout_s == 2.5
    assert Settings.from_env({}).tavus_timeout_s == 30
    with pytest.raises(ConfigError, match="^TAVUS_TIMEOUT must be a number, got 'soon'$"):
        Settings.from_env({"TAVUS_TIMEOUT": "soon"})


def test_tavus_retry_backoff_is_read_and_checked():
    assert Settings.from_env({"TAVUS_RETRY_BACKOFF": "0.01"}).tavus_retry_backoff_s == 0.01
    assert Settings.from_env({}).tavus_retry_backoff_s == 0.5
    with pytest.raises(ConfigError, match="^TAVUS_RETRY_BACKOFF must be at least 0, got -1$"):
        Settings.from_env({"TAVUS_RETRY_BACKOFF": "-1"})
    with pytest.raises(ConfigError, match="^TAVUS_RETRY_BACKOFF must be at most 60, got 600$"):
        Settings.from_env({"TAVUS_RETRY_BACKOFF": "600"})


def test_tavus_face_id_is_read_when_tavus_replica_id_is_not_set():
    assert Settings.from_env({"TAVUS_FACE_ID": "f1"}).tavus_replica_id == "f1"
    assert Settings.from_env({"TAVUS_FACE_ID": "f1", "TAVUS_REPLICA_ID": "r1"}).tavus_replica_id == "r1"


def test_dotenv_in_the_current_directory_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("RELAY_PORT=9100\nTAVUS_PERSONA_ID=from-file\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAVUS_PERSONA_ID", "from-env")
    monkeypatch.delenv("RELAY_PORT", raising=False)

    settings = Settings.from_env()

    assert settings.port == 9100 and settings.tavus_persona_id == "from-env"


def test_the_face_gets_300_s_to_join_and_the_connection_30_s_to_come_back_by_default():
    settings = Settings.from_env({})

    assert (settings.replica_timeout_s, settings.connection_timeout_s) == (300.0, 30.0)
    assert Settings.from_env({"RELAY_CONNECTION_TIMEOUT": "5"}).connection_timeout_s == 5.0
    with pytest.raises(ConfigError, match="RELAY_CONNECTION_TIMEOUT must be at least 0"):
        Settings.from_env({"RELAY_CONNECTION_TIMEOUT": "-1"})


def test_the_audio_sample_bound_defaults_to_the_longest_audio_of_48khz_stereo_and_can_be_set():
    assert Settings().max_audio_samples == 600 * 48000 * 2
    assert Settings.from_env({"RELAY_MAX_AUDIO_SAMPLES": "1000000"}).max_audio_samples == 1_000_000


def test_the_microphone_queue_bound_defaults_to_600_seconds_and_can_be_set():
    assert Settings().max_microphone_queue_seconds == 600
    assert Settings.from_env({"RELAY_MAX_MICROPHONE_QUEUE_SECONDS": "30"}).max_microphone_queue_seconds == 30


@pytest.mark.parametrize("url", ["https://tavus.daily.co/c123", "https://tavus.daily.co/c123?t=mt", "https://x.daily.co/c1/"])
def test_a_daily_room_url_passes_the_check(url):
    assert check_room_url(url) == url


def test_the_url_check_never_shows_a_meeting_token():
    with pytest.raises(ConfigError) as caught:
        check_room_url("https://example.com/foo?t=SECRET")

    assert "SECRET" not in str(caught.value)


# --- RELAY_ALLOWED_HOSTS and RELAY_ALLOWED_ORIGINS: a wrong value stops the relay, naming it -------------------


@pytest.mark.parametrize(
    "value, why",
    [
        ("0.0.0.0", "the unspecified address is never a name of this relay"),
        ("0.0.0.0:8000", "the unspecified address is never a name of this relay"),
        ("::", "an IPv6 address goes in brackets"),
        ("[::]", "the unspecified address is never a name of this relay"),
        ("[0:0:0:0:0:0:0:0]:8000", "the unspecified address is never a name of this relay"),
        ("[::ffff:127.0.0.1]", "an IPv4-mapped address is never a name of this relay"),
        ("fe80::1%eth0", "an IPv6 address goes in brackets"),
        ("[fe80::1%eth0]", "an IPv6 zone (%eth0) is never part of a Host"),
        ("relay.lan:abc", "the port must be a number from 1 to 65535"),
        ("relay.lan:0", "the port must be a number from 1 to 65535"),
        ("relay.lan:70000", "the port must be a number from 1 to 65535"),
        ("relay.lan:", "the port must be a number from 1 to 65535"),
        ("[::1", "an IPv6 address goes in brackets"),
        ("[relay.lan]", "not an IPv6 address"),
        ("*.lan", "not a host name"),
        ("127.1", "not an IPv4 address"),
    ],
)
def test_a_malformed_or_unspecified_allowed_host_stops_the_relay_naming_the_setting_and_the_value(value, why):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"RELAY_ALLOWED_HOSTS": f"relay.lan, {value}"})

    message = str(caught.value)
    assert message.startswith("RELAY_ALLOWED_HOSTS ") and message.endswith(f"got {value!r}")
    assert why in message and "\n" not in message


@pytest.mark.parametrize(
    "value, why",
    [
        ("http://*", "not a host name"),
        ("http://*.example.com", "not a host name"),
        ("http://h?x=1", "an origin has no query"),
        ("http://h#top", "an origin has no fragment"),
        ("http://user:pw@h:1", "an origin has no user name or password"),
        ("http://h:abc", "the port must be a number from 1 to 65535"),
        ("http://[::1", "an IPv6 address goes in brackets"),
        ("http://h/path", "an origin has no path"),
        ("ws://h", "the scheme must be http or https"),
        ("null", "the scheme must be http or https"),
    ],
)
def test_a_malformed_allowed_origin_stops_the_relay_naming_the_setting_and_the_value(value, why):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"RELAY_ALLOWED_ORIGINS": f"http://localhost:3000 {value}"})

    message, shown = str(caught.value), value.replace(":pw@", ":***@")  # a password is never shown
    assert message.startswith("RELAY_ALLOWED_ORIGINS ") and message.endswith(f"got {shown!r}")
    assert why in message and "\n" not in message


def test_a_secret_in_an_allowed_origin_is_not_shown():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"RELAY_ALLOWED_ORIGINS": "http://user:SECRET-TOKEN@h:1"})

    assert "SECRET-TOKEN" not in str(caught.value) and "http://user:***@h:1" in str(caught.value)


@pytest.mark.parametrize(
    "value, kept",
    [
        ("relay2.lan:8000", "relay2.lan:8000"),
        ("Relay.LAN.", "relay.lan"),
        ("[::1]:8000", "[::1]:8000"),
        ("[0:0:0:0:0:0:0:1]", "[::1]"),
        ("192.168.1.20", "192.168.1.20"),
        ("my_host-2", "my_host-2"),
    ],
)
def test_an_allowed_host_is_kept_as_a_host_header_writes_it(value, kept):
    assert Settings.from_env({"RELAY_ALLOWED_HOSTS": value}).allowed_hosts == (kept,)


@pytest.mark.parametrize(
    "value, kept",
    [
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://LOCALHOST:3000/", "http://localhost:3000"),
        ("http://a.example:80", "http://a.example"),
        ("https://a.example:443", "https://a.example"),
        ("https://a.example:8443", "https://a.example:8443"),
        ("http://[0:0::1]:3000", "http://[::1]:3000"),
    ],
)
def test_an_allowed_origin_is_kept_as_a_browser_sends_it(value, kept):
    """A browser's `Origin` is lower case, without the scheme's default port or a slash: so the list is too."""
    assert Settings.from_env({"RELAY_ALLOWED_ORIGINS": value}).allowed_origins == (kept,)


# --- RELAY_REQUEST_DEADLINE ---------------------------------------------------------------------------------


def test_a_request_has_30_s_to_arrive_by_default_and_the_deadline_can_be_set():
    assert Settings.from_env({}).request_deadline_s == 30.0
    assert Settings.from_env({"RELAY_REQUEST_DEADLINE": "2.5"}).request_deadline_s == 2.5


@pytest.mark.parametrize(
    "value, words",
    [
        ("soon", "RELAY_REQUEST_DEADLINE must be a number, got 'soon'"),
        ("0.5", "RELAY_REQUEST_DEADLINE must be at least 1, got 0.5"),
        ("nan", "RELAY_REQUEST_DEADLINE must be a number, got 'nan'"),
    ],
)
def test_a_bad_request_deadline_stops_the_relay_naming_it(value, words):
    with pytest.raises(ConfigError, match=f"^{words}$"):
        Settings.from_env({"RELAY_REQUEST_DEADLINE": value})


def test_the_text_and_script_routes_have_smaller_body_limits_that_can_be_set():
    defaults = Settings.from_env({})
    assert (defaults.max_text_body_bytes, defaults.max_script_body_bytes) == (16 * 1024 * 1024, 1024 * 1024)

    settings = Settings.from_env({"RELAY_MAX_TEXT_BODY_BYTES": "20000000", "RELAY_MAX_SCRIPT_BODY_BYTES": "65536"})

    assert (settings.max_text_body_bytes, settings.max_script_body_bytes) == (20_000_000, 65536)


def test_the_event_buffer_is_bounded_in_bytes_too_and_the_bound_can_be_set():
    assert Settings.from_env({}).event_buffer_bytes == 2 * 1024 * 1024
    assert Settings.from_env({"RELAY_EVENT_BUFFER_BYTES": "1000000"}).event_buffer_bytes == 1_000_000


def test_requests_that_wait_for_the_face_are_8_at_most_by_default_and_the_bound_can_be_set():
    assert Settings.from_env({}).max_waiting_for_face == 8
    assert Settings.from_env({"RELAY_MAX_WAITING_FOR_FACE": "2"}).max_waiting_for_face == 2


@pytest.mark.parametrize(
    "name, value, error",
    [
        ("RELAY_MAX_TEXT_BODY_BYTES", "100", "RELAY_MAX_TEXT_BODY_BYTES must be at least 1024, got 100"),
        ("RELAY_MAX_SCRIPT_BODY_BYTES", "1MB", "RELAY_MAX_SCRIPT_BODY_BYTES must be a whole number, got '1MB'"),
        ("RELAY_EVENT_BUFFER_BYTES", "1000", "RELAY_EVENT_BUFFER_BYTES must be at least 65536, got 1000"),
        ("RELAY_MAX_WAITING_FOR_FACE", "0", "RELAY_MAX_WAITING_FOR_FACE must be at least 1, got 0"),
        ("RELAY_MAX_WAITING_FOR_FACE", "1000", "RELAY_MAX_WAITING_FOR_FACE must be at most 256, got 1000"),
    ],
)
def test_a_bad_bound_stops_the_relay_naming_it(name, value, error):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})

    assert str(caught.value) == error
