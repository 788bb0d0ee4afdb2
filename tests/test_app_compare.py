"""The compare page in AppTest, on the real model with a real (random-weight) adapter."""

import json

import pytest

from core.compare import ZERO_SHOT
from tests.adapters import saved_adapter_job
from tests.test_app import button, open_page

pytestmark = pytest.mark.usefixtures("data_dir")  # every test gets its own data folder


def metric(at, label: str) -> str:
    return next(m for m in at.metric if m.label == label).value


def test_without_adapters_the_page_says_where_to_get_one():
    at = open_page("pages/compare.py")
    assert at.multiselect(key="cmp_adapters").value == []
    assert any("Choose a fine-tuned adapter" in i.value for i in at.info)


def test_a_comparison_runs_and_shows_accuracy_answers_and_exports(lm):
    saved_adapter_job(lm, "random-tuned", random_weights=True)
    at = open_page("pages/compare.py")
    assert at.multiselect(key="cmp_adapters").value == ["random-tuned"], "an adapter trained on this dataset"
    at.slider(key="cmp_count").set_value(2)
    at.slider(key="cmp_shots").set_value(1)
    at.number_input(key="cmp_max_new").set_value(3)
    button(at, "Run the comparison").click().run()
    assert not at.exception, [e.value for e in at.exception]
    summary, side = (frame.value for frame in at.dataframe[:2])
    assert list(summary["column"]) == ["Zero-shot", "Few-shot (1 examples)", "Fine-tuned: random-tuned"]
    assert len(side) == 2 and "Fine-tuned: random-tuned" in side.columns
    chart = json.loads(next(c for c in at.get("plotly_chart") if "accuracy" in c.proto.id).proto.spec)
    assert chart["data"][0]["x"] == list(summary["column"])
    downloads = at.get("download_button")
    assert {d.proto.label for d in downloads} >= {"⬇ Comparison as CSV", "⬇ Comparison as JSON"}
    result = at.session_state["cmp_result"]
    assert result.accuracy()[ZERO_SHOT] is not None and len(result.rows) == 2


def test_the_strength_slider_morphs_base_into_tuned(lm):
    saved_adapter_job(lm, "random-tuned", random_weights=True)
    at = open_page("pages/compare.py")
    at.slider(key="cmp_strength").set_value(0.0).run()
    assert metric(at, "Jensen–Shannon") == "0.000 bits"
    assert metric(at, "KL(tuned ‖ base)") == "0.000 bits"
    at.slider(key="cmp_strength").set_value(1.0).run()
    assert metric(at, "Jensen–Shannon") != "0.000 bits"


def test_a_broken_upload_gets_a_message_not_a_traceback():
    at = open_page("pages/compare.py")
    at.selectbox(key="cmp_dataset").set_value("upload").run()
    assert any("Upload a .csv or .jsonl" in i.value for i in at.info)
    assert button(at, "Run the comparison").disabled
