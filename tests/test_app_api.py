"""The explorer against a real OpenAI-compatible server (llama.cpp's, on the embedded GGUF), in AppTest."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_app import APP, button

pytestmark = [pytest.mark.server, pytest.mark.slow]
SECRET = "sk-test-SECRET-page-456"


def api_explorer(base_url: str, key: str = "") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.sidebar.radio(key="backend").set_value("openai").run()
    at.sidebar.text_input(key="api_base_url").set_value(base_url).run()
    at.sidebar.text_input(key="api_key").set_value(key).run()
    at.sidebar.button[0].click().run()  # list the server's models
    at.switch_page("pages/explorer.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_api_distribution_shows_paris_and_the_unlisted_mass(llama_server):
    at = api_explorer(llama_server)
    assert at.session_state["api_model"]  # filled from /v1/models
    at.text_area(key="ex_prompt").set_value("The capital of France is").run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    labels, probs = spec["data"][0]["y"], spec["data"][0]["x"]
    assert labels[0] == "␣Paris" and 0.6 < probs[0] < 0.9
    assert labels[-1] == "other (not listed)"
    assert sum(probs) == pytest.approx(1.0, abs=1e-6)
    assert len(labels) <= 21
    assert any(m.label == "Entropy ≥" for m in at.metric)


def test_api_steering_and_generation(llama_server):
    at = api_explorer(llama_server)
    at.text_area(key="ex_prompt").set_value("The capital of France is").run()
    button(at, "Append").click().run()
    assert [s.chosen.token for s in at.session_state["ex_api_steps"]] == [" Paris"]
    at.number_input(key="ex_n_tokens").set_value(3).run()
    button(at, "⏩ Generate").click().run()
    assert not at.exception
    steps = at.session_state["ex_api_steps"]
    assert 2 <= len(steps) <= 4
    assert all(len(s.alternatives) <= 20 for s in steps)


def test_api_errors_are_explained_and_the_key_never_shown(unused_port):
    at = api_explorer(f"http://127.0.0.1:{unused_port}/v1", key=SECRET)
    listing_error = " ".join(e.value for e in at.sidebar.error)
    assert "127.0.0.1" in listing_error
    at.sidebar.text_input(key="api_model").set_value("some-model").run()
    at.switch_page("pages/explorer.py").run()
    shown = " ".join(e.value for e in at.error)
    assert "127.0.0.1" in shown
    everything = json.dumps([str(el) for el in at], default=str) + " ".join(str(v) for v in at.query_params.values())
    assert SECRET not in everything
    assert "api_key" not in at.query_params


def test_score_page_says_why_an_api_cannot_score(llama_server):
    at = api_explorer(llama_server)
    at.switch_page("pages/score.py").run()
    assert any("only for the tokens it generates" in i.value for i in at.info)


def test_a_server_started_for_an_api_class_starts_every_session_on_it(llama_server, monkeypatch):
    """LLM_LAB_BACKEND=openai (with OPENAI_BASE_URL and LLM_LAB_API_MODEL): a student opens the page and sees it."""
    monkeypatch.setenv("LLM_LAB_BACKEND", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server)
    monkeypatch.setenv("LLM_LAB_API_MODEL", "smollm2")
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["prompt"] = "The capital of France is"
    at.switch_page("pages/explorer.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert (at.session_state["backend"], at.session_state["api_model"]) == ("openai", "smollm2")
    assert at.session_state["api_base_url"] == llama_server
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["y"][-1] == "other (not listed)", "the API view, not the local model's"
