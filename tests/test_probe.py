"""Probe a word: the probability of a whole string next, in core and on the explorer page."""

import math

import pytest
import torch

from core.distributions import next_token_distribution
from core.errors import InvalidInput
from core.probe import continuation_logprobs, probe_target
from core.tokens import encode_prompt
from tests.test_app import button, open_page
from ui.render import share

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def ids(lm):
    return lm.tokenizer(PROMPT)["input_ids"]


def plain_logprobs(lm, prompt_ids, target_ids):
    """The plain way: one forward over prompt and target, row i predicting token i + 1."""
    logits, _ = lm.forward(prompt_ids + target_ids)
    logprobs = torch.log_softmax(logits[len(prompt_ids) - 1 : -1].double(), dim=-1)
    return [float(logprobs[n, t]) for n, t in enumerate(target_ids)]


def test_a_one_token_target_is_the_explorer_s_own_probability(lm, ids):
    probe = probe_target(lm, ids, " Paris")
    dist = next_token_distribution(lm, ids)
    assert [t.id for t in probe.tokens] == [7042]
    assert probe.prob == pytest.approx(dist.token_prob(7042).prob, rel=1e-9)
    assert probe.tokens[0].rank == 1


def test_a_phrase_is_the_product_of_its_tokens_given_what_comes_before(lm, ids):
    calls = lm.forward_calls
    next_token_distribution(lm, ids)  # what the explorer has computed already
    probe = probe_target(lm, ids, " Paris, the city")
    target = lm.tokenizer(" Paris, the city", add_special_tokens=False)["input_ids"]
    assert [t.id for t in probe.tokens] == target and len(target) > 1
    assert lm.forward_calls - calls <= 2, "the target's tokens in one pass (besides the prompt's own)"
    plain = plain_logprobs(lm, ids, target)
    assert [t.logprob for t in probe.tokens] == pytest.approx(plain, abs=1e-4)
    assert probe.prob == pytest.approx(math.exp(sum(plain)), rel=1e-3)
    assert probe.prob < min(t.prob for t in probe.tokens)


def test_paris_without_its_space_is_another_story(lm, ids):
    assert probe_target(lm, ids, "Paris").prob < probe_target(lm, ids, " Paris").prob / 100


def test_empty_and_overlong_targets_are_refused(lm, ids):
    with pytest.raises(InvalidInput, match="The target is empty"):
        probe_target(lm, ids, "")
    with pytest.raises(InvalidInput, match="probe at most 64"):
        probe_target(lm, ids, " word" * 65)


def test_the_explorer_probes_a_word(lm):
    at = open_page("pages/explorer.py")
    at.text_input(key="ex_probe").set_value(" Paris, the city").run()
    assert not at.exception, [e.value for e in at.exception]
    expected = probe_target(lm, lm.tokenizer(PROMPT)["input_ids"], " Paris, the city")
    metric = next(m for m in at.metric if m.label.startswith("P("))
    assert metric.value == share(expected.prob) and "e-0" in metric.value, "5.5e-05, not 0.0%"
    chips = next(m.value for m in at.markdown if "rank 1" in m.value)
    assert chips.count("<span") == len(expected.tokens) and "␣Paris" in chips
    button(at, "⬆ Most likely").click().run()  # the probe follows the text: now after " Paris"
    after = next(m for m in at.metric if m.label.startswith("P(")).value
    assert after != metric.value
    at.text_input(key="ex_probe").set_value("").run()
    assert not any(m.label.startswith("P(") for m in at.metric)


def test_continuations_read_together_equal_each_probed_alone(lm):
    """The batched reading (a class's guesses) gives each string the probability probing it alone gives."""
    prompt = encode_prompt(lm, "The capital of France is").ids
    targets = [" Paris", " the city of Paris", " Lyon, a city", " a beautiful place"]
    ids = [lm.tokenizer(t, add_special_tokens=False)["input_ids"] for t in targets]
    together = continuation_logprobs(lm, prompt, [*ids, []])
    alone = [probe_target(lm, prompt, t).logprob for t in targets]
    assert together[:-1] == pytest.approx(alone, abs=1e-5) and together[-1] == 0.0
    assert sum(len(i) > 1 for i in ids) == 3 and len(set(together)) == 5
