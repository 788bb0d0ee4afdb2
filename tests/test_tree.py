"""Generation trees on the real embedded model: beams, samples and their tree, a node's children, the CLI.

Forward passes are slow on a shared CPU, so the searches that several tests
read are run once per module, through a spy that records every batched call.
"""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.bench.batching import samples_batching
from core.distributions import SamplingSettings, next_token_distribution, score_text
from core.errors import InvalidInput
from core.generation import generate
from core.tokens import encode_prompt
from core.tree import TreeNode, beam_search, expand, sample_tree

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "The capital of France is"


def spied(lm):
    """A view of ``lm`` with ``forward_many``: it records each call's requests, then runs them in turn."""
    view = dataclasses.replace(lm)
    calls: list[list[tuple[list[int], bool, bool]]] = []

    def forward_many(requests):
        calls.append([(list(ids), past is None, last_only) for ids, past, last_only in requests])
        return [view.forward(ids, past, last_only) for ids, past, last_only in requests]

    view.forward_many = forward_many
    return view, calls


@pytest.fixture(scope="module")
def prompt_ids(lm):
    return encode_prompt(lm, PROMPT).ids


@pytest.fixture(scope="module")
def beams(lm):
    view, calls = spied(lm)
    return beam_search(view, PROMPT, width=3, depth=5), calls


@pytest.fixture(scope="module")
def greedy_ids(lm, prompt_ids):
    return tuple(s.chosen.id for s in generate(lm, prompt_ids, 5, SamplingSettings(temperature=0)))


@pytest.fixture(scope="module")
def sampled(lm):
    view, calls = spied(lm)
    return sample_tree(view, PROMPT, n=8, depth=4, seed=5), calls


def full_forward_logprobs(lm, prompt_ids, ids):
    """Each token's log-probability from one pass over prompt + ids (no KV cache)."""
    logits, _ = lm.forward([*prompt_ids, *ids])
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    return [float(logprobs[len(prompt_ids) - 1 + i, token]) for i, token in enumerate(ids)]


# --- beams ---------------------------------------------------------------------------------------


def test_each_beams_logprob_is_the_sum_one_full_forward_gives(lm, prompt_ids, beams):
    search, _ = beams
    for beam in (*search.beams, search.greedy):
        expected = full_forward_logprobs(lm, prompt_ids, beam.ids)
        assert beam.logprobs == pytest.approx(expected, abs=1e-4)
        assert beam.logprob == pytest.approx(sum(expected), abs=1e-4)
    # and the same as scoring the text: the best beam's text tokenizes back to prompt + beam
    best = search.beams[0]
    text = PROMPT + "".join(best.tokens)
    assert lm.tokenizer(text)["input_ids"] == [*prompt_ids, *best.ids]
    scored = score_text(lm, text).tokens[-len(best.ids) :]
    assert best.logprob == pytest.approx(sum(t.logprob for t in scored), abs=1e-4)


def test_beams_are_best_first_and_distinct_and_greedy_is_generates(beams, greedy_ids):
    search, _ = beams
    assert len(search.beams) == 3
    logprobs = [b.logprob for b in search.beams]
    assert logprobs == sorted(logprobs, reverse=True)
    assert [b.score for b in search.beams] == logprobs  # no length penalty: the score is the log-probability
    assert len({b.ids for b in search.beams}) == 3
    assert search.greedy.ids == greedy_ids
    assert search.differs_from_greedy == (search.beams[0].ids != greedy_ids)


def test_each_depth_of_beam_search_is_one_batched_call(beams):
    search, calls = beams
    assert len(calls) == search.depth  # the prompt, then one call per depth but the last
    assert calls[0] == [(calls[0][0][0], True, True)]  # the prompt, from no cache
    assert len(calls[1]) == search.width  # greedy's first token is the best beam's: no pass of its own
    for step in calls[1:]:
        assert 1 < len(step) <= search.width + 1  # every beam, and greedy beside them
        assert all(len(ids) == 1 and not fresh and last for ids, fresh, last in step)  # one new token on a cache


