"""Generation one token at a time, on the KV cache, with the alternatives at each step.

``TokenStream`` holds a prefix; each new token costs one forward pass over
that token alone (the memoised distributions continue the kept cache of the
text so far, ``core.prefix_cache``), not over the whole text. A UI
steers it with ``append(token_id)``; ``sample`` draws the next token with the
current ``SamplingSettings``; ``generate`` streams a whole continuation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.distributions import (
    ALTERNATIVES,
    DISTRIBUTION_CACHE,
    PREFIX_CACHE,
    NextTokenDistribution,
    SamplingSettings,
    TokenProb,
    check_top_k,
    next_token_distribution,
    reshape,
    sample_token,
)
from core.errors import InvalidInput
from core.models import LoadedModel
from core.result_cache import ResultCache
from core.tokens import check_fits, check_token_ids

MAX_NEW_TOKENS = 2048
REPLAY_CACHE: ResultCache[tuple[GenerationStep, ...]] = ResultCache(capacity=128)


@dataclass(frozen=True)
class GenerationStep:
    """One generated token.

    ``chosen.prob`` is the model's own probability for the token (temperature
    1, nothing pruned); ``sampled_prob`` is its probability in the reshaped
    distribution it was actually drawn from. ``alternatives`` are the model's
    most likely tokens at this step, the chosen one among them or not.
    """

    index: int
    chosen: TokenProb
    sampled_prob: float
    rank: int
    alternatives: tuple[TokenProb, ...]
    finished: bool


def step_for(
    dist: NextTokenDistribution,
    token_id: int,
    index: int,
    lm: LoadedModel,
    alternatives: int = 20,
    sampled_prob: float | None = None,
) -> GenerationStep:
    """Describe ``token_id`` as a choice made from ``dist``: how likely it was, what it beat."""
    if not 0 <= token_id < dist.logits.shape[0]:
        raise InvalidInput(f"Token id {token_id} is outside the vocabulary (0 to {dist.logits.shape[0] - 1}).")
    chosen = dist.token_prob(token_id)
    top = tuple(dist.top(alternatives))
    place = next((i for i, t in enumerate(top) if t.id == token_id), None)
    # Among the top tokens (sorted), its rank is read off the list; otherwise counted over the vocabulary.
    rank = 1 + sum(t.logprob > chosen.logprob for t in top[:place]) if place is not None else dist.rank_of(token_id)
    return GenerationStep(
        index=index,
        chosen=chosen,
        sampled_prob=chosen.prob if sampled_prob is None else sampled_prob,
        rank=rank,
        alternatives=top,
        finished=token_id in lm.eos_token_ids,
    )


class TokenStream:
    """A growing sequence of token ids, each step one pass over the new token alone.

    Its distributions are the memoised ones (``next_token_distribution``),
    which continue the kept cache of the text so far: a prompt whose
    distribution a page has just shown costs no second read, and each new
    token costs one single-token step, batched with every other session's.
    """

    def __init__(self, lm: LoadedModel, prompt_ids: list[int], alternatives: int = 20) -> None:
        check_fits(lm, len(prompt_ids))
        self.lm = lm
        self.ids: list[int] = list(prompt_ids)
        self.prompt_length = len(prompt_ids)
        self.alternatives = check_top_k(alternatives, lm.vocab_size, ALTERNATIVES)
        self._distribution: NextTokenDistribution | None = None

    @property
    def distribution(self) -> NextTokenDistribution:
        """The next-token distribution after ``ids``; computed lazily, once."""
        if self._distribution is None:
            self._distribution = next_token_distribution(self.lm, self.ids)
        return self._distribution

    @property
    def at_context_limit(self) -> bool:
        return len(self.ids) >= self.lm.context_length

    def append(self, token_id: int, sampled_prob: float | None = None) -> GenerationStep:
        """Append ``token_id`` (chosen by a person or a sampler) and report how likely it was."""
        if self.at_context_limit:
            raise InvalidInput(f"The text already fills the model's context of {self.lm.context_length:,} tokens.")
        index = len(self.ids) - self.prompt_length
        step = step_for(self.distribution, token_id, index, self.lm, self.alternatives, sampled_prob)
        self.ids.append(token_id)
        self._distribution = None
        return step

    def sample(self, settings: SamplingSettings, generator: torch.Generator | None = None) -> GenerationStep:
        """Draw the next token from the reshaped distribution and append it."""
        if settings.is_greedy:  # the argmax needs no reshaped copy of the vocabulary
            return self.append(self.distribution.argmax, sampled_prob=1.0)
        shaped = reshape(self.distribution, settings)
        token_id = sample_token(shaped, generator)
        return self.append(token_id, sampled_prob=float(shaped.probs[token_id]))


SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed accepts


def seeded_generator(seed: int | None) -> torch.Generator:
    """A generator seeded with ``seed`` (None: a fresh random seed)."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
        return generator
    low, high = SEED_RANGE
    if not isinstance(seed, int) or isinstance(seed, bool) or not low <= seed <= high:
        raise InvalidInput(f"The seed must be a whole number from -2^63 to 2^64 - 1; got {seed!r}.")
    generator.manual_seed(seed)
    return generator


