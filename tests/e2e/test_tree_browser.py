"""The generation tree in a real Chromium: beam search draws its beams and greedy, and a click opens a node."""

import pytest

from tests.e2e.conftest import assert_no_app_errors, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_beam_search_is_drawn_and_a_click_opens_a_node(page, app_url):
    page.goto(f"{app_url}/tree?prompt=Once+upon+a+time&d=3", wait_until="domcontentloaded")
    tree = page.locator(".stPlotlyChart").first
    tree.wait_for(timeout=180_000)
    page.locator('[data-testid="stRadio"] label', has_text="Beam search").click()
    # the labels at the beams' ends (rank and Σ log p) and the note: at width 3, the best beam is not greedy's
    tree.locator("text", has_text="#1").first.wait_for(timeout=120_000)
    tree.locator("text", has_text="greedy").first.wait_for(timeout=60_000)
    page.get_by_text("differs from greedy's", exact=False).wait_for(timeout=60_000)
    page.wait_for_function("() => location.search.includes('mode=beams')", timeout=30_000)
    shot(page, "tree-1-beams")

    points = tree.locator(".scatterlayer .trace").nth(-2).locator("path.point")  # the nodes' trace
    before = points.count()
    points.nth(2).click(force=True)  # the best beam's second token
    page.wait_for_function("() => location.search.includes('node=')", timeout=60_000)
    page.get_by_text("Continue from here in the explorer").wait_for(timeout=60_000)
    page.wait_for_function(
        f"() => document.querySelectorAll('.stPlotlyChart .scatterlayer .trace:nth-last-child(2) path.point')"
        f".length > {before}",
        timeout=60_000,
    )  # the opened node's likeliest children joined the tree
    shot(page, "tree-2-opened")
    assert_no_app_errors(page)
