"""The logit lens and attention maps on the real embedded model, a LoRA on it, and a tiny GPT-2."""

import json
import subprocess
import sys

import pytest
import torch

from core.cli import main
from core.distributions import next_token_distribution
from core.errors import InvalidInput
from core.finetune import resolve_adapter
from core.finetune.jobs import ADAPTER_SUBDIR
from core.lens import (
    INSIDE_CACHE,
    MAX_INSIDE_TOKENS,
    TOP_K,
    compare_models,
    lens_report,
    model_internals,
    single_token_id,
)
from core.models import ModelKey, _load_uncached
from core.tokens import encode_prompt
from tests.adapters import saved_adapter_job
from tests.conftest import ROOT

FRANCE = "The capital of France is"
PARIS = 7042  # " Paris"


@pytest.fixture(scope="module")
def france_ids(lm):
    return encode_prompt(lm, FRANCE).ids


@pytest.fixture(scope="module")
def france(lm, france_ids):
    return model_internals(lm, france_ids)


@pytest.fixture(scope="module")
def tuned(lm, tmp_path_factory):
    """The embedded model with a seeded random LoRA on q and v, saved in a data folder of this module's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLM_LAB_DATA", str(tmp_path_factory.mktemp("lens-data")))
        job = saved_adapter_job(lm, "lens-lora", random_weights=True)
        return lm.with_adapter(resolve_adapter(job.path / ADAPTER_SUBDIR))


@pytest.fixture(scope="module")
def comparison(lm, tuned, france_ids, france):
    return compare_models(lm, tuned, france_ids)


def test_the_last_reading_is_the_models_own_next_token_distribution(lm, france, france_ids):
    lens = france.lens
    dist = next_token_distribution(lm, france_ids)
    assert lens.n_layers == lm.model.config.num_hidden_layers
    assert lens.last_logprobs[-1].double().exp() == pytest.approx(dist.probs, abs=1e-5)
    assert [t.id for t in lens.top(lens.n_layers, lens.n_positions - 1)] == [t.id for t in dist.top(TOP_K)]
    for ours, theirs in zip(lens.top(lens.n_layers, lens.n_positions - 1), dist.top(TOP_K), strict=True):
        assert ours.prob == pytest.approx(theirs.prob, abs=1e-5)


def test_every_position_of_the_last_reading_predicts_as_that_prefix_would(lm, france, france_ids):
    lens = france.lens
    position = 2  # after "The capital of"
    dist = next_token_distribution(lm, france_ids[: position + 1])
    assert [t.id for t in lens.top(lens.n_layers, position)] == [t.id for t in dist.top(TOP_K)]
    assert lens.top(lens.n_layers, position)[0].prob == pytest.approx(dist.top(1)[0].prob, abs=1e-5)


def test_paris_surfaces_only_in_the_last_layers(france):
    lens = france.lens
    assert lens.final_top_id == PARIS
    rise = lens.prob_by_layer(PARIS)
    assert len(rise) == lens.n_layers + 1
    assert rise[-1] == pytest.approx(0.7725, abs=1e-3)
    assert max(rise[: lens.n_layers // 2]) < 0.01  # nowhere in the first half of the network
    assert PARIS in lens.candidates_to_track()


def test_each_cell_lists_its_top_tokens_most_likely_first(france):
    probs = france.lens.top_logprobs.exp()
    assert probs.shape == (france.lens.n_layers + 1, france.lens.n_positions, TOP_K)
    assert torch.all(probs[..., :-1] >= probs[..., 1:])
    assert torch.all(probs.sum(dim=-1) <= 1 + 1e-9)
    assert france.lens.top1_probs == pytest.approx(probs[..., 0])


def test_attention_rows_sum_to_one_and_never_look_ahead(france):
    weights = france.require_attention().weights
    n = france.lens.n_positions
    assert weights.shape == (30, 9, n, n)
    assert weights.sum(dim=-1) == pytest.approx(torch.ones(30, 9, n), abs=1e-5)
    future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    assert torch.all(weights[..., future] == 0)
    assert france.attention.pattern(3) == pytest.approx(weights[2].mean(dim=0))
    assert torch.equal(france.attention.pattern(3, 1), weights[2, 0])


def test_the_shared_model_is_left_as_it_was(lm, france, france_ids):
    """The pass switched to eager attention for its weights; sessions after it run the model's own again."""
    assert lm.model.config._attn_implementation == "sdpa"
    logits, _ = lm.forward(france_ids, last_only=True)
    assert torch.softmax(logits[-1].double(), -1)[PARIS] == pytest.approx(0.7725, abs=1e-3)


def test_a_second_request_is_served_from_the_cache(lm, france, france_ids):
    hits, calls = INSIDE_CACHE.hits, lm.forward_calls
    assert model_internals(lm, france_ids) is france
    assert INSIDE_CACHE.hits == hits + 1 and lm.forward_calls == calls


def test_layers_and_heads_out_of_range_are_explained(france):
    with pytest.raises(InvalidInput, match="layers 1 to 30"):
        france.attention.pattern(31)
    with pytest.raises(InvalidInput, match="heads 1 to 9"):
        france.attention.pattern(1, 0)


