"""``python -m core``: the same engine as the pages, from a terminal.

Every subcommand prints a readable table, or with ``--json`` one JSON object
whose shape scripts and checks rely on. Errors a person can fix are printed
as one sentence on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from core.embedded import EMBEDDED_MODEL
from core.errors import InvalidInput, LabError
from core.models import DEFAULT_DTYPE, DTYPES, LoadedModel

if TYPE_CHECKING:
    from core.backends.base import BackendStep
    from core.backends.openai_api import OpenAIBackend
    from core.compare import ComparedPrompt
    from core.generation import GenerationStep

Handler = Callable[[argparse.Namespace], dict[str, Any]]


def _quiet_transformers() -> None:
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _model(args: argparse.Namespace) -> LoadedModel:
    from core.models import load_model

    return load_model(args.model, args.dtype, args.device)


def _token_row(token: str, token_id: int | None, prob: float | None, logprob: float | None) -> dict[str, Any]:
    return {"token": token, "id": token_id, "prob": prob, "logprob": logprob}


def _stream(steps: Iterable[GenerationStep | BackendStep], echo: bool) -> tuple[list, float]:
    """Collect generated steps, printing each token as it comes when ``echo``; also the seconds it took."""
    collected = []
    started = time.perf_counter()
    for step in steps:
        collected.append(step)
        if echo:
            print(step.chosen.token, end="", flush=True)
    if echo:
        print()
    return collected, time.perf_counter() - started


def _step_row(step: GenerationStep | BackendStep) -> dict[str, Any]:
    chosen = step.chosen
    return {
        **_token_row(chosen.token, chosen.id, chosen.prob, chosen.logprob),
        "rank": step.rank,
        "sampled_prob": step.sampled_prob,
        "alternatives": [_token_row(a.token, a.id, a.prob, a.logprob) for a in step.alternatives],
    }


def _timing(steps: list, seconds: float) -> dict[str, Any]:
    return {
        "stopped": "eos" if steps and steps[-1].finished else "length",
        "seconds": seconds,
        "tokens_per_s": len(steps) / seconds if seconds > 0 else None,
    }


def _api_backend(args: argparse.Namespace) -> OpenAIBackend:
    """The server's model; the key comes only from OPENAI_API_KEY, never a flag that ``ps`` would show."""
    from core.backends.openai_api import DEFAULT_TIMEOUT_S, OpenAIBackend

    if args.model == EMBEDDED_MODEL:
        raise InvalidInput("With --backend openai, --model must name a model on the server (e.g. gpt-4o-mini).")
    return OpenAIBackend(args.model, base_url=args.base_url, timeout=args.timeout or DEFAULT_TIMEOUT_S)


def _next_token_api(args: argparse.Namespace) -> dict[str, Any]:
    backend = _api_backend(args)
    dist = backend.next_token(args.prompt, chat=args.chat, top_k=args.top_k)
    return {
        "model": dist.model,
        "base_url": backend.base_url,
        "prompt": dist.prompt_text,
        "prompt_tokens": dist.prompt_tokens,
        "tokens": [_token_row(t.token, t.id, t.prob, t.logprob) for t in dist.tokens],
        "entropy": dist.entropy,
        "entropy_bits": dist.entropy_bits,
        "top_k_mass": dist.listed_mass,
        "other_mass": dist.other_mass,
        "entropy_is_lower_bound": dist.entropy_is_lower_bound,
    }


def cmd_next_token(args: argparse.Namespace) -> dict[str, Any]:
    from core.distributions import next_token_distribution
    from core.tokens import encode_prompt

    if args.backend == "openai":
        return _next_token_api(args)
    lm = _model(args)
    prompt = encode_prompt(lm, args.prompt, chat=args.chat)
    dist = next_token_distribution(lm, prompt.ids)
    top = dist.top(args.top_k)
    return {
        "model": lm.display_name,
        "prompt": prompt.text,
        "prompt_tokens": len(prompt.ids),
        "tokens": [_token_row(t.token, t.id, t.prob, t.logprob) for t in top],
        "entropy": dist.entropy,
        "entropy_bits": dist.entropy_bits,
        "top_k_mass": sum(t.prob for t in top),
        "other_mass": max(0.0, 1.0 - sum(t.prob for t in top)),
        "entropy_is_lower_bound": False,
    }


