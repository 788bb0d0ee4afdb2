"""Checks of single settings, each failing with a sentence that names the setting.

Configs (fine-tuning, pretraining, a ladder), the CLI and the pages take
numbers from people; these say what range is allowed and what was given.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from core.errors import InvalidInput

SEED_MAX = 2**32 - 1  # what torch, numpy and random all accept


def whole(value: Any, what: str, low: int, high: int) -> int:
    """``value`` if it is a whole number from ``low`` to ``high``."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{what} must be a whole number from {low:,} to {high:,}; got {value!r}.")
    return value


def number(value: Any, what: str, low: float, high: float, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` if it is a finite number in the range (``*_open``: the bound itself is excluded)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lower = f"above {low:g}" if low_open else f"at least {low:g}"
        upper = f"below {high:g}" if high_open else f"at most {high:g}"
        raise InvalidInput(f"{what} must be a number {lower} and {upper}; got {value!r}.")
    return float(value)


def check_seed(value: Any) -> int:
    """A random seed: a whole number from 0 to 2³²−1."""
    return whole(value, "The seed", 0, SEED_MAX)


def config_from_dict(cls: Any, data: Any, what: str) -> Any:
    """Build the config dataclass ``cls`` from JSON and validate it; unknown keys are refused, not ignored."""
    if not isinstance(data, dict):
        raise InvalidInput(f"A {what} config must be a JSON object.")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInput(f"Unknown config setting(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    return cls(**data).validate()
