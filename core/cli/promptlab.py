"""``shots`` (the shot curve of in-context learning) and ``probe`` (the probability of a whole string next)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.checks import whole
from core.cli.common import Adder, add_adapter_option, add_backend_options, backend, model

DEFAULT_LIMIT = 8


def _progress(done: int, total: int) -> None:
    print(f"\ranswered {done}/{total} prompts", end="" if done < total else "\n", file=sys.stderr, flush=True)


def cmd_shots(args: argparse.Namespace) -> dict[str, Any]:
    from core.datasets import load_dataset
    from core.distributions import SamplingSettings
    from core.promptlab import MAX_ORDERS, PromptVariant, shot_curve, task_from_dataset
    from core.promptlab.shots import check_shot_counts

    # Flags and ranges are checked before the model loads: a typo should not cost a model load.
    whole(args.limit, "--limit", 1, 10**6)
    whole(args.orders, "--orders", 1, MAX_ORDERS)
    task = task_from_dataset(load_dataset(args.dataset, seed=args.seed), args.limit)
    check_shot_counts(args.shots, task)
    template = task.default_template if args.template is None else args.template
    variant = PromptVariant(system=args.system, template=template, hint=args.hint).validate()
    curve = shot_curve(
        backend(args),
        task,
        args.shots,
        args.orders,
        args.seed,
        args.random_labels,
        variant,
        SamplingSettings(temperature=args.temperature),
        args.max_new_tokens,
        args.chat,
        normalised=not args.exact,
        on_progress=_progress if sys.stderr.isatty() else None,
    )
    return curve.to_json()


def print_shots(result: dict[str, Any]) -> None:
    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:.0%}"

    r = result
    print(f"{r['model']} on {r['task']}: {r['items']} items, up to {r['orders']} orders, seed {r['seed']}")
    curves = [("examples", result["points"])]
    if "random_labels" in result:
        curves.append(("random labels", result["random_labels"]))
    for title, points in curves:
        print(f"\n{title:<14} {'accuracy':>9} {'min–max':>11} {'P(expected)':>12} {'orders':>7}")
        for p in points:
            band = f"{cell(p['accuracy_min'])}–{cell(p['accuracy_max'])}"
            p_expected = "—" if p["p_expected"] is None else f"{p['p_expected']:.3f}"
            print(f"k = {p['shots']:<10} {cell(p['accuracy']):>9} {band:>11} {p_expected:>12} {p['orders']:>7}")


def cmd_probe(args: argparse.Namespace) -> dict[str, Any]:
    from core.probe import probe_target
    from core.tokens import encode_prompt

    lm = model(args)
    return probe_target(lm, encode_prompt(lm, args.prompt, chat=args.chat).ids, args.target).to_json()


def register(add: Adder) -> None:
    p = add(
        "shots",
        cmd_shots,
        "The shot curve: accuracy and the probability of the expected answer against the number of solved "
        "examples in the prompt, over several orders of the examples. Examples come from the dataset's training "
        "split, items from its held-out split.",
    )
    p.set_defaults(printer=print_shots)
    p.add_argument("--dataset", required=True, help="sentiment, pirate, persona, or a .csv / .jsonl file")
    p.add_argument(
        "--shots", type=int, nargs="+", default=[0, 1, 2, 4, 8], help="numbers of examples (default 0 1 2 4 8)"
    )
    p.add_argument("--orders", type=int, default=3, help="orders of the examples per number, at most 10 (default 3)")
    p.add_argument("--seed", type=int, default=0, help="for the draw of examples, their orders, the split and sampling")
    p.add_argument(
        "--random-labels", action="store_true", help="also a curve with the examples' answers drawn at random"
    )
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"ask the first N held-out items (default {DEFAULT_LIMIT}: k = 0 1 2 4 8 with 3 orders then takes "
        "about a minute on 2 CPU cores; the time grows with N)",
    )
    p.add_argument("--system", default="", help="a system message (default: none)")
    p.add_argument(
        "--template", default=None, help="the question with {input} where each item goes (default: as written)"
    )
    p.add_argument("--hint", default="", help="an answer-format hint after the question, e.g. 'Answer with one word.'")
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default) is greedy")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the dataset's own")
    p.add_argument("--exact", action="store_true", help="exact matches only (default: case and punctuation fold)")
    chat = p.add_mutually_exclusive_group()
    chat.add_argument(
        "--chat", action="store_true", default=None, help="examples as chat turns (default if the model has a template)"
    )
    chat.add_argument("--plain", dest="chat", action="store_false", help="examples as plain prompt/answer blocks")
    add_adapter_option(p)
    add_backend_options(p)

    p = add("probe", cmd_probe, "The probability of a whole string coming next, token by token, in one pass.")
    p.add_argument("--prompt", required=True)
    p.add_argument("--target", required=True, help="the string to probe, e.g. ' Paris' (a leading space matters)")
    p.add_argument("--chat", action="store_true", help="apply the chat template, prompt as the user message")
    add_adapter_option(p)
