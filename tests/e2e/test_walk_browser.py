"""A new user's walk through every page, in a real Chromium, on a server of its own.

Explore a prompt and steer two tokens, score a text, fine-tune for a few
steps and watch it finish, compare base against tuned, train a tiny model
for a few steps, open the logit lens. One screenshot per page goes to
``test-artifacts/walk-*.png``; no page may log a console error. The server
gets a data folder of its own, so the jobs it starts touch nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import app_server, assert_no_app_errors, shot, watched_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]
JOB_DEADLINE_MS = 900_000  # a few training steps; generous only so a broken job cannot hang the suite
MODEL_DEADLINE_MS = 180_000


@pytest.fixture(scope="module")
def walk_url(tmp_path_factory) -> Iterator[str]:
    with app_server("walk-server.log", tmp_path_factory.mktemp("walk") / "data") as url:
        yield url


@pytest.fixture(scope="module")
def walker(browser, walk_url):
    """One browser tab for the whole walk, as one person would use it."""
    context = browser.new_context(viewport={"width": 1400, "height": 2200})
    page = watched_page(context)
    page.set_default_timeout(MODEL_DEADLINE_MS)  # clicks too: a busy CI machine can take minutes for a rerun
    yield page
    context.close()


def snap(page, name: str) -> None:
    page.mouse.move(0, 0)  # no tooltip of the last button pressed over the picture
    shot(page, name)


def visit(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.locator("[data-testid='stSidebar']").wait_for(timeout=MODEL_DEADLINE_MS)


def test_1_home_lists_every_page(walker, walk_url):
    visit(walker, walk_url)
    walker.get_by_role("heading", name="🔬 LLM Lab").wait_for(timeout=60_000)
    for link in ("Open the explorer", "Score a text", "Fine-tune a model", "Compare answers"):
        walker.get_by_text(link).first.wait_for(timeout=30_000)
    snap(walker, "walk-1-home")
    assert_no_app_errors(walker)


def test_2_explore_a_prompt_and_steer_two_tokens(walker, walk_url):
    visit(walker, f"{walk_url}/explorer")
    prompt = walker.get_by_label("Prompt")
    prompt.wait_for(timeout=MODEL_DEADLINE_MS)
    prompt.fill("The capital of France is")
    prompt.press("Control+Enter")
    walker.get_by_text("␣Paris").first.wait_for(timeout=MODEL_DEADLINE_MS)
    for expected in (1, 2):
        walker.get_by_role("button", name="⬆ Most likely").click()
        walker.wait_for_function(
            f"() => location.search.includes('path=') && location.search.split('path=')[1].split('&')[0]"
            f".split(/%2C|,/).length === {expected}",
            timeout=MODEL_DEADLINE_MS,
        )
    assert "Paris" in walker.locator(".lab-tokens").nth(1).inner_text()
    snap(walker, "walk-2-explorer")
    assert_no_app_errors(walker)


def test_3_score_a_text(walker, walk_url):
    visit(walker, f"{walk_url}/score")
    text = walker.get_by_label("Text", exact=True)
    text.wait_for(timeout=MODEL_DEADLINE_MS)
    text.fill("The cat sat on the mat. The mat was red.")
    text.press("Control+Enter")
    walker.get_by_text("Perplexity").first.wait_for(timeout=MODEL_DEADLINE_MS)
    walker.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stMetricValue]')].some(e => /\\d/.test(e.innerText))",
        timeout=MODEL_DEADLINE_MS,
    )
    snap(walker, "walk-3-score")
    assert_no_app_errors(walker)


def test_4_fine_tune_for_a_few_steps_and_watch_it_finish(walker, walk_url):
    visit(walker, f"{walk_url}/finetune")
    steps = walker.get_by_role("spinbutton", name="Steps")
    steps.wait_for(timeout=MODEL_DEADLINE_MS)
    steps.fill("4")
    steps.press("Enter")
    walker.get_by_role("button", name="▶ Train").click()
    walker.get_by_text("step").first.wait_for(timeout=120_000)
    walker.get_by_text("Done. The adapter is saved").wait_for(timeout=JOB_DEADLINE_MS)
    snap(walker, "walk-4-finetune")
    assert_no_app_errors(walker)


def test_5_compare_base_and_tuned(walker, walk_url):
    walker.get_by_role("button", name="⚖️ Compare with the base model").click()
    walker.get_by_role("heading", name="⚖️ Compare: zero-shot, few-shot, fine-tuned").wait_for(timeout=60_000)
    walker.get_by_role("slider", name="How many held-out prompts").wait_for(timeout=30_000)
    walker.get_by_role("button", name="Run the comparison").click()
    walker.get_by_text("Answers side by side").wait_for(timeout=JOB_DEADLINE_MS)
    walker.get_by_text("Jensen–Shannon").wait_for(timeout=MODEL_DEADLINE_MS)
    assert walker.get_by_text("Fine-tuned: sentiment").count() >= 1
    snap(walker, "walk-5-compare")
    assert_no_app_errors(walker)


def test_6_train_a_tiny_model_for_a_few_steps(walker, walk_url):
    visit(walker, f"{walk_url}/build")
    walker.get_by_role("tab", name="Train a tiny model").click()
    walker.get_by_text("Made-up sentences").click()
    steps = walker.get_by_label("Steps", exact=True).and_(walker.get_by_test_id("stNumberInputField"))
    steps.fill("20")
    steps.press("Enter")
    walker.get_by_text("Tokens it will read").wait_for(timeout=MODEL_DEADLINE_MS)
    walker.get_by_role("button", name="▶ Train").click()
    walker.get_by_text("Done. The model is saved").wait_for(timeout=JOB_DEADLINE_MS)
    snap(walker, "walk-6-build")
    assert_no_app_errors(walker)


def test_7_open_the_logit_lens(walker, walk_url):
    visit(walker, f"{walk_url}/inside")
    walker.get_by_text("would predict next, read after each layer").wait_for(timeout=MODEL_DEADLINE_MS)
    walker.locator(".stPlotlyChart").first.wait_for(timeout=MODEL_DEADLINE_MS)
    snap(walker, "walk-7-inside")
    assert_no_app_errors(walker)
