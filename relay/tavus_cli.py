"""`python tavus_client.py`: the Tavus API from the command line, one command per call, the JSON answer printed.

2: the command line or a setting is wrong (nothing was sent); 1: Tavus failed
or did not answer. The client it drives is tavus_client.py's TavusClient.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from config import ConfigError, Settings
from relay.logs import exit_with_error, quiet_other_loggers
from relay.options import OneLineParser, UsageError
from tavus_client import TavusAPIError, TavusClient, without_none

NO_FACE = (
    "a PAL needs a face: pass --face-id F (or set TAVUS_REPLICA_ID); "
    "list the faces you can use with: python tavus_client.py list-faces"
)
ECHO_HAS_NO_PROMPT = (
    "--system-prompt is not for an echo persona: it speaks only what you send it, and Tavus takes "
    "system_prompt (and context) only for pipeline_mode full; drop --system-prompt"
)
PATCH_EXAMPLE = '[{"op": "replace", "path": "/persona_name", "value": "Echo 2"}]'


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python tavus_client.py",
        description="Call the Tavus API; prints the JSON answer. Reads TAVUS_API_KEY from the environment or .env.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, summary: str, details: str = "") -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. {details}".strip()
        )

    persona = command("create-persona", "create an echo persona (or a PAL with --pal)",
                      "Sends pipeline_mode echo: the face says what the relay sends, nothing else.")
    persona.add_argument("--name", default="Echo Assistant", help="its name (default: Echo Assistant)")
    persona.add_argument("--pal", action="store_true", help="create a PAL (POST /pals, Tavus's newer name) instead")
    persona.add_argument("--face-id", "--replica-id", dest="face_id", metavar="F",
                         help="its default face (a PAL needs one: this or TAVUS_REPLICA_ID)")
    persona.add_argument("--system-prompt", metavar="TEXT",
                         help="refused: Tavus takes a system prompt only for pipeline_mode full, never for echo")

    conversation = command("create-conversation", "start a conversation (billed until it ends)",
                           "Prints its conversation_url (and meeting_token with --private).")
    owner = conversation.add_mutually_exclusive_group(required=True)
    owner.add_argument("--persona-id", metavar="ID", help="the echo persona to use, e.g. p123")
    owner.add_argument("--pal-id", metavar="ID", help="the echo PAL to use, e.g. pal123")
    face = conversation.add_mutually_exclusive_group()
    face.add_argument("--face-id", metavar="F", help="face to use instead of the PAL's default")
    face.add_argument(
        "--replica-id", metavar="R", help="replica to use instead of the persona's default (a face's legacy name)"
    )
    conversation.add_argument("--name", help="conversation name")
    conversation.add_argument("--context", help="conversational context")
    conversation.add_argument("--greeting", help="custom greeting the face says first")
    conversation.add_argument("--callback-url", metavar="URL", help="URL Tavus posts conversation events to")
    conversation.add_argument("--max-call-duration", type=int, metavar="S", help="end the call after S seconds")
    conversation.add_argument(
        "--participant-left-timeout",
        type=int,
        metavar="S",
        help="end the call S seconds after the last participant left",
    )
    conversation.add_argument(
        "--participant-absent-timeout", type=int, metavar="S", help="end the call if nobody joins within S seconds"
    )
    conversation.add_argument(
        "--properties", type=_json_object, metavar="JSON", default={},
        help="more conversation properties as a JSON object, "
        "e.g. '{\"language\": \"english\", \"enable_recording\": true}'"
        " (any Tavus documents, passed as given); merged with the flags above",
    )
    conversation.add_argument("--private", action="store_true", help="require a meeting token to join (require_auth)")
    conversation.add_argument("--audio-only", action="store_true", help="an audio-only conversation")
    conversation.add_argument("--test-mode", action="store_true", help="create it without a face joining (not billed)")

    for name, summary, what in (
        ("get-conversation", "show one conversation", "the conversation's id, e.g. c123"),
        ("end-conversation", "end a conversation (stops billing; fine if it already ended)", "the conversation's id"),
        ("delete-conversation", "delete a conversation (Tavus ends it first if it is active)", "the conversation's id"),
        ("get-persona", "show one persona", "the persona's id, e.g. p123"),
        ("delete-persona", "delete a persona", "the persona's id"),
        ("get-pal", "show one PAL", "the PAL's id, e.g. pal123"),
        ("delete-pal", "delete a PAL", "the PAL's id"),
        ("patch-persona", "change a persona with a JSON Patch list", "the persona's id"),
        ("patch-pal", "change a PAL with a JSON Patch list", "the PAL's id"),
    ):
        one = command(name, summary)
        one.add_argument("id", help=what)
        if name.startswith("patch-"):
            example = PATCH_EXAMPLE.replace("persona_name", "pal_name") if name == "patch-pal" else PATCH_EXAMPLE
            one.add_argument("patch", type=_json_patch, help=f"the operations (RFC 6902), e.g. '{example}'")
    get = commands.choices["get-conversation"]
    get.add_argument("--verbose", action="store_true", help="include the conversation's events")
    commands.choices["get-pal"].add_argument(
        "--include-settings", action="store_true", help="include its layers and pipeline settings"
    )

    for name, summary in (
        ("list-conversations", "list conversations"),
        ("list-personas", "list personas"),
        ("list-pals", "list PALs"),
        ("list-faces", "list faces (yours and Tavus's stock faces)"),
        ("list-replicas", "list replicas (the legacy name of faces)"),
    ):
        listing = command(name, summary, "Prints {\"data\": [...], \"total_count\": N}.")
        listing.add_argument("--limit", type=int, metavar="N", help="at most N per page")
        listing.add_argument("--page", type=int, metavar="N", help="which page (from 1)")
        if name == "list-conversations":
            listing.add_argument("--status", choices=["active", "ended"], help="only active or only ended ones")
        if name in ("list-faces", "list-replicas", "list-pals"):
            listing.add_argument("--type", choices=["user", "system"], help="user: yours; system: Tavus's stock ones")
        if name in ("list-faces", "list-replicas"):
            listing.add_argument("--verbose", action="store_true", help="include each face's type and details")
        if name == "list-pals":
            listing.add_argument("--sort", choices=["asc", "desc"], help="oldest (asc) or newest (desc) first")
    return parser


def _json_object(text: str) -> dict[str, Any]:
    value = _json(text, "--properties", "an object such as '{\"language\": \"english\"}'")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--properties must be a JSON object such as '{\"language\": \"english\"}'")
    return value


def _json_patch(text: str) -> list[dict[str, Any]]:
    value = _json(text, "the patch", f"a list such as '{PATCH_EXAMPLE}'")
    if not isinstance(value, list) or not all(isinstance(operation, dict) for operation in value):
        raise argparse.ArgumentTypeError(f"the patch must be a JSON list of operations such as '{PATCH_EXAMPLE}'")
    return value


def _json(text: str, what: str, shape: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{what} is not valid JSON ({error}): give {shape}") from None


def conversation_properties(args: argparse.Namespace) -> dict[str, Any] | None:
    """The flags' properties merged with --properties; one given both ways is a mistake, not a silent choice."""
    flags = without_none(
        max_call_duration=args.max_call_duration,
        participant_left_timeout=args.participant_left_timeout,
        participant_absent_timeout=args.participant_absent_timeout,
    )
    if twice := sorted(set(flags) & set(args.properties)):
        flag = "--" + twice[0].replace("_", "-")
        raise UsageError(f"{twice[0]} is given twice ({flag} and --properties): give it once")
    return {**args.properties, **flags} or None


