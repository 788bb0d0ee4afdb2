"""Next-token distributions, the sampling transforms on them, and text scoring.

A language model's core task is to give, for a prefix, a probability for
every token in its vocabulary. ``next_token_distribution`` computes that once
per prefix (memoised) and keeps the full logits, so temperature, top-k, top-p
and min-p can reshape it afterwards without a new forward pass.

Probabilities are computed in float64 from the model's float32 logits
whatever the model's dtype, so they sum to 1 to the last digit shown;
entropies are in nats (``entropy_bits`` gives bits).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from core.errors import InvalidInput
from core.models import MODEL_CACHE, LoadedModel, ModelKey
from core.prefix_cache import PrefixCache
from core.result_cache import ResultCache
from core.tokens import ShownToken, check_fits, token_text, validate_prompt

DISTRIBUTION_CACHE: ResultCache[NextTokenDistribution] = ResultCache(capacity=256)
SCORE_CACHE: ResultCache[TextScore] = ResultCache(capacity=64)
PREFIX_CACHE = PrefixCache()


def _forget_model(key: ModelKey) -> None:
    """A model left memory: drop its kept caches (every adapter view of it), which would keep it alive."""
    base = dataclasses.replace(key, adapter=None)
    PREFIX_CACHE.forget(lambda k: isinstance(k, ModelKey) and dataclasses.replace(k, adapter=None) == base)


MODEL_CACHE.on_evict(_forget_model)
MAX_TEMPERATURE = 100.0


@dataclass(frozen=True)
class TokenProb(ShownToken):
    """A candidate token with its probability. ``id`` is None where a backend gives only text."""

    id: int | None
    token: str
    prob: float
    logprob: float


def _entropy(logits: torch.Tensor) -> float:
    """Shannon entropy (nats) of softmax(``logits``), in float64; -inf logits are tokens with no mass."""
    kept = logits[torch.isfinite(logits)] if bool(torch.isinf(logits).any()) else logits
    logprobs = torch.log_softmax(kept.double(), dim=-1)
    return float(-(logprobs.exp() * logprobs).sum())


class _Entropy:
    """Entropy in nats (computed once) and in bits, of the softmax of ``_entropy_logits``."""

    @property
    def _entropy_logits(self) -> torch.Tensor:
        raise NotImplementedError

    @cached_property
    def entropy(self) -> float:
        return _entropy(self._entropy_logits)

    @property
    def entropy_bits(self) -> float:
        return self.entropy / math.log(2)


@dataclass(eq=False)
class NextTokenDistribution(_Entropy):
    """The model's distribution over the next token after ``prompt_ids``.

    ``logits`` is the full float32 vector (shape ``[vocab]``): the only
    vocabulary-sized thing kept, since up to a few hundred distributions sit
    in the shared memo for a class. The log-normaliser and the entropy are
    two floats computed once; ``probs`` and ``logprobs`` (float64) are
    computed when asked for and not kept.
    """

    model: str
    prompt_ids: tuple[int, ...]
    logits: torch.Tensor
    tokenizer: Any = field(repr=False)

    def __post_init__(self) -> None:
        # float64: over ~50k tokens, float32 rounding leaves sums off 1 by ~1e-5
        self._log_z = float(torch.logsumexp(self.logits.double(), dim=-1))

    @property
    def logprobs(self) -> torch.Tensor:
        return self.logits.double() - self._log_z

    @property
    def probs(self) -> torch.Tensor:
        return self.logprobs.exp()

    @property
    def vocab_size(self) -> int:
        return int(self.logits.shape[0])

    @property
    def _entropy_logits(self) -> torch.Tensor:
        return self.logits

    def token_prob(self, token_id: int) -> TokenProb:
        logprob = float(self.logits[token_id]) - self._log_z
        return TokenProb(token_id, token_text(self.tokenizer, token_id), math.exp(logprob), logprob)

    def top(self, k: int) -> list[TokenProb]:
        """The ``k`` most likely tokens, most likely first."""
        k = check_top_k(k, self.vocab_size)
        ids = torch.topk(self.logits, k).indices
        return [self.token_prob(int(i)) for i in ids]

    @property
    def argmax(self) -> int:
        return int(torch.argmax(self.logits))

    def rank_of(self, token_id: int) -> int:
        """1 for the most likely token; ties share the better rank."""
        return int((self.logits > self.logits[token_id]).sum()) + 1


ALTERNATIVES = "The number of alternatives"  # how many top tokens a step or a scored token lists


def check_top_k(k: int, vocab_size: int, what: str = "top-k") -> int:
    """``k`` if it is a whole number of tokens from 1 to the vocabulary; ``what`` names the setting it came from."""
    if not isinstance(k, int) or isinstance(k, bool):
        raise InvalidInput(f"{what} must be a whole number, not {k!r}.")
    if k <= 0 or k > vocab_size:
        raise InvalidInput(f"{what} must be between 1 and the vocabulary size ({vocab_size:,}); got {k}.")
    return k


@dataclass(frozen=True)
class SamplingSettings:
    """How a distribution is reshaped before sampling.

    Applied in the order Hugging Face ``generate()`` uses: temperature, then
    top-k, then top-p, then min-p. ``temperature == 0`` means greedy: all
    mass on the most likely token. ``top_k=None`` keeps every token.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    min_p: float = 0.0

    def validate(self, vocab_size: int) -> SamplingSettings:
        t = self.temperature
        if not isinstance(t, int | float) or math.isnan(t) or t < 0 or t > MAX_TEMPERATURE:
            raise InvalidInput(f"Temperature must be between 0 and {MAX_TEMPERATURE:g}; got {t}.")
        if self.top_k is not None:
            check_top_k(self.top_k, vocab_size)
        if math.isnan(self.top_p) or not 0 < self.top_p <= 1:
            raise InvalidInput(f"top-p must be above 0 and at most 1; got {self.top_p}.")
        if math.isnan(self.min_p) or not 0 <= self.min_p <= 1:
            raise InvalidInput(f"min-p must be between 0 and 1; got {self.min_p}.")
        return self

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class ShapedToken(ShownToken):
    """A token's probability before and after reshaping, and whether it survived."""

    id: int
    token: str
    original_prob: float
    prob: float
    kept: bool


