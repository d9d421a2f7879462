"""Host names and origins: the one grammar for RELAY_ALLOWED_HOSTS, RELAY_ALLOWED_ORIGINS and a request's Host.

config.py reads the lists with it (a value it refuses stops the relay at start) and relay/guard.py checks
every request's Host with it, so a list takes exactly what a request can name, written one way.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

DEFAULT_PORTS = {"http": 80, "https": 443}  # the schemes an allowed origin may have, and the port each leaves out
MAX_PORT = 65535
# A request's Host is one of a few values: each is parsed once (6 us for an IPv4 address), not on every request.
PARSED_HOSTS_KEPT = 256

HOST_SHAPE = re.compile(r"(?:\[(?P<v6>[^\[\]]*)\]|(?P<name>[^\[\]:]*))(?::(?P<port>[^:]*))?")
HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")  # a browser reads a name whose last label is one as IPv4
HOST_ERRORS = {
    "url": "just the host, with no scheme, path or user name",
    "brackets": "an IPv6 address goes in brackets, such as [::1] or [::1]:8000",
    "port": f"the port must be a number from 1 to {MAX_PORT}",
    "name": "not a host name (letters, digits, '-', '_' and dots)",
    "ipv4": "not an IPv4 address (four numbers from 0 to 255, such as 192.168.1.20)",
    "ipv6": "not an IPv6 address",
}


@dataclass(frozen=True)
class HostPort:
    """A host, and its port when one is given: `relay.lan:8000`, `[::1]`, `192.168.1.20`.

    `name` is lower case, without a trailing dot, an IPv6 address compressed and without its brackets,
    so two ways of writing one host compare equal.
    """

    name: str
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.name}]" if ":" in self.name else self.name
        return host if self.port is None else f"{host}:{self.port}"


@functools.lru_cache(maxsize=PARSED_HOSTS_KEPT)
def parse_host(value: str) -> HostPort:
    """`host[:port]` as a Host header writes it, or ValueError saying what is wrong (one line, for the setting's).

    Strict on purpose: `[::1].evil.example`, `localhost:80.evil.example` or an IPv6 zone name no host of this relay.
    """
    if "/" in value or "@" in value:
        raise ValueError(HOST_ERRORS["url"])
    shape = HOST_SHAPE.fullmatch(value.lower())
    if shape is None:
        raise ValueError(HOST_ERRORS["brackets"])
    name = _ipv6_name(shape["v6"]) if shape["v6"] is not None else _host_name(shape["name"])
    return HostPort(name, None if shape["port"] is None else _port(shape["port"]))


def _ipv6_name(text: str) -> str:
    if "%" in text:  # ipaddress takes a zone (scope id); a browser never sends one
        raise ValueError(f"an IPv6 zone ({text[text.index('%'):]}) is never part of a Host")
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        raise ValueError(HOST_ERRORS["ipv6"]) from None


def _host_name(text: str) -> str:
    """A name, or an IPv4 address when a browser would read it as one (`127.1` is 127.0.0.1 to it: refused)."""
    if not HOST_NAME.fullmatch(text):
        raise ValueError(HOST_ERRORS["name"])
    name = text.rstrip(".")
    if not NUMERIC_LABEL.fullmatch(name.rpartition(".")[2]):
        return name
    try:
        return str(ipaddress.IPv4Address(name))
    except ValueError:
        raise ValueError(HOST_ERRORS["ipv4"]) from None


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_PORT))) or not 1 <= int(text) <= MAX_PORT:
        raise ValueError(HOST_ERRORS["port"])
    return int(text)


def never_this_relay(name: str) -> str | None:
    """Why an address is never a name of this relay, or None: the unspecified and the IPv4-mapped addresses.

    Chromium treats a request to those as no local request and sends no Sec-Fetch-Site, so a page's request
    would pass the origin check as curl's. The guard refuses them as a Host; RELAY_ALLOWED_HOSTS may not list them.
    """
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    if address.is_unspecified:
        return "the unspecified address is never a name of this relay (browsers mark no request to it)"
    if getattr(address, "ipv4_mapped", None) is not None:
        return "an IPv4-mapped address is never a name of this relay (browsers mark no request to it)"
    return None


def parse_origin(value: str) -> str:
    """A web page's origin as a browser sends it in `Origin`, or ValueError saying what is wrong.

    Written the browser's way (lower case, no default port, no slash: `http://localhost:3000`), so the guard
    compares a request's `Origin` with the list as it comes. A pattern (`http://*`) is no origin.
    """
    scheme, separator, rest = value.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in DEFAULT_PORTS:
        raise ValueError("the scheme must be http or https")
    rest = rest.removesuffix("/")
    for mark, part in (("@", "user name or password"), ("?", "query"), ("#", "fragment"), ("/", "path")):
        if mark in rest:
            raise ValueError(f"an origin has no {part}")
    host = parse_host(rest)
    port = None if host.port == DEFAULT_PORTS[scheme] else host.port
    return f"{scheme}://{HostPort(host.name, port)}"
