"""Benchmarks of the batching engine: many requests at once against one at a time, in one run.

A class asks at once. "One at a time" sends the same requests from one
thread, each alone on the engine (a batch of one, as the model ran before
there was an engine); "batched" sends them from one thread per student at the
same moment, so the engine runs them together. Both do the same work and give
the same answers (tests check that); only the throughput differs. Each figure
is a median, and every ratio is measured moments apart in the same process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from core.bench.timing import median_seconds
from core.distributions import SamplingSettings, clear_memos, next_token_distribution
from core.generation import generate
from core.models import LoadedModel
from core.tree import sample_tree

# Different prompts, so no answer comes from a memo; short, as a class types them.
CLASS_PROMPTS = tuple(
    f"{opening} {topic}"
    for topic in ("rivers", "music", "bread", "stars", "trains", "birds", "cities", "paper")
    for opening in ("Here is what I know about", "The best thing about", "A short story about", "Ten facts on")
)


def run_together(tasks: Sequence[Callable[[], object]]) -> None:
    """Run every task in its own thread, all released at the same moment (a class pressing a button)."""
    barrier = threading.Barrier(len(tasks))
    errors: list[BaseException] = []

    def run(task: Callable[[], object]) -> None:
        barrier.wait()
        try:
            task()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(task,)) for task in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _prompts(lm: LoadedModel, n: int) -> list[list[int]]:
    texts = [f"{CLASS_PROMPTS[i % len(CLASS_PROMPTS)]} ({i // len(CLASS_PROMPTS)})" for i in range(n)]
    return [lm.tokenizer(text)["input_ids"] for text in texts]


def next_token_batching(lm: LoadedModel, n: int, repeats: int) -> dict[str, float]:
    """``n`` next-token distributions for ``n`` different prompts: sent together, against one after another."""
    prompts = _prompts(lm, n)

    def ask(ids: list[int]) -> Callable[[], object]:
        return lambda: next_token_distribution(lm, ids)

    def alone() -> None:
        clear_memos()
        for ids in prompts:
            next_token_distribution(lm, ids)

    def at_once() -> None:
        clear_memos()
        run_together([ask(ids) for ids in prompts])

    alone_s, together_s = median_seconds(alone, repeats), median_seconds(at_once, repeats)
    return {"one_at_a_time_s": alone_s, "batched_s": together_s, "throughput_ratio": alone_s / together_s}


def stream_batching(lm: LoadedModel, n: int, tokens: int, repeats: int) -> dict[str, float]:
    """``n`` greedy generations of ``tokens`` tokens (after different prompts): together, against one by one."""
    prompts = _prompts(lm, n)
    greedy = SamplingSettings(temperature=0)

    def stream(ids: list[int]) -> Callable[[], object]:
        return lambda: list(generate(lm, ids, tokens, greedy, alternatives=20))

    def alone() -> None:
        clear_memos()
        for ids in prompts:
            stream(ids)()

    def at_once() -> None:
        clear_memos()
        run_together([stream(ids) for ids in prompts])

    alone_s, together_s = median_seconds(alone, repeats), median_seconds(at_once, repeats)
    return {
        "one_at_a_time_tokens_per_s": n * tokens / alone_s,
        "batched_tokens_per_s": n * tokens / together_s,
        "throughput_ratio": alone_s / together_s,
    }


def samples_batching(lm: LoadedModel, n: int, depth: int, repeats: int) -> dict[str, float]:
    """A tree of ``n`` samples with each step's passes in one call, against one pass at a time (same draws)."""
    prompt = "The capital of France is"

    def one_by_one(model: LoadedModel, requests: list) -> list:
        return [model.forward(ids, past, last) for ids, past, last in requests]

    def batched() -> None:
        clear_memos()
        sample_tree(lm, prompt, n, depth, seed=0)

    def alone() -> None:
        clear_memos()
        sample_tree(lm, prompt, n, depth, seed=0, forward_many=one_by_one)

    alone_s, batched_s = median_seconds(alone, repeats), median_seconds(batched, repeats)
    return {"one_at_a_time_s": alone_s, "batched_s": batched_s, "throughput_ratio": alone_s / batched_s}


def packing(lm: LoadedModel, steps: int, prompts: int, repeats: int) -> dict[str, float]:
    """A class's mixed wave: ``steps`` streams' next step and ``prompts`` new prompts, packed in one row or apart.

    Apart is the engine without packing: the steps as one padded batch, the
    prompts as another, each pass reading every weight. Same answers both ways
    (tests check that); only the time differs. Needs the engine in this process.
    """
    engine = lm.engine
    streams = [lm.forward(ids, None, True)[1] for ids in _prompts(lm, steps)]
    news = _prompts(lm, steps + prompts)[steps:]
    step = lm.tokenizer(" and")["input_ids"][-1]
    wave = [([step], past, True) for past in streams] + [(ids, None, True) for ids in news]
    chosen = engine.packs

    def run(packs: bool) -> Callable[[], object]:
        def once() -> None:
            engine.packs = packs
            lm.forward_many(wave)

        return once

    try:
        apart_s, packed_s = median_seconds(run(False), repeats), median_seconds(run(chosen), repeats)
    finally:
        engine.packs = chosen
    return {"apart_s": apart_s, "packed_s": packed_s, "speedup": apart_s / packed_s, "packs": float(chosen)}


def run_batching(lm: LoadedModel, sizes: Sequence[int], repeats: int, stream_tokens: int = 16) -> dict[str, Any]:
    """Every batching line, for each class size in ``sizes``; keys as ``python -m core bench --json`` prints them."""
    result: dict[str, Any] = {"engine_batches": lm.engine is not None and lm.engine.supported}
    for n in sizes:
        for name, value in next_token_batching(lm, n, repeats).items():
            result[f"next_token_x{n}_{name}"] = value
        for name, value in stream_batching(lm, n, stream_tokens, max(1, repeats // 2)).items():
            result[f"streams_x{n}_{name}"] = value
    for name, value in samples_batching(lm, 16, 8, max(1, repeats // 2)).items():
        result[f"samples_x16_{name}"] = value
    if lm.llama is None and not lm.runs_in_engine_process and lm.engine.supported:  # the engine here runs the wave
        for name, value in packing(lm, 6, 3, repeats).items():
            result[f"mixed_wave_6_steps_3_prompts_{name}"] = value
    return result
