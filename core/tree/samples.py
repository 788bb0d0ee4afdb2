"""N sampled continuations merged into one tree, with counts beside the model's probabilities.

Each edge of the tree carries the model's own p(token | prefix) and the share
of the parent's samples that took it. With few samples the two disagree; as
``n`` grows (at temperature 1, nothing pruned) the frequencies approach the
probabilities, which is what a class is meant to see.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from core.distributions import NextTokenDistribution, SamplingSettings, reshape, sample_token
from core.generation import seeded_generator
from core.json_records import JsonRecord, json_name
from core.models import LoadedModel
from core.tokens import token_text
from core.tree.growth import (
    ForwardMany,
    Growing,
    GrownFrom,
    TokenPath,
    _forward_many,
    advance,
    check_samples,
    prompt_ids_with_room,
    start,
)


@dataclass
class TreeNode(JsonRecord):
    """A token at a depth under its parent, and how many paths passed through it.

    ``prob`` is the model's p(token | prefix) at temperature 1; ``frequency``
    is ``count / parent.count``, the share of the parent's paths that took
    this edge. ``ended`` counts paths that stopped here, so
    ``count == ended + sum(child.count)``. The root (``id`` None) is the
    prompt; children are listed most taken first.
    """

    id: int | None
    token: str
    count: int
    prob: float
    frequency: float
    ended: int = 0
    children: list[TreeNode] = field(default_factory=list)


@dataclass(frozen=True)
class SampledTree(GrownFrom):
    """``n`` samples and the tree they make; ``seed`` is the one used, so the same draw can be made again."""

    settings: SamplingSettings
    seed: int
    samples: tuple[TokenPath, ...]
    root: TreeNode = field(metadata=json_name("tree"))


def merge(paths: Sequence[TokenPath], tokenizer: Any) -> TreeNode:
    """Merge continuations into a tree: one node per distinct prefix, counting the paths through it."""
    root = TreeNode(None, "", len(paths), 1.0, 1.0)
    for path in paths:
        node = root
        for token, logprob in zip(path.ids, path.logprobs, strict=True):
            child = next((c for c in node.children if c.id == token), None)
            if child is None:
                child = TreeNode(token, token_text(tokenizer, token), 0, math.exp(logprob), 0.0)
                node.children.append(child)
            child.count += 1
            node = child
        node.ended += 1
    _order(root)
    return root


def _order(node: TreeNode) -> None:
    node.children.sort(key=lambda c: (-c.count, -c.prob))
    for child in node.children:
        child.frequency = child.count / node.count
        _order(child)


def _draw(lm: LoadedModel, path: Growing, settings: SamplingSettings, generator: torch.Generator) -> int:
    """The next token after ``path``, drawn as ``TokenStream.sample`` draws it (the argmax when greedy)."""
    assert path.logits is not None
    if settings.is_greedy:
        return int(torch.argmax(path.logits))
    dist = NextTokenDistribution(lm.display_name, tuple(path.ids), path.logits, lm.tokenizer)
    return sample_token(reshape(dist, settings), generator)


def sample_tree(
    lm: LoadedModel,
    prompt: str,
    n: int = 16,
    depth: int = 8,
    settings: SamplingSettings | None = None,
    seed: int | None = None,
    chat: bool = False,
    forward_many: ForwardMany = _forward_many,
) -> SampledTree:
    """Draw ``n`` continuations of up to ``depth`` tokens and merge them into one tree.

    Tokens are drawn as ``generate`` draws them (``reshape`` then
    ``sample_token``, temperature 0 greedy), each step's samples in turn from
    one seeded generator, so one sample with a seed is ``generate`` with that
    seed. A sample stops at an end-of-sequence token.
    """
    check_samples(n, depth)
    settings = (settings or SamplingSettings()).validate(lm.vocab_size)
    generator = seeded_generator(seed)
    prompt_ids = prompt_ids_with_room(lm, prompt, chat, depth)
    paths = [start(lm, prompt_ids, forward_many)] * n  # one prompt pass; its cache is copied as they part
    for step in range(depth):
        live = [i for i, p in enumerate(paths) if not p.finished]
        if not live:
            break
        steps = [(paths[i], _draw(lm, paths[i], settings, generator)) for i in live]
        for i, child in zip(live, advance(lm, steps, step < depth - 1, forward_many), strict=True):
            paths[i] = child
    samples = tuple(TokenPath.grown(lm, p) for p in paths)
    root = merge(samples, lm.tokenizer)
    return SampledTree(lm.display_name, tuple(prompt_ids), depth, settings, generator.initial_seed(), samples, root)