@dataclass(eq=False)
class ShapedDistribution(_Entropy):
    """A distribution after the sampling transforms.

    ``kept`` marks the surviving tokens; ``probs`` is renormalised over them
    (zero elsewhere); ``scaled`` holds the logits divided by the temperature,
    -inf where a token was pruned (what ``probs`` is the softmax of).
    """

    original: NextTokenDistribution
    settings: SamplingSettings
    probs: torch.Tensor
    kept: torch.Tensor
    scaled: torch.Tensor

    @property
    def n_kept(self) -> int:
        return int(self.kept.sum())

    @property
    def _entropy_logits(self) -> torch.Tensor:
        return self.scaled

    def top(self, k: int) -> list[ShapedToken]:
        """The ``k`` tokens most likely *before* reshaping, so both views line up."""
        k = check_top_k(k, self.probs.shape[0])
        ids = torch.topk(self.original.logits, k).indices  # the order of the probabilities: no softmax needed
        return [
            ShapedToken(t.id, t.token, t.prob, float(self.probs[t.id]), bool(self.kept[t.id]))
            for t in (self.original.token_prob(int(i)) for i in ids)
        ]


def reshape(dist: NextTokenDistribution, settings: SamplingSettings) -> ShapedDistribution:
    """Apply temperature, top-k, top-p and min-p to ``dist`` (no forward pass)."""
    logits = dist.logits.double()
    settings.validate(logits.shape[0])
    if settings.is_greedy:
        kept = torch.zeros_like(logits, dtype=torch.bool)
        kept[dist.argmax] = True
        return ShapedDistribution(
            dist, settings, kept.double(), kept, torch.zeros_like(logits).masked_fill(~kept, -math.inf)
        )
    scaled = logits / settings.temperature if settings.temperature != 1 else logits
    kept = torch.ones_like(logits, dtype=torch.bool)
    if settings.top_k is not None:
        kth = torch.topk(scaled, settings.top_k).values[-1]
        kept &= scaled >= kth
    if settings.top_p < 1:
        probs = torch.softmax(scaled.masked_fill(~kept, -math.inf), dim=-1)
        sorted_probs, order = torch.sort(probs, descending=True)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        in_nucleus = mass_before < settings.top_p
        in_nucleus[0] = True  # the most likely token always survives
        nucleus = torch.zeros_like(kept)
        nucleus[order[in_nucleus]] = True
        kept &= nucleus
    if settings.min_p > 0:
        probs = torch.softmax(scaled.masked_fill(~kept, -math.inf), dim=-1)
        kept &= probs >= settings.min_p * probs.max()
    masked = scaled.masked_fill(~kept, -math.inf)
    return ShapedDistribution(dist, settings, torch.softmax(masked, dim=-1), kept, masked)


