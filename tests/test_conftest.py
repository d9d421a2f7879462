"""tests/conftest.py's own rules: the guard (a test that prints a key or a token fails, however it printed it),
run on a small test file in a pytest of its own with tests/conftest.py as its plugin; and the suite's one
wait-until loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
LEAKY_TESTS = '''
import pytest


def test_prints_a_token():
    print("Authorization: Bearer SECRET-TOKEN")


def test_reads_its_own_output_with_capsys(capsys):
    print("Authorization: Bearer SECRET-TOKEN")
    capsys.readouterr()


def test_prints_nothing_secret(capsys):
    print("Authorization: Bearer <RELAY_AUTH_TOKEN>")
    assert "RELAY_AUTH_TOKEN" in capsys.readouterr().out


@pytest.mark.shows_token_once
def test_shows_a_token_on_purpose():
    print("https://tavus.daily.co/c123?t=SECRET-TOKEN")
'''


def test_a_test_that_prints_a_secret_fails_even_when_it_read_the_output_itself(tmp_path):
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.conftest"]\n')
    (tmp_path / "test_leaky.py").write_text(LEAKY_TESTS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    subprocess.run(  # 2 of its tests fail on purpose
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", "--junitxml", "report.xml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )

    report = ElementTree.parse(tmp_path / "report.xml")
    outcomes = {case.get("name"): [(failure.get("message") or "").splitlines()[0] for failure in case.iter("failure")]
                for case in report.iter("testcase")}
    assert outcomes == {
        "test_prints_a_token": ["a secret was printed or logged: ['SECRET-TOKEN']"],
        "test_reads_its_own_output_with_capsys": ["AssertionError: a secret was printed or logged: ['SECRET-TOKEN']"],
        "test_prints_nothing_secret": [],
        "test_shows_a_token_on_purpose": [],
    }


# --- wait_until: the suite's one wait-until loop ------------------------------------------------------------


def test_wait_until_answers_the_conditions_first_truthy_answer_pausing_as_told_between_asks():
    answers, pauses = iter([None, 0, [], "ready", "later"]), []

    assert wait_until(lambda: next(answers), "the fourth answer", pause=pauses.append, interval=0.5) == "ready"
    assert pauses == [0.5, 0.5, 0.5]


def test_wait_until_fails_naming_what_it_waited_for_as_it_stands_then():
    seen = []

    with pytest.raises(pytest.fail.Exception, match=r"^waited 0.05 s for 2 things, saw \[1\]$"):
        wait_until(lambda: seen.append(1), lambda: f"2 things, saw {seen[:1]}", timeout=0.05)