def generate(
    lm: LoadedModel,
    prompt_ids: list[int],
    max_new_tokens: int,
    settings: SamplingSettings | None = None,
    seed: int | None = None,
    alternatives: int = 20,
) -> Iterator[GenerationStep]:
    """Stream up to ``max_new_tokens`` tokens; stops early at EOS or the context limit."""
    if not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise InvalidInput(f"The number of new tokens must be between 1 and {MAX_NEW_TOKENS}; got {max_new_tokens}.")
    settings = (settings or SamplingSettings()).validate(lm.vocab_size)
    stream = TokenStream(lm, prompt_ids, alternatives)
    generator = seeded_generator(seed)
    for _ in range(max_new_tokens):
        if stream.at_context_limit:
            return
        step = stream.sample(settings, generator)
        yield step
        if step.finished:
            return


def replay(
    lm: LoadedModel, prompt_ids: list[int], continuation: list[int], alternatives: int = 10
) -> tuple[GenerationStep, ...]:
    """Rebuild the steps of a continuation: from the memoised distributions, else in one forward pass.

    A page redraws a steered or generated text on every rerun; its
    distributions were computed as the text grew, so the steps come from the
    memo with no pass at all. A text from a shared link costs one pass over
    the whole of it, whose distributions (and cache) are memoised in turn, so
    the next token appended costs one single-token step. Memoised per (model,
    prompt, continuation).
    """
    ids = list(prompt_ids) + list(continuation)
    check_fits(lm, len(ids))
    check_token_ids(lm, list(continuation))
    check_top_k(alternatives, lm.vocab_size, ALTERNATIVES)
    if not continuation:
        return ()
    prefixes = [tuple(ids[: len(prompt_ids) + index]) for index in range(len(continuation))]

    def compute() -> tuple[GenerationStep, ...]:
        known = [DISTRIBUTION_CACHE.peek((lm.key, prefix)) for prefix in prefixes]
        if all(dist is not None for dist in known):
            dists = [dist for dist in known if dist is not None]
        else:
            logits, after = lm.forward(ids)  # row i predicts token i + 1
            PREFIX_CACHE.put(lm.key, ids, after)
            dists = [
                NextTokenDistribution(lm.display_name, prefix, logits[len(prefix) - 1], lm.tokenizer)
                for prefix in [*prefixes, tuple(ids)]
            ]
            for dist in dists:
                DISTRIBUTION_CACHE.put((lm.key, dist.prompt_ids), dist)
        return tuple(
            step_for(dist, token_id, index, lm, alternatives)
            for index, (dist, token_id) in enumerate(zip(dists, continuation, strict=False))
        )

    return REPLAY_CACHE.get_or_compute((lm.key, tuple(prompt_ids), tuple(continuation), alternatives), compute)