def sample_token(shaped: ShapedDistribution, generator: torch.Generator | None = None) -> int:
    """Draw one token id from a reshaped distribution (the argmax when greedy)."""
    if shaped.settings.is_greedy:
        return int(torch.argmax(shaped.probs))
    return int(torch.multinomial(shaped.probs, 1, generator=generator))


def next_token_distribution(lm: LoadedModel, prompt_ids: list[int]) -> NextTokenDistribution:
    """The distribution over the token after ``prompt_ids``, memoised per (model and adapter, ids).

    Computing it reads only what the model has not read yet: the pass
    continues the kept cache of the longest prefix of ``prompt_ids`` it has
    just read (a steered or generated text grows one token at a time), and
    keeps its own cache for the next token.
    """
    check_fits(lm, len(prompt_ids))
    ids = tuple(prompt_ids)

    def compute() -> NextTokenDistribution:
        past, start = PREFIX_CACHE.longest(lm.key, ids)
        logits, after = lm.forward(list(ids[start:]), past, last_only=True)
        PREFIX_CACHE.put(lm.key, ids, after)
        return NextTokenDistribution(lm.display_name, ids, logits[-1], lm.tokenizer)

    return DISTRIBUTION_CACHE.get_or_compute((lm.key, ids), compute)


def clear_memos() -> None:
    """Forget every memoised distribution, score and kept cache (benchmarks measure the computation)."""
    DISTRIBUTION_CACHE.clear()
    SCORE_CACHE.clear()
    PREFIX_CACHE.clear()


@dataclass(frozen=True)
class TokenScore(ShownToken):
    """How expected one token of a text was, given everything before it.

    The first token has no prefix to be predicted from, so its ``prob``,
    ``logprob`` and ``rank`` are None and it does not count in perplexity.
    """

    id: int
    token: str
    prob: float | None
    logprob: float | None
    rank: int | None
    alternatives: tuple[TokenProb, ...] = ()


@dataclass(frozen=True)
class TextScore:
    tokens: tuple[TokenScore, ...]
    perplexity: float
    mean_nll: float
    model: str

    @property
    def n_scored(self) -> int:
        return sum(t.prob is not None for t in self.tokens)


def score_text(lm: LoadedModel, text: str, alternatives: int = 5) -> TextScore:
    """Score every token of ``text`` in one forward pass.

    Tokens are those the tokenizer gives by default (a BOS is added for models
    that use one, and then the first real token is scored against it).
    Perplexity is ``exp(mean negative log-likelihood)`` over the scored tokens.
    """
    validate_prompt(text, "text")
    ids: list[int] = lm.tokenizer(text)["input_ids"]
    check_fits(lm, len(ids))
    if len(ids) < 2:
        raise InvalidInput("The text is a single token; scoring needs at least two, since the first has no prefix.")
    alternatives = check_top_k(alternatives, lm.vocab_size, ALTERNATIVES)

    def compute() -> TextScore:
        logits, _ = lm.forward(ids)
        logprobs = torch.log_softmax(logits[:-1].double(), dim=-1)  # row i predicts token i + 1
        targets = torch.tensor(ids[1:])
        chosen = logprobs.gather(1, targets[:, None])[:, 0]
        ranks = (logprobs > chosen[:, None]).sum(dim=1) + 1
        alt_logprobs, alt_ids = torch.topk(logprobs, alternatives, dim=-1)
        tokenizer = lm.tokenizer
        scores = [TokenScore(ids[0], token_text(tokenizer, ids[0]), None, None, None)]
        for pos, token_id in enumerate(ids[1:]):
            alts = tuple(
                TokenProb(int(a), token_text(tokenizer, int(a)), math.exp(float(lp)), float(lp))
                for a, lp in zip(alt_ids[pos], alt_logprobs[pos], strict=True)
            )
            lp = float(chosen[pos])
            scores.append(
                TokenScore(token_id, token_text(tokenizer, token_id), math.exp(lp), lp, int(ranks[pos]), alts)
            )
        mean_nll = float(-chosen.mean())
        return TextScore(tuple(scores), math.exp(mean_nll), mean_nll, lm.display_name)

    return SCORE_CACHE.get_or_compute((lm.key, tuple(ids), alternatives), compute)
