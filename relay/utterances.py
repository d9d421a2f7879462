"""Utterances still open (sent with `done: false`), so their next chunks and their close keep their rate.

A caller streams one utterance as several requests and closes it with
`{"inference_id": ..., "done": true}`. That closing request has no audio and
often no `sample_rate`: its 40 ms of silence must still go at the rate the
utterance was sent at, not at Tavus's 16000 default.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from relay.audio import UtteranceRates

MAX_OPEN_UTTERANCES = 1024  # callers that never close their utterances cannot grow this without bound


class OpenUtterances:
    """inference_id -> UtteranceRates, oldest forgotten first; safe across request threads."""

    def __init__(self, capacity: int = MAX_OPEN_UTTERANCES) -> None:
        self._capacity = capacity
        self._open: OrderedDict[str, UtteranceRates] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, inference_id: str) -> UtteranceRates | None:
        with self._lock:
            return self._open.get(inference_id)

    def sent(self, inference_id: str, rates: UtteranceRates, *, done: bool) -> None:
        """Note a request of the utterance that went out: it stays open until one is `done`."""
        with self._lock:
            if done:
                self._open.pop(inference_id, None)
                return
            self._open[inference_id] = rates
            self._open.move_to_end(inference_id)
            while len(self._open) > self._capacity:
                self._open.popitem(last=False)
