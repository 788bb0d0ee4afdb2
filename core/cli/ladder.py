"""``python -m core ladder``: a scaling ladder trained in the foreground, the same code a page's job runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.cli.common import Adder
from core.errors import InvalidInput


def cmd_ladder(args: argparse.Namespace) -> dict[str, Any]:
    from core.ladder.config import LadderConfig
    from core.ladder.jobs import check_ladder, create_ladder_job, reopen_ladder
    from core.ladder.train import run_ladder_job
    from core.pretrain.corpus import load_corpus

    if args.job_dir:
        return run_ladder_job(Path(args.job_dir)).summary()
    source = args.text_file or args.corpus
    if not source:
        raise InvalidInput(
            "Give a text to train on: --text-file FILE (UTF-8) or --corpus python-docs / tiny-sentences."
        )
    if not args.output:
        raise InvalidInput("Say where the ladder goes with --output DIR (each rung is saved in DIR/rung-N).")
    given = {"rungs": args.rungs, "seed": args.seed, "steps": args.steps}
    settings = {k: v for k, v in given.items() if v is not None}
    config = LadderConfig(corpus=source, device=args.device, reference=not args.no_reference, **settings).validate()
    output = Path(args.output)
    saved = reopen_ladder(output, config)
    if saved is not None:  # this very ladder, already climbed: shown again, not retrained
        return saved.summary()
    corpus = load_corpus(source)
    checked = check_ladder(config, corpus.text)  # every refusal before any folder is written
    create_ladder_job(config, output, corpus, checked.plan)
    return run_ladder_job(output).summary()


def print_ladder(result: dict[str, Any]) -> None:
    """The rungs as a table, then the fit and the reference point."""
    print(f"{result['status']}: {len(result['rungs'])} of {result['rungs_planned']} rungs on {result['corpus']}")
    print(f"{'rung':>4} {'parameters':>11} {'held-out loss':>14} {'bits/char':>10} {'6·N·D FLOPs':>12} {'seconds':>8}")
    for row in result["rungs"]:
        print(
            f"{row['number']:>4} {row['parameters']:>11,} {row['eval_loss']:>14.4f} {row['bits_per_char']:>10.4f} "
            f"{row['train_flops']:>12.3g} {row['seconds']:>8.1f}"
        )
    fit = result["fit"]
    if fit:
        print(f"fit: bits/char = {fit['a']:.3g} x N^-{fit['b']:.4f} + {fit['c']:.3g}   (r² = {fit['r2']:.4f})")
    if result["reference"]:
        ref = result["reference"]
        print(f"{ref['model']}: {ref['bits_per_char']:.4f} bits/char on {ref['characters']:,} held-out characters")
    if result["stopped_rung"]:
        stopped = result["stopped_rung"]
        print(f"rung {stopped['number']} was stopped after {stopped['steps']} steps: kept, not fitted")
    print(f"folder: {result['output']}")


def register(add: Adder) -> None:
    from core.ladder.config import MAX_RUNGS, MIN_RUNGS, LadderConfig
    from core.pretrain.corpus import BUILTIN_CORPORA

    d = LadderConfig()
    p = add(
        "ladder",
        cmd_ladder,
        f"Train a scaling ladder in the foreground: {MIN_RUNGS} to {MAX_RUNGS} tiny Llamas from about 17K to 1.8M "
        "parameters on the same text for the same tokens, their held-out bits per character and the power law "
        "through them (--model is not used).",
    )
    p.set_defaults(printer=print_ladder)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--text-file", help="a UTF-8 .txt file to train on")
    source.add_argument("--corpus", choices=list(BUILTIN_CORPORA), help="a built-in text instead of --text-file")
    p.add_argument("--rungs", type=int, default=None, help=f"sizes, {MIN_RUNGS} to {MAX_RUNGS} (default {d.rungs})")
    p.add_argument("--seed", type=int, default=None, help=f"weights and windows (default {d.seed})")
    p.add_argument("--steps", type=int, default=None, help=f"optimizer steps per rung (default {d.steps})")
    p.add_argument("--no-reference", action="store_true", help="do not score SmolLM2-135M on the held-out text")
    p.add_argument("--output", help="the ladder's folder: config, status, log and DIR/rung-N for each rung")
    p.add_argument("--job-dir", help="run a ladder folder prepared by a page (other settings come from its config)")
