"""RELAY_RECORD_FILE: one JSON line per message, and a close during a send never breaks the send."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from relay import recorder as recorder_module
from relay.recorder import Recorder


def test_each_message_is_one_json_line(tmp_path):
    path = tmp_path / "r.jsonl"
    recorder = Recorder(str(path))
    recorder.record("out", {"event_type": "conversation.echo"})
    recorder.record("in", {"event_type": "x"}, sender="face")
    recorder.close()

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["direction"], line.get("sender")) for line in lines] == [("out", None), ("in", "face")]


def test_a_close_while_a_message_is_being_recorded_drops_that_line_without_an_error(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    recorder = Recorder(str(path))
    real_dumps = json.dumps

    def dumps_then_close(*args: Any, **kwargs: Any) -> str:  # the relay closes between the check and the write
        line = real_dumps(*args, **kwargs)
        recorder.close()
        return line

    monkeypatch.setattr(recorder_module, "json", SimpleNamespace(dumps=dumps_then_close))

    recorder.record("out", {"event_type": "conversation.echo"})  # no AttributeError on a closed file

    assert path.read_text() == ""
