"""The prompt lab's core on the real model: variants side by side, the shot curve, links; the shots CLI.

Items are few (2 or 3) and k at most 2, so the whole file stays well under
two minutes of CPU.
"""

import contextlib
import io
import json
import math

import pytest

from core.backends import LocalBackend
from core.cli import main
from core.datasets import load_dataset
from core.distributions import SamplingSettings
from core.errors import InvalidInput
from core.promptlab import PromptVariant, run_variants, shot_curve, starting_variants, task_from_dataset, typed_task
from core.promptlab.links import variants_from_params, variants_to_params
from core.promptlab.shots import orderings, with_random_labels
from core.prompts import pick_shots

GREEDY = SamplingSettings(temperature=0)


@pytest.fixture(scope="module")
def backend(lm):
    return LocalBackend(lm)


@pytest.fixture(scope="module")
def sentiment():
    return load_dataset("sentiment")


@pytest.fixture(scope="module")
def task(sentiment):
    return task_from_dataset(sentiment, limit=3)


def test_the_shared_instruction_becomes_the_template_and_asks_each_item_as_written(task, sentiment):
    assert task.instruction.startswith("Classify the sentiment") and task.instruction.endswith("Review: ")
    assert task.default_template == task.instruction + "{input}"
    variant = PromptVariant(template=task.default_template)
    assert [variant.body(item).prompt for item in task.items] == [e.prompt for e in sentiment.eval[:3]]
    assert task.suggested_hint() == "Answer with one word: positive or negative."
    assert len(task.examples) == len(sentiment.train) and set(task.labels) == {"positive", "negative"}


@pytest.fixture(scope="module")
def compared(backend, task):
    variants = [
        PromptVariant("A", template=task.default_template),
        PromptVariant("B", system="Answer tersely.", template="Review: {input}\nSentiment?", shots=2, hint="One word."),
    ]
    return run_variants(backend, task, variants, GREEDY, seed=3)


def test_variants_answer_the_same_items_and_match_the_plain_generation_and_scoring(backend, task, compared):
    assert [v.name for v in compared.variants] == ["A", "B"]
    assert len(compared.answers) == 2 and all(len(answers) == len(task.items) for answers in compared.answers)
    shots_b = pick_shots(task.examples, 2, 3)
    for variant, answers, shots in zip(compared.variants, compared.answers, [(), shots_b], strict=True):
        for item, answer in zip(task.items, answers, strict=True):
            asked = variant.ask(item, shots, chat=True)
            # the plain way: one forward over prompt and expected answer, and the step-by-step generation
            plain = math.exp(sum(backend.expected_logprobs(asked)))
            assert answer.p_expected == pytest.approx(plain, rel=1e-3)
            reply = backend.reply(asked, GREEDY, 3, task.max_new_tokens)
            assert (answer.text, answer.tokens) == (reply.text, reply.tokens)
            assert answer.correct == task.judge(item, reply.text)
    assert "Answer tersely." in compared.asked[1] and "One word." in compared.asked[1]
    assert compared.asked[1].count("Sentiment?") == 3, "two examples and the question, worded alike"
    scores = compared.scores()
    assert scores[0].accuracy == sum(a.correct for a in compared.answers[0]) / len(task.items)
    assert scores[1].mean_tokens == sum(a.tokens for a in compared.answers[1]) / len(task.items)


def test_a_variant_s_items_run_as_batches_on_the_engine(lm, backend, task):
    before = dict(lm.engine.stats.rows_hist)
    run_variants(backend, task, [PromptVariant(template=task.default_template, shots=1)], GREEDY)
    after = lm.engine.stats.rows_hist
    assert any(rows >= 2 and count > before.get(rows, 0) for rows, count in after.items())


def test_the_result_exports_one_row_per_item_and_variant(compared, task):
    rows = compared.table_rows()
    assert len(rows) == 2 * len(task.items) and {r["variant"] for r in rows} == {"A", "B"}
    data = json.loads(json.dumps(compared.to_json()))
    assert [v["name"] for v in data["variants"]] == ["A", "B"]
    assert data["variants"][1]["accuracy"] == compared.scores()[1].accuracy
    assert set(data["items"][0]["answers"]) == {"A", "B"}


def test_bad_variants_are_refused_before_anything_runs(lm, backend, task):
    calls = lm.forward_calls
    with pytest.raises(InvalidInput, match=r"Variant B's template has no \{input\}"):
        run_variants(backend, task, [PromptVariant("A"), PromptVariant("B", template="Classify this.")])
    with pytest.raises(InvalidInput, match="Variant A asks for 5 examples, but the task has only 4 to show"):
        run_variants(backend, typed_task("a => b", "\n".join(f"x{n} => y" for n in range(4))), [PromptVariant(shots=5)])
    with pytest.raises(InvalidInput, match=r"prompt of .* tokens \(item 1\) and .* reads at most 8,192"):
        run_variants(backend, typed_task("word " * 9000 + "=> yes"), [PromptVariant()])
    assert lm.forward_calls == calls, "nothing was asked"


