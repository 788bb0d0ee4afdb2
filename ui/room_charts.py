"""The reveal's chart: the class's guesses beside the model's probabilities for the same words.

One row per word: first the class's guesses, most guessed first, then the
model's likeliest tokens that no one guessed (the class at 0 %). Each row has
two bars, the share of the class that guessed it and the model's probability
for it, on one percentage axis, so "the class loved it, the model did not"
reads at a glance. A guess of several tokens says so on its row. Labels are
what students typed: plotly reads a few HTML tags in text, so they are
escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from core.rooms.guesses import typed_form
from core.rooms.scoring import Reveal
from core.tokens import display_token
from ui.charts import unchecked, unique_labels

CLASS_COLOUR, MODEL_COLOUR = "#f59e0b", "#4f46e5"
MODEL_ROWS = 5  # the model's top tokens shown beside the class's guesses
LABEL_CHARS = {False: 24, True: 12}  # (screen, phone): longer words are cut on the axis and shown whole on hover


def _label(text: str) -> str:
    return html.escape(text, quote=False)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class RevealRow:
    """One row of the chart: a word, the share of the class that guessed it, and the model's probability."""

    word: str
    class_share: float
    model_prob: float
    hover: str  # plotly's HTML, texts escaped
    model_top: bool  # the model's most likely token


def reveal_rows(reveal: Reveal, phone: bool = False) -> list[RevealRow]:
    """The class's guesses (most guessed first), then the model's likeliest tokens no one guessed."""
    limit = LABEL_CHARS[phone]
    rows = []
    for b in reveal.buckets:
        tokens = " + ".join(display_token(t) for t in b.reading.tokens)
        word = _short(b.label, limit) + (f" ({len(b.reading.tokens)} tokens)" if b.reading.multi_token else "")
        hover = (
            f"{_label(b.label)}: {b.count} of {reveal.answers} guessed it<br>the model writes it as {_label(tokens)}"
        )
        rows.append(RevealRow(word, b.share, b.model_prob, hover, b.matches_model))
    guessed = {b.key for b in reveal.buckets}
    for choice in reveal.model_top[:MODEL_ROWS]:
        if choice.key in guessed:
            continue
        word = typed_form(choice.token) or display_token(choice.token)
        hover = f"{_label(word)}: no one guessed it<br>the model's token: {_label(display_token(choice.token))}"
        rows.append(RevealRow(_short(word, limit), 0.0, choice.prob, hover, choice is reveal.model_choice))
    return rows


def reveal_figure(reveal: Reveal, presentation: bool = False, phone: bool = False) -> go.Figure:
    """Grouped horizontal bars: the class's share and the model's probability for each word (★ the model's top)."""
    rows = reveal_rows(reveal, phone)
    labels = unique_labels(
        [("★ " if r.model_top else "") + _label(r.word) for r in rows], list(range(1, len(rows) + 1))
    )
    font = 22 if presentation else 13 if phone else 14
    data: list[dict[str, Any]] = [
        {
            "type": "bar",
            "name": name,
            "y": labels,
            "x": values,
            "orientation": "h",
            "marker": {"color": colour},
            "text": [f"{v:.0%}" if name == "the class" else f"{v:.1%}" for v in values],
            "textposition": "outside",
            "cliponaxis": False,
            "customdata": [r.hover for r in rows],
            "hovertemplate": f"{name}: %{{x:.1%}}<br>%{{customdata}}<extra></extra>",
        }
        for name, values, colour in (
            ("the class", [r.class_share for r in rows], CLASS_COLOUR),
            ("the model", [r.model_prob for r in rows], MODEL_COLOUR),
        )
    ]
    top = max([r.class_share for r in rows] + [r.model_prob for r in rows], default=1.0)
    layout = {
        "barmode": "group",
        "height": max(300, (56 if presentation else 40) * len(rows) + 90),
        "margin": {"l": 10, "r": 45, "t": 40, "b": 10},  # room for the last bar's number
        "font": {"size": font},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        "xaxis": {"tickformat": ".0%", "range": [0, min(1.0, top * 1.25) or 1.0]},
        "yaxis": {"autorange": "reversed", "type": "category", "tickfont": {"size": font + 2}},
    }
    return unchecked({"data": data, "layout": layout})