@pytest.mark.slow  # saves a LoRA (a fresh copy of the base) and reads both models
def test_the_tuned_lens_differs_and_the_base_lens_is_unchanged(lm, tuned, comparison, france, france_ids):
    base_lens, tuned_lens = comparison.base.lens, comparison.tuned.lens
    assert torch.equal(base_lens.top_ids, france.lens.top_ids)
    assert torch.allclose(base_lens.top_logprobs, france.lens.top_logprobs, atol=1e-6)
    assert tuned_lens.prob_by_layer(PARIS)[-1] != pytest.approx(0.7725, abs=1e-2)
    assert float(comparison.total_variation[-1, -1]) > 0.05
    assert torch.all(comparison.total_variation[0] < 1e-6)  # LoRA on q and v cannot change the embeddings
    assert torch.all((comparison.total_variation >= 0) & (comparison.total_variation <= 1 + 1e-9))
    assert model_internals(tuned, france_ids) is comparison.tuned  # each side is cached as that model's view
    # after the tuned passes, the base model answers exactly as before
    INSIDE_CACHE.clear()
    fresh = model_internals(lm, france_ids)
    assert torch.equal(fresh.lens.top_ids, france.lens.top_ids)
    assert fresh.lens.last_logprobs == pytest.approx(france.lens.last_logprobs, abs=1e-6)
    assert next_token_distribution(lm, france_ids).token_prob(PARIS).prob == pytest.approx(0.7725, abs=1e-3)


@pytest.mark.slow  # saves a LoRA (a fresh copy of the base) and reads both models
def test_the_tuned_attention_differs(comparison, france_ids):
    difference = comparison.attention_difference(5)
    assert difference.shape == (len(france_ids), len(france_ids))
    assert float(difference.abs().max()) > 1e-3
    assert difference.sum(dim=-1) == pytest.approx(torch.zeros(len(france_ids)), abs=1e-5)  # rows still sum to 1


@pytest.mark.slow  # saves a LoRA (a fresh copy of the base) and reads both models
def test_the_distance_matches_the_full_distributions_at_the_output(lm, tuned, comparison, france_ids):
    base = next_token_distribution(lm, france_ids).probs
    adapted = next_token_distribution(tuned, france_ids).probs
    expected = 0.5 * float((base - adapted).abs().sum())
    assert float(comparison.total_variation[-1, -1]) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("", "empty"), ("   ", "empty"), (" the" * (MAX_INSIDE_TOKENS + 1), f"at most {MAX_INSIDE_TOKENS}")],
)
def test_bad_prompts_are_refused_with_a_message(lm, prompt, message):
    with pytest.raises(InvalidInput, match=message):
        lens_report(lm, prompt)


def test_no_tokens_and_a_head_without_a_layer_are_refused(lm):
    with pytest.raises(InvalidInput, match="no tokens"):
        model_internals(lm, [])
    with pytest.raises(InvalidInput, match="--attention-layer"):
        lens_report(lm, FRANCE, head=2)


def test_a_token_to_follow_must_be_one_token(lm):
    assert single_token_id(lm, " Paris") == PARIS
    with pytest.raises(InvalidInput, match="single token"):
        single_token_id(lm, " Parisian capital")
    with pytest.raises(InvalidInput, match="Type the token"):
        single_token_id(lm, "")


def test_another_architecture_works_too(tmp_path, lm):
    """A tiny random GPT-2 (final norm ``ln_f``, its own attention code): the same guarantees hold."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=3, n_head=2, n_embd=32, n_positions=64, vocab_size=lm.vocab_size)
    config.bos_token_id = config.eos_token_id = lm.tokenizer.eos_token_id
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    gpt2 = _load_uncached(ModelKey(str(tmp_path)))  # not through the shared cache: the embedded model stays in it
    ids = encode_prompt(gpt2, FRANCE).ids
    inside = model_internals(gpt2, ids)
    dist = next_token_distribution(gpt2, ids)
    assert inside.lens.n_layers == 3
    assert inside.lens.last_logprobs[-1].double().exp() == pytest.approx(dist.probs, abs=1e-5)
    weights = inside.require_attention().weights
    assert weights.shape == (3, 2, len(ids), len(ids))
    assert weights.sum(dim=-1) == pytest.approx(torch.ones(3, 2, len(ids)), abs=1e-5)
    assert gpt2.model.config._attn_implementation != "eager"


@pytest.mark.slow
def test_cli_lens_json():
    command = [sys.executable, "-m", "core", "lens", "--prompt", FRANCE, "--attention-layer", "2", "--head", "3"]
    out = subprocess.run([*command, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["n_layers"] == 30 and len(report["readings"]) == 31
    assert report["readings"][0]["label"] == "embeddings"
    last = report["readings"][-1]["positions"][-1]
    assert last[0]["token"] == " Paris" and last[0]["prob"] == pytest.approx(0.7725, abs=1e-3)
    assert len(last) == TOP_K and set(last[0]) == {"token", "id", "prob", "logprob"}
    assert report["tracked"]["id"] == PARIS
    assert report["tracked"]["prob_by_layer"][-1] == pytest.approx(last[0]["prob"], abs=1e-6)
    weights = report["attention"]["weights"]
    assert report["attention"]["head"] == 3 and len(weights) == len(report["input_tokens"])
    assert all(sum(row) == pytest.approx(1, abs=1e-5) for row in weights)


def test_cli_lens_table_and_errors(lm, capsys):
    """In this process (the model is already loaded): the table, and one sentence for bad input."""
    assert main(["lens", "--prompt", FRANCE, "--track", " Paris", "--attention-layer", "2", "--head", "3"]) == 0
    table = capsys.readouterr().out
    assert "␣Paris 77%" in table and "embeddings" in table and "layer 2, head 3" in table
    assert "30: 77.3%" in table  # the followed token's last reading
    assert main(["lens", "--prompt", "  "]) == 2
    assert "empty" in capsys.readouterr().err
