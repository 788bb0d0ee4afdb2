"""The explorer on an OpenAI-compatible server (llama.cpp's), set up through the sidebar in real Chromium."""

import pytest

from tests.e2e.conftest import assert_no_app_errors, shot

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]


def test_point_the_explorer_at_a_server(page, app_url, llama_server):
    page.goto(f"{app_url}/explorer", wait_until="domcontentloaded")
    page.get_by_text("OpenAI-compatible API").click()
    base_url = page.get_by_role("textbox", name="Base URL")
    base_url.fill(llama_server)
    base_url.press("Enter")
    page.get_by_role("button", name="List the server's models").click()
    page.get_by_text("Models on the server").wait_for(timeout=60_000)
    prompt = page.get_by_role("textbox", name="Prompt")
    prompt.fill("The capital of France is")
    prompt.press("Control+Enter")
    page.get_by_text("other (not listed)").first.wait_for(timeout=60_000)
    page.get_by_text("␣Paris").first.wait_for(timeout=30_000)
    shot(page, "explorer-api")
    assert_no_app_errors(page)
