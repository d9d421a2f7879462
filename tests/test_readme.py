"""The README and docs/ keep their promises: example answers are the relay's real ones, and every link leads somewhere.

Every JSON answer shown under an endpoint's heading in README.md or a page of
docs/ is held to the answer the dry-run relay gives the request that heading
documents; a new example without a row here fails, so no example can drift.
Every relative link between those pages names a file that exists, and an
anchor names one of its headings as GitHub makes them.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from relay.dry_run import DryRunRoom
from relay.microphone import CountingMicrophoneDevice
from tests.docs import ROOT, code_blocks, doc_pages, page, section

SILENCE = base64.b64encode(bytes(4800)).decode()

# heading -> the request its example answer is the answer of
REQUESTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "POST /send_text_message": ("POST", "/send_text_message", {"json": {"text": "Hello there!"}}),
    "POST /microphone": ("POST", "/microphone", {"json": {"audio": SILENCE, "sample_rate": 24000}}),
    "POST /interrupt": ("POST", "/interrupt", {}),
    "GET /health": ("GET", "/health", {}),
    "GET /utterances/<inference_id>": ("GET", "/utterances/story-1", {}),
}
# what must have happened before a heading's request
SETUP = {
    "GET /utterances/<inference_id>": (
        "POST",
        "/send_text_message",
        {"json": {"text": "Hello there!", "inference_id": "story-1", "wait": "spoken"}},
    ),
}


def example_answers() -> list[tuple[str, dict[str, Any]]]:
    """(heading, answer) for every ```json block under a `### METHOD /path` heading of every page, to the next
    heading.
    """
    return [found for path in doc_pages() for found in page_answers(path.read_text())]


def page_answers(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(heading, answer) for every ```json block under a `### METHOD /path` heading of one page."""
    found: list[tuple[str, dict[str, Any]]] = []
    heading, fence = "", None
    block: list[str] = []
    for line in text.splitlines():
        if fence is None and line.startswith("```"):
            fence, block = line[3:].strip(), []
        elif fence is not None and line.startswith("```"):
            if fence == "json" and re.match(r"(GET|POST) /", heading):
                found.append((heading, json.loads("\n".join(block))))
            fence = None
        elif fence is not None:
            block.append(line)
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
    return found


@pytest.fixture
def dry_run_client(make_app):
    app = make_app(Settings(), DryRunRoom(io.StringIO()), microphone_device=CountingMicrophoneDevice(24000))
    return app.test_client()


def test_every_example_answer_has_a_request_here():
    assert {heading for heading, _ in example_answers()} == set(REQUESTS)


@pytest.mark.parametrize("heading, example", example_answers(), ids=[h for h, _ in example_answers()])
def test_an_example_answer_has_the_real_answers_keys_in_order(dry_run_client, heading, example):
    method, path, kwargs = REQUESTS[heading]
    if heading in SETUP:
        setup_method, setup_path, setup_kwargs = SETUP[heading]
        assert dry_run_client.open(setup_path, method=setup_method, **setup_kwargs).status_code == 200

    response = dry_run_client.open(path, method=method, **kwargs)
    real = response.get_json()

    assert response.data == json.dumps(real).encode()  # one style for every answer, the one the README shows
    assert list(example) == list(real)
    for key, value in example.items():
        if isinstance(value, dict):
            assert list(value) == list(real[key]), key


FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")  # [text](target), an image's ![alt](target) too
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = ("http://", "https://", "mailto:")


def prose(text: str) -> str:
    """A page without its code blocks and code spans: what GitHub renders as headings and links."""
    return FENCE.sub("", text)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor of a page's headings; a repeated one gets -1, -2, ... as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(text)):
        slug = github_slug(heading)
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def relative_links(path: Path) -> list[str]:
    """Every link of a page that leads to this repository rather than to the web."""
    text = CODE_SPAN.sub("", prose(path.read_text()))
    return [target for target in LINK.findall(text) if not target.startswith(EXTERNAL)]


def broken_link(path: Path, target: str) -> str | None:
    """Why a link of a page leads nowhere, or None when it leads to a file (and, with an anchor, one of its
    headings).
    """
    name, _, anchor = target.partition("#")
    linked = (path.parent / name).resolve() if name else path
    shown = linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked
    if not linked.exists():
        return f"no file {shown}"
    if anchor and (linked.suffix != ".md" or anchor not in anchors(linked.read_text())):
        return f"no heading #{anchor} in {shown}"
    return None


@pytest.mark.parametrize("path", doc_pages(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_link_of_a_page_leads_to_a_file_and_heading_that_exist(path):
    broken = {target: broken_link(path, target) for target in relative_links(path)}

    assert {target: why for target, why in broken.items() if why} == {}


def test_every_page_of_docs_is_linked_from_the_readme():
    readme = ROOT / "README.md"
    linked = {(readme.parent / target.partition("#")[0]).resolve() for target in relative_links(readme)}

    assert [str(path.relative_to(ROOT)) for path in doc_pages()[1:] if path not in linked] == []


@pytest.mark.parametrize("heading, slug", [
    ("### GET /utterances/<inference_id>", "get-utterancesinference_id"),
    ("## The dry run's face", "the-dry-runs-face"),
    ("## Drive the face from an agent (MCP)", "drive-the-face-from-an-agent-mcp"),
    ("#### Emotions and speech markup", "emotions-and-speech-markup"),
    ("## `RELAY_PORT` and [the host](x.md)", "relay_port-and-the-host"),
])
def test_anchors_are_made_as_github_makes_them(heading, slug):
    assert anchors(f"{heading}\n\n```sh\n# not a heading\n```\n") == {slug}


def test_a_broken_link_or_anchor_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n## Top\n\n[a](#top-1) [b](#nowhere) [c](gone.md) [d](page.md#top) `[e](gone.md)`\n")

    assert {target: broken_link(page, target) for target in relative_links(page)} == {
        "#top-1": None, "#nowhere": f"no heading #nowhere in {page}", "gone.md": f"no file {tmp_path / 'gone.md'}",
        "page.md#top": None,
    }


def test_the_readmes_first_curl_gets_the_answer_it_shows_and_prints_the_message_it_shows(make_app):
    first_curl = section(page("README.md"), "## The first curl")
    body = json.loads(re.search(r"-d '(\{.*?\})'", code_blocks(first_curl, "sh")[0])[1])
    shown_answer, shown_message = (json.loads(block) for block in code_blocks(first_curl, "json"))
    printed = io.StringIO()
    client = make_app(Settings(), DryRunRoom(printed, face=False)).test_client()

    answer = client.post("/send_text_message", json=body).get_json()

    inference_id = answer["inference_id"]
    assert answer | {"inference_id": "3f0c…"} == shown_answer
    assert json.loads(printed.getvalue().replace(inference_id, "3f0c…")) == shown_message


def test_every_setting_the_relay_reads_is_on_the_settings_page():
    read = {name for path in [ROOT / "config.py", *sorted((ROOT / "relay").glob("*.py"))]
            for name in re.findall(r'"((?:RELAY|TAVUS)_[A-Z_]+)"', path.read_text())}
    settings_page = page("docs/settings.md")

    assert sorted(name for name in read if f"`{name}`" not in settings_page) == []


def test_the_workers_the_readme_and_development_page_name_are_the_ones_pytest_starts():
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    workers = re.search(r"-n (\d+)", addopts)

    assert workers is not None
    assert f"in {workers[1]} parallel workers" in section(page("README.md"), "## Tests").replace("\n", " ")
    assert f"start {workers[1]}\nworkers" in page("docs/development.md")