def test_width_one_is_greedy(lm, greedy_ids):
    search = beam_search(lm, PROMPT, width=1, depth=5)
    assert search.beams[0].ids == greedy_ids
    assert search.greedy == search.beams[0]
    assert not search.differs_from_greedy


@pytest.mark.slow
def test_a_length_penalty_ranks_by_the_normalised_score(lm):
    prompt = "Is the sky blue? Answer yes or no."
    plain = beam_search(lm, prompt, width=4, depth=8, chat=True)
    fair = beam_search(lm, prompt, width=4, depth=8, length_penalty=1.0, chat=True)
    for beam in fair.beams:
        assert beam.score == pytest.approx(beam.logprob / len(beam.ids))
    assert [b.score for b in fair.beams] == sorted((b.score for b in fair.beams), reverse=True)
    # a short beam that stops at the end of the turn wins on total log-probability, not per token
    short = plain.beams[0]
    assert short.finished and short.ids[-1] in lm.eos_token_ids
    assert fair.beams[0].ids != short.ids
    assert [b.logprob for b in fair.beams] != sorted((b.logprob for b in fair.beams), reverse=True)


# --- samples -------------------------------------------------------------------------------------


def nodes_by_depth(root: TreeNode) -> list[list[TreeNode]]:
    levels, level = [], root.children
    while level:
        levels.append(level)
        level = [c for node in level for c in node.children]
    return levels


def test_counts_add_up_at_every_depth_and_edges_carry_both_numbers(lm, sampled):
    tree, _ = sampled
    assert len(tree.samples) == 8 and tree.root.count == 8
    levels = nodes_by_depth(tree.root)
    assert len(levels) == max(len(s.ids) for s in tree.samples)
    for depth, level in enumerate(levels):
        assert sum(n.count for n in level) == sum(len(s.ids) > depth for s in tree.samples)
    assert sum(n.count for n in levels[0]) == 8

    def check(node: TreeNode) -> None:
        assert node.count == node.ended + sum(c.count for c in node.children)
        for child in node.children:
            assert child.frequency == pytest.approx(child.count / node.count)
            check(child)

    check(tree.root)
    first = expand(lm, PROMPT, [], 50)  # the model's own probabilities after the prompt
    probs = {c.id: c.prob for c in first.children}
    for node in levels[0]:
        assert node.prob == pytest.approx(probs[node.id], abs=1e-5)
    for sample in tree.samples:
        assert sample.logprob == pytest.approx(sum(sample.logprobs))


def test_all_samples_of_a_step_are_one_batched_call(sampled):
    tree, calls = sampled
    live = [sum(len(s.ids) > d for s in tree.samples) for d in (1, 2, 3)]  # samples fed a token at each step
    assert [len(c) for c in calls] == [1, *[n for n in live if n]]
    assert len(calls[1]) == 8


def test_a_fixed_seed_draws_the_same_tree_and_another_seed_another(lm):
    first = sample_tree(lm, PROMPT, n=4, depth=3, seed=11)
    again = sample_tree(lm, PROMPT, n=4, depth=3, seed=11)
    other = sample_tree(lm, PROMPT, n=4, depth=3, seed=12)
    assert first.seed == 11
    assert again.to_json() == first.to_json()
    assert [s.ids for s in other.samples] != [s.ids for s in first.samples]


def test_one_seeded_sample_is_what_generate_draws(lm, prompt_ids):
    settings = SamplingSettings(temperature=0.9, top_p=0.95)
    tree = sample_tree(lm, PROMPT, n=1, depth=4, settings=settings, seed=3)
    generated = tuple(s.chosen.id for s in generate(lm, prompt_ids, 4, settings, seed=3))
    assert tree.samples[0].ids == generated


