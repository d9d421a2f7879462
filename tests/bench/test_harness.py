"""The benchmarks' harness: a figure that misses its goal is said, and makes the benchmark fail.

Benchmarks are run by hand (they measure the machine); what they do with a
figure is tested here, on figures given to the harness directly.
"""

from __future__ import annotations

import pytest
from harness import Goals


def test_a_figure_that_meets_its_goal_prints_the_goal_and_the_benchmark_ends_normally(capsys):
    goals = Goals()

    assert goals.check("p99 delay room event -> listener", 19.9, "<", 20, " ms") == "goal < 20 ms"
    assert goals.check("real time", 300, ">=", 300, "x") == "goal >= 300x"
    goals.exit_if_missed()

    assert capsys.readouterr().out == ""


def test_a_figure_that_misses_its_goal_prints_missed_and_exits_2(capsys):
    goals = Goals()

    assert goals.check("p99 delay room event -> listener", 21.7, "<", 20, " ms") == "goal < 20 ms"
    goals.check("real time", 500, ">=", 300, "x")
    goals.check("first message after the body arrives", 10.4, "<=", 10, " ms")
    with pytest.raises(SystemExit) as exited:
        goals.exit_if_missed()

    assert exited.value.code == 2
    assert capsys.readouterr().out.splitlines() == [
        "MISSED: p99 delay room event -> listener 21.7 ms, goal < 20 ms",
        "MISSED: first message after the body arrives 10.4 ms, goal <= 10 ms",
    ]


def test_an_unknown_comparison_is_refused_at_once():
    with pytest.raises(ValueError, match="'=<' is not one of"):
        Goals().check("p99", 1, "=<", 20, " ms")
