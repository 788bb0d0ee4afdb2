"""The inside page in a real Chromium: the lens shows ␣Paris on top, the attention view draws its maps."""

import pytest

from tests.e2e.conftest import assert_no_app_errors, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_inside_lens_then_attention(page, app_url):
    page.goto(f"{app_url}/inside", wait_until="domcontentloaded")
    lens = page.locator(".stPlotlyChart").first
    lens.wait_for(timeout=180_000)
    # the heatmap writes each cell's top token: the last layer at the last position is ␣Paris
    lens.locator("text", has_text="␣Paris").first.wait_for(timeout=60_000)
    page.get_by_text("P(␣Paris) at the last position", exact=False).first.wait_for(timeout=60_000)
    shot(page, "inside-1-lens")

    page.get_by_text("Attention", exact=True).first.click()
    page.get_by_text("Where each token looks in", exact=False).first.wait_for(timeout=60_000)
    page.get_by_text("All 9 heads of layer 3").wait_for(timeout=60_000)
    # the map and the gallery of heads, once the lens's charts are gone
    page.wait_for_function("() => document.querySelectorAll('.stPlotlyChart').length === 2", timeout=60_000)
    shot(page, "inside-2-attention")
    assert_no_app_errors(page)
