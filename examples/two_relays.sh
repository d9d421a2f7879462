#!/bin/sh
# Two conversations at once: one relay per conversation, each with its own port, token and record file.
#
#   sh examples/two_relays.sh                      # two dry runs (no Tavus account needed)
#   sh examples/two_relays.sh URL_A URL_B          # two real conversations (their conversation_url)
#   sh examples/two_relays.sh --port-a 9001 --port-b 9002   # other ports (--help lists the options)
#
# Each relay says one line to its own face, the script shows that a relay refuses the other's token,
# then stops both. Record files: conversation-a.jsonl and conversation-b.jsonl, relay logs: relay-a.log,
# relay-b.log, in the current directory. Any process manager (systemd, supervisord, docker compose) does
# the same: one relay process per conversation, with these three settings different.
set -eu

APP="$(dirname "$0")/../app.py"
PYTHON=${PYTHON:-python}
PORT_A=${PORT_A:-8001}
PORT_B=${PORT_B:-8002}

usage() {
    cat <<EOF
usage: sh examples/two_relays.sh [--port-a N] [--port-b N] [URL_A URL_B]

Two relays, one per conversation: dry runs, or the two conversations URL_A and URL_B.

options:
  --port-a N  conversation A's relay listens on port N (default: \$PORT_A, or 8001)
  --port-b N  conversation B's relay listens on port N (default: \$PORT_B, or 8002)
  -h, --help  show this help and start nothing

PYTHON names the Python that runs the relays (default: python).
EOF
}

fail() {  # message: one line on stderr, exit 2, nothing started
    echo "error: $1 (see: sh examples/two_relays.sh --help)" >&2
    exit 2
}

check_port() {  # option value example: stops unless the value is a port number
    case "$2" in
        "") fail "$1 needs a port number, such as $1 $3" ;;
        *[!0-9]*) fail "$1 needs a port number, such as $1 $3, got '$2'" ;;
    esac
}

while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --port-a) check_port "$1" "${2:-}" 8001; PORT_A=$2; shift 2 ;;
        --port-b) check_port "$1" "${2:-}" 8002; PORT_B=$2; shift 2 ;;
        --) shift; break ;;
        -*) fail "unknown option $1" ;;
        *) break ;;
    esac
done

TOKEN_A=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24))')
TOKEN_B=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24))')

start_relay() {  # name port token [conversation_url]
    RELAY_PORT=$2 RELAY_AUTH_TOKEN=$3 RELAY_RECORD_FILE=conversation-$1.jsonl \
        "$PYTHON" "$APP" "${4:---dry-run}" >"relay-$1.log" 2>&1 &
}

wait_until_up() {  # port: /health answers once the relay serves (a real room: once it has joined)
    curl -s --retry 60 --retry-delay 1 --retry-connrefused --max-time 5 -o /dev/null "http://127.0.0.1:$1/health" \
        || { echo "the relay on port $1 did not start: see its log" >&2; exit 1; }
}

say() {  # port token text
    curl -s --max-time 30 -X POST "http://127.0.0.1:$1/send_text_message" \
        -H "Authorization: Bearer $2" -H "Content-Type: application/json" -d "{\"text\": \"$3\"}"
    echo
}

start_relay a "$PORT_A" "$TOKEN_A" "${1:-}"
RELAY_A=$!
start_relay b "$PORT_B" "$TOKEN_B" "${2:-}"
RELAY_B=$!
trap 'kill "$RELAY_A" "$RELAY_B" 2>/dev/null; wait' EXIT  # Ctrl-C or SIGTERM: each relay leaves its room

wait_until_up "$PORT_A"
wait_until_up "$PORT_B"
say "$PORT_A" "$TOKEN_A" "Hello from the relay of conversation A."
say "$PORT_B" "$TOKEN_B" "Hello from the relay of conversation B."
echo "conversation B's token on conversation A's relay:"
say "$PORT_A" "$TOKEN_B" "This is never said."
