"""Next-token distributions, sampling transforms and scoring on the real embedded model."""

import functools
import math

import pytest
import torch

from core.bench.batching import run_together
from core.distributions import (
    DISTRIBUTION_CACHE,
    SamplingSettings,
    next_token_distribution,
    reshape,
    score_text,
)
from core.errors import InvalidInput
from core.tokens import encode_prompt

FRANCE = "The capital of France is"


@pytest.fixture(scope="module")
def france(lm):
    return next_token_distribution(lm, encode_prompt(lm, FRANCE).ids)


def test_paris_is_the_most_likely_next_token(france):
    top = france.top(5)
    assert top[0].token == " Paris"
    assert 0.6 < top[0].prob < 0.9  # llama.cpp on the same GGUF gives 0.77
    assert [t.prob for t in top] == sorted((t.prob for t in top), reverse=True)
    assert math.isclose(top[0].logprob, math.log(top[0].prob), rel_tol=1e-5)


def test_probabilities_over_the_whole_vocabulary_sum_to_one(france, lm):
    assert france.probs.shape[0] == lm.vocab_size
    assert abs(float(france.probs.double().sum()) - 1) < 1e-5
    p = france.probs.double()
    assert math.isclose(france.entropy, float(-(p[p > 0] * p[p > 0].log()).sum()), rel_tol=1e-4)


def test_temperature_zero_is_greedy_and_near_zero_concentrates(france):
    greedy = reshape(france, SamplingSettings(temperature=0))
    assert greedy.n_kept == 1 and float(greedy.probs[7042]) == 1.0
    cold = reshape(france, SamplingSettings(temperature=1e-3))
    assert float(cold.probs.max()) > 0.999
    assert int(cold.probs.argmax()) == int(france.probs.argmax())


def test_high_temperature_flattens(france):
    hot = reshape(france, SamplingSettings(temperature=2.0))
    assert hot.entropy > france.entropy
    assert float(hot.probs.max()) < float(france.probs.max())


def test_top_k_keeps_exactly_the_k_most_likely(france):
    shaped = reshape(france, SamplingSettings(top_k=7))
    expected = set(torch.topk(france.probs, 7).indices.tolist())
    assert set(torch.nonzero(shaped.kept).flatten().tolist()) == expected
    assert abs(float(shaped.probs.sum()) - 1) < 1e-5


@pytest.mark.parametrize("p", [0.5, 0.77, 0.8, 0.9, 0.95, 0.999])
def test_top_p_keeps_the_smallest_prefix_reaching_p(france, p):
    shaped = reshape(france, SamplingSettings(top_p=p))
    ordered = sorted(range(france.probs.shape[0]), key=lambda i: -float(france.probs[i]))
    mass, expected = 0.0, set()
    for i in ordered:  # independent reference: add tokens until the mass reaches p
        expected.add(i)
        mass += float(france.probs[i])
        if mass >= p:
            break
    assert set(torch.nonzero(shaped.kept).flatten().tolist()) == expected
    kept_mass = sum(float(france.probs[i]) for i in expected)
    for i in expected:
        assert math.isclose(float(shaped.probs[i]), float(france.probs[i]) / kept_mass, rel_tol=1e-4)


def test_min_p_keeps_tokens_above_a_fraction_of_the_top(france):
    shaped = reshape(france, SamplingSettings(min_p=0.05))
    threshold = 0.05 * float(france.probs.max())
    expected = set(torch.nonzero(france.probs >= threshold).flatten().tolist())
    assert set(torch.nonzero(shaped.kept).flatten().tolist()) == expected
    assert len(expected) > 1


def test_reshaping_runs_no_forward_pass(france, lm):
    before = lm.forward_calls
    for t in (0.1, 0.5, 1.5):
        reshape(france, SamplingSettings(temperature=t, top_k=40, top_p=0.9, min_p=0.01))
    assert lm.forward_calls == before


def test_second_identical_request_is_a_cache_hit(lm):
    ids = encode_prompt(lm, "A second request for the same prompt").ids
    first = next_token_distribution(lm, ids)
    hits, calls = DISTRIBUTION_CACHE.hits, lm.forward_calls
    second = next_token_distribution(lm, ids)
    assert second is first
    assert DISTRIBUTION_CACHE.hits == hits + 1
    assert lm.forward_calls == calls


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (SamplingSettings(temperature=-1), "Temperature"),
        (SamplingSettings(temperature=float("nan")), "Temperature"),
        (SamplingSettings(top_k=0), "top-k"),
        (SamplingSettings(top_k=10**6), "top-k"),
        (SamplingSettings(top_p=0), "top-p"),
        (SamplingSettings(top_p=1.5), "top-p"),
        (SamplingSettings(min_p=-0.1), "min-p"),
    ],
)
def test_bad_sampling_settings_raise_a_clear_error(france, settings, message):
    with pytest.raises(InvalidInput, match=message):
        reshape(france, settings)


def test_perplexity_equals_exp_of_mean_nll_computed_independently(lm):
    text = "The quick brown fox jumps over the lazy dog. It was not amused."
    score = score_text(lm, text)
    ids = torch.tensor([lm.tokenizer(text)["input_ids"]])
    with torch.inference_mode():
        loss = float(lm.model(input_ids=ids, labels=ids).loss)  # transformers' own shifted cross-entropy
    assert math.isclose(score.perplexity, math.exp(loss), rel_tol=1e-4)
    assert score.tokens[0].prob is None  # the first token has no prefix
    assert score.n_scored == ids.shape[1] - 1


def test_score_ranks_and_alternatives_agree_with_the_next_token_distribution(lm):
    text = "The capital of France is Paris"
    score = score_text(lm, text, alternatives=5)
    last = score.tokens[-1]
    dist = next_token_distribution(lm, lm.tokenizer(text)["input_ids"][:-1])
    assert last.token == " Paris" and last.rank == 1
    assert math.isclose(last.prob, dist.token_prob(last.id).prob, rel_tol=1e-4)
    assert [a.id for a in last.alternatives] == [t.id for t in dist.top(5)]


def test_concurrent_requests_each_get_their_own_answer(lm):
    prompts = [f"Counting up: {n}, {n + 1}," for n in range(1, 9)]
    expected = {}
    for p in prompts:
        ids = encode_prompt(lm, p).ids
        logits, _ = lm.forward(ids, last_only=True)
        expected[p] = int(logits[-1].argmax())
    DISTRIBUTION_CACHE.clear()
    results = {}

    def ask(p):
        results[p] = int(next_token_distribution(lm, encode_prompt(lm, p).ids).probs.argmax())

    run_together([functools.partial(ask, p) for p in prompts])  # all released at once; raises the first error
    assert results == expected
