"""The prompt lab's chart: the shot curve, accuracy and P(expected) against the number of examples.

Two panels side by side share the x axis, k = 0, 1, 2, 4, 8 evenly spaced
(what a class reads is "more examples", not the arithmetic of k). Each curve
is the mean over the orders of the examples, with a band from the worst to
the best order; the random-labels curve is dashed and orange. Built as a plain
spec (``ui.charts.unchecked``; tests/test_charts.py checks it validates).
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from core.promptlab import ShotCurve, ShotPoint
from ui.charts import COLOURS, unchecked

RANDOM_COLOUR = "#f59e0b"
PANELS = (("accuracy", "accuracy"), ("p_expected", "mean P(expected answer)"))


def _band(colour: str) -> str:
    """``colour`` (#rrggbb) at a fifth of its strength, for the min–max band behind its line."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},0.2)"


def _traces(points: tuple[ShotPoint, ...], field: str, name: str, colour: str, dash: str, panel: int) -> list[dict]:
    """The band (highest order, then lowest filled up to it) and the mean's line, on panel 1 or 2."""
    axes = {"xaxis": "x" if panel == 1 else "x2", "yaxis": "y" if panel == 1 else "y2"}
    x = [str(p.shots) for p in points]
    low = [getattr(p, f"{field}_min") for p in points]
    high = [getattr(p, f"{field}_max") for p in points]
    edge = {"type": "scatter", "x": x, "mode": "lines", "line": {"width": 0}, "hoverinfo": "skip", "showlegend": False}
    return [
        {**edge, **axes, "y": high, "legendgroup": name},
        {**edge, **axes, "y": low, "legendgroup": name, "fill": "tonexty", "fillcolor": _band(colour)},
        {
            "type": "scatter",
            **axes,
            "x": x,
            "y": [getattr(p, field) for p in points],
            "name": name,
            "legendgroup": name,
            "showlegend": panel == 1,
            "mode": "lines+markers",
            "line": {"color": colour, "width": 3, "dash": dash},
            "marker": {"size": 9, "color": colour},
            "customdata": [[lo, hi, p.orders] for lo, hi, p in zip(low, high, points, strict=True)],
            "hovertemplate": f"k = %{{x}}: %{{y:.1%}}<br>orders (%{{customdata[2]}}): "
            f"%{{customdata[0]:.1%}} to %{{customdata[1]:.1%}}<extra>{name}</extra>",
        },
    ]


def shot_curve_figure(curve: ShotCurve, presentation: bool = False) -> go.Figure:
    """Accuracy (left) and mean P(expected answer) (right) against k, bands over the orders."""
    strong = COLOURS[presentation][1]
    curves = [("examples as given", curve.points, strong, "solid")]
    if curve.random_labels is not None:
        curves.append(("random labels", curve.random_labels, RANDOM_COLOUR, "dash"))
    data = [
        trace
        for panel, (field, _) in enumerate(PANELS, start=1)
        for name, points, colour, dash in curves
        for trace in _traces(points, field, name, colour, dash, panel)
    ]
    font = 20 if presentation else 14
    unscored = all(p.p_expected is None for p in curve.points)
    axis: dict[str, Any] = {"type": "category", "title": {"text": "examples in the prompt (k)"}}
    value: dict[str, Any] = {"range": [0, 1.05], "tickformat": ".0%", "rangemode": "tozero"}
    layout = {
        "height": 500 if presentation else 420,
        "margin": {"l": 10, "r": 10, "t": 80, "b": 10},
        "font": {"size": font},
        "title": {
            "text": f"{curve.model} on {curve.task}: {curve.items} items, up to {curve.orders} orders of the examples"
        },
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        "xaxis": {**axis, "domain": [0, 0.45]},
        "xaxis2": {**axis, "domain": [0.55, 1], "anchor": "y2"},
        "yaxis": {**value, "title": {"text": PANELS[0][1]}},
        "yaxis2": {
            **value,
            "anchor": "x2",
            "title": {"text": "P(expected): an API does not say" if unscored else PANELS[1][1]},
        },
    }
    return unchecked({"data": data, "layout": layout})