def cmd_score(args: argparse.Namespace) -> dict[str, Any]:
    from core.distributions import score_text

    lm = _model(args)
    score = score_text(lm, args.text, alternatives=args.alternatives)
    return {
        "model": lm.display_name,
        "tokens": [
            {
                **_token_row(t.token, t.id, t.prob, t.logprob),
                "rank": t.rank,
                "alternatives": [_token_row(a.token, a.id, a.prob, a.logprob) for a in t.alternatives],
            }
            for t in score.tokens
        ],
        "perplexity": score.perplexity,
        "mean_nll": score.mean_nll,
        "scored_tokens": score.n_scored,
        "note": "The first token has no prefix to predict it from: it is listed with null scores "
        "and left out of the perplexity.",
    }


def _generate_api(args: argparse.Namespace) -> dict[str, Any]:
    from core.distributions import SamplingSettings

    backend = _api_backend(args)
    settings = SamplingSettings(args.temperature, args.top_k, args.top_p, args.min_p)
    steps, seconds = _stream(
        backend.generate_steps(
            args.prompt, args.chat, args.max_new_tokens, settings, seed=args.seed, alternatives=args.alternatives
        ),
        echo=not args.json,
    )
    return {
        "model": backend.model,
        "base_url": backend.base_url,
        "prompt": None if args.chat else args.prompt,
        "text": "".join(s.chosen.token for s in steps),
        "tokens": [{**_step_row(s), "other_mass": s.other_mass} for s in steps],
        **_timing(steps, seconds),
    }


def cmd_generate(args: argparse.Namespace) -> dict[str, Any]:
    from core.distributions import SamplingSettings
    from core.generation import generate
    from core.tokens import encode_prompt

    if args.backend == "openai":
        return _generate_api(args)
    lm = _model(args)
    prompt = encode_prompt(lm, args.prompt, chat=args.chat)
    settings = SamplingSettings(args.temperature, args.top_k, args.top_p, args.min_p)
    steps, seconds = _stream(
        generate(lm, prompt.ids, args.max_new_tokens, settings, seed=args.seed, alternatives=args.alternatives),
        echo=not args.json,
    )
    return {
        "model": lm.display_name,
        "prompt": prompt.text,
        "text": lm.tokenizer.decode([s.chosen.id for s in steps], skip_special_tokens=True),
        "tokens": [_step_row(s) for s in steps],
        **_timing(steps, seconds),
    }


def cmd_tokenize(args: argparse.Namespace) -> dict[str, Any]:
    from core.tokens import encode_prompt

    lm = _model(args)
    prompt = encode_prompt(lm, args.prompt, chat=args.chat)
    return {
        "model": lm.display_name,
        "text": prompt.text,
        "tokens": [{"token": t.text, "id": t.id, "special": t.special} for t in prompt.tokens],
    }


def cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    from core.bench import run_benchmark

    return run_benchmark(
        model=args.model,
        dtype=args.dtype,
        repeats=args.repeats,
        new_tokens=args.new_tokens,
        cold=not args.skip_cold,
    )


