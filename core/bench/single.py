"""One student: the next-token view and generation against plain transformers, and loading, in one run.

Timings on shared machines are noisy, so every figure is paired with a
baseline measured in the same process moments before: a raw ``model(**ids)``
forward for next-token latency, and plain ``model.generate()`` for generation.
Medians over ``repeats`` runs are reported.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from core.bench.timing import median_seconds
from core.distributions import SamplingSettings, clear_memos, next_token_distribution
from core.generation import generate
from core.models import ModelKey, _load_uncached, convert_gguf, load_model

BENCH_PROMPT = (
    "Language models are trained to predict the next token of a text. Given a long prefix "
    "of words, they assign a probability to every token in the vocabulary, and a sampler "
    "picks one of them. Repeating this step produces text, one token after another, and the"
)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cold_and_cached_load(model: str, dtype: str) -> dict[str, float]:
    """Convert the GGUF into an empty cache (cold), then load from that cache."""
    if model != "embedded" and not model.endswith(".gguf"):
        return {}
    from core.embedded import embedded_gguf_path

    gguf = embedded_gguf_path() if model == "embedded" else Path(model)
    previous = os.environ.get("LLM_LAB_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LLM_LAB_CACHE"] = tmp
        try:
            started = time.perf_counter()
            convert_gguf(gguf)
            _load_uncached(ModelKey(model, dtype, "cpu"))
            cold = time.perf_counter() - started
            started = time.perf_counter()
            _load_uncached(ModelKey(model, dtype, "cpu"))
            cached = time.perf_counter() - started
        finally:
            if previous is None:
                os.environ.pop("LLM_LAB_CACHE", None)
            else:
                os.environ["LLM_LAB_CACHE"] = previous
    return {"cold_load_s": cold, "cached_load_s": cached}


def run_benchmark(
    model: str = "embedded", dtype: str = "float32", repeats: int = 5, new_tokens: int = 48, cold: bool = True
) -> dict[str, Any]:
    lm = load_model(model, dtype, "auto")
    ids = lm.tokenizer(BENCH_PROMPT)["input_ids"]
    tensor = torch.tensor([ids], device=lm.model.device)

    def raw_forward() -> None:
        with torch.inference_mode():
            lm.model(input_ids=tensor)

    def ours_next_token() -> None:
        clear_memos()  # measure the computation, not the memo
        next_token_distribution(lm, ids).top(20)

    raw_s = median_seconds(raw_forward, repeats)
    ours_s = median_seconds(ours_next_token, repeats)

    def hf_generate() -> None:
        with torch.inference_mode():
            lm.model.generate(
                tensor,
                attention_mask=torch.ones_like(tensor),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=lm.tokenizer.eos_token_id,
            )

    generated: list[int] = []

    def ours_generate() -> None:
        # Greedy, like the baseline; a model that ends early is timed on the tokens it made.
        clear_memos()  # every run computes its tokens: a memo would replay the last run's
        steps = list(generate(lm, ids, new_tokens, SamplingSettings(temperature=0), alternatives=20))
        generated.append(len(steps))

    gen_repeats = max(1, repeats // 2)
    hf_s = median_seconds(hf_generate, gen_repeats)
    ours_gen_s = median_seconds(ours_generate, gen_repeats)
    result: dict[str, Any] = {
        "model": lm.display_name,
        "dtype": dtype,
        "device": lm.key.device,
        "torch_threads": torch.get_num_threads(),
        "prompt_tokens": len(ids),
        "raw_forward_s": raw_s,
        "next_token_s": ours_s,
        "next_token_latency_ratio": ours_s / raw_s,
        "hf_generate_tokens_per_s": new_tokens / hf_s,
        "generate_tokens_per_s": generated[-1] / ours_gen_s,
        "generate_tokens_per_s_ratio": (generated[-1] / ours_gen_s) / (new_tokens / hf_s),
    }
    if cold:
        result.update(_cold_and_cached_load(model, dtype))
    result["peak_rss_mb"] = _peak_rss_mb()
    return result
