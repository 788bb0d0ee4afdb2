"""The pages, driven through Streamlit's AppTest on the real embedded model."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.distributions import DISTRIBUTION_CACHE, score_text

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
PAGES = [
    "pages/home.py",
    "pages/explorer.py",
    "pages/tree.py",
    "pages/score.py",
    "pages/finetune.py",
    "pages/build.py",
    "pages/ladder.py",
    "pages/compare.py",
    "pages/prompt_lab.py",
    "pages/inside.py",
    "pages/room.py",
    "pages/join.py",
]


def open_page(page: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(query or {})
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart_spec(at: AppTest) -> dict:
    charts = at.get("plotly_chart")
    assert charts, "no chart on the page"
    return json.loads(charts[0].proto.spec)


def bars(at: AppTest, trace: int) -> list[tuple[str, float]]:
    data = chart_spec(at)["data"][trace]
    return list(zip(data["y"], data["x"], strict=True))


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_without_exception(page):
    open_page(page)


def test_pages_always_run_inside_the_router_frame():
    """Streamlit's legacy mode would run pages/*.py bare on a rerun; require_router prevents it."""
    at = open_page("pages/score.py")
    at.run()
    assert at.sidebar.text_input(key="model_name").value == "embedded"


def test_sidebar_shows_the_loaded_model_and_switches_presentation_mode(lm):
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert at.sidebar.text_input(key="model_name").value == "embedded"
    assert any("SmolLM2-135M-Instruct" in c.value and "135M parameters" in c.value for c in at.sidebar.caption)
    at.sidebar.toggle(key="presentation").set_value(True).run()
    assert any(".lab-tokens { font-size: 1.7rem" in m.value for m in at.markdown)


def test_a_model_that_cannot_load_is_explained_on_the_page():
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.sidebar.text_input(key="model_name").set_value("no-such-org/no-such-model").run()
    at.switch_page("pages/explorer.py").run()
    assert not at.exception
    assert any("no-such-org/no-such-model" in e.value for e in at.error)


def test_france_puts_paris_on_the_top_bar():
    at = open_page("pages/explorer.py")
    at.text_area(key="ex_prompt").set_value("The capital of France is").run()
    top_label, top_prob = bars(at, 0)[0]
    assert top_label == "␣Paris"
    assert 0.6 < top_prob < 0.9


def test_temperature_reshapes_without_a_new_forward_pass(lm):
    at = open_page("pages/explorer.py")
    before_probs = [x for _, x in bars(at, 1)]
    calls = lm.forward_calls
    at.slider(key="ex_temperature").set_value(2.0).run()
    after = bars(at, 1)
    assert [x for _, x in after] != before_probs
    assert after[0][1] < before_probs[0]  # a hotter distribution is flatter at the top
    assert bars(at, 0)[0][1] == pytest.approx(before_probs[0])  # the model's own bars stay
    assert lm.forward_calls == calls


def test_pruned_tokens_and_the_cut_are_shown():
    at = open_page("pages/explorer.py")
    at.slider(key="ex_top_k").set_value(3).run()
    spec = chart_spec(at)
    shaped = spec["data"][1]
    assert shaped["text"][3:] == ["pruned"] * (len(shaped["text"]) - 3)
    assert any("3 token(s) kept" in a.get("text", "") for a in spec["layout"].get("annotations", []))


def test_append_undo_and_reset():
    at = open_page("pages/explorer.py")
    button(at, "⬆ Most likely").click().run()
    assert at.session_state["ex_path"] == [7042]  # " Paris"
    assert "Paris" in at.markdown[2].value or any("Paris</span>" in m.value for m in at.markdown)
    button(at, "🎲 Sample").click().run()
    assert len(at.session_state["ex_path"]) == 2
    button(at, "↶ Undo").click().run()
    assert at.session_state["ex_path"] == [7042]
    button(at, "⟲ Reset").click().run()
    assert at.session_state["ex_path"] == []


