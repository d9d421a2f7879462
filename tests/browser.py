"""Debian's Chromium, driven by Playwright (which downloads no browser here): for the console and attack tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL = "install it with `apt-get install chromium` and `pip install -r requirements-dev.txt` (.ci/run does both)"


@contextmanager
def chromium(*args: str) -> Iterator[Any]:
    """A headless Chromium; skipped without one on a developer's machine, a failure on CI (which must run them)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Playwright: {INSTALL}")
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests, but there is no Chromium: {INSTALL}")
        pytest.skip(f"no Chromium: {INSTALL}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", *args])
        try:
            yield browser
        finally:
            browser.close()
