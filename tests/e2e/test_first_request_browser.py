"""The first request after a start, for a page's URL, shows LLM Lab's own frame, never Streamlit's file list."""

import pytest

from tests.e2e.conftest import app_server, assert_no_app_errors, shot, watched_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Recorded from the very first paint: any sidebar link naming a pages/ file ("streamlit app", "build", ...)
# as Streamlit's automatic list does, and whether the router's own navigation appeared.
RECORD_NAV = """
window.__navSeen = [];
new MutationObserver(() => {
  const links = '[data-testid="stSidebarNav"] a, [data-testid="stSidebarNavLink"], [data-testid="stPageLink"] a';
  for (const a of document.querySelectorAll(links)) {
    window.__navSeen.push(a.innerText.trim().split('\\n').pop().trim());
  }
}).observe(document, {childList: true, subtree: true});
"""


def test_a_fresh_server_opened_at_a_page_url_draws_the_router_frame_first(browser, tmp_path):
    with app_server("first-request.log", data=tmp_path / "data") as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = watched_page(context)
        page.add_init_script(RECORD_NAV)
        page.goto(f"{url}/build", wait_until="domcontentloaded")
        page.get_by_text("Text is its own label").first.wait_for(timeout=180_000)  # the page itself
        page.get_by_text("Where the model runs").wait_for(timeout=60_000)  # the router's sidebar
        seen = set(page.evaluate("window.__navSeen"))
        shot(page, "first-request")
        assert "Next-token explorer" in seen, "the router's page list"
        legacy = {"streamlit app", "build", "compare", "explorer", "finetune", "home", "inside", "score"}
        assert not seen & legacy, f"Streamlit's automatic list of pages/ files was shown: {seen & legacy}"
        assert_no_app_errors(page)
        context.close()