def test_pick_from_the_list_appends_that_token():
    at = open_page("pages/explorer.py")
    pick = next(s for s in at.selectbox if s.key and s.key.startswith("ex_pick"))
    assert pick.options[1].startswith("␣the")
    pick.select_index(1).run()
    button(at, "Append").click().run()
    assert at.session_state["ex_path"] == [260]  # " the", the second most likely


def test_generate_streams_several_tokens():
    at = open_page("pages/explorer.py")
    at.number_input(key="ex_n_tokens").set_value(4).run()
    button(at, "⏩ Generate").click().run()
    assert not at.exception
    assert 1 <= len(at.session_state["ex_path"]) <= 4


def test_url_state_round_trips():
    query = {"prompt": "Once upon a time", "chat": "0", "t": "0.7", "k": "20", "p": "0.9", "minp": "0", "path": "11"}
    at = open_page("pages/explorer.py", query)
    assert at.text_area(key="ex_prompt").value == "Once upon a time"
    assert at.slider(key="ex_temperature").value == pytest.approx(0.7)
    assert at.slider(key="ex_top_k").value == 20
    assert at.session_state["ex_path"] == [11]
    at.slider(key="ex_top_p").set_value(0.5).run()
    assert at.query_params["p"] == ["0.5"] or at.query_params["p"] == "0.5"
    assert at.query_params["prompt"] in (["Once upon a time"], "Once upon a time")


def test_presentation_mode_has_fewer_controls_and_larger_type():
    at = open_page("pages/explorer.py")
    assert any(s.key == "ex_min_p" for s in at.slider)
    at.sidebar.toggle(key="presentation").set_value(True).run()
    assert not any(s.key == "ex_min_p" for s in at.slider)
    assert any(".lab-tokens { font-size: 1.7rem" in m.value for m in at.markdown)


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("   ", "The prompt is empty"), (" the" * 9000, "reads at most")],
)
def test_bad_prompts_show_a_friendly_message(prompt, message):
    at = open_page("pages/explorer.py")
    at.text_area(key="ex_prompt").set_value(prompt).run()
    assert not at.exception
    assert any(message in e.value for e in at.error)


def test_chat_mode_shows_the_template():
    at = open_page("pages/explorer.py")
    at.text_area(key="ex_prompt").set_value("What is the capital of France?").run()
    at.toggle(key="ex_chat").set_value(True).run()
    chips = next(m.value for m in at.markdown if "lab-tokens" in m.value)
    assert "&lt;|im_start|&gt;" in chips and "2px solid" in chips  # special tokens outlined


def test_score_page_shows_the_perplexity_core_computes(lm):
    at = open_page("pages/score.py")
    text = "The capital of France is Paris, and it is a beautiful city."
    at.text_area(key="sc_text").set_value(text).run()
    expected = score_text(lm, text, alternatives=8).perplexity
    assert at.metric[0].value == f"{expected:,.2f}"
    coloured = next(m.value for m in at.markdown if "lab-tokens" in m.value)
    assert coloured.count("<span") == len(lm.tokenizer(text)["input_ids"])


def test_a_second_session_reuses_cached_distributions(lm):
    open_page("pages/explorer.py")
    hits, calls = DISTRIBUTION_CACHE.hits, lm.forward_calls
    open_page("pages/explorer.py")
    assert DISTRIBUTION_CACHE.hits > hits
    assert lm.forward_calls == calls


def test_a_one_token_prompt_is_counted_in_the_singular():
    at = open_page("pages/explorer.py", {"prompt": "Hello"})
    assert "What the model reads: 1 token" in [e.label for e in at.expander]
    at.text_area(key="ex_prompt").set_value("Hello there, friend").run()
    assert "What the model reads: 4 tokens" in [e.label for e in at.expander]


@pytest.mark.parametrize("path", ["99999999", "-1"])
def test_a_link_with_steered_ids_outside_the_vocabulary_explains_and_recovers(path):
    at = open_page("pages/explorer.py", {"prompt": "Hello", "path": path})
    assert not at.exception
    assert any("not a token of" in e.value for e in at.error)
    assert at.session_state["ex_path"] == [], "the explorer starts again from the prompt"
    assert chart_spec(at)["data"], "and shows the prompt's distribution"
