"""How far an adapter moved the next-token distribution: the tokens, and one number each way.

The overlaid bars show *which* tokens gained or lost; the divergences say
how much the whole distribution moved, over every token of the vocabulary,
not only the ones on screen. All in bits, like the entropy elsewhere:

* KL(tuned ‖ base): the extra bits per token that coding the tuned model's
  choices with the base model's probabilities costs; 0 when they agree.
* KL(base ‖ tuned): the same the other way round (KL is not symmetric).
* Jensen–Shannon: symmetric and bounded by 1 bit (1 = nothing in common).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.distributions import NextTokenDistribution
from core.errors import InvalidInput

LN2 = math.log(2)


@dataclass(frozen=True)
class ShiftedToken:
    id: int
    token: str
    base_prob: float
    tuned_prob: float


@dataclass(frozen=True)
class DistributionShift:
    """Base and tuned next-token distributions after the same prompt, compared."""

    base: str
    tuned: str
    kl_tuned_base_bits: float
    kl_base_tuned_bits: float
    js_bits: float
    tokens: tuple[ShiftedToken, ...]  # the union of both top-k, most likely (either side) first


def kl_bits(p_log: torch.Tensor, q_log: torch.Tensor) -> float:
    """KL(p ‖ q) in bits from float64 log-probabilities over the same vocabulary."""
    p = p_log.exp()
    return float((p * (p_log - q_log)).sum()) / LN2


def js_bits(p_log: torch.Tensor, q_log: torch.Tensor) -> float:
    """Jensen–Shannon divergence in bits: 0 for equal distributions, at most 1."""
    m_log = torch.logaddexp(p_log, q_log) - math.log(2)
    return 0.5 * kl_bits(p_log, m_log) + 0.5 * kl_bits(q_log, m_log)


def distribution_shift(base: NextTokenDistribution, tuned: NextTokenDistribution, top_k: int = 10) -> DistributionShift:
    """Compare two distributions over one vocabulary after the same prompt."""
    if base.prompt_ids != tuned.prompt_ids:
        raise InvalidInput("The two distributions follow different prompts; compare them after the same one.")
    if base.logits.shape != tuned.logits.shape:
        raise InvalidInput("The two models have different vocabularies; only an adapter and its base compare here.")
    ids = list(dict.fromkeys(t.id for t in [*base.top(top_k), *tuned.top(top_k)]))
    ids.sort(key=lambda i: -max(float(base.probs[i]), float(tuned.probs[i])))
    tokens = tuple(ShiftedToken(i, base.token_prob(i).token, float(base.probs[i]), float(tuned.probs[i])) for i in ids)
    return DistributionShift(
        base=base.model,
        tuned=tuned.model,
        kl_tuned_base_bits=kl_bits(tuned.logprobs, base.logprobs),
        kl_base_tuned_bits=kl_bits(base.logprobs, tuned.logprobs),
        js_bits=js_bits(base.logprobs, tuned.logprobs),
        tokens=tokens,
    )
