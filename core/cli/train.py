"""Commands that train: finetune (and its estimate), pretrain, and the pairs pretraining learns from."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.cli.common import Adder
from core.errors import InvalidInput


def cmd_finetune(args: argparse.Namespace) -> dict[str, Any]:
    from core.datasets import load_dataset
    from core.finetune.config import FinetuneConfig
    from core.finetune.jobs import check_inputs
    from core.finetune.train import (
        create_or_join_job,
        estimate_duration,
        finetune_summary,
        run_estimate_job,
        run_job,
    )

    if args.job_dir:
        if args.estimate:
            return run_estimate_job(Path(args.job_dir)).to_json()
        return finetune_summary(run_job(Path(args.job_dir)))
    if not args.dataset:
        raise InvalidInput("Name a dataset with --dataset: sentiment, pirate, persona, or a .csv / .jsonl file.")
    given = {
        "learning_rate": args.lr,
        "r": args.r,
        "alpha": args.alpha,
        "dropout": args.dropout,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "seed": args.seed,
        "max_steps": args.max_steps,
        "target_modules": [m for arg in args.target_modules for m in arg.split(",") if m]
        if args.target_modules
        else None,
    }
    settings = {k: v for k, v in given.items() if v is not None}
    if args.epochs is not None:
        settings.update(epochs=args.epochs, max_steps=args.max_steps)
    config = FinetuneConfig(
        dataset=args.dataset, model=args.model, precision=args.dtype, device=args.device, **settings
    ).validate()
    dataset = load_dataset(config.dataset, config.eval_fraction, config.seed)
    if args.estimate:
        return estimate_duration(config, dataset).to_json()
    if not args.output:
        raise InvalidInput("Say where the job goes with --output DIR (the adapter is saved in DIR/adapter).")
    check_inputs(config, dataset)  # a row too long is refused before any folder is written
    create_or_join_job(config, Path(args.output), dataset)
    return finetune_summary(run_job(Path(args.output)))


def cmd_pretrain(args: argparse.Namespace) -> dict[str, Any]:
    from core.pretrain.config import PretrainConfig
    from core.pretrain.corpus import load_corpus
    from core.pretrain.jobs import create_pretrain_job
    from core.pretrain.train import pretrain_summary, run_pretrain_job
    from core.pretrain.windows import prepare_corpus

    if args.job_dir:
        return pretrain_summary(run_pretrain_job(Path(args.job_dir)))
    source = args.text_file or args.corpus
    if not source:
        raise InvalidInput(
            "Give a text to train on: --text-file FILE (UTF-8) or --corpus python-docs / tiny-sentences."
        )
    given = {
        "layers": args.layers,
        "d_model": args.d_model,
        "heads": args.heads,
        "context": args.context,
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "sample_every": args.sample_every,
        "seed": args.seed,
    }
    settings = {k: v for k, v in given.items() if v is not None}
    config = PretrainConfig(corpus=source, tokenizer=args.tokenizer, device=args.device, **settings).validate()
    corpus = load_corpus(source)
    if not args.output:
        raise InvalidInput("Say where the job goes with --output DIR (the model is saved in DIR/model).")
    prepare_corpus(config, corpus.text)  # a corpus too short or a size too big is refused before any folder is written
    create_pretrain_job(config, Path(args.output), corpus)
    return pretrain_summary(run_pretrain_job(Path(args.output)))


def cmd_pairs(args: argparse.Namespace) -> dict[str, Any]:
    from core.pretrain.pairs import training_pairs
    from core.pretrain.tokenizer import make_tokenizer

    tokenizer = make_tokenizer(args.tokenizer, args.text, args.context)
    text = training_pairs(tokenizer, args.text, args.context, limit=args.limit)
    return {
        "tokenizer": args.tokenizer,
        "context_length": args.context,
        "n_tokens": len(text.tokens),
        "total_pairs": text.total_pairs,
        "pairs": [
            {
                "position": pair.position,
                "context": [t.text for t in pair.context],
                "context_ids": [t.id for t in pair.context],
                "target": pair.target.text,
                "target_id": pair.target.id,
            }
            for pair in text.pairs
        ],
    }


def print_pairs(result: dict[str, Any]) -> None:
    from core.tokens import display_token

    print(f"{result['n_tokens']} tokens give {result['total_pairs']} (context -> next token) pairs:")
    for pair in result["pairs"]:
        context = "".join(display_token(t) for t in pair["context"])
        print(f"{pair['position']:>5}  {context[-60:]:>60}  ->  {display_token(pair['target'])}")


def register(add: Adder) -> None:
    from core.finetune.config import FinetuneConfig
    from core.pretrain.config import PretrainConfig
    from core.pretrain.corpus import BUILTIN_CORPORA
    from core.pretrain.tokenizer import TOKENIZERS

    p = add(
        "finetune",
        cmd_finetune,
        "Fine-tune a LoRA adapter in the foreground (Trainer + peft; also under accelerate launch or torchrun). "
        "--dtype is the training precision: auto (default) is bfloat16/float16 on a GPU that has it, float32 on a CPU.",
    )
    p.set_defaults(dtype="auto")
    d = FinetuneConfig()  # help shows the config's own defaults
    p.add_argument("--dataset", help="sentiment, pirate, persona, or a .csv / .jsonl file")
    p.add_argument("--output", help="the job folder to create: config, status, metrics, log and DIR/adapter")
    p.add_argument("--job-dir", help="run a job folder prepared by a page (other settings come from its config)")
    p.add_argument("--estimate", action="store_true", help="time a quick step and print the expected duration")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=int, default=None, help=f"optimizer steps (default {d.max_steps})")
    length.add_argument("--epochs", type=float, default=None, help="passes over the training split")
    p.add_argument("--lr", type=float, default=None, help=f"learning rate (default {d.learning_rate:g})")
    p.add_argument("--r", type=int, default=None, help=f"LoRA rank (default {d.r})")
    p.add_argument(
        "--alpha", type=float, default=None, help=f"LoRA alpha; the update is scaled by alpha/r (default {d.alpha:g})"
    )
    p.add_argument("--dropout", type=float, default=None, help=f"LoRA dropout (default {d.dropout:g})")
    p.add_argument(
        "--target-modules", nargs="+", default=None, help=f"layers to adapt (default {' '.join(d.target_modules)})"
    )
    p.add_argument("--batch-size", type=int, default=None, help=f"examples per step (default {d.batch_size})")
    p.add_argument("--max-length", type=int, default=None, help=f"max tokens per example (default {d.max_length})")
    p.add_argument("--seed", type=int, default=None, help=f"random seed (default {d.seed})")

    pre = PretrainConfig()
    p = add(
        "pretrain",
        cmd_pretrain,
        "Pretrain a tiny Llama from random weights on a text, in the foreground (--model is not used).",
    )
    p.add_argument("--text-file", help="a UTF-8 .txt file to train on")
    p.add_argument("--corpus", choices=list(BUILTIN_CORPORA), help="a built-in text instead of --text-file")
    p.add_argument("--tokenizer", choices=list(TOKENIZERS), default=pre.tokenizer, help="characters or SmolLM2's")
    p.add_argument("--output", help="the job folder to create: config, status, metrics, samples, log and DIR/model")
    p.add_argument("--job-dir", help="run a job folder prepared by a page (other settings come from its config)")
    p.add_argument("--layers", type=int, default=None, help=f"transformer blocks (default {pre.layers})")
    p.add_argument("--d-model", type=int, default=None, help=f"width (default {pre.d_model})")
    p.add_argument("--heads", type=int, default=None, help=f"attention heads, dividing the width (default {pre.heads})")
    p.add_argument("--context", type=int, default=None, help=f"tokens read at once (default {pre.context})")
    p.add_argument("--max-steps", type=int, default=None, help=f"optimizer steps (default {pre.max_steps})")
    p.add_argument("--batch-size", type=int, default=None, help=f"windows per step (default {pre.batch_size})")
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default {pre.learning_rate:g})")
    p.add_argument("--sample-every", type=int, default=None, help=f"steps between samples (default {pre.sample_every})")
    p.add_argument("--seed", type=int, default=None, help=f"random seed (default {pre.seed})")

    p = add("pairs", cmd_pairs, "The (context -> next token) pairs a text yields: self-supervised training data.")
    p.set_defaults(printer=print_pairs)
    p.add_argument("--text", required=True)
    p.add_argument("--tokenizer", choices=list(TOKENIZERS), default="char", help="characters or SmolLM2's tokens")
    p.add_argument("--context", type=int, default=8, help="tokens the model reads at once (default 8)")
    p.add_argument("--limit", type=int, default=None, help="list only the first N pairs")
