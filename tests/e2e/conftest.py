"""A real LLM Lab server and a real Chromium for end-to-end tests.

Chromium is Debian's (``/usr/bin/chromium``), driven by the Python
``playwright`` package; ``playwright install`` cannot download browsers here.
Screenshots go to ``test-artifacts/`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import free_port, serving

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def app_server(log_name: str, data: Path | None = None) -> Iterator[str]:
    """A real LLM Lab server on a free loopback port; with ``data``, its own data folder."""
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    command = [
        sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
        "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"LLM_LAB_DATA": str(data)} if data else {})}
    with serving(command, f"http://127.0.0.1:{port}/_stcore/health", ARTIFACTS / log_name, 90, cwd=ROOT, env=env):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def app_url() -> Iterator[str]:
    with app_server("streamlit-server.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def watched_page(context):
    """A new tab that records console errors and failed requests, for ``assert_no_app_errors``."""
    page = context.new_page()
    page.console_errors = []
    page.failed_requests = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("response", lambda r: r.status >= 400 and page.failed_requests.append(f"{r.status} {r.url}"))
    return page


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    yield watched_page(context)
    context.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# Opened at a page URL (/explorer), Streamlit's frontend first probes /explorer/_stcore/... for its
# server, gets 404 and falls back to /_stcore/...: Streamlit's own behaviour, not an app error.
STREAMLIT_PATH_PROBES = ("/_stcore/health", "/_stcore/host-config")


def assert_no_app_errors(page) -> None:
    """No console error except the 404s of Streamlit's own base-path probes."""
    probes = [r for r in page.failed_requests if r.startswith("404 ") and r.endswith(STREAMLIT_PATH_PROBES)]
    unexplained = [r for r in page.failed_requests if r not in probes]
    assert unexplained == []
    assert len(page.console_errors) == len(probes), page.console_errors
