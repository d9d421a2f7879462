"""The README and the pages of docs/, as the tests that hold them to the relay read them."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def doc_pages() -> list[Path]:
    """README.md and every page of docs/: the user's documentation, every sentence a promise."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def page(name: str) -> str:
    """The text of one page, named from the repository's root (`README.md`, `docs/api.md`)."""
    return (ROOT / name).read_text()


def section(text: str, heading: str) -> str:
    """One section of a page: from its heading line (`## Title`) to the next heading of its level or above."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    start = lines.index(heading) + 1
    fenced = False
    for end in range(start, len(lines)):
        fenced ^= lines[end].startswith("```")
        hashes = len(lines[end]) - len(lines[end].lstrip("#"))
        if not fenced and 0 < hashes <= level and lines[end][hashes:hashes + 1] == " ":
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])


def code_blocks(text: str, language: str) -> list[str]:
    """The contents of every ```language block of a text, in order."""
    blocks: list[str] = []
    block: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        if fence is None and line.startswith("```"):
            fence, block = line[3:].strip(), []
        elif fence is not None and line.startswith("```"):
            if fence == language:
                blocks.append("\n".join(block))
            fence = None
        elif fence is not None:
            block.append(line)
    return blocks
