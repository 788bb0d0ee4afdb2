"""The inside page in AppTest: its charts show exactly what core.lens computes, for the base model and a LoRA."""

import json
import math

import pytest
import torch

from core.finetune.adapters import resolve_adapter
from core.lens import compare_models, model_internals
from core.tokens import encode_prompt
from tests.adapters import saved_adapter_job
from tests.test_app import open_page

FRANCE = "The capital of France is"
PARIS = 7042


def chart(at, key: str) -> dict:
    """The plotly spec of the chart with ``key`` (Streamlit puts the key in the element's id)."""
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(key)]
    assert found, f"no chart {key!r} on the page"
    return json.loads(found[0].proto.spec)


def assert_cells(z: list[list[float | None]], expected: torch.Tensor, causal: bool = False) -> None:
    """A heatmap's cells equal ``expected``; with ``causal``, the cells above the diagonal are blank."""
    shown = torch.tensor([[math.nan if v is None else v for v in row] for row in z], dtype=torch.float64)
    expected = expected.double().clone()
    if causal:
        expected[torch.triu(torch.ones_like(expected, dtype=torch.bool), diagonal=1)] = math.nan
    assert shown.shape == expected.shape
    assert torch.allclose(shown, expected, atol=1e-6, equal_nan=True)


@pytest.fixture(scope="module")
def france(lm):
    return model_internals(lm, encode_prompt(lm, FRANCE).ids)


def test_the_lens_chart_and_the_rise_of_paris_are_what_core_computes(france):
    at = open_page("pages/inside.py")
    lens = france.lens
    heat = chart(at, "in_lens_chart")["data"][0]
    assert_cells(heat["z"], lens.top1_probs)
    assert heat["text"][-1][-1] == "␣Paris" and heat["text"][0][0] == "The"
    assert heat["x"] == list(range(lens.n_positions)) and len(heat["y"]) == lens.n_layers + 1
    assert "␣Paris  77.3%" in heat["customdata"][-1][-1]  # the hover lists the top 5
    line = chart(at, "in_tracked_chart")
    assert "␣Paris" in line["layout"]["title"]["text"]
    assert line["data"][0]["y"] == pytest.approx(lens.prob_by_layer(PARIS))
    assert line["data"][0]["text"][-1] == "77.3%"


def test_a_typed_token_is_followed_and_a_bad_one_explained(lm, france):
    at = open_page("pages/inside.py")
    at.text_input(key="in_typed_token").set_value(" France").run()
    assert not at.exception
    france_id = lm.tokenizer(" France", add_special_tokens=False)["input_ids"][0]
    assert chart(at, "in_tracked_chart")["data"][0]["y"] == pytest.approx(france.lens.prob_by_layer(france_id))
    at.text_input(key="in_typed_token").set_value(" Parisian capital").run()
    assert any("single token" in e.value for e in at.error)
    assert chart(at, "in_tracked_chart")["data"][0]["y"] == pytest.approx(france.lens.prob_by_layer(PARIS))


def test_the_attention_view_follows_the_chosen_layer_and_head(france):
    at = open_page("pages/inside.py")
    at.radio(key="in_view").set_value("attention").run()
    at.slider(key="in_layer").set_value(7).run()
    assert_cells(chart(at, "in_attention_chart")["data"][0]["z"], france.attention.pattern(7), causal=True)
    at.selectbox(key="in_head").set_value(4).run()
    assert not at.exception
    heat = chart(at, "in_attention_chart")["data"][0]
    assert_cells(heat["z"], france.attention.pattern(7, 4), causal=True)
    assert heat["z"][0][1] is None  # nothing above the diagonal
    gallery = chart(at, "in_gallery_chart")["data"]
    assert len(gallery) == 9
    assert_cells(gallery[3]["z"], france.attention.pattern(7, 4), causal=True)
    assert any("layer 7, head 4" in m.value for m in at.markdown)


def test_presentation_mode_is_bigger_and_simpler():
    at = open_page("pages/inside.py")
    assert at.selectbox(key="in_example") is not None
    at.sidebar.toggle(key="presentation").set_value(True).run()
    assert not any(s.key == "in_example" for s in at.selectbox)
    assert not any(t.key == "in_typed_token" for t in at.text_input)
    assert chart(at, "in_lens_chart")["layout"]["font"]["size"] == 20
    at.radio(key="in_view").set_value("attention").run()
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("in_gallery_chart")]


def test_a_long_prompt_shows_a_window_of_positions(lm):
    at = open_page("pages/inside.py")
    prompt = (
        "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen"
    )
    at.text_area(key="in_prompt").set_value(prompt).run()
    n = len(encode_prompt(lm, prompt).ids)
    assert chart(at, "in_lens_chart")["data"][0]["x"] == list(range(n - 16, n))
    at.select_slider(key="in_window").set_value((0, 4)).run()
    assert chart(at, "in_lens_chart")["data"][0]["x"] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("prompt", "message"), [("  ", "The prompt is empty"), (" the" * 200, "at most 128")])
def test_bad_prompts_show_a_message(prompt, message):
    at = open_page("pages/inside.py")
    at.text_area(key="in_prompt").set_value(prompt).run()
    assert not at.exception
    assert any(message in e.value for e in at.error)


@pytest.mark.slow  # saves a LoRA and reads both models
def test_an_adapter_shows_the_tuned_model_and_the_difference(lm, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_LAB_DATA", str(tmp_path))
    job = saved_adapter_job(lm, "inside-lora", random_weights=True)
    ids = encode_prompt(lm, FRANCE).ids
    comparison = compare_models(lm, lm.with_adapter(resolve_adapter(job.path)), ids)

    at = open_page("pages/inside.py")
    at.selectbox(key="in_adapter").set_value("inside-lora").run()
    assert any("SmolLM2-135M-Instruct + inside-lora" in c.value for c in at.caption)
    assert_cells(chart(at, "in_lens_chart")["data"][0]["z"], comparison.tuned.lens.top1_probs)
    line = chart(at, "in_tracked_chart")["data"]
    assert [d["name"] for d in line] == ["base model", "fine-tuned"]
    # the token followed is still the one of the base view (" Paris"), now through both models
    assert line[0]["y"] == pytest.approx(comparison.base.lens.prob_by_layer(PARIS))
    assert line[1]["y"] == pytest.approx(comparison.tuned.lens.prob_by_layer(PARIS))
    assert line[1]["y"][-1] != pytest.approx(line[0]["y"][-1], abs=1e-2)

    at.radio(key="in_show").set_value("difference").run()
    assert_cells(chart(at, "in_lens_chart")["data"][0]["z"], comparison.total_variation)
    at.radio(key="in_view").set_value("attention").run()
    assert_cells(chart(at, "in_attention_chart")["data"][0]["z"], comparison.attention_difference(3), causal=True)
    at.radio(key="in_show").set_value("base").run()
    assert_cells(chart(at, "in_attention_chart")["data"][0]["z"], comparison.base.attention.pattern(3), causal=True)
