"""The one grammar of host names and origins: what parse_host and parse_origin take, how they write it, what they
refuse and with which one-line reason; and the addresses that are never a name of this relay.

tests/test_config.py and tests/test_guard.py check the same rules through RELAY_ALLOWED_HOSTS,
RELAY_ALLOWED_ORIGINS and a request's Host; here each is checked on the functions themselves.
"""

from __future__ import annotations

import pytest

from relay.hosts import HostPort, never_this_relay, parse_host, parse_origin

URL = "just the host, with no scheme, path or user name"
BRACKETS = "an IPv6 address goes in brackets, such as [::1] or [::1]:8000"
PORT = "the port must be a number from 1 to 65535"
NAME = "not a host name (letters, digits, '-', '_' and dots)"
IPV4 = "not an IPv4 address (four numbers from 0 to 255, such as 192.168.1.20)"
IPV6 = "not an IPv6 address"
UNSPECIFIED = "the unspecified address is never a name of this relay (browsers mark no request to it)"
MAPPED = "an IPv4-mapped address is never a name of this relay (browsers mark no request to it)"


def refusal(parse, value: str) -> str:
    with pytest.raises(ValueError) as caught:
        parse(value)
    return str(caught.value)


# --- parse_host: what it takes, written one way ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value, host",
    [
        ("relay.lan", HostPort("relay.lan")),
        ("relay.lan:8000", HostPort("relay.lan", 8000)),
        ("localhost", HostPort("localhost")),
        ("my_host-2", HostPort("my_host-2")),
        ("123abc", HostPort("123abc")),  # digits, but not a number: a name
        ("1.2.3.relay", HostPort("1.2.3.relay")),
        ("192.168.1.20", HostPort("192.168.1.20")),
        ("127.0.0.1:1", HostPort("127.0.0.1", 1)),
        ("[::1]", HostPort("::1")),
        ("[::1]:65535", HostPort("::1", 65535)),
    ],
)
def test_a_host_and_its_port_are_read(value, host):
    assert parse_host(value) == host


@pytest.mark.parametrize(
    "value, same",
    [
        ("Relay.LAN", "relay.lan"),
        ("relay.lan.", "relay.lan"),
        ("RELAY.LAN.:8000", "relay.lan:8000"),
        ("192.168.1.20.", "192.168.1.20"),
        ("[0:0:0:0:0:0:0:1]", "[::1]"),
        ("[FE80::0001]:80", "[fe80::1]:80"),
        ("[::ffff:127.0.0.1]", "[::ffff:7f00:1]"),
        ("relay.lan:08000", "relay.lan:8000"),
    ],
    ids=["upper-case", "trailing-dot", "both-with-port", "ipv4-trailing-dot", "ipv6-long", "ipv6-upper-case",
         "ipv6-dotted", "port-leading-zero"],
)
def test_two_ways_of_writing_one_host_are_the_same_host(value, same):
    assert parse_host(value) == parse_host(same)


@pytest.mark.parametrize(
    "host, written",
    [
        (HostPort("relay.lan"), "relay.lan"),
        (HostPort("relay.lan", 8000), "relay.lan:8000"),
        (HostPort("::1"), "[::1]"),
        (HostPort("::1", 8000), "[::1]:8000"),
    ],
)
def test_a_host_is_written_as_a_host_header_writes_it(host, written):
    assert str(host) == written
    assert parse_host(written) == host


# --- parse_host: what it refuses, and why ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["http://relay.lan", "relay.lan/", "relay.lan/path", "user@relay.lan", "u:pw@h:1"])
def test_a_url_or_a_user_name_is_no_host(value):
    assert refusal(parse_host, value) == URL


@pytest.mark.parametrize(
    "value",
    ["::1", "fe80::1", "[::1", "::1]", "[::1]8000", "[::1].evil.example", "[::1]evil.example", "[[::1]]", "a:1:2"],
)
def test_an_ipv6_address_must_be_in_brackets_and_nothing_may_follow_them_but_a_port(value):
    assert refusal(parse_host, value) == BRACKETS


@pytest.mark.parametrize(
    "value",
    [
        "relay.lan:", "relay.lan:0", "relay.lan:65536", "relay.lan:99999", "relay.lan:-1", "relay.lan:+80",
        "relay.lan: 80", "relay.lan:80 ", "relay.lan:0x50", "relay.lan:abc", "relay.lan:000080",
        "localhost:8000.evil.example", "[::1]:", "[::1]:0",
    ],
)
def test_a_port_is_a_number_from_1_to_65535(value):
    assert refusal(parse_host, value) == PORT


@pytest.mark.parametrize(
    "port",
    ["\uff18\uff10\uff10\uff10", "\u0668\u0660", "\u00b2", "\u096e\u0966"],
    ids=["fullwidth", "arabic-indic", "superscript", "devanagari"],
)
def test_a_port_in_digits_other_than_ascii_is_refused(port):
    assert refusal(parse_host, f"relay.lan:{port}") == PORT


