"""The explorer in a real Chromium: type a prompt, see " Paris", click a bar, see the text grow."""

import re

import pytest

from tests.e2e.conftest import assert_no_app_errors, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_explorer_prompt_chart_and_click_to_steer(page, app_url):
    page.goto(f"{app_url}/explorer", wait_until="domcontentloaded")
    prompt = page.get_by_label("Prompt")
    prompt.wait_for(timeout=120_000)
    prompt.fill("The capital of France is")
    prompt.press("Control+Enter")
    chart = page.locator(".stPlotlyChart")
    chart.wait_for(timeout=120_000)
    page.get_by_text("␣Paris").first.wait_for(timeout=60_000)
    shot(page, "explorer-1-distribution")

    text_so_far = page.locator(".lab-tokens").nth(1)
    assert "Paris" not in text_so_far.inner_text()
    # click the top bar of the reshaped distribution: the ' Paris' row
    bar = chart.locator("g.trace.bars").nth(1).locator("path").first
    box = bar.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # plotly's drag layer takes clicks
    page.wait_for_function(
        "() => [...document.querySelectorAll('.lab-tokens')].some(e => e.innerText.includes('Paris'))",
        timeout=60_000,
    )
    shot(page, "explorer-2-after-click")
    assert re.search(r"France is\s*Paris", page.locator(".lab-tokens").nth(1).inner_text())
    page.wait_for_function("() => location.search.includes('path=7042')", timeout=30_000)  # the link holds it
    assert_no_app_errors(page)
