"""Stream a WAV to the relay as one utterance, 100 ms per POST: what a TTS loop in any language does.

    python examples/stream_chunks.py speech.wav [http://127.0.0.1:8000]

The contract (docs/api.md, "Stream your own audio"): one inference_id for the
utterance, chunks in order, one POST per chunk with "done": false, and
"done": true on the last. Each answer is printed as it comes; a refused chunk
(any answer but 200) ends the stream, since the relay sends nothing more of
an utterance it refused. The standard library only: no dependency to install.
RELAY_AUTH_TOKEN, if set, is sent as the bearer token.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
import wave

CHUNK_MS = 100


def chunks(path: str) -> tuple[int, list[bytes]]:
    """The WAV's rate and its 16-bit mono PCM in 100 ms pieces (the relay takes raw PCM at the rate it is told)."""
    with wave.open(path, "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            sys.exit(f"{path}: send 16-bit mono PCM (convert with: sox {path} -b 16 -c 1 out.wav)")
        rate = wav.getframerate()
        frames = rate * CHUNK_MS // 1000
        pieces = []
        while piece := wav.readframes(frames):
            pieces.append(piece)
    if not pieces:
        sys.exit(f"{path}: the file holds no audio")
    return rate, pieces


def post(url: str, body: dict) -> tuple[int, dict]:
    """One chunk; the relay's answer (its error answer too) as JSON."""
    headers = {"Content-Type": "application/json"}
    if token := os.environ.get("RELAY_AUTH_TOKEN"):
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + "/send_audio_message", json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python examples/stream_chunks.py speech.wav [http://127.0.0.1:8000]")
    url = (sys.argv[2] if len(sys.argv) == 3 else "http://127.0.0.1:8000").rstrip("/")
    rate, pieces = chunks(sys.argv[1])
    inference_id = uuid.uuid4().hex  # one id for the whole utterance
    for index, pcm in enumerate(pieces):
        last = index == len(pieces) - 1
        body = {
            "audio": base64.b64encode(pcm).decode(),
            "sample_rate": rate,
            "inference_id": inference_id,
            "done": last,
        }
        status, answer = post(url, body)
        print(status, json.dumps(answer), flush=True)
        if status != 200:
            sys.exit(f"chunk {index + 1} of {len(pieces)} refused: nothing more is sent for {inference_id}")


if __name__ == "__main__":
    main()