def test_temperature_zero_samples_are_all_greedy(lm, greedy_ids):
    tree = sample_tree(lm, PROMPT, n=3, depth=5, settings=SamplingSettings(temperature=0))
    assert all(s.ids == greedy_ids for s in tree.samples)
    node = tree.root
    while node.children:
        assert len(node.children) == 1 and node.children[0].count == 3 and node.children[0].frequency == 1
        node = node.children[0]


# --- expanding a node, the cache, bad input --------------------------------------------------------


def test_expanding_a_node_lists_the_models_likeliest_children(lm, prompt_ids, beams):
    root = expand(lm, PROMPT, [], 5)
    top = next_token_distribution(lm, prompt_ids).top(5)
    assert [c.id for c in root.children] == [t.id for t in top]
    best = beams[0].beams[0]
    node = expand(lm, PROMPT, best.ids[:1], 50)
    probs = [c.prob for c in node.children]
    assert len(probs) == 50 and probs == sorted(probs, reverse=True)
    chosen = next(c for c in node.children if c.id == best.ids[1])
    assert chosen.prob == pytest.approx(math.exp(best.logprobs[1]), abs=1e-4)
    assert node.to_json()["prefix_ids"] == [best.ids[0]]


def test_continuing_a_cache_never_changes_it_so_two_children_can_share_their_parent(lm, prompt_ids):
    """Why beams and samples need no copies of their parent's cache: ``forward`` leaves the past as it was."""
    _, past = lm.forward(prompt_ids, None, True)
    first, after_first = lm.forward([11], past, True)
    second, after_second = lm.forward([13], past, True)  # a sibling continues the same past
    again, _ = lm.forward([11], past, True)
    assert past.get_seq_length() == len(prompt_ids)
    assert after_first.get_seq_length() == after_second.get_seq_length() == len(prompt_ids) + 1
    assert torch.allclose(first, again, atol=1e-5), "the first child's answer is the same after its sibling's"
    assert not torch.allclose(first, second, atol=1e-3)


def long_prompt(lm) -> str:
    return "the" + " the" * (lm.context_length - 3)  # two tokens short of the context


BAD_INPUT = [
    (lambda lm: beam_search(lm, PROMPT, 0, 4), "The beam width must be between 1 and 16; got 0."),
    (lambda lm: beam_search(lm, PROMPT, 17, 4), "The beam width must be between 1 and 16; got 17."),
    (lambda lm: beam_search(lm, PROMPT, True, 4), "The beam width must be between 1 and 16"),
    (lambda lm: beam_search(lm, PROMPT, 2, 0), "The depth must be between 1 and 32 tokens; got 0."),
    (lambda lm: sample_tree(lm, PROMPT, 2, 33), "The depth must be between 1 and 32 tokens; got 33."),
    (lambda lm: beam_search(lm, PROMPT, 2, 4, length_penalty=-1), "The length penalty must be between 0 and 2"),
    (lambda lm: beam_search(lm, PROMPT, 2, 4, length_penalty=math.nan), "The length penalty must be between"),
    (lambda lm: sample_tree(lm, PROMPT, 0, 4), "The number of samples must be between 1 and 64; got 0."),
    (lambda lm: sample_tree(lm, PROMPT, 65, 4), "The number of samples must be between 1 and 64; got 65."),
    (lambda lm: sample_tree(lm, PROMPT, 2, 4, SamplingSettings(top_p=0)), "top-p must be above 0"),
    (lambda lm: sample_tree(lm, PROMPT, 2, 4, seed=2**70), "The seed must be a whole number"),
    (lambda lm: expand(lm, PROMPT, [], 0), "The number of children to list must be between 1 and 50; got 0."),
    (lambda lm: expand(lm, PROMPT, [], 51), "The number of children to list must be between 1 and 50; got 51."),
    (lambda lm: expand(lm, PROMPT, [10**9], 5), "The ids of the node's path include the id 1000000000"),
    (lambda lm: beam_search(lm, "   ", 2, 4), "The prompt is empty"),
    (lambda lm: sample_tree(lm, "", 2, 4), "The prompt is empty"),
    (lambda lm: beam_search(lm, long_prompt(lm), 2, 8), "and 8 more would pass the 8,192 that"),
    (lambda lm: sample_tree(lm, long_prompt(lm), 2, 3), "and 3 more would pass the 8,192 that"),
]


