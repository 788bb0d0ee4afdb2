"""Prompt variants in a link, and back: a shared URL opens the prompt lab with the same variants.

Per variant ``i`` (1 to 4): ``s<i>`` its system message, ``t<i>`` its
template, ``k<i>`` its number of examples, ``h<i>`` its format hint;
``variants`` says how many. A link can carry anything, so each value that
cannot be used falls back to the default with a sentence saying so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from core.promptlab.task import INPUT
from core.promptlab.variants import MAX_TEXT_CHARS, MAX_VARIANTS, NAMES, PromptVariant

COUNT = "variants"
MIN_VARIANTS = 2  # a page compares at least two
FIELDS = ("s", "t", "k", "h")


def _whole(text: str, low: int, high: int) -> int | None:
    """``text`` as a whole number from ``low`` to ``high``; None when it is not one (``str.isdigit`` takes "²")."""
    if re.fullmatch(r"[0-9]{1,4}", text) and low <= int(text) <= high:
        return int(text)
    return None


def variants_to_params(variants: Sequence[PromptVariant]) -> dict[str, str]:
    """The query parameters that describe ``variants`` (empty texts left out)."""
    params = {COUNT: str(len(variants))}
    for i, v in enumerate(variants, start=1):
        params |= {f"t{i}": v.template, f"k{i}": str(v.shots)}
        params |= {f"s{i}": v.system} if v.system else {}
        params |= {f"h{i}": v.hint} if v.hint else {}
    return params


def has_variants(params: Mapping[str, str]) -> bool:
    return COUNT in params or any(f"{f}{i}" in params for f in FIELDS for i in range(1, MAX_VARIANTS + 1))


def variants_from_params(
    params: Mapping[str, str], defaults: Sequence[PromptVariant], max_shots: int
) -> tuple[list[PromptVariant], list[str]]:
    """The variants a link describes, over ``defaults`` (one per possible variant); and a warning per bad value."""
    warnings: list[str] = []
    count = MIN_VARIANTS
    raw = params.get(COUNT)
    if raw is not None:
        asked = _whole(raw, MIN_VARIANTS, MAX_VARIANTS)
        if asked is not None:
            count = asked
        else:
            warnings.append(
                f"The link's number of variants ({raw[:20]!r}) is not {MIN_VARIANTS} to {MAX_VARIANTS}: "
                f"showing {count}."
            )
    variants = []
    for i, default in enumerate(defaults[:count], start=1):
        name = NAMES[i - 1]
        v = replace(default, name=name)
        for key, what in ((f"s{i}", "system"), (f"h{i}", "hint")):
            text = params.get(key)
            if text is not None and len(text) <= MAX_TEXT_CHARS:
                v = replace(v, **{what: text})
            elif text is not None:
                warnings.append(f"Variant {name}'s {what} in the link is too long: using the default.")
        template = params.get(f"t{i}")
        if template is not None:
            if INPUT in template and len(template) <= MAX_TEXT_CHARS:
                v = replace(v, template=template)
            else:
                warnings.append(
                    f"Variant {name}'s template in the link has no {INPUT} or is too long: using the default."
                )
        shots = params.get(f"k{i}")
        if shots is not None:
            k = _whole(shots, 0, max_shots)
            if k is not None:
                v = replace(v, shots=k)
            else:
                warnings.append(
                    f"Variant {name}'s number of examples in the link ({shots[:20]!r}) is not a whole number from 0 to "
                    f"{max_shots}: using {v.shots}."
                )
        variants.append(v)
    return variants, warnings
