"""Commands that look at a model: next-token, score, generate, tokenize, lens, params."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli.common import (
    Adder,
    add_adapter_option,
    add_backend_options,
    answered_by,
    backend,
    model,
    stream,
    token_row,
)


def cmd_next_token(args: argparse.Namespace) -> dict[str, Any]:
    source = backend(args)
    dist = source.next_token(args.prompt, chat=args.chat, top_k=args.top_k)
    return {
        "model": dist.model,
        **answered_by(source),
        "prompt": dist.prompt_text,
        "prompt_tokens": dist.prompt_tokens,
        "tokens": [token_row(t.token, t.id, t.prob, t.logprob) for t in dist.tokens],
        "entropy": dist.entropy,
        "entropy_bits": dist.entropy_bits,
        "top_k_mass": dist.listed_mass,
        "other_mass": dist.other_mass,
        "entropy_is_lower_bound": dist.entropy_is_lower_bound,
    }


def cmd_score(args: argparse.Namespace) -> dict[str, Any]:
    from core.distributions import score_text

    lm = model(args)
    score = score_text(lm, args.text, alternatives=args.alternatives)
    return {
        "model": lm.display_name,
        "runs_on": lm.runs_on,
        "tokens": [
            {
                **token_row(t.token, t.id, t.prob, t.logprob),
                "rank": t.rank,
                "alternatives": [token_row(a.token, a.id, a.prob, a.logprob) for a in t.alternatives],
            }
            for t in score.tokens
        ],
        "perplexity": score.perplexity,
        "mean_nll": score.mean_nll,
        "scored_tokens": score.n_scored,
        "note": "The first token has no prefix to predict it from: it is listed with null scores "
        "and left out of the perplexity.",
    }


def cmd_generate(args: argparse.Namespace) -> dict[str, Any]:
    from core.distributions import SamplingSettings

    source = backend(args)
    settings = SamplingSettings(args.temperature, args.top_k, args.top_p, args.min_p)
    steps, seconds = stream(
        source.generate_steps(
            args.prompt, args.chat, args.max_new_tokens, settings, seed=args.seed, alternatives=args.alternatives
        ),
        echo=not args.json,
    )
    return {
        "model": getattr(source, "model", source.label),  # an API's model name; a local model's display name
        **answered_by(source),
        "prompt": source.prompt_text(args.prompt, args.chat),
        "text": source.steps_text(steps),
        "tokens": [
            {
                **token_row(s.chosen.token, s.chosen.id, s.chosen.prob, s.chosen.logprob),
                "rank": s.rank,
                "sampled_prob": s.sampled_prob,
                "alternatives": [token_row(a.token, a.id, a.prob, a.logprob) for a in s.alternatives],
                **({} if source.full_distribution else {"other_mass": s.other_mass}),
            }
            for s in steps
        ],
        "stopped": "eos" if steps and steps[-1].finished else "length",
        "seconds": seconds,
        "tokens_per_s": len(steps) / seconds if seconds > 0 else None,
    }


def cmd_tokenize(args: argparse.Namespace) -> dict[str, Any]:
    from core.tokens import encode_prompt

    lm = model(args)
    prompt = encode_prompt(lm, args.prompt, chat=args.chat)
    return {
        "model": lm.display_name,
        "text": prompt.text,
        "tokens": [{"token": t.text, "id": t.id, "special": t.special} for t in prompt.tokens],
    }


def cmd_lens(args: argparse.Namespace) -> dict[str, Any]:
    from core.lens import lens_report

    return lens_report(model(args), args.prompt, args.chat, args.track, args.attention_layer, args.head)


def print_lens(result: dict[str, Any]) -> None:
    from core.lens import lens_table

    print(lens_table(result))


def cmd_params(args: argparse.Namespace) -> dict[str, Any]:
    from core.pretrain.sizes import compute_optimal_tokens, parameter_breakdown

    lm = model(args)
    with lm.using() as torch_model:  # reads the weights' shapes only, but never beside a pass that switches adapters
        breakdown = parameter_breakdown(torch_model)
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


def print_params(result: dict[str, Any]) -> None:
    total = result["parameters"]
    tied = " (output layer tied to the embeddings: counted once)" if result["tied_embeddings"] else ""
    print(f"{result['model']}: {total:,} parameters in {result['tensors']} tensors{tied}")
    for kind, n in result["by_kind"].items():
        print(f"{kind:>14}: {n:>14,}  {n / total:6.1%}")
    if result["per_layer"]:
        first = sum(result["per_layer"][0].values())
        print(f"{len(result['per_layer'])} layers; layer 0 holds {first:,} parameters")
    print(f"Chinchilla's ~20 tokens per parameter: about {result['compute_optimal_tokens']:.3g} training tokens")


def register(add: Adder) -> None:
    p = add("next-token", cmd_next_token, "The distribution over the next token.")
    p.add_argument("--prompt", required=True)
    p.add_argument("--top-k", type=int, default=10, help="how many tokens to list (at most 20 with --backend openai)")
    p.add_argument("--chat", action="store_true", help="apply the chat template, prompt as the user message")
    add_adapter_option(p)
    add_backend_options(p)

    p = add("score", cmd_score, "How surprising each token of a text is, and its perplexity.")
    p.add_argument("--text", required=True)
    p.add_argument("--alternatives", type=int, default=5, help="top alternatives listed per position")
    add_adapter_option(p)

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
    add_adapter_option(p)
    add_backend_options(p)

    p = add("tokenize", cmd_tokenize, "Show the tokens the model reads.")
    p.add_argument("--prompt", required=True)
    p.add_argument("--chat", action="store_true")

    p = add("lens", cmd_lens, "The logit lens: what each layer would predict, at each position of the prompt.")
    p.set_defaults(printer=print_lens)
    p.add_argument("--prompt", required=True)
    p.add_argument("--chat", action="store_true")
    p.add_argument("--track", default=None, help="a token to follow through the layers (default: the model's answer)")
    p.add_argument("--attention-layer", type=int, default=None, help="also print this layer's attention weights")
    p.add_argument("--head", type=int, default=None, help="one head of that layer (default: the mean of all)")
    add_adapter_option(p)

    p = add("params", cmd_params, "A model's parameters by kind (embeddings, attention, MLP, norms) and layer.")
    p.set_defaults(printer=print_params)