def cmd_finetune(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from core.finetune.config import FinetuneConfig
    from core.finetune.datasets import load_dataset
    from core.finetune.train import create_or_join_job, estimate_duration, run_job

    if args.job_dir:
        return run_job(Path(args.job_dir))
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
        return estimate_duration(config, dataset).to_dict()
    if not args.output:
        raise InvalidInput("Say where the job goes with --output DIR (the adapter is saved in DIR/adapter).")
    create_or_join_job(config, Path(args.output), dataset)
    return run_job(Path(args.output))


def cmd_pretrain(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from core.pretrain.config import PretrainConfig
    from core.pretrain.corpus import load_corpus
    from core.pretrain.jobs import create_pretrain_job
    from core.pretrain.train import run_pretrain_job
    from core.pretrain.windows import prepare_corpus

    if args.job_dir:
        return run_pretrain_job(Path(args.job_dir))
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
    return run_pretrain_job(Path(args.output))


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


def _print_pairs(result: dict[str, Any]) -> None:
    from core.tokens import display_token

    print(f"{result['n_tokens']} tokens give {result['total_pairs']} (context -> next token) pairs:")
    for pair in result["pairs"]:
        context = "".join(display_token(t) for t in pair["context"])
        print(f"{pair['position']:>5}  {context[-60:]:>60}  ->  {display_token(pair['target'])}")


def cmd_params(args: argparse.Namespace) -> dict[str, Any]:
    from core.pretrain.sizes import compute_optimal_tokens, parameter_breakdown

    lm = _model(args)
    with lm.using() as model:  # reads the weights' shapes only, but never beside a pass that switches adapters
        breakdown = parameter_breakdown(model)
    return {
        "model": lm.display_name,
        "parameters": breakdown.total,
        "by_kind": breakdown.by_kind,
        "per_layer": breakdown.per_layer,
        "outside_layers": breakdown.outside_layers,
        "tied_embeddings": breakdown.tied_embeddings,
        "tensors": breakdown.tensors,
        "compute_optimal_tokens": compute_optimal_tokens(breakdown.total),
    }


def _print_params(result: dict[str, Any]) -> None:
    total = result["parameters"]
    tied = " (output layer tied to the embeddings: counted once)" if result["tied_embeddings"] else ""
    print(f"{result['model']}: {total:,} parameters in {result['tensors']} tensors{tied}")
    for kind, n in result["by_kind"].items():
        print(f"{kind:>14}: {n:>14,}  {n / total:6.1%}")
    if result["per_layer"]:
        first = sum(result["per_layer"][0].values())
        print(f"{len(result['per_layer'])} layers; layer 0 holds {first:,} parameters")
    print(f"Chinchilla's ~20 tokens per parameter: about {result['compute_optimal_tokens']:.3g} training tokens")


def _print_compared(row: ComparedPrompt) -> None:
    expected = f"  (expected {row.expected[:40]!r})" if row.expected else ""
    print(f"\n{row.prompt[:100]!r}{expected}")
    for a in row.answers:
        print(f"  {dict([(True, '✓'), (False, '✗')]).get(a.correct, ' ')} {a.column:<20} {a.text[:80]!r}")


def cmd_compare(args: argparse.Namespace) -> dict[str, Any]:
    from core.compare import contenders, pick_shots, run_comparison
    from core.distributions import SamplingSettings
    from core.finetune.adapters import resolve_adapter
    from core.finetune.datasets import load_dataset
    from core.finetune.inference import load_adapter

    dataset = load_dataset(args.dataset, seed=args.seed)
    base = _model(args)
    views = [load_adapter(base, resolve_adapter(spec)) for spec in args.adapter]
    comparison = run_comparison(
        contenders(base, views, pick_shots(dataset, args.few_shot, args.seed)),
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


def cmd_lens(args: argparse.Namespace) -> dict[str, Any]:
    from core.lens import lens_report

    return lens_report(_model(args), args.prompt, args.chat, args.track, args.attention_layer, args.head)


def _print_lens(result: dict[str, Any]) -> None:
    from core.lens import lens_table

    print(lens_table(result))


def _print_table(result: dict[str, Any]) -> None:
    from core.tokens import display_token

    for key, value in result.items():
        if key in ("tokens", "prompt", "text"):
            continue
        if isinstance(value, float):
            value = f"{value:.4f}"
        print(f"{key:>24}: {value}")
    rows = result.get("tokens")
    if not rows:
        return
    print()
    has_rank = "rank" in rows[0]
    header = f"{'#':>4}  {'token':<20} {'id':>7} {'prob':>9} {'logprob':>9}" + (f" {'rank':>6}" if has_rank else "")
    print(header)
    print("-" * len(header))
    for n, row in enumerate(rows):
        prob = "—" if row["prob"] is None else f"{row['prob']:.2%}"
        logprob = "—" if row["logprob"] is None else f"{row['logprob']:.3f}"
        token_id = "—" if row["id"] is None else str(row["id"])
        line = f"{n:>4}  {display_token(row['token'])[:20]:<20} {token_id:>7} {prob:>9} {logprob:>9}"
        if has_rank:
            line += f" {row['rank'] if row['rank'] is not None else '—':>6}"
        print(line)


def add_backend_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group(
        "API backend", "Any OpenAI-compatible server. The API key is read from OPENAI_API_KEY only."
    )
    group.add_argument("--backend", choices=["local", "openai"], default="local", help="where the model runs")
    group.add_argument(
        "--base-url", default=None, help="the server's API root, e.g. http://127.0.0.1:8080/v1 (default: OpenAI's)"
    )
    group.add_argument("--timeout", type=float, default=None, help="seconds to wait for each answer (default 30)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="LLM Lab's engine from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        p.add_argument("--model", default=EMBEDDED_MODEL, help="'embedded' (default), a .gguf file, a HF id or folder")
        p.add_argument("--dtype", default=DEFAULT_DTYPE, choices=list(DTYPES))
        p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        return p

    p = add("next-token", cmd_next_token, "The distribution over the next token.")
    p.add_argument("--prompt", required=True)
    p.add_argument("--top-k", type=int, default=10, help="how many tokens to list (at most 20 with --backend openai)")
    p.add_argument("--chat", action="store_true", help="apply the chat template, prompt as the user message")
    add_backend_options(p)

    p = add("score", cmd_score, "How surprising each token of a text is, and its perplexity.")
    p.add_argument("--text", required=True)
    p.add_argument("--alternatives", type=int, default=5, help="top alternatives listed per position")

    p = add("generate", cmd_generate, "Generate step by step on the KV cache.")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=1.0, help="0 means greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--min-p", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--alternatives", type=int, default=20, help="alternatives reported per step")
    p.add_argument("--chat", action="store_true")
    add_backend_options(p)

    p = add("tokenize", cmd_tokenize, "Show the tokens the model reads.")
    p.add_argument("--prompt", required=True)
    p.add_argument("--chat", action="store_true")

    p = add("lens", cmd_lens, "The logit lens: what each layer would predict, at each position of the prompt.")
    p.set_defaults(printer=_print_lens)
    p.add_argument("--prompt", required=True)
    p.add_argument("--chat", action="store_true")
    p.add_argument("--track", default=None, help="a token to follow through the layers (default: the model's answer)")
    p.add_argument("--attention-layer", type=int, default=None, help="also print this layer's attention weights")
    p.add_argument("--head", type=int, default=None, help="one head of that layer (default: the mean of all)")

    p = add("bench", cmd_bench, "Measure speed against plain transformers, in one run.")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--skip-cold", action="store_true", help="skip the (slow) first load from the GGUF")

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

    p = add(
        "finetune",
        cmd_finetune,
        "Fine-tune a LoRA adapter in the foreground (Trainer + peft; also under accelerate launch or torchrun). "
        "--dtype is the training precision: auto (default) is bfloat16/float16 on a GPU that has it, float32 on a CPU.",
    )
    p.set_defaults(dtype="auto")
    from core.finetune.config import FinetuneConfig

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

    from core.pretrain.config import PretrainConfig
    from core.pretrain.corpus import BUILTIN_CORPORA
    from core.pretrain.tokenizer import TOKENIZERS

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
    p.set_defaults(printer=_print_pairs)
    p.add_argument("--text", required=True)
    p.add_argument("--tokenizer", choices=list(TOKENIZERS), default="char", help="characters or SmolLM2's tokens")
    p.add_argument("--context", type=int, default=8, help="tokens the model reads at once (default 8)")
    p.add_argument("--limit", type=int, default=None, help="list only the first N pairs")

    p = add("params", cmd_params, "A model's parameters by kind (embeddings, attention, MLP, norms) and layer.")
    p.set_defaults(printer=_print_params)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_transformers()
    try:
        result = args.handler(args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        getattr(args, "printer", _print_table)(result)
    return 0
