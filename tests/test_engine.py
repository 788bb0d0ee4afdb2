"""The batching engine: many sessions' passes in one batch give each the answer it would get alone.

"The same answer" is the class-scale promise: the same top-10 ids in the same
order and every probability within 1e-4 (a padded batch in float32 differs from
a lone pass by ~1e-6). Every test also checks that batching really happened
(the engine's own count of rows per batch), or it would prove nothing.
"""

import threading

import pytest
import torch

from core.distributions import NextTokenDistribution, SamplingSettings, clear_memos, next_token_distribution
from core.engine.kv import KVHandle
from core.finetune.adapters import resolve_adapter
from core.generation import generate
from tests.adapters import saved_adapter_job

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village at the edge of a very old forest, there lived",
    "2 + 2 =",
    "Photosynthesis is the process by which green plants and some other organisms use sunlight to",
    "def fibonacci(n):",
    "The weather today is",
    "My favourite colour is",
    "In 1492, Columbus",
]


def same_answer(a: torch.Tensor, b: torch.Tensor) -> None:
    """Same top-10 ids in order, every probability within 1e-4."""
    pa, pb = torch.softmax(a.double(), -1), torch.softmax(b.double(), -1)
    assert torch.topk(pa, 10).indices.tolist() == torch.topk(pb, 10).indices.tolist()
    assert float((pa - pb).abs().max()) <= 1e-4


