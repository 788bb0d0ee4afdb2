"""Paths grown token by token on their own KV caches, every path of a step in one call; a node's children.

Each path keeps the cache its last forward pass returned, so a step feeds it
one new token, not its whole text. All the paths of one step go to the model
together (``LoadedModel.forward_many``), so its engine runs them as one
batch. The limits on widths and depths live here too, each with the sentence
that refuses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import torch

from core.distributions import TokenProb, next_token_distribution
from core.errors import InvalidInput
from core.json_records import JsonRecord
from core.models import LoadedModel
from core.tokens import check_token_ids, encode_prompt, token_text

MAX_BEAMS = 16
MAX_DEPTH = 32
MAX_SAMPLES = 64
MAX_CHILDREN = 50
MAX_LENGTH_PENALTY = 2.0

Request = tuple[list[int], Any, bool]  # (new ids, past KV cache or None, last_only), as LoadedModel.forward takes
ForwardMany = Callable[[LoadedModel, list[Request]], list[tuple[torch.Tensor, Any]]]


def _forward_many(lm: LoadedModel, requests: list[Request]) -> list[tuple[torch.Tensor, Any]]:
    """Every path of a step queued at once, so the model's engine runs them as one batch."""
    return lm.forward_many(requests)


@dataclass(eq=False)
class Growing:
    """A continuation being grown: its ids, their log-probs, its cache and the distribution after it."""

    ids: list[int]
    logprobs: list[float]
    past: Any = None
    logits: torch.Tensor | None = None  # float32 [vocab] for the next token; None once finished or at the last depth
    next_logprobs: torch.Tensor | None = None  # float64 log-softmax of ``logits``
    finished: bool = False  # ended with an end-of-sequence token

    @property
    def logprob(self) -> float:
        return math.fsum(self.logprobs)

    def see(self, logits: torch.Tensor, past: Any) -> Growing:
        self.logits, self.past = logits, past
        self.next_logprobs = torch.log_softmax(logits.double(), dim=-1)
        return self


def start(lm: LoadedModel, prompt_ids: list[int], forward_many: ForwardMany = _forward_many) -> Growing:
    """The empty continuation: one pass over the prompt."""
    ((logits, past),) = forward_many(lm, [(prompt_ids, None, True)])
    return Growing([], []).see(logits[-1], past)


def advance(
    lm: LoadedModel, steps: Sequence[tuple[Growing, int]], run_model: bool, forward_many: ForwardMany = _forward_many
) -> list[Growing]:
    """Each (parent, token) becomes a child; the unfinished children go to the model in one call.

    Several children may continue their parent's cache: ``LoadedModel.forward``
    never changes the cache it continues. ``run_model`` is False at the last
    depth, where no next distribution is needed.
    """
    eos = lm.eos_token_ids
    children = []
    for parent, token in steps:
        assert parent.next_logprobs is not None, "a finished path has no children"
        logprob = float(parent.next_logprobs[token])
        children.append(Growing([*parent.ids, token], [*parent.logprobs, logprob], finished=token in eos))
    todo = [(child, parent) for child, (parent, _) in zip(children, steps, strict=True) if not child.finished]
    if not run_model or not todo:
        return children
    requests: list[Request] = [([child.ids[-1]], parent.past, True) for child, parent in todo]
    for (child, _), (logits, past) in zip(todo, forward_many(lm, requests), strict=True):
        child.see(logits[-1], past)
    return children


def check_count(value: int, low: int, high: int, sentence: str) -> int:
    """``value`` if it is a whole number in [low, high]; else ``sentence`` (with {low}, {high}, {value})."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(sentence.format(low=low, high=high, value=value))
    return value


def check_depth(depth: int) -> int:
    return check_count(depth, 1, MAX_DEPTH, "The depth must be between {low} and {high} tokens; got {value!r}.")


def check_beam_search(width: int, depth: int, length_penalty: float) -> float:
    """Refuse a width, depth or length penalty out of range (before any model is loaded); the penalty as a float."""
    check_count(width, 1, MAX_BEAMS, "The beam width must be between {low} and {high}; got {value!r}.")
    check_depth(depth)
    alpha = length_penalty
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not 0 <= alpha <= MAX_LENGTH_PENALTY:
        raise InvalidInput(f"The length penalty must be between 0 and {MAX_LENGTH_PENALTY:g}; got {alpha!r}.")
    return float(alpha)


def check_samples(n: int, depth: int) -> None:
    """Refuse a number of samples or a depth out of range (before any model is loaded)."""
    check_count(n, 1, MAX_SAMPLES, "The number of samples must be between {low} and {high}; got {value!r}.")
    check_depth(depth)


def prompt_ids_with_room(lm: LoadedModel, prompt: str, chat: bool, extra: int) -> list[int]:
    """The prompt's ids (plain or chat-templated), refused when ``extra`` more tokens would not fit the context."""
    ids = encode_prompt(lm, prompt, chat).ids
    if len(ids) + extra > lm.context_length:
        raise InvalidInput(
            f"The prompt has {len(ids):,} tokens, and {extra} more would pass the {lm.context_length:,} that "
            f"{lm.display_name} reads: shorten the prompt or ask for fewer tokens."
        )
    return ids


@dataclass(frozen=True)
class GrownFrom(JsonRecord):
    """What every tree grown after a prompt records first: the model, the prompt's ids and the depth asked for."""

    model: str
    prompt_ids: tuple[int, ...]
    depth: int


@dataclass(frozen=True)
class TokenPath(JsonRecord):
    """A grown continuation: its tokens, each one's log-probability and their sum.

    Log-probabilities are the raw ones (temperature 1, nothing pruned),
    however the path was chosen. ``finished``: it ended with an
    end-of-sequence token.
    """

    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    logprobs: tuple[float, ...]
    logprob: float
    finished: bool

    @classmethod
    def grown(cls, lm: LoadedModel, path: Growing, **more: Any) -> Self:
        """What ``path`` grew into, as a result; ``more`` holds a subclass's own fields."""
        tokens = tuple(token_text(lm.tokenizer, i) for i in path.ids)
        return cls(tuple(path.ids), tokens, tuple(path.logprobs), path.logprob, path.finished, **more)


@dataclass(frozen=True)
class Expansion(JsonRecord):
    """The likeliest children of one node: the tokens that may follow prompt + ``prefix_ids``, likeliest first."""

    prefix_ids: tuple[int, ...]
    children: tuple[TokenProb, ...]


def expand(lm: LoadedModel, prompt: str, prefix_ids: Sequence[int] = (), k: int = 10, chat: bool = False) -> Expansion:
    """The ``k`` likeliest tokens after prompt + ``prefix_ids`` (a node's children, for opening it on click).

    One pass over the whole text, memoised per prefix by the next-token cache,
    so opening the same node twice costs nothing.
    """
    check_count(k, 1, MAX_CHILDREN, "The number of children to list must be between {low} and {high}; got {value!r}.")
    prefix = list(prefix_ids)
    check_token_ids(lm, prefix, "The ids of the node's path")
    prompt_ids = prompt_ids_with_room(lm, prompt, chat, len(prefix))
    dist = next_token_distribution(lm, prompt_ids + prefix)
    return Expansion(tuple(prefix), tuple(dist.top(k)))
