"""Conversation URLs: the conversation id in them, a private room's token on them, Daily's join errors about them."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse


def conversation_id_from_url(url: str) -> str:
    """`https://tavus.daily.co/c123` -> `c123`: Tavus names the room after the conversation.

    Only reads: whether a URL is a room's is config.check_room_url's one rule,
    applied where a URL comes in (the command line, TAVUS_CONVERSATION_URL, Tavus's answer).
    """
    return urlparse(url).path.rstrip("/").rpartition("/")[2]


def split_meeting_token(url: str) -> tuple[str, str | None]:
    """A private room's URL as a browser opens it (`...?t=<token>`) -> the room URL and the token."""
    parsed = urlparse(url)
    query = parse_qsl(parsed.query, keep_blank_values=True)
    tokens = [value for key, value in query if key == "t" and value]
    if not tokens:
        return url, None
    rest = urlencode([(key, value) for key, value in query if key != "t"])
    return urlunparse(parsed._replace(query=rest)), tokens[-1]


def redact_url(url: str) -> str:
    """The URL with any `t=` token replaced, for logs and errors."""
    room_url, token = split_meeting_token(url)
    return room_url if token is None else f"{room_url}{'&' if '?' in room_url else '?'}t=<token>"


def join_failure_sentence(error: str, room_url: str) -> str:
    """Daily's Rust debug text (`Connection(Api(RoomLookup(...` ) as one sentence saying what to check."""
    conversation_id = conversation_id_from_url(room_url)
    ended_hint = (
        f"whether conversation {conversation_id} has ended "
        f"(python tavus_client.py get-conversation {conversation_id})"
    )
    if "Failed to parse url" in error or "InvalidUrl" in error:
        return f"{room_url} is not a valid room URL: check it (it looks like https://tavus.daily.co/c123)"
    if "Invalid client settings" in error:
        return (
            "Daily refused the relay's join settings (a bug in the relay; run with --verbose and report it): "
            f"{room_url}"
        )
    if "RoomInfoFetchFailed" in error or "Connect" in error or "lookup address" in error:
        return f"could not reach Daily to look up {room_url}: check your network connection and the URL"
    lowered = error.lower()
    if "token" in lowered or "unauthori" in lowered or "not allowed" in lowered or "forbidden" in lowered:
        return (
            f"Daily refused to let the relay into {room_url}: the room is private or the meeting token is wrong "
            "(pass it as ?t=<token> on the URL, --meeting-token or TAVUS_MEETING_TOKEN)"
        )
    if "not found" in lowered or "notfound" in lowered or "no such room" in lowered or "expired" in lowered:
        return f"Daily says there is no room at {room_url}: check the URL and {ended_hint}"
    return f"could not join {room_url}: check the URL, your network, and {ended_hint}"
