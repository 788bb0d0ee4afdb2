"""``bench``: LLM Lab's engine against plain transformers, as ratios measured in one run."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli.common import Adder


def cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    from core.bench import run_benchmark

    return run_benchmark(
        model=args.model,
        dtype=args.dtype,
        repeats=args.repeats,
        new_tokens=args.new_tokens,
        cold=not args.skip_cold,
    )


def register(add: Adder) -> None:
    p = add("bench", cmd_bench, "Measure speed against plain transformers, in one run.")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--skip-cold", action="store_true", help="skip the (slow) first load from the GGUF")
