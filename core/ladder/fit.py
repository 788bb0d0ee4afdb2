"""A power law through the rungs, and bits per character: the two numbers that make sizes comparable.

**The law.** Kaplan et al. (2020) found that a language model's held-out loss
falls with its parameter count N as a power law, ``L = a * N^(-b)``, over
seven orders of magnitude. On log-log axes that is a straight line:
``log L = log a - b log N``, so the fit is a least-squares line in log space
and its r² says how straight the points lie. With an irreducible loss c (the
entropy of the text itself, which no model size removes), ``L = a * N^(-b) + c``
bends the line towards c; c is chosen to make ``log(L - c)`` straightest,
which needs at least four rungs (three points and three parameters always fit
exactly, and an r² of 1 would say nothing).

**Bits per character.** A loss in nats per token depends on what a token is:
SmolLM2's tokens are pieces of words, a rung's are single characters. Per
character, in bits, it does not: ``loss * tokens / characters / ln 2`` over the
same text. For a rung, whose tokens are characters, it is the loss / ln 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import InvalidInput
from core.json_records import JsonRecord

MIN_POINTS, MIN_POINTS_WITH_OFFSET = 2, 4
OFFSET_GRID = 400  # candidate values of c per pass, between 0 and just below the lowest loss


def bits_per_char(loss_nats_per_token: float, tokens: int, characters: int) -> float:
    """A loss in nats per token over ``tokens`` tokens as bits per character of the ``characters`` they spell."""
    if tokens <= 0 or characters <= 0:
        raise InvalidInput("Bits per character need a text of at least one token and one character.")
    return loss_nats_per_token * tokens / characters / math.log(2)


@dataclass(frozen=True)
class PowerLawFit(JsonRecord):
    """``loss = a * parameters^(-b) + c`` fitted in log space, with the r² of that straight line.

    ``c`` is 0 for a pure power law. ``loss`` names what was fitted (the
    rungs' held-out bits per character).
    """

    a: float
    b: float
    c: float
    r2: float
    points: int
    loss: str = "bits_per_char"

    def predict(self, parameters: float) -> float:
        return self.a * parameters ** (-self.b) + self.c


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares ``y = intercept + slope * x`` and its r²."""
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(np.sum((y - (intercept + slope * x)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    return float(intercept), float(slope), 1.0 - residual / total if total > 0 else 1.0


def fit_power_law(parameters: Sequence[float], losses: Sequence[float], offset: bool = False) -> PowerLawFit:
    """Fit ``loss = a * N^(-b)`` (``offset``: ``+ c``) through the points, in log space."""
    n = np.asarray(parameters, dtype=float)
    loss = np.asarray(losses, dtype=float)
    need = MIN_POINTS_WITH_OFFSET if offset else MIN_POINTS
    if len(n) != len(loss) or len(n) < need:
        what = "a power law with an irreducible loss (a, b and c)" if offset else "a power law"
        raise InvalidInput(f"Fitting {what} needs at least {need} finished rungs; this ladder has {len(n)}.")
    if np.any(n <= 0) or np.any(loss <= 0) or len(set(n.tolist())) < 2:
        raise InvalidInput("A power law needs positive losses at two or more different sizes.")
    log_n = np.log(n)
    if not offset:
        intercept, slope, r2 = _line(log_n, np.log(loss))
        return PowerLawFit(math.exp(intercept), -slope, 0.0, r2, len(n))
    # c on a coarse grid below the lowest loss, then a finer one around the best: r² is smooth in c.
    low, high = 0.0, float(loss.min())
    best = (0.0, 0.0, 0.0, -math.inf)
    for _ in range(2):
        step = (high - low) / OFFSET_GRID
        for c in np.linspace(low, high, OFFSET_GRID, endpoint=False):
            intercept, slope, r2 = _line(log_n, np.log(loss - c))
            if r2 > best[3]:
                best = (math.exp(intercept), -slope, float(c), r2)
        low, high = max(0.0, best[2] - step), min(float(loss.min()), best[2] + step)
    a, b, c, r2 = best
    return PowerLawFit(a, b, c, r2, len(n))
