"""``compare``: zero-shot, few-shot and fine-tuned answers to a dataset's held-out prompts."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from core.checks import whole
from core.cli.common import Adder, model

if TYPE_CHECKING:
    from core.compare import ComparedPrompt


def _print_compared(row: ComparedPrompt) -> None:
    expected = f"  (expected {row.expected[:40]!r})" if row.expected else ""
    print(f"\n{row.prompt[:100]!r}{expected}")
    for a in row.answers:
        print(f"  {dict([(True, '✓'), (False, '✗')]).get(a.correct, ' ')} {a.column:<20} {a.text[:80]!r}")


def cmd_compare(args: argparse.Namespace) -> dict[str, Any]:
    from core.backends.local import LocalBackend
    from core.compare import contenders, run_comparison
    from core.datasets import load_dataset
    from core.distributions import SamplingSettings
    from core.finetune.adapters import resolve_adapter
    from core.prompts import pick_shots

    if args.limit is not None:
        whole(args.limit, "--limit", 1, 10**6)
    dataset = load_dataset(args.dataset, seed=args.seed)
    refs = [resolve_adapter(spec) for spec in args.adapter]
    base = model(args)
    if refs:  # adapters run on torch: so does the base's column, or it would differ by the engine as well
        base = base.on_torch()
    views = [(ref.label, LocalBackend(base.with_adapter(ref))) for ref in refs]
    comparison = run_comparison(
        contenders(LocalBackend(base), views, pick_shots(dataset.train, args.few_shot, args.seed)),
        dataset.eval[: args.limit] if args.limit else dataset.eval,
        dataset,
        SamplingSettings(temperature=args.temperature, top_p=args.top_p),
        seed=args.seed,
        max_new_tokens=args.max_new_tokens or dataset.max_new_tokens,
        normalised=not args.exact,
        on_row=None if args.json else _print_compared,  # a table streams, row by row
    )
    if args.json:
        return comparison.to_json()
    print()
    return {f"accuracy {k}": "—" if v is None else f"{v:.0%}" for k, v in comparison.accuracy().items()}


def register(add: Adder) -> None:
    p = add(
        "compare",
        cmd_compare,
        "Zero-shot, few-shot and fine-tuned answers to a dataset's held-out prompts, with the same decoding.",
    )
    p.add_argument("--dataset", required=True, help="sentiment, pirate, persona, or a .csv / .jsonl file")
    p.add_argument(
        "--adapter", action="append", default=[], help="an adapter folder, job folder or saved name (repeatable)"
    )
    p.add_argument("--few-shot", type=int, default=4, help="training examples put in the prompt (0: no column)")
    p.add_argument("--limit", type=int, default=None, help="compare only the first N held-out prompts")
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default) is greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the dataset's own")
    p.add_argument("--seed", type=int, default=0, help="for the few-shot draw, the split and sampling")
    p.add_argument("--exact", action="store_true", help="exact matches only (default: case and punctuation fold)")
