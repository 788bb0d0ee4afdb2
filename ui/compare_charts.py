"""Figures for the compare page: accuracy per column, and one distribution before and after an adapter."""

from __future__ import annotations

import plotly.graph_objects as go

from core.compare import ColumnSummary
from core.shift import DistributionShift
from core.tokens import display_token
from ui.charts import COLOURS, unique_labels


def accuracy_figure(summaries: list[ColumnSummary], presentation: bool = False) -> go.Figure:
    """One bar per column, labelled with its percentage: the picture for a slide."""
    judged = [s for s in summaries if s.accuracy is not None]
    soft, strong, _ = COLOURS[presentation]
    colours = [strong if s.column not in ("zero_shot", "few_shot") else soft for s in judged]
    fig = go.Figure(
        go.Bar(
            x=[s.title for s in judged],
            y=[s.accuracy for s in judged],
            text=[f"{s.accuracy:.0%}" for s in judged],
            textposition="outside",
            marker_color=colours,
            hovertemplate="%{x}: %{y:.1%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=420 if presentation else 340,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        font={"size": 22 if presentation else 14},
        yaxis={"title": "accuracy", "range": [0, 1.12], "tickformat": ".0%"},
        showlegend=False,
    )
    return fig


def shift_figure(shift: DistributionShift, presentation: bool = False) -> go.Figure:
    """Base and tuned probabilities of the same tokens, overlaid, most likely first from the top."""
    tokens = shift.tokens
    labels = unique_labels([display_token(t.token) for t in tokens], [t.id for t in tokens])
    soft, strong, _ = COLOURS[presentation]
    fig = go.Figure()
    fig.add_bar(
        y=labels, x=[t.base_prob for t in tokens], name=shift.base, orientation="h", marker_color=soft, opacity=0.95
    )
    fig.add_bar(
        y=labels, x=[t.tuned_prob for t in tokens], name=shift.tuned, orientation="h", marker_color=strong, width=0.45
    )
    fig.update_traces(hovertemplate="%{y}: %{x:.2%}")
    fig.update_layout(
        barmode="overlay",
        height=max(320, 34 * len(tokens) + 90),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        font={"size": 20 if presentation else 14},
        xaxis={"title": "probability", "tickformat": ".0%", "rangemode": "tozero"},
        yaxis={"autorange": "reversed", "type": "category"},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
    )
    return fig