@pytest.mark.parametrize(("call", "message"), BAD_INPUT)
def test_bad_input_is_refused_with_a_sentence_before_any_forward_pass(lm, call, message):
    before = lm.forward_calls
    with pytest.raises(InvalidInput) as caught:
        call(lm)
    text = str(caught.value)
    assert message in text
    assert text.endswith(".") and len(text.split()) >= 6  # a whole sentence, not a bare value
    assert lm.forward_calls == before


def test_the_long_prompt_itself_fits(lm):
    """The context cases above are about the depth: the prompt alone is two tokens short of the limit."""
    assert len(encode_prompt(lm, long_prompt(lm)).ids) == lm.context_length - 2


@pytest.mark.slow
def test_bench_samples_times_both_ways(lm):
    result = samples_batching(lm, 3, 2, 1)
    assert result["batched_s"] > 0 and result["one_at_a_time_s"] > 0
    assert result["throughput_ratio"] == result["one_at_a_time_s"] / result["batched_s"]


# --- the command line ----------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_beams_json_shape():
    out = run_cli("tree", "--prompt", PROMPT, "--beams", "3", "--depth", "4", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert len(result["beams"]) == 3
    for beam in result["beams"]:
        assert set(beam) >= {"ids", "tokens", "logprob", "logprobs", "score"}
        assert len(beam["ids"]) == len(beam["tokens"]) == 4
        assert beam["logprob"] == pytest.approx(sum(beam["logprobs"]))
    logprobs = [b["logprob"] for b in result["beams"]]
    assert logprobs == sorted(logprobs, reverse=True)
    assert result["beams"][0]["tokens"][0] == " Paris"
    assert isinstance(result["differs_from_greedy"], bool) and len(result["greedy"]["ids"]) == 4
    assert result["tree"]["count"] == 3


@pytest.mark.slow
def test_cli_samples_json_shape_and_tree_counts():
    out = run_cli("tree", "--prompt", PROMPT, "--samples", "5", "--depth", "3", "--top-k", "5", "--seed", "2", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert len(result["samples"]) == 5 and result["seed"] == 2
    assert all(set(s) >= {"ids", "tokens", "logprob"} for s in result["samples"])
    tree = result["tree"]
    assert tree["count"] == 5 and sum(c["count"] for c in tree["children"]) == 5
    child = tree["children"][0]
    assert set(child) >= {"token", "id", "count", "prob", "children"}
    assert 0 < child["prob"] <= 1


@pytest.mark.slow
def test_cli_draws_a_readable_tree():
    out = run_cli("tree", "--prompt", PROMPT, "--samples", "4", "--depth", "3", "--seed", "1")
    assert out.returncode == 0, out.stderr
    assert "␣Paris" in out.stdout and "× (" in out.stdout and "p=" in out.stdout
    assert "└─" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--beams", "40"], "error: The beam width must be between 1 and 16; got 40."),
        (["--samples", "3", "--depth", "99"], "error: The depth must be between 1 and 32 tokens; got 99."),
        (["--samples", "3", "--length-penalty", "1"], "error: --length-penalty ranks beams"),
        (["--beams", "3", "--temperature", "0.5"], "error: --temperature shapes sampling"),
    ],
)
def test_cli_refuses_bad_options_with_one_sentence(args, message):
    out = run_cli("tree", "--prompt", PROMPT, *args)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and errors[0].startswith(message)
    assert "Traceback" not in out.stderr


def test_cli_wants_beams_or_samples_not_both():
    out = run_cli("tree", "--prompt", PROMPT, "--beams", "2", "--samples", "2")
    assert out.returncode == 2 and "not allowed with argument" in out.stderr
