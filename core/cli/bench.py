"""``bench``: LLM Lab's engine against plain transformers, as ratios measured in one run."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli.common import Adder


def cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    from core.bench.batching import run_batching
    from core.bench.single import run_benchmark
    from core.models import load_model

    result = run_benchmark(
        model=args.model,
        dtype=args.dtype,
        repeats=args.repeats,
        new_tokens=args.new_tokens,
        cold=not args.skip_cold,
    )
    if args.batch_sizes:
        lm = load_model(args.model, args.dtype, args.device)
        result.update(run_batching(lm, args.batch_sizes, max(1, args.repeats // 2)))
    return result


def register(add: Adder) -> None:
    p = add("bench", cmd_bench, "Measure speed against plain transformers, in one run.")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--skip-cold", action="store_true", help="skip the (slow) first load from the GGUF")
    p.add_argument(
        "--batch-sizes",
        type=int,
        nargs="*",
        default=[1, 8, 32],
        help="class sizes for the batching lines: N requests at once vs one at a time (none: skip them)",
    )
