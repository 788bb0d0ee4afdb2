"""Plotly figures for distributions.

The original distribution (temperature 1, nothing pruned) and the reshaped
one are drawn side by side on the same token rows, most likely first, so a
person sees what the sampling settings did: pruned tokens greyed out, and a
dashed line where the cut falls.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from core.backends import BackendDistribution
from core.distributions import ShapedDistribution
from core.tokens import display_token

# (model, after settings, pruned): soft for a screen, high-contrast for a projector
COLOURS = {False: ("#c7d2fe", "#4f46e5", "#e5e7eb"), True: ("#93c5fd", "#1e3a8a", "#f1f5f9")}
PLOTLY_CONFIG = {
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "filename": "next-token-distribution", "scale": 2},
}


def unique_labels(labels: list[str], tags: list[object]) -> list[str]:
    """Visible token texts; where two tokens look the same, their tags (ids, or ranks) tell them apart."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return [label if counts[label] == 1 else f"{label} #{tag}" for label, tag in zip(labels, tags, strict=True)]


def distribution_figure(shaped: ShapedDistribution, k: int, presentation: bool = False) -> go.Figure:
    """The model's bars and the reshaped ones, with the cut; built as a plain spec (see ``unchecked``)."""
    tokens = shaped.top(k)
    labels = unique_labels([t.display for t in tokens], [t.id for t in tokens])
    ids = [t.id for t in tokens]
    font = 22 if presentation else 14
    original_colour, shaped_colour, pruned_colour = COLOURS[presentation]
    bars = (
        ("model (T = 1)", "model", [t.original_prob for t in tokens], original_colour),
        ("after sampling settings", "after settings", [t.prob for t in tokens], shaped_colour),
    )
    data = [
        {
            "type": "bar",
            "name": name,
            "y": labels,
            "x": probs,
            "orientation": "h",
            "marker": {"color": [colour if t.kept else pruned_colour for t in tokens]},
            # the model's own bars always show their number; reshaped ones say when the settings pruned them
            "text": [
                f"{p:.1%}" if t.kept or short == "model" else "pruned" for p, t in zip(probs, tokens, strict=True)
            ],
            "textposition": "outside",
            "customdata": ids,
            "hovertemplate": f"%{{y}}<br>{short}: %{{x:.2%}}<br>id %{{customdata}}<extra></extra>",
        }
        for name, short, probs, colour in bars
    ]
    top = max(max(t.original_prob for t in tokens), max(t.prob for t in tokens))
    layout: dict[str, Any] = {
        "barmode": "group",
        "height": max(320, (48 if presentation else 30) * len(tokens) + 90),
        "margin": {"l": 10, "r": 10, "t": 50, "b": 10},
        "font": {"size": font},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        "xaxis": {"tickformat": ".0%", "range": [0, min(1.0, top * 1.25) or 1.0]},
        "yaxis": {
            "autorange": "reversed",
            "type": "category",
            "tickfont": {"family": "monospace", "size": font + 3},  # "." and "," must be readable
        },
        "clickmode": "event+select",
    }
    n_kept_shown = sum(t.kept for t in tokens)
    if 0 < n_kept_shown < len(tokens):
        cut = n_kept_shown - 0.5
        layout["shapes"] = [
            {
                "type": "line",
                "xref": "x domain",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": cut,
                "y1": cut,
                "line": {"dash": "dash", "color": "#ef4444"},
            }
        ]
        layout["annotations"] = [
            {
                "text": f"cut: {shaped.n_kept:,} token(s) kept",
                "xref": "x domain",
                "x": 1,
                "xanchor": "right",
                "yref": "y",
                "y": cut,
                "yanchor": "top",
                "showarrow": False,
            }
        ]
    return unchecked({"data": data, "layout": layout})


def unchecked(spec: dict[str, Any]) -> go.Figure:
    """A figure from a spec without plotly's property-by-property validation.

    Validating a two-trace bar chart took 11 ms and building it from a dict
    without validation under 1 ms; the explorer draws one on every rerun of
    every student's session. tests/test_charts.py checks that every spec
    built this way passes plotly's validation unchanged.
    """
    return go.Figure(spec, _validate=False)


def api_distribution_figure(dist: BackendDistribution, presentation: bool = False) -> go.Figure:
    """The top tokens an API reported, and one grey bar for the mass of everything it did not list."""
    # an API gives no ids: tell same-looking tokens apart by their rank
    labels = unique_labels([display_token(t.token) for t in dist.tokens], list(range(1, len(dist.tokens) + 1)))
    labels.append("other (not listed)")
    probs = [t.prob for t in dist.tokens] + [dist.other_mass]
    shaped_colour = COLOURS[presentation][1]
    fig = go.Figure(
        go.Bar(
            y=labels,
            x=probs,
            orientation="h",
            marker_color=[shaped_colour] * len(dist.tokens) + ["#9ca3af"],
            text=[f"{p:.1%}" for p in probs],
            textposition="outside",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    font = 22 if presentation else 14
    fig.update_layout(
        height=max(320, (40 if presentation else 26) * len(labels) + 80),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        font={"size": font},
        xaxis={"tickformat": ".0%", "range": [0, min(1.0, max(probs) * 1.25) or 1.0]},
        yaxis={"autorange": "reversed", "type": "category", "tickfont": {"family": "monospace", "size": font + 3}},
    )
    return fig


def loss_figure(metrics: list[dict], max_steps: int | None = None, presentation: bool = False) -> go.Figure:
    """Training loss per step and evaluation loss where measured, with markers so a ten-step run reads well.

    The step axis spans the whole run from the start, so the curve fills it as training goes.
    """
    train = [(m["step"], m["loss"]) for m in metrics if m.get("loss") is not None]
    evaluation = [(m["step"], m["eval_loss"]) for m in metrics if m.get("eval_loss") is not None]
    fig = go.Figure()
    if train:
        fig.add_scatter(x=[s for s, _ in train], y=[v for _, v in train], name="training loss", mode="lines+markers")
    if evaluation:
        fig.add_scatter(
            x=[s for s, _ in evaluation],
            y=[v for _, v in evaluation],
            name="evaluation loss (held out)",
            mode="lines+markers",
            marker={"size": 10, "symbol": "diamond"},
        )
    fig.update_layout(
        height=360,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        font={"size": 20 if presentation else 14},
        xaxis={"title": "step", "range": [-0.5, (max_steps or max([s for s, _ in train + evaluation] or [1])) + 0.5]},
        yaxis={"title": "loss", "rangemode": "tozero"},
        legend={"orientation": "h", "y": 1.08, "x": 0},
    )
    return fig
