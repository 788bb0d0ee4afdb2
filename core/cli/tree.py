"""``tree``: beam search, or N samples merged into a tree, drawn in the terminal."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli.common import Adder, add_adapter_option, model
from core.errors import InvalidInput

SAMPLING_FLAGS = {"temperature": "--temperature", "top_k": "--top-k", "top_p": "--top-p", "min_p": "--min-p"}


def cmd_tree(args: argparse.Namespace) -> dict[str, Any]:
    from core.distributions import SamplingSettings
    from core.tree import beam_search, check_beam_search, check_samples, merge, sample_tree

    # Flags and ranges are checked before the model loads: a typo should not cost a model load.
    if args.beams is not None:
        given = [flag for name, flag in {**SAMPLING_FLAGS, "seed": "--seed"}.items() if getattr(args, name) is not None]
        if given:
            raise InvalidInput(f"{given[0]} shapes sampling, which --beams does not do: use it with --samples.")
        alpha = check_beam_search(args.beams, args.depth, args.length_penalty or 0.0)
        lm = model(args)
        search = beam_search(lm, args.prompt, args.beams, args.depth, alpha, args.chat)
        return {**search.to_json(), "tree": merge(search.beams, lm.tokenizer).to_json()}
    if args.length_penalty is not None:
        raise InvalidInput("--length-penalty ranks beams, which --samples does not keep: use it with --beams.")
    check_samples(args.samples, args.depth)
    settings = SamplingSettings(
        1.0 if args.temperature is None else args.temperature,
        args.top_k,
        1.0 if args.top_p is None else args.top_p,
        0.0 if args.min_p is None else args.min_p,
    )
    return sample_tree(model(args), args.prompt, args.samples, args.depth, settings, args.seed, args.chat).to_json()


def _line(node: dict[str, Any], counted: bool) -> str:
    from core.tokens import display_token

    prob = node["prob"]
    shown = f"{prob:.1%}" if prob >= 0.001 else f"{prob:.1e}"  # a rare token that was drawn is not 0.0%
    text = f"{display_token(node['token'])}  p={shown}"
    if counted:
        text += f"  {node['count']}× ({node['frequency']:.0%} of parent)"
    if node["ended"] and node["children"]:  # at a leaf every path stops: say so only where some go on
        text += f"  ■ {node['ended']} stop here"
    return text


def _draw(node: dict[str, Any], prefix: str, counted: bool, out: list[str]) -> None:
    children = node["children"]
    for n, child in enumerate(children):
        last = n == len(children) - 1
        out.append(f"{prefix}{'└─ ' if last else '├─ '}{_line(child, counted)}")
        _draw(child, prefix + ("   " if last else "│  "), counted, out)


def print_tree(result: dict[str, Any]) -> None:
    """The tree indented, each edge with the model's probability (and, for samples, the count); then the paths."""
    from core.tokens import display_token

    sampled = "samples" in result
    if sampled:
        s = result["settings"]
        print(
            f"{result['model']}: {len(result['samples'])} samples of up to {result['depth']} tokens, "
            f"temperature {s['temperature']:g}, top-k {s['top_k'] or 'off'}, top-p {s['top_p']:g}, "
            f"min-p {s['min_p']:g}, seed {result['seed']}"
        )
    else:
        print(
            f"{result['model']}: beam search, width {result['width']}, depth {result['depth']}, "
            f"length penalty {result['length_penalty']:g}"
        )
    lines: list[str] = ["(prompt)"]
    _draw(result["tree"], "", sampled, lines)
    print("\n".join(lines))
    print()
    paths = result["samples"] if sampled else result["beams"]
    for n, path in enumerate(paths, 1):
        text = "".join(display_token(t) for t in path["tokens"])
        score = "" if sampled else f"  score {path['score']:.3f}"
        print(f"{n:>3}. logprob {path['logprob']:8.3f}{score}  {text}")
    if not sampled:
        greedy = "".join(display_token(t) for t in result["greedy"]["tokens"])
        verdict = "differs from" if result["differs_from_greedy"] else "is the same as"
        print(f"greedy: logprob {result['greedy']['logprob']:.3f}  {greedy}")
        print(f"Beam search's best {verdict} greedy.")


def register(add: Adder) -> None:
    p = add("tree", cmd_tree, "Beam search, or N samples merged into one tree with counts and probabilities.")
    p.set_defaults(printer=print_tree)
    p.add_argument("--prompt", required=True)
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--beams", type=int, help="beam search with this width (1-16)")
    kind.add_argument("--samples", type=int, help="draw this many samples (1-64)")
    p.add_argument("--depth", type=int, default=8, help="tokens per path (1-32, default 8)")
    p.add_argument("--length-penalty", type=float, default=None, help="beams: score = logprob / length^A (default 0)")
    p.add_argument("--temperature", type=float, default=None, help="samples: 0 means greedy (default 1)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--min-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None, help="samples: the seed (default: a random one, reported)")
    p.add_argument("--chat", action="store_true", help="apply the chat template, prompt as the user message")
    add_adapter_option(p)
