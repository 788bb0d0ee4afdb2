"""The prompt lab page in AppTest, on the real model: variants, results, exports, links, the shot curve."""

import json

from tests.test_app import button, open_page

PAGE = "pages/prompt_lab.py"


def value(at, key: str):
    return at.session_state[key]


def test_the_page_opens_with_two_variants_of_the_sentiment_task_in_the_url():
    at = open_page(PAGE)
    assert at.radio(key="pl_n").value == 2
    template = at.text_area(key="pl_template_0").value
    assert template.startswith("Classify the sentiment") and template.endswith("Review: {input}")
    assert at.text_input(key="pl_hint_1").value == "Answer with one word: positive or negative."
    assert at.query_params["variants"] in ("2", ["2"]) and "t2" in at.query_params
    at.radio(key="pl_n").set_value(4).run()
    assert at.slider(key="pl_shots_3").value == 4 and at.text_area(key="pl_system_3").value
    assert at.query_params["k4"] in ("4", ["4"]), "the URL follows the variants"


def test_variants_run_and_show_accuracy_answers_side_by_side_and_exports():
    at = open_page(PAGE)
    at.slider(key="pl_count").set_value(2).run()
    at.slider(key="pl_shots_1").set_value(1).run()
    button(at, "Run the variants").click().run()
    assert not at.exception, [e.value for e in at.exception]
    summary, side = (frame.value for frame in at.dataframe[:2])
    assert list(summary["variant"]) == ["A: 0 examples", "B: 1 example, hint"]
    result = value(at, "pl_result")
    assert list(summary["accuracy"]) == [s.accuracy for s in result.scores()]
    assert list(summary["mean P(expected)"]) == [s.p_expected for s in result.scores()]
    assert len(side) == 2 and list(side.columns) == ["input", "expected", "A", "B"]
    marks = {cell[0] for cell in [*side["A"], *side["B"]]}
    assert marks <= {"✅", "❌"}
    labels = {d.proto.label for d in at.get("download_button")}
    assert {"⬇ Answers as CSV", "⬇ Answers as JSON"} <= labels


def test_a_link_restores_variants_and_bad_values_fall_back_with_a_warning():
    query = {
        "variants": "3",
        "t1": "Review: {input}\nSentiment:",
        "k2": "2",
        "h2": "One word.",
        "t3": "no slot",
        "k3": "x",
    }
    at = open_page(PAGE, query)
    assert at.radio(key="pl_n").value == 3
    assert at.text_area(key="pl_template_0").value == "Review: {input}\nSentiment:"
    assert at.slider(key="pl_shots_1").value == 2 and at.text_input(key="pl_hint_1").value == "One word."
    assert at.text_area(key="pl_template_2").value.endswith("Review: {input}"), "the default, not 'no slot'"
    assert at.slider(key="pl_shots_2").value == 4
    warnings = [w.value for w in at.warning]
    assert any("Variant C's template in the link has no {input}" in w for w in warnings)
    assert any("Variant C's number of examples in the link ('x')" in w for w in warnings)


def test_a_template_without_its_slot_is_refused_with_a_sentence():
    at = open_page(PAGE)
    at.text_area(key="pl_template_1").set_value("Is this review positive?").run()
    button(at, "Run the variants").click().run()
    assert not at.exception
    assert any("Variant B's template has no {input}" in e.value for e in at.error)
    assert "pl_result" not in at.session_state


def test_typed_items_and_the_shot_curve_with_random_labels():
    at = open_page(PAGE)
    at.radio(key="pl_source").set_value("typed").run()
    at.text_area(key="pl_typed_items").set_value("Lovely food. => positive\nRude staff. => negative").run()
    assert at.text_area(key="pl_template_0").value == "{input}", "typed items share no instruction"
    at.multiselect(key="pl_curve_ks").set_value([0, 2]).run()
    at.slider(key="pl_orders").set_value(2).run()
    at.checkbox(key="pl_random").check().run()
    assert any(c.value == "This asks 10 prompts (5 runs of 2 items)." for c in at.caption)
    button(at, "Draw the shot curve").click().run()
    assert not at.exception, [e.value for e in at.exception]
    curve = value(at, "pl_curve")
    assert [p.shots for p in curve.points] == [0, 2] and [p.orders for p in curve.points] == [1, 2]
    chart = json.loads(next(c for c in at.get("plotly_chart") if "pl_curve_chart" in c.proto.id).proto.spec)
    lines = [t for t in chart["data"] if t.get("mode") == "lines+markers"]
    assert [t["name"] for t in lines] == ["examples as given", "random labels"] * 2, "two panels, two curves"
    assert lines[0]["y"] == [p.accuracy for p in curve.points]
    labels = {d.proto.label for d in at.get("download_button")}
    assert {"⬇ Curve as CSV", "⬇ Curve as JSON"} <= labels


def test_an_empty_typed_task_says_what_to_type():
    at = open_page(PAGE)
    at.radio(key="pl_source").set_value("typed").run()
    at.text_area(key="pl_typed_items").set_value("   ").run()
    assert not at.exception
    assert any("The task has no items to ask" in e.value for e in at.error)


def test_another_dataset_brings_its_own_starting_variants_and_answer_length():
    at = open_page(PAGE)
    at.text_area(key="pl_template_0").set_value("Review: {input}").run()
    at.selectbox(key="pl_dataset").set_value("pirate").run()
    assert not at.exception
    assert at.text_area(key="pl_template_0").value != "Review: {input}"
    assert at.text_input(key="pl_hint_1").value == "Answer briefly.", "free answers: no labels to name"
    assert at.number_input(key="pl_max_new").value == 32
    assert at.query_params["dataset"] in ("pirate", ["pirate"])
