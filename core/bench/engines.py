"""One student's generation on every engine and precision, against llama.cpp itself, in one run.

The goal (issue 16) is llama.cpp's speed on the same GGUF and machine. So
the baseline is llama-cpp-python generating greedily on the GGUF with its
default settings and the same number of threads, and each option is LLM Lab's
own ``generate`` with the 20 alternatives a step the explorer shows. A
token's time is ``(T(long) - T(short)) / (long - short)``, so loading and
reading the prompt cancel out. Options and the baseline take turns within
each repeat, so a busy machine slows them alike; each figure is a median.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.distributions import SamplingSettings, clear_memos
from core.embedded import EMBEDDED_MODEL
from core.engine.llamacpp import llamacpp_missing
from core.generation import generate
from core.models import (
    DEFAULT_DTYPE,
    ENGINES,
    LLAMACPP,
    TORCH,
    LoadedModel,
    default_engine,
    gguf_file,
    llamacpp_threads,
    load_model,
    model_key,
    why_not_llamacpp,
)

OPTIONS = ((TORCH, "float32"), (TORCH, "bfloat16"), (LLAMACPP, "float32"))  # (engine, dtype): what is measured
ALTERNATIVES = 20  # what the explorer's Generate lists at each step


@dataclass(frozen=True)
class DecodeOption:
    """One way to run the model, measured: its tokens/s and its ratio to llama.cpp's (None, with ``note``, if not)."""

    engine: str
    dtype: str
    runs_on: str
    default: bool
    tokens_per_s: float | None
    ratio_llamacpp: float | None
    note: str | None = None


@dataclass(frozen=True)
class DecodeComparison:
    """Every option beside llama.cpp's own tokens/s on the same GGUF, from one run."""

    threads: int
    tokens: tuple[int, int]  # (short, long): a token's time is the difference over long - short
    llamacpp_tokens_per_s: float | None
    llamacpp_note: str | None
    options: tuple[DecodeOption, ...]

    @property
    def default(self) -> DecodeOption:
        return next(option for option in self.options if option.default)

    def as_json(self) -> dict[str, Any]:
        """The keys ``python -m core bench --json`` prints; the unsuffixed ratio is the default option's."""
        result: dict[str, Any] = {
            "llamacpp_tokens_per_s": self.llamacpp_tokens_per_s,
            "generate_tokens_per_s_ratio_llamacpp": self.default.ratio_llamacpp,
            "generate_default_runs_on": self.default.runs_on,
            "decode_threads": self.threads,
            "decode_tokens": list(self.tokens),
            "decode_options": [asdict(option) for option in self.options],
        }
        if self.llamacpp_note:
            result["llamacpp_note"] = self.llamacpp_note
        for option in self.options:
            name = f"{option.engine}_{option.dtype}" if option.engine == TORCH else option.engine
            result[f"generate_tokens_per_s_{name}"] = option.tokens_per_s
            result[f"generate_tokens_per_s_ratio_llamacpp_{name}"] = option.ratio_llamacpp
        return result


def _llamacpp_baseline(gguf: Path, threads: int, ids: list[int]) -> Callable[[int], int]:
    """``run(n)``: llama-cpp-python generating ``n`` greedy tokens after ``ids`` (EOS or not), from an empty cache."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)

    def run(n: int) -> int:
        llm.reset()
        for made, _ in enumerate(llm.generate(ids, top_k=1, temp=0.0, reset=True), start=1):
            if made >= n:
                break
        return n

    return run


def _ours(lm: LoadedModel, ids: list[int]) -> Callable[[int], int]:
    """``run(n)``: LLM Lab's ``generate``, greedy, 20 alternatives a step, nothing memoised from an earlier run.

    Returns the tokens made: fewer than ``n`` if the model ends its text.
    """
    greedy = SamplingSettings(temperature=0)

    def run(n: int) -> int:
        clear_memos()
        if lm.llama is not None:
            lm.llama.forget()  # as a new session: the prompt is read again, like the baseline's
        return sum(1 for _ in generate(lm, ids, n, greedy, alternatives=ALTERNATIVES))

    return run


def compare_engines(
    prompt: str, model: str = EMBEDDED_MODEL, repeats: int = 3, short: int = 8, long: int = 72
) -> DecodeComparison:
    """Tokens/s of each option in ``OPTIONS`` and of llama.cpp on the same GGUF, ratios from the same run."""
    threads = llamacpp_threads()
    default_key = model_key(model, DEFAULT_DTYPE, "cpu", engine=default_engine())
    runners: dict[str, Callable[[int], int]] = {}
    options: list[tuple[str, str, str, bool, str | None]] = []
    ids: list[int] = []
    for engine, dtype in OPTIONS:
        why = why_not_llamacpp(model, "cpu") if engine == LLAMACPP else None
        if why:
            options.append((engine, dtype, ENGINES[engine], False, why))
            continue
        lm = load_model(model, dtype, "cpu", engine=engine)
        ids = ids or lm.tokenizer(prompt)["input_ids"]
        name = f"{engine}/{dtype}"
        runners[name] = _ours(lm, ids)
        options.append((engine, dtype, lm.runs_on, lm.key == default_key, None))
    baseline_note = llamacpp_missing()
    if baseline_note is None and model != EMBEDDED_MODEL and not model.endswith(".gguf"):
        baseline_note = f"llama.cpp runs GGUF files, and {model!r} is a transformers model."
    if baseline_note is None:
        runners["llama.cpp"] = _llamacpp_baseline(gguf_file(model), threads, ids)
    speeds = _tokens_per_s(runners, repeats, short, long)
    baseline = speeds.get("llama.cpp")
    measured = []
    for engine, dtype, runs_on, is_default, note in options:
        speed = speeds.get(f"{engine}/{dtype}")
        ratio = speed / baseline if speed is not None and baseline else None
        measured.append(DecodeOption(engine, dtype, runs_on, is_default, speed, ratio, note))
    return DecodeComparison(threads, (short, long), baseline, baseline_note, tuple(measured))


def _tokens_per_s(runners: dict[str, Callable[[int], int]], repeats: int, short: int, long: int) -> dict[str, float]:
    """Median tokens/s of each runner; within a repeat they take turns, the order reversed every other repeat."""
    names = list(runners)
    for name in names:  # warm-up: kernels, buffers, the first allocation of every cache
        runners[name](short)
    speeds: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(max(1, repeats)):
        for name in names if repeat % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            made_short = runners[name](short)
            short_s = time.perf_counter() - started
            started = time.perf_counter()
            made_long = runners[name](long)
            long_s = time.perf_counter() - started
            if made_long > made_short:  # a model that ended its text before ``short`` tokens times nothing
                speeds[name].append((made_long - made_short) / max(long_s - short_s, 1e-9))
    return {name: statistics.median(values) for name, values in speeds.items() if values}
