"""Adapters switched on one shared base model, the comparison table and the distribution shift.

Adapters here are real LoRA adapters with random weights (``tests/adapters``),
so they visibly change the model; the one test that needs a *trained* adapter
uses the session's short sentiment fine-tune.
"""

import json
import threading

import pytest
import torch

from core.adapter_host import AdapterRef
from core.backends import LocalBackend
from core.cli import main
from core.compare import FEW_SHOT, ZERO_SHOT, contenders, run_comparison
from core.datasets import load_dataset, typed_items
from core.distributions import SamplingSettings, next_token_distribution
from core.errors import InvalidInput, ModelLoadError
from core.exports import safe_csv
from core.finetune.adapters import resolve_adapter
from core.finetune.jobs import ADAPTER_SUBDIR
from core.generation import generate
from core.models import LoadedModel
from core.prompts import Example, completion_ids, normalise, pick_shots, prompt_ids, with_shots
from core.shift import distribution_shift
from tests.adapters import saved_adapter_job

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def adapters(lm, tmp_path_factory):
    """Two different random adapters for the embedded model, saved as jobs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLM_LAB_DATA", str(tmp_path_factory.mktemp("compare-data")))
        yield [
            saved_adapter_job(lm, f"random-{seed}", random_weights=True, seed=seed).path / ADAPTER_SUBDIR
            for seed in (1, 2)
        ]


@pytest.fixture(scope="module")
def ids(lm):
    return lm.tokenizer(PROMPT)["input_ids"]


def logits(model, ids):
    return model.forward(ids)[0]


def with_adapter(lm: LoadedModel, folder, scale: float = 1.0) -> LoadedModel:
    """A view of ``lm`` with the adapter in ``folder`` (an adapter or job folder, or a saved name) on at ``scale``."""
    return lm.with_adapter(resolve_adapter(folder).scaled(scale))


def adapter_column(lm: LoadedModel, folder) -> tuple[str, LocalBackend]:
    """(label, backend) for a comparison column of ``lm`` with the adapter in ``folder`` on."""
    ref = resolve_adapter(folder)
    return ref.label, LocalBackend(lm.with_adapter(ref))


def test_adapters_are_views_of_the_one_base_model(lm, adapters, ids):
    before = logits(lm, ids)
    first, second = (with_adapter(lm, a) for a in adapters)
    assert first.model is lm.model and second.model is lm.model, "no copy of the base per adapter"
    assert first.n_parameters > lm.n_parameters
    tuned_1, tuned_2 = logits(first, ids), logits(second, ids)
    assert not torch.allclose(tuned_1, before, atol=1e-3) and not torch.allclose(tuned_1, tuned_2, atol=1e-3)
    assert torch.equal(logits(lm, ids), before), "the base model answers exactly as before any adapter"
    loads = lm.adapters.loads
    for _ in range(3):
        assert torch.equal(logits(first, ids), tuned_1) and torch.equal(logits(lm, ids), before)
    assert lm.adapters.loads == loads, "switching reads nothing from disk"


def test_strength_zero_is_the_base_and_one_is_the_adapter_exactly(lm, adapters, ids):
    base = next_token_distribution(lm, ids)
    tuned = next_token_distribution(with_adapter(lm, adapters[0]), ids)
    at_zero = next_token_distribution(with_adapter(lm, adapters[0], 0.0), ids)
    at_one = next_token_distribution(with_adapter(lm, adapters[0], 1.0), ids)
    half = next_token_distribution(with_adapter(lm, adapters[0], 0.5), ids)
    assert torch.equal(at_zero.logits, base.logits)
    assert torch.equal(at_one.logits, tuned.logits)
    whole = distribution_shift(base, tuned).js_bits
    assert 0 < distribution_shift(base, half).js_bits < whole
    with pytest.raises(InvalidInput, match="between 0 and 1"):
        with_adapter(lm, adapters[0], 1.5)


def test_threads_asking_for_base_and_tuned_always_get_their_own(lm, adapters, ids):
    """Token-by-token generation on the KV cache, with the other thread switching adapters in between."""
    tuned = with_adapter(lm, adapters[0])
    greedy = SamplingSettings(temperature=0)
    expected = {
        name: ([s.chosen.id for s in generate(model, ids, 6, greedy)], logits(model, ids))
        for name, model in (("base", lm), ("tuned", tuned))
    }
    assert expected["base"][0] != expected["tuned"][0]
    wrong: list[str] = []

    def ask(name, model):
        for _ in range(6):
            tokens = [s.chosen.id for s in generate(model, ids, 6, greedy)]
            # Rows of both threads may share one batch (peft's per-row adapters): the same numbers to float32's
            # rounding, where the other adapter's would be off by whole units.
            if tokens != expected[name][0] or not torch.allclose(logits(model, ids), expected[name][1], atol=1e-3):
                wrong.append(name)

    threads = [threading.Thread(target=ask, args=item) for item in (("base", lm), ("tuned", tuned))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_the_least_recently_used_adapter_leaves_memory_and_comes_back(lm, adapters, ids, monkeypatch):
    first, second = (with_adapter(lm, a) for a in adapters)
    reference = logits(first, ids)
    monkeypatch.setattr(lm.adapters, "capacity", 1)
    logits(second, ids)
    logits(first, ids)  # the second is evicted by the first coming back
    assert len(lm.adapters.slots) == 1
    loads = lm.adapters.loads
    assert torch.equal(logits(first, ids), reference)
    logits(second, ids)
    assert lm.adapters.loads == loads + 1, "an evicted adapter is read again when asked for"


def test_an_adapter_for_another_model_is_refused_and_the_base_is_unharmed(lm, adapters, ids, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    config = json.loads((adapters[0] / "adapter_config.json").read_text())
    (broken / "adapter_config.json").write_text(json.dumps({**config, "target_modules": ["no_such_layer"]}))
    (broken / "adapter_model.safetensors").write_bytes((adapters[0] / "adapter_model.safetensors").read_bytes())
    before = logits(lm, ids)
    with pytest.raises(ModelLoadError, match="does not fit"):
        lm.with_adapter(AdapterRef.at(broken, "broken"))
    assert torch.equal(logits(lm, ids), before)
    with pytest.raises(InvalidInput, match="not a LoRA adapter folder"):
        lm.with_adapter(AdapterRef.at(tmp_path, tmp_path.name))


def test_adapters_are_found_by_folder_job_or_name(adapters):
    assert resolve_adapter(adapters[0]).folder == adapters[0].resolve()
    assert resolve_adapter(adapters[0].parent).folder == adapters[0].resolve()
    assert resolve_adapter("random-2").folder == adapters[1].resolve()
    assert [resolve_adapter(a).label for a in (adapters[0], adapters[0].parent, "random-2")] == [
        "random-1",
        "random-1",
        "random-2",
    ]
    with pytest.raises(InvalidInput, match="no adapter called"):
        resolve_adapter("nothing-here")


def test_shift_of_a_distribution_with_itself_is_zero(lm, ids):
    dist = next_token_distribution(lm, ids)
    shift = distribution_shift(dist, dist, top_k=5)
    assert shift.kl_tuned_base_bits == pytest.approx(0, abs=1e-12) and shift.js_bits == pytest.approx(0, abs=1e-12)
    assert [t.id for t in shift.tokens] == [t.id for t in dist.top(5)]
    other = next_token_distribution(lm, ids[:-1])
    with pytest.raises(InvalidInput, match="different prompts"):
        distribution_shift(dist, other)


def test_target_logprob_matches_token_by_token_distributions(lm):
    example = Example("What is the capital of France?", "Paris, of course")
    prompt, target = prompt_ids(lm.tokenizer, example), completion_ids(lm.tokenizer, example)
    step_by_step = [
        float(next_token_distribution(lm, prompt + target[:i]).logprobs[token]) for i, token in enumerate(target)
    ]
    logprobs = LocalBackend(lm).expected_logprobs(example)
    assert logprobs == pytest.approx(step_by_step, abs=1e-4)
    assert sum(logprobs) / len(logprobs) == pytest.approx(sum(step_by_step) / len(target), abs=1e-4)


def test_few_shot_puts_solved_examples_before_the_prompt_as_chat_turns(lm):
    dataset = load_dataset("sentiment")
    shots = pick_shots(dataset.train, 2, seed=0)
    assert shots == pick_shots(dataset.train, 2, seed=0) and all(s in dataset.train for s in shots)
    example = with_shots(dataset.eval[0], shots, chat=True)
    roles = [role for role, _ in example.context]
    assert roles == ["user", "assistant", "user", "assistant"] and example.context[1][1] == shots[0].completion
    text = lm.tokenizer.decode(prompt_ids(lm.tokenizer, with_shots(dataset.eval[0], shots, chat=True)))
    assert text.index(shots[0].prompt) < text.index(shots[1].prompt) < text.index(dataset.eval[0].prompt)
    with pytest.raises(InvalidInput, match="between 0 and"):
        pick_shots(dataset.train, 99, seed=0)


def test_matching_folds_case_and_punctuation_only_where_asked():
    assert normalise("  Positive. ") == normalise("positive") == "positive"
    assert normalise("not positive") != normalise("positive")
    typed = typed_items("a => b\n\n  c  \n")
    assert typed == [typed_items("a => b")[0], typed_items("c")[0]]
    assert typed_items("a => b")[0].completion == "b" and typed_items("c")[0].completion == ""
    assert [e.source for e in typed] == ["line 1", "line 3"], "each item says which line it came from"


def test_comparison_table_with_random_adapter(lm, adapters):
    dataset = load_dataset("sentiment")
    views = [adapter_column(lm, adapters[0])]
    columns = contenders(LocalBackend(lm), views, pick_shots(dataset.train, 2, seed=0))
    result = run_comparison(columns, dataset.eval[:2], dataset, SamplingSettings(temperature=0), max_new_tokens=4)
    assert [name for name, _ in result.columns] == [ZERO_SHOT, FEW_SHOT, "random-1"]
    for row in result.rows:
        assert [a.column for a in row.answers] == [ZERO_SHOT, FEW_SHOT, "random-1"]
        assert all(a.correct is not None and a.target_logprob < 0 and 1 <= a.tokens <= 4 for a in row.answers)
    summary = {s.column: s for s in result.summaries()}
    assert summary[FEW_SHOT].accuracy == sum(r.answers[1].correct for r in result.rows) / 2
    exported = result.to_json()
    assert set(exported["accuracy"]) == {ZERO_SHOT, FEW_SHOT, "random-1"}
    assert len(result.table_rows()) == 6
    with pytest.raises(InvalidInput, match="same name"):
        contenders(LocalBackend(lm), views * 2)


def test_csv_export_makes_formulas_inert():
    text = safe_csv([{"prompt": '=HYPERLINK("http://x")', "answer": "-1", "n": 3}, {"prompt": "ok", "answer": "a"}])
    lines = text.splitlines()
    assert lines[0] == "prompt,answer,n"
    assert lines[1].startswith("\"'=HYPERLINK") and ",'-1,3" in lines[1]


def test_cli_compare_prints_the_documented_json(adapters, capsys):
    argv = ["compare", "--dataset", "sentiment", "--adapter", str(adapters[0]), "--few-shot", "1", "--limit", "1"]
    assert main([*argv, "--max-new-tokens", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["accuracy"]) == {ZERO_SHOT, FEW_SHOT, "random-1"}
    assert len(result["rows"]) == 1 and len(result["rows"][0]["answers"]) == 3
    assert main(["compare", "--dataset", "sentiment", "--adapter", "/no/such/folder"]) == 2
    assert "no adapter folder at /no/such/folder" in capsys.readouterr().err


@pytest.mark.slow
def test_a_trained_adapter_beats_zero_shot_on_held_out_prompts(lm, sentiment_run):
    result, _ = sentiment_run
    dataset = load_dataset("sentiment")
    tuned = adapter_column(lm, result["adapter_dir"])
    comparison = run_comparison(
        contenders(LocalBackend(lm), [tuned]), dataset.eval, dataset, max_new_tokens=dataset.max_new_tokens
    )
    accuracy = comparison.accuracy()
    assert accuracy["job"] > accuracy[ZERO_SHOT] and accuracy["job"] >= 0.75
    changed = [r for r in comparison.rows if r.answers[0].text != r.answers[1].text]
    assert len(changed) >= len(comparison.rows) // 2, "the tuned column answers differently"
    summary = {s.column: s for s in comparison.summaries()}
    assert summary["job"].mean_target_logprob > summary[ZERO_SHOT].mean_target_logprob