def test_orders_are_distinct_and_start_with_the_draw():
    assert orderings(0, 3, 0) == [()] and orderings(1, 3, 0) == [(0,)]
    assert orderings(2, 3, 0) == [(0, 1), (1, 0)], "only two orders exist"
    found = orderings(4, 5, 7)
    assert found[0] == (0, 1, 2, 3) and len(set(found)) == 5 and all(sorted(o) == [0, 1, 2, 3] for o in found)
    assert found == orderings(4, 5, 7) and found != orderings(4, 5, 8)


def test_random_labels_change_the_examples_answers_only(task):
    shots = pick_shots(task.examples, 8, 0)
    relabelled = [with_random_labels(shots, task.labels, seed) for seed in range(5)]
    for shuffled in relabelled:
        assert [s.prompt for s in shuffled] == [s.prompt for s in shots]
        assert {s.completion for s in shuffled} <= set(task.labels)
    changed = [sum(a.completion != b.completion for a, b in zip(shots, s, strict=True)) for s in relabelled]
    assert any(changed), "some answers differ from the true labels"
    assert relabelled[0] == with_random_labels(shots, task.labels, 0), "seeded"


def test_the_shot_curve_starts_at_zero_shot_and_bands_its_orders(backend, task, compared):
    variant = compared.variants[0]
    curve = shot_curve(backend, task, [2, 0, 1], orders=2, seed=3, random_labels=True, variant=variant)
    assert [p.shots for p in curve.points] == [0, 1, 2] and [p.orders for p in curve.points] == [1, 1, 2]
    zero, zero_run = curve.points[0], compared.scores()[0]
    assert zero.accuracy == zero_run.accuracy
    assert zero.p_expected == pytest.approx(zero_run.p_expected, rel=1e-6)
    for p in (*curve.points, *curve.random_labels):
        assert p.accuracy_min <= p.accuracy <= p.accuracy_max
        assert p.p_expected_min <= p.p_expected <= p.p_expected_max
    assert curve.random_labels[0] == zero, "no examples: nothing to relabel"
    # k = 1, order as drawn: the same examples as a variant asked with one example
    one = run_variants(backend, task, [PromptVariant(template=variant.template, shots=1)], GREEDY, seed=3)
    assert curve.points[1].p_expected == pytest.approx(one.scores()[0].p_expected, rel=1e-3)
    assert len([r for r in curve.runs if r.curve == "random_labels"]) == 3
    data = json.loads(json.dumps(curve.to_json()))
    assert set(data["points"][0]) >= {"shots", "accuracy", "accuracy_min", "accuracy_max", "p_expected"}


def test_the_shot_curve_refuses_what_it_cannot_measure(backend, task):
    with pytest.raises(InvalidInput, match="The number of orders must be a whole number from 1 to 10; got -1"):
        shot_curve(backend, task, [0], orders=-1)
    with pytest.raises(InvalidInput, match="needs items with expected answers"):
        shot_curve(backend, typed_task("no answer here", "a => b"), [0])
    with pytest.raises(InvalidInput, match="at least one number of examples"):
        shot_curve(backend, task, [])


def test_variants_travel_in_a_link_and_bad_values_fall_back_with_a_sentence(task):
    defaults = starting_variants(task)
    chosen = [defaults[0], PromptVariant("B", system="Be brief.", template="Q: {input}", shots=3, hint="One word.")]
    back, warnings = variants_from_params(variants_to_params(chosen), defaults, 8)
    assert back == chosen and warnings == []
    params = {"variants": "9", "t1": "no slot", "k2": "²", "s2": "x" * 5000}
    back, warnings = variants_from_params(params, defaults, 8)
    assert back == list(defaults[:2]), "every bad value fell back"
    assert len(warnings) == 4 and "variants" in warnings[0] and "{input}" in warnings[1]


def cli(*argv: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(argv)) == 0
    return json.loads(out.getvalue())


def test_cli_shots_prints_points_in_the_documented_shape():
    result = cli("shots", "--dataset", "sentiment", "--shots", "0", "1", "--orders", "2", "--limit", "2", "--json")
    points = result["points"]
    assert [p["shots"] for p in points] == [0, 1]
    for p in points:
        assert set(p) >= {"shots", "accuracy", "accuracy_min", "accuracy_max", "p_expected"}
        assert p["accuracy_min"] <= p["accuracy"] <= p["accuracy_max"] and 0 < p["p_expected"] < 1
    assert result["items"] == 2 and "random_labels" not in result
