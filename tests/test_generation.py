"""Step-by-step generation on the KV cache, on the real embedded model."""

import pytest
import torch

from core.distributions import SamplingSettings
from core.errors import InvalidInput
from core.generation import TokenStream, generate
from core.tokens import encode_prompt


def test_greedy_on_the_kv_cache_matches_repeated_full_forwards(lm):
    ids = encode_prompt(lm, "Once upon a time, in a small village,").ids
    steps = list(generate(lm, ids, 12, SamplingSettings(temperature=0)))
    reference = list(ids)
    for _ in range(len(steps)):
        logits, _ = lm.forward(reference, last_only=True)  # a full forward over the whole text
        reference.append(int(logits[-1].argmax()))
    assert [s.chosen.id for s in steps] == reference[len(ids) :]
    assert all(s.rank == 1 for s in steps)


def test_generation_uses_one_forward_per_token(lm):
    ids = encode_prompt(lm, "One forward per token, please:").ids
    before = lm.forward_calls
    steps = list(generate(lm, ids, 6, SamplingSettings(temperature=0)))
    # one pass for the prompt, then one per token except the last (its successor is never needed)
    assert lm.forward_calls - before == len(steps)


def test_seeded_sampling_is_reproducible_and_alternatives_are_reported(lm):
    ids = encode_prompt(lm, "My favourite food is").ids
    settings = SamplingSettings(temperature=1.0, top_p=0.95)
    first = [s.chosen.id for s in generate(lm, ids, 8, settings, seed=7)]
    second = [s.chosen.id for s in generate(lm, ids, 8, settings, seed=7)]
    assert first == second
    step = next(generate(lm, ids, 1, settings, seed=7, alternatives=20))
    assert len(step.alternatives) == 20
    probs = [a.prob for a in step.alternatives]
    assert probs == sorted(probs, reverse=True)
    assert step.chosen.prob <= probs[0]


def test_appending_a_chosen_token_steers_the_stream(lm):
    stream = TokenStream(lm, encode_prompt(lm, "The capital of France is").ids)
    london = lm.tokenizer(" London", add_special_tokens=False)["input_ids"][0]
    step = stream.append(london)
    assert step.chosen.token == " London" and step.rank > 1
    after = stream.distribution
    full, _ = lm.forward(stream.ids, last_only=True)
    assert torch.allclose(after.logits, full[-1], atol=1e-3)


def test_generation_stops_at_eos(lm):
    ids = encode_prompt(lm, "Say the word yes.", chat=True).ids
    steps = list(generate(lm, ids, 60, SamplingSettings(temperature=0)))
    assert steps[-1].finished
    assert steps[-1].chosen.id in lm.eos_token_ids
    assert len(steps) < 60


@pytest.mark.parametrize("n", [0, -3, 10**6])
def test_bad_token_counts_are_refused(lm, n):
    with pytest.raises(InvalidInput, match="new tokens"):
        list(generate(lm, [1, 2, 3], n))


def test_replaying_a_path_matches_stepping_through_it_from_the_memo_or_in_one_pass(lm):
    from core.distributions import DISTRIBUTION_CACHE, clear_memos, next_token_distribution
    from core.generation import REPLAY_CACHE, replay

    ids = encode_prompt(lm, "The weather today is").ids
    stream = TokenStream(lm, ids, alternatives=10)
    stepped = [stream.sample(SamplingSettings(temperature=0)) for _ in range(5)]
    path = [s.chosen.id for s in stepped]

    def same_as_stepped(replayed) -> None:
        assert [s.chosen.id for s in replayed] == path
        for a, b in zip(replayed, stepped, strict=True):
            assert a.rank == b.rank
            assert abs(a.chosen.prob - b.chosen.prob) < 1e-4
            assert [t.id for t in a.alternatives[:3]] == [t.id for t in b.alternatives[:3]]

    calls = lm.forward_calls
    same_as_stepped(replay(lm, ids, path, alternatives=10))
    assert lm.forward_calls == calls, "a page redrawing a path it just generated runs no pass"

    clear_memos()  # a shared link, opened cold
    REPLAY_CACHE.clear()
    calls = lm.forward_calls
    same_as_stepped(replay(lm, ids, path, alternatives=10))
    assert lm.forward_calls == calls + 1  # the whole path in one forward pass
    hits = DISTRIBUTION_CACHE.hits
    next_token_distribution(lm, ids + path)  # stored by the replay: no second pass
    assert DISTRIBUTION_CACHE.hits == hits + 1 and lm.forward_calls == calls + 1
