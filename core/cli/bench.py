"""``bench``: LLM Lab's engine against plain transformers and against llama.cpp, as ratios measured in one run."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from core.cli.common import Adder


def cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    from core.bench.batching import run_batching
    from core.bench.engines import compare_engines
    from core.bench.fidelity import agreement_with_llamacpp
    from core.bench.single import BENCH_PROMPT, run_benchmark
    from core.models import load_model

    result = run_benchmark(
        model=args.model,
        dtype=args.dtype,
        repeats=args.repeats,
        new_tokens=args.new_tokens,
        cold=not args.skip_cold,
    )
    if not args.skip_engines:
        short, long = args.decode_tokens
        result.update(compare_engines(BENCH_PROMPT, args.model, max(1, args.repeats // 2), short, long).as_json())
        agreement = agreement_with_llamacpp(args.model, args.agreement_tokens)
        result["agreement_with_llamacpp"] = (
            agreement if isinstance(agreement, str) else [dataclasses.asdict(row) for row in agreement]
        )
    if args.batch_sizes:
        lm = load_model(args.model, args.dtype, args.device)
        result.update(run_batching(lm, args.batch_sizes, max(1, args.repeats // 2)))
    return result


def register(add: Adder) -> None:
    p = add("bench", cmd_bench, "Measure speed against plain transformers and llama.cpp, in one run.")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--skip-cold", action="store_true", help="skip the first load from the GGUF")
    p.add_argument(
        "--decode-tokens",
        type=int,
        nargs=2,
        default=[8, 72],
        metavar=("SHORT", "LONG"),
        help="each engine's tokens/s is (LONG - SHORT) / (T(LONG) - T(SHORT)): loading and the prompt cancel out",
    )
    p.add_argument(
        "--agreement-tokens",
        type=int,
        default=16,
        help="positions after each of the 8 prompts at which every engine is held against llama.cpp's distribution",
    )
    p.add_argument("--skip-engines", action="store_true", help="skip the engines against llama.cpp and their agreement")
    p.add_argument(
        "--batch-sizes",
        type=int,
        nargs="*",
        default=[1, 8, 32],
        help="class sizes for the batching lines: N requests at once vs one at a time (none: skip them)",
    )