def together(tasks):
    """Run the tasks in threads released at one moment (a class pressing a button); their results in order."""
    barrier = threading.Barrier(len(tasks))
    results: list = [None] * len(tasks)

    def run(i, task):
        barrier.wait()
        results[i] = task()

    threads = [threading.Thread(target=run, args=item) for item in enumerate(tasks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def batched_rows(lm) -> int:
    return sum(count for rows, count in lm.engine.stats.rows_hist.items() if rows > 1)


def test_the_embedded_model_batches(lm):
    assert lm.engine.supported


def test_prompts_of_different_lengths_in_one_batch_each_get_their_own_answer(lm):
    ids = [lm.tokenizer(p)["input_ids"] for p in PROMPTS]
    alone = [lm.forward(i, None, True)[0][-1] for i in ids]
    before = batched_rows(lm)
    batched = [logits[-1] for logits, _ in lm.forward_many([(i, None, True) for i in ids])]
    assert batched_rows(lm) > before, "the passes were batched"
    for a, b in zip(alone, batched, strict=True):
        same_answer(a, b)
    assert not torch.allclose(batched[0], batched[1], atol=1e-2), "and they are different answers"


def test_a_full_pass_in_a_batch_gives_every_position_as_alone(lm):
    ids = [lm.tokenizer(p)["input_ids"] for p in PROMPTS[:3]]
    alone = [lm.forward(i)[0] for i in ids]
    batched = [logits for logits, _ in lm.forward_many([(i, None, False) for i in ids])]
    for a, b in zip(alone, batched, strict=True):
        assert a.shape == b.shape
        for row in range(a.shape[0]):
            same_answer(a[row], b[row])


def test_streams_generating_at_the_same_moment_each_get_what_they_get_alone(lm):
    ids = [lm.tokenizer(p)["input_ids"] for p in PROMPTS]
    greedy = SamplingSettings(temperature=0)

    def run(prompt_ids):
        return lambda: [(s.chosen.id, s.chosen.prob) for s in generate(lm, prompt_ids, 6, greedy, alternatives=5)]

    clear_memos()
    alone = [run(i)() for i in ids]
    clear_memos()
    before = batched_rows(lm)
    at_once = together([run(i) for i in ids])
    assert batched_rows(lm) > before, "the decode steps were batched"
    for a, b in zip(alone, at_once, strict=True):
        assert [t for t, _ in a] == [t for t, _ in b]
        assert max(abs(pa - pb) for (_, pa), (_, pb) in zip(a, b, strict=True)) <= 1e-4


def test_sessions_with_different_adapters_and_prompts_at_one_moment_never_see_each_other_s_answer(
    lm, tmp_path, monkeypatch
):
    monkeypatch.setenv("LLM_LAB_DATA", str(tmp_path))
    views = [lm] + [
        lm.with_adapter(resolve_adapter(saved_adapter_job(lm, f"mix-{seed}", random_weights=True, seed=seed).path))
        for seed in (3, 4)
    ]
    asks = [(view, lm.tokenizer(prompt)["input_ids"]) for view in views for prompt in PROMPTS[:4]]

    def ask(view, ids):
        return lambda: view.forward(ids, None, True)[0][-1]

    alone = [ask(view, ids)() for view, ids in asks]
    before = batched_rows(lm)
    at_once = together([ask(view, ids) for view, ids in asks])
    assert batched_rows(lm) > before
    for a, b in zip(alone, at_once, strict=True):
        same_answer(a, b)
    base, tuned = alone[0], alone[4]  # the same prompt, base and adapter: they differ, and stayed apart
    assert not torch.allclose(torch.softmax(base, -1), torch.softmax(tuned, -1), atol=1e-3)


def test_a_cache_continued_twice_stays_as_it_was(lm):
    ids = lm.tokenizer(PROMPTS[0])["input_ids"]
    _, past = lm.forward(ids, None, True)
    assert isinstance(past, KVHandle) and past.length == len(ids)
    one, _ = lm.forward([7042], past, True)
    lm.forward([30], past, True)  # a sibling
    again, _ = lm.forward([7042], past, True)
    same_answer(one[-1], again[-1])
    same_answer(one[-1], lm.forward([*ids, 7042], None, True)[0][-1])  # and as reading the whole text


def test_a_cache_from_an_adapter_cannot_be_continued_without_it(lm, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_LAB_DATA", str(tmp_path))
    view = lm.with_adapter(resolve_adapter(saved_adapter_job(lm, "other", random_weights=True, seed=5).path))
    ids = lm.tokenizer(PROMPTS[0])["input_ids"]
    _, past = view.forward(ids, None, True)
    with pytest.raises(ValueError, match="another adapter setting"):
        lm.forward([11], past, True)


def test_a_memoised_distribution_continues_a_kept_prefix_and_matches_a_full_read(lm):
    ids = lm.tokenizer(PROMPTS[1])["input_ids"]
    clear_memos()
    next_token_distribution(lm, ids[:-1])  # the prefix, read: its cache is kept
    read_before = lm.engine.stats.new_tokens
    fast = next_token_distribution(lm, ids)
    assert lm.engine.stats.new_tokens - read_before == 1, "one new token over the kept cache"
    plain = NextTokenDistribution("plain", tuple(ids), lm.forward(ids, None, True)[0][-1], lm.tokenizer)
    same_answer(fast.logits, plain.logits)


def test_steps_and_prompts_waiting_together_run_as_one_packed_pass_each_answer_as_alone(lm):
    """A class's mixed wave (streams' next steps, new prompts, a continued prompt, a full pass) in one packed row."""
    engine = lm.engine
    assert engine.packs, "the embedded model takes a packed row's block mask"
    ids = [lm.tokenizer(p)["input_ids"] for p in PROMPTS[:5]]
    streams = [lm.forward(i, None, True)[1] for i in ids[:2]]
    _, half = lm.forward(ids[4][:4], None, True)
    step = lm.tokenizer(" the")["input_ids"][-1]
    wave = [([step], streams[0], True), ([step], streams[1], True), (ids[2], None, True), (ids[3], None, False)]
    wave.append((ids[4][4:], half, True))
    alone = [lm.forward(i, past, last) for i, past, last in wave]
    before = engine.stats.packed_batches
    packed = lm.forward_many(wave)
    assert engine.stats.packed_batches == before + 1, "the five passes ran as one packed row"
    for (a, a_past), (b, b_past) in zip(alone, packed, strict=True):
        assert a.shape == b.shape and a_past.length == b_past.length
        for row in range(a.shape[0]):
            same_answer(a[row], b[row])
        # and the cache each got back continues as the one computed alone
        same_answer(lm.forward([step], a_past, True)[0][-1], lm.forward([step], b_past, True)[0][-1])
    assert not torch.allclose(packed[0][0], packed[1][0], atol=1e-2), "the streams got their own answers"


def test_only_a_wave_of_steps_and_prompts_with_one_adapter_setting_is_packed():
    from core.engine.kv import KVStore
    from core.engine.plan import Limits, Request, packed

    def step(seq, adapter=None):
        store = KVStore(torch.zeros((1, 2, 1, 16, 1)), 5)
        return Request([7], KVHandle(store, 5), True, adapter, seq=seq)

    def prompt(seq, n=20):
        return Request(list(range(1, n + 1)), None, True, None, seq=seq)

    class Ref:  # an adapter reference as the engine sees it
        slot, scale = "tuned", 1.0

    limits = Limits()
    steps, prompts = [step(0), step(1)], [prompt(2), prompt(3)]
    assert packed([steps, prompts], limits) == steps + prompts
    assert packed([prompts], limits) is None, "prompts alone stay on the padded path"
    assert packed([steps], limits) is None, "so do steps alone (the kept slab serves them)"
    tuned = step(4, Ref())
    assert packed([steps, prompts, [tuned]], limits) == steps + prompts, "one row, one adapter setting"
    small = Limits(pack_new_tokens=22)
    assert packed([steps, prompts], small) == [*steps, prompts[0]], "within the budget of new tokens"
    assert packed([prompts, steps], Limits(pack_new_tokens=30)) is None, "the oldest batch goes in whole or not at all"


def test_the_packing_benchmark_compares_both_ways_and_leaves_packing_on(lm):
    from core.bench.batching import packing

    result = packing(lm, 3, 2, 1)
    assert result["apart_s"] > 0 and result["packed_s"] > 0 and result["speedup"] > 0
    assert lm.engine.packs


def _prompt_request(seq: int, n: int):
    from core.engine.plan import Request

    return Request(list(range(1, n + 1)), None, True, None, seq=seq)


def _partitions(items: list) -> list[list[list]]:
    """Every way to split ``items`` into groups (Bell(n) of them)."""
    if not items:
        return [[]]
    first, rest = items[0], items[1:]
    out = []
    for part in _partitions(rest):
        out.append([[first], *part])
        for i in range(len(part)):
            out.append([*part[:i], [first, *part[i]], *part[i + 1 :]])
    return out


def test_prompts_are_cut_only_where_padding_costs_more_than_another_pass():
    """A class's openings (17-23 tokens each) are one batch; the cut chosen is the cheapest of all possible ones."""
    import random

    from core.engine.plan import Limits, plan

    limits = Limits()
    wave = [_prompt_request(i, 17 + i % 7) for i in range(30)]
    assert [len(b) for b in plan(wave, limits)] == [30], "90 padded columns cost less than a second pass"
    apart = plan([_prompt_request(0, 200), _prompt_request(1, 6)], limits)
    assert [len(b) for b in apart] == [1, 1], "194 padded columns cost more than a pass"
    assert apart[0][0].seq == 0, "the batch holding the oldest request runs first"

    def cost(batches):
        return sum(limits.pass_cost_tokens + len(b) * max(r.q for r in b) for b in batches)

    rng = random.Random(7)
    free = Limits(slack_kv=10**9)  # only the cost decides here
    for _ in range(40):
        reqs = [_prompt_request(i, rng.choice([1, 3, 8, 20, 40, 90, 150])) for i in range(rng.randint(1, 7))]
        batches = plan(reqs, free)
        assert sorted(r.seq for b in batches for r in b) == list(range(len(reqs))), "each request exactly once"
        assert cost(batches) == min(cost(p) for p in _partitions(reqs))


def test_an_engine_with_its_process_to_itself_gives_small_passes_fewer_threads(lm, monkeypatch):
    """The class server's engine process: decode steps and short prompts on one thread, a big prefill on all."""
    from core.engine.worker import Engine, PassThreads

    asked: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)  # record; the test process keeps its threads
    engine = Engine(lm.model, lm.lock, None, pad_id=lm.engine.pad_id, threads=PassThreads(small=1, large=2))
    assert engine.supported
    short = lm.tokenizer(PROMPTS[0])["input_ids"]
    long = lm.tokenizer(" ".join(PROMPTS * 2))["input_ids"]
    assert len(short) < 64 <= len(long)
    for ids in (short, long):
        logits, _ = engine.forward(ids, None, True)
        same_answer(logits[-1], lm.forward(ids, None, True)[0][-1])
    assert asked == [1, 2]
    assert PassThreads.leaving_one_core().small == max(1, torch.get_num_threads() - 1)
