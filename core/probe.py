"""Probe a word: the probability of a whole string coming next, token by token.

The explorer shows the next *token*; a word a person has in mind is often
several ("Bramblewick" is three), and " Paris" is not "Paris". By the chain
rule, the probability of the whole string is the product of each of its
tokens' probabilities given the prompt and the tokens of the string before
it. The first factor is the prompt's own next-token distribution (memoised:
the explorer has just computed it); the others come from one pass over the
string's tokens, continuing the prompt's kept cache (``PREFIX_CACHE``), so
the prompt is not read again.

The string is tokenized on its own and read after the prompt's tokens: the
way the model would write it, token by token, after that prompt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from core.distributions import PREFIX_CACHE, next_token_distribution
from core.errors import InvalidInput
from core.json_records import JsonRecord
from core.models import LoadedModel
from core.tokens import ShownToken, check_fits, token_text

MAX_TARGET_TOKENS = 64


@dataclass(frozen=True)
class ProbedToken(ShownToken):
    """One token of the target: its probability given everything before it, and its rank (1: the top guess)."""

    id: int
    token: str
    prob: float
    logprob: float
    rank: int


@dataclass(frozen=True)
class TargetProbe(JsonRecord):
    """The target's tokens, each scored; the whole string's probability is their product."""

    json_derived = ("prob", "logprob")

    target: str
    tokens: tuple[ProbedToken, ...]

    @property
    def logprob(self) -> float:
        return math.fsum(t.logprob for t in self.tokens)

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)


def probe_target(lm: LoadedModel, prompt_ids: Sequence[int], target: str) -> TargetProbe:
    """How likely ``target`` is to come next after ``prompt_ids``, and each of its tokens."""
    if not isinstance(target, str) or target == "":
        raise InvalidInput("The target is empty: type the word or text to probe, e.g. ' Paris' (with its space).")
    ids: list[int] = lm.tokenizer(target, add_special_tokens=False)["input_ids"]
    if len(ids) > MAX_TARGET_TOKENS:
        raise InvalidInput(f"The target has {len(ids):,} tokens; probe at most {MAX_TARGET_TOKENS} at a time.")
    check_fits(lm, len(prompt_ids) + len(ids))
    first = next_token_distribution(lm, list(prompt_ids))
    rows = [first.logprobs]
    if len(ids) > 1:
        logits, _ = lm.forward(ids[:-1], _prompt_past(lm, prompt_ids))  # row i predicts the target's token i + 1
        rows += list(torch.log_softmax(logits.double(), dim=-1))
    tokens = []
    for token_id, row in zip(ids, rows, strict=True):
        logprob = float(row[token_id])
        rank = int((row > row[token_id]).sum()) + 1
        tokens.append(ProbedToken(token_id, token_text(lm.tokenizer, token_id), math.exp(logprob), logprob, rank))
    return TargetProbe(target, tuple(tokens))


def continuation_logprobs(
    lm: LoadedModel, prompt_ids: Sequence[int], continuations: Sequence[Sequence[int]]
) -> list[float]:
    """The log-probability of each continuation (token ids) coming next after ``prompt_ids``, read together.

    Many strings after one prompt (a class's guesses, say): each one's first
    token from the prompt's distribution, the rest in one batch of passes
    that all continue the prompt's kept cache. An empty continuation is
    certain (log-probability 0).
    """
    check_fits(lm, len(prompt_ids) + max((len(c) for c in continuations), default=0))
    first = next_token_distribution(lm, list(prompt_ids))
    longer = [list(c) for c in continuations if len(c) > 1]
    rest: list[torch.Tensor] = []
    if longer:
        past = _prompt_past(lm, prompt_ids)
        rest = [logits for logits, _ in lm.forward_many([(c[:-1], past, False) for c in longer])]
    logprobs, read = [], iter(rest)
    for c in continuations:
        total = [first.token_prob(c[0]).logprob] if c else []
        if len(c) > 1:
            rows = torch.log_softmax(next(read).double(), dim=-1)  # row i predicts token i + 1
            total += [float(rows[i, token]) for i, token in enumerate(c[1:])]
        logprobs.append(math.fsum(total))
    return logprobs


def _prompt_past(lm: LoadedModel, prompt_ids: Sequence[int]) -> object:
    """The keys and values of the whole prompt, from the prefix cache, reading only what it does not hold."""
    past, start = PREFIX_CACHE.longest(lm.key, list(prompt_ids), proper=False)
    if start < len(prompt_ids):  # the prompt's cache was not kept (or was evicted): read the rest of it
        _, past = lm.forward(list(prompt_ids[start:]), past, last_only=True)
        PREFIX_CACHE.put(lm.key, prompt_ids, past)
    return past
