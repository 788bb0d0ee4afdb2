"""HTML for token strips: chips with ids, and text coloured by probability or rank.

Token texts come from users and models, so every one is escaped; ``$`` is
escaped too so Streamlit's markdown never reads it as maths.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from core.backends import BackendStep
from core.distributions import TextScore, TokenProb
from core.generation import GenerationStep
from core.probe import TargetProbe
from core.tokens import Token, display_token

# GLTR's buckets: was the real token the model's first guess, in its top 10, top 100, or beyond?
RANK_BUCKETS: tuple[tuple[int, str, str], ...] = (
    (1, "top-1", "#a7f3d0"),
    (10, "top-10", "#fde68a"),
    (100, "top-100", "#fca5a5"),
    (10**12, "beyond", "#d8b4fe"),
)
HIGH_CONTRAST_BUCKETS = ("#22c55e", "#facc15", "#ef4444", "#a855f7")


def escape(text: str) -> str:
    return html.escape(text).replace("$", "&#36;")


def markdown_literal(text: str) -> str:
    """``text`` shown as it is inside Streamlit's markdown: no bold, link, HTML or maths from a token's characters."""
    return re.sub(r"([\\`*_\[\]<>|$~])", r"\\\1", text)  # the characters that act inside a line


def plural(n: int, noun: str) -> str:
    """``1 token``, ``2 tokens``: a count a person reads."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def rank_bucket(rank: int) -> tuple[str, str]:
    for limit, label, colour in RANK_BUCKETS:
        if rank <= limit:
            return label, colour
    raise AssertionError("unreachable: the last bucket has no upper limit")


def prob_colour(prob: float) -> str:
    """Low probability is red, high is green, through yellow (HSL hue 0 → 120)."""
    hue = int(max(0.0, min(1.0, prob)) * 120)
    return f"hsl({hue}, 85%, 78%)"


def _is_same(a: TokenProb, b: TokenProb) -> bool:
    return a.id == b.id if a.id is not None and b.id is not None else a.token == b.token


def _alternatives_title(alternatives: Sequence[TokenProb], chosen: TokenProb, limit: int = 8) -> str:
    lines = [
        f"{'▶ ' if _is_same(a, chosen) else '   '}{display_token(a.token)}  {a.prob:.1%}" for a in alternatives[:limit]
    ]
    return "\n".join(lines)


def _span(text: str, colour: str, title: str, extra: str = "") -> str:
    return (
        f'<span title="{escape(title)}" style="background:{colour};border-radius:4px;padding:1px 2px;'
        f'margin:0 1px;white-space:pre-wrap;{extra}">{escape(text)}</span>'
    )


def token_chips(tokens: Sequence[Token]) -> str:
    """One chip per token: its visible text over its id; special tokens outlined in indigo."""
    chips = []
    for t in tokens:
        border = "2px solid #4f46e5" if t.special else "1px solid #cbd5e1"
        chips.append(
            f'<span title="id {t.id}{" (special)" if t.special else ""}" style="display:inline-block;'
            f"border:{border};border-radius:6px;padding:2px 6px;margin:2px;background:#f8fafc;"
            f'font-family:monospace;text-align:center">{escape(t.display)}'
            f'<br><small style="color:#64748b">{t.id}</small></span>'
        )
    return f'<div class="lab-tokens" style="line-height:2.4rem">{"".join(chips)}</div>'


def share(prob: float) -> str:
    """A probability as a person reads it: ``77.3%``, and ``3.1e-05`` where a percentage would show 0.0%."""
    return f"{prob:.1%}" if prob >= 0.001 else f"{prob:.1e}"


def probe_html(probe: TargetProbe) -> str:
    """The target's tokens as chips coloured by their probability, each over its probability and rank."""
    chips = [
        f'<span title="id {t.id}, rank {t.rank}" style="display:inline-block;border:1px solid #cbd5e1;'
        f"border-radius:6px;padding:2px 6px;margin:2px;background:{prob_colour(t.prob)};font-family:monospace;"
        f'text-align:center">{escape(t.display)}<br><small>{share(t.prob)} · rank {t.rank}</small></span>'
        for t in probe.tokens
    ]
    return f'<div class="lab-tokens" style="line-height:2.4rem">{" × ".join(chips)}</div>'


def path_html(prompt_text: str, steps: Sequence[GenerationStep | BackendStep]) -> str:
    """The prompt in grey, then each chosen token coloured by the model's probability for it."""
    parts = [f'<span style="color:#64748b;white-space:pre-wrap">{escape(prompt_text)}</span>']
    for s in steps:
        rank = f"rank {s.rank}" if s.rank is not None else "not among the listed alternatives"
        title = f"{s.chosen.display}: {s.chosen.prob:.2%} ({rank})\nalternatives:\n" + _alternatives_title(
            s.alternatives, s.chosen
        )
        parts.append(_span(s.chosen.token, prob_colour(s.chosen.prob), title, "font-weight:600;"))
    return f'<div class="lab-tokens" style="font-size:1.15rem;line-height:2rem">{"".join(parts)}</div>'


def score_html(score: TextScore, mode: str, high_contrast: bool = False) -> str:
    """Every token coloured by its rank bucket (``mode='rank'``) or its probability."""
    parts = []
    for t in score.tokens:
        if t.prob is None:
            parts.append(_span(t.token, "#e2e8f0", "first token: nothing before it to predict it from"))
            continue
        if mode == "rank":
            label, colour = rank_bucket(t.rank or 1)
            if high_contrast:
                colour = HIGH_CONTRAST_BUCKETS[[b[1] for b in RANK_BUCKETS].index(label)]
        else:
            colour = prob_colour(t.prob)
        title = f"{t.display}: {t.prob:.2%}, rank {t.rank}\nthe model expected:\n" + _alternatives_title(
            t.alternatives, TokenProb(t.id, t.token, t.prob, t.logprob or 0.0)
        )
        parts.append(_span(t.token, colour, title))
    return f'<div class="lab-tokens" style="font-size:1.1rem;line-height:2rem">{"".join(parts)}</div>'


def legend_html(high_contrast: bool = False) -> str:
    colours = HIGH_CONTRAST_BUCKETS if high_contrast else [c for _, _, c in RANK_BUCKETS]
    items = [
        f'<span style="background:{c};border-radius:4px;padding:2px 8px;margin-right:6px">{label}</span>'
        for (_, label, _), c in zip(RANK_BUCKETS, colours, strict=True)
    ]
    return f"<div>{''.join(items)}</div>"


def continuation_html(prompt_text: str, tokens: Sequence[tuple[str, float]]) -> str:
    """The prompt in grey, then each (token, probability) of a continuation coloured by that probability."""
    parts = [f'<span style="color:#64748b;white-space:pre-wrap">{escape(prompt_text)}</span>']
    for token, prob in tokens:
        parts.append(_span(token, prob_colour(prob), f"{display_token(token)}: {prob:.2%}", "font-weight:600;"))
    return f'<div class="lab-tokens" style="font-size:1.15rem;line-height:2rem">{"".join(parts)}</div>'