def run_command(client: TavusClient, args: argparse.Namespace, settings: Settings) -> Any:
    match args.command:
        case "create-persona" if args.system_prompt:
            raise UsageError(ECHO_HAS_NO_PROMPT)
        case "create-persona" if args.pal:
            return client.create_pal(args.name, default_face_id=args.face_id or settings.tavus_replica_id)
        case "create-persona":
            return client.create_persona(args.name, default_replica_id=args.face_id)
        case "create-conversation":
            return client.create_conversation(
                persona_id=args.persona_id,
                pal_id=args.pal_id,
                face_id=args.face_id,
                replica_id=args.replica_id,
                conversation_name=args.name,
                conversational_context=args.context,
                custom_greeting=args.greeting,
                callback_url=args.callback_url,
                audio_only=args.audio_only or None,
                test_mode=args.test_mode or None,
                require_auth=args.private or None,
                properties=conversation_properties(args),
            )
        case "get-conversation":
            return client.get_conversation(args.id, verbose=args.verbose)
        case "end-conversation":
            return client.end_conversation(args.id)
        case "delete-conversation":
            client.delete_conversation(args.id)
            return {"conversation_id": args.id, "deleted": True}
        case "get-persona":
            return client.get_persona(args.id)
        case "patch-persona":
            return client.patch_persona(args.id, args.patch) or {"persona_id": args.id, "patched": True}
        case "delete-persona":
            client.delete_persona(args.id)
            return {"persona_id": args.id, "deleted": True}
        case "get-pal":
            return client.get_pal(args.id, include_settings=args.include_settings)
        case "patch-pal":
            return client.patch_pal(args.id, args.patch) or {"pal_id": args.id, "patched": True}
        case "delete-pal":
            client.delete_pal(args.id)
            return {"pal_id": args.id, "deleted": True}
        case "list-conversations":
            return client.list_conversations(args.limit, args.page, args.status)
        case "list-personas":
            return client.list_personas(args.limit, args.page)
        case "list-pals":
            return client.list_pals(args.limit, args.page, pal_type=args.type, sort=args.sort)
        case "list-faces":
            return client.list_faces(args.limit, args.page, verbose=args.verbose, face_type=args.type)
        case "list-replicas":
            return client.list_replicas(args.limit, args.page, verbose=args.verbose, replica_type=args.type)
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    """2: the command line or a setting is wrong (nothing was sent); 1: Tavus failed or did not answer."""
    quiet_other_loggers(verbose=False)
    try:
        args = build_parser().parse_args(argv)
        settings = Settings.from_env()
        if args.command == "create-persona" and args.pal and not (args.face_id or settings.tavus_replica_id):
            raise UsageError(NO_FACE)
        client = TavusClient.from_settings(settings, on_slow=lambda message: print(message, file=sys.stderr))
    except (UsageError, ConfigError) as error:
        return exit_with_error(str(error), 2)
    try:
        answer = run_command(client, args, settings)
    except UsageError as error:
        return exit_with_error(str(error), 2)
    except TavusAPIError as error:
        return exit_with_error(str(error), 1)
    finally:
        client.close()
    print(json.dumps(answer, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