@pytest.mark.parametrize(
    "value",
    ["", ":8000", "relay lan", "relay..lan", ".relay.lan", "relay.lan..", "*", "*.example.com", "r\u00e9lay.lan",
     "relay\\lan", "relay.lan\n", "relay%2elan"],
    ids=["empty", "port-only", "space", "empty-label", "leading-dot", "two-trailing-dots", "star", "pattern",
         "non-ascii", "backslash", "newline", "percent"],
)
def test_a_name_is_letters_digits_dashes_underscores_and_dots(value):
    assert refusal(parse_host, value) == NAME


@pytest.mark.parametrize(
    "value",
    ["127.1", "1.2.3.256", "01.2.3.4", "0x7f.0.0.1", "1.2.3.4.5", "example.123", "relay.0x", "relay.0x7f",
     "4294967295"],
)
def test_a_name_a_browser_would_read_as_ipv4_must_be_a_plain_ipv4_address(value):
    """A browser reads `127.1` as 127.0.0.1: taken as a name it would let a page name the relay a second way."""
    assert refusal(parse_host, value) == IPV4


@pytest.mark.parametrize("value", ["[]", "[::g]", "[1:2:3:4:5:6:7:8:9]", "[127.0.0.1]", "[:::1]"])
def test_brackets_hold_an_ipv6_address(value):
    assert refusal(parse_host, value) == IPV6


@pytest.mark.parametrize("value, zone", [("[fe80::1%eth0]", "%eth0"), ("[fe80::1%25evil]:80", "%25evil")])
def test_an_ipv6_zone_is_never_part_of_a_host(value, zone):
    assert refusal(parse_host, value) == f"an IPv6 zone ({zone}) is never part of a Host"


def test_a_host_refused_once_is_refused_every_time():
    for _ in range(2):
        assert refusal(parse_host, "127.1") == IPV4


# --- never_this_relay -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, why", [("0.0.0.0", UNSPECIFIED), ("::", UNSPECIFIED), ("::ffff:7f00:1", MAPPED),
                                       ("::ffff:0.0.0.0", MAPPED)])
def test_addresses_browsers_mark_no_request_to_are_never_this_relay(name, why):
    assert never_this_relay(name) == why


@pytest.mark.parametrize("name", ["127.0.0.1", "::1", "192.168.1.20", "fe80::1", "localhost", "relay.lan", "0"])
def test_any_other_name_or_address_may_be_this_relays(name):
    assert never_this_relay(name) is None


def test_a_host_header_naming_those_addresses_is_caught_once_parsed():
    assert never_this_relay(parse_host("[::FFFF:127.0.0.1]:8000").name) == MAPPED
    assert never_this_relay(parse_host("[0:0::0]").name) == UNSPECIFIED


# --- parse_origin ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, origin",
    [
        ("http://localhost:3000", "http://localhost:3000"),
        ("https://a.example", "https://a.example"),
        ("HTTP://LocalHost:3000", "http://localhost:3000"),
        ("http://localhost:3000/", "http://localhost:3000"),
        ("http://a.example:80", "http://a.example"),
        ("https://a.example:443", "https://a.example"),
        ("https://a.example:80", "https://a.example:80"),
        ("http://a.example:443", "http://a.example:443"),
        ("http://a.example.:8080", "http://a.example:8080"),
        ("http://[0:0::1]:3000", "http://[::1]:3000"),
        ("http://[::1]:80", "http://[::1]"),
        ("http://192.168.1.20:8000", "http://192.168.1.20:8000"),
    ],
    ids=["plain", "https", "upper-case", "trailing-slash", "http-default-port", "https-default-port",
         "https-on-80", "http-on-443", "trailing-dot", "ipv6", "ipv6-default-port", "ipv4"],
)
def test_an_origin_is_written_as_a_browser_sends_it(value, origin):
    assert parse_origin(value) == origin


@pytest.mark.parametrize("value", ["localhost:3000", "relay.lan", "ws://h", "ftp://h", "file://h", "null",
                                   "://h", "", "http//h", " http://h"])
def test_an_origin_has_the_scheme_http_or_https(value):
    assert refusal(parse_origin, value) == "the scheme must be http or https"


@pytest.mark.parametrize(
    "value, part",
    [
        ("http://user:pw@h:1", "user name or password"),
        ("http://user@h", "user name or password"),
        ("http://h?x=1", "query"),
        ("http://h/?x=1", "query"),
        ("http://h#top", "fragment"),
        ("http://h/path", "path"),
        ("http://h/path/", "path"),
        ("http://h//", "path"),
    ],
)
def test_an_origin_is_scheme_host_and_port_only(value, part):
    assert refusal(parse_origin, value) == f"an origin has no {part}"


@pytest.mark.parametrize(
    "value, why",
    [
        ("http://", NAME),
        ("http://*", NAME),
        ("http://*.example.com", NAME),
        ("http://h:0", PORT),
        ("http://h:abc", PORT),
        ("http://h:\uff18\uff10", PORT),
        ("http://[::1", BRACKETS),
        ("http://::1", BRACKETS),
        ("http://127.1", IPV4),
        ("http://[fe80::1%eth0]", "an IPv6 zone (%eth0) is never part of a Host"),
    ],
)
def test_an_origins_host_follows_the_host_grammar(value, why):
    assert refusal(parse_origin, value) == why
