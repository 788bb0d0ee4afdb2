"""Build your own in a real Chromium: the sliding window, a tiny model trained from the page, sizes on a log scale.

The server here has a data folder of its own, so the job it trains never
lands in the repository's ``data/``.
"""

import pytest

from tests.e2e.conftest import app_server, assert_no_app_errors, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]
JOB_TIMEOUT_MS = 600_000  # only so a broken job cannot hang the suite


@pytest.fixture(scope="module")
def build_app_url(tmp_path_factory):
    with app_server("build-server.log", tmp_path_factory.mktemp("build-data")) as url:
        yield url


def wait_for_charts(page) -> None:
    """Every visible plotly chart has drawn."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('.stPlotlyChart')].filter(e => e.offsetParent)"
        ".every(e => e.querySelector('.main-svg'))",
        timeout=240_000,  # the first run of the page also loads (or converts) the model for the sizes tab
    )


def test_pairs_then_train_a_tiny_model_then_compare_sizes(page, build_app_url):
    page.set_default_timeout(240_000)  # clicks too: a busy CI machine can take minutes for a rerun
    page.goto(f"{build_app_url}/build", wait_until="domcontentloaded")
    page.get_by_text("training examples").first.wait_for(timeout=240_000)
    wait_for_charts(page)
    assert page.get_by_text("47 tokens → 46 training examples").is_visible()
    shot(page, "build-1-pairs")

    page.get_by_role("tab", name="Train a tiny model").click()
    page.get_by_text("Made-up sentences").click()
    page.get_by_text("Vocabulary 29 ·").wait_for(timeout=240_000)  # the count follows the corpus
    steps = page.get_by_label("Steps", exact=True).and_(page.get_by_test_id("stNumberInputField"))
    steps.fill("60")
    steps.press("Enter")
    page.get_by_text("Tokens it will read").wait_for(timeout=240_000)
    page.get_by_role("button", name="▶ Train").click()
    page.get_by_text("Done. The model is saved").wait_for(timeout=JOB_TIMEOUT_MS)
    wait_for_charts(page)
    page.get_by_text("step 60", exact=True).wait_for()  # the last sample is shown (elements arrive in turn)
    shot(page, "build-2-trained")

    page.get_by_role("tab", name="What large means").click()
    page.get_by_text("Sizes on one scale").wait_for(timeout=120_000)
    wait_for_charts(page)
    saved_bar = page.locator(".stPlotlyChart svg text", has_text="(saved)")
    assert saved_bar.count() == 1, "the model just trained is on the log scale"
    shot(page, "build-3-large")
    assert_no_app_errors(page)
