"""Figures for the Build-your-own page: the sliding window, where parameters live, sizes on a log scale, samples.

* ``window_figure``: one row per training pair, one column per token of the
  text; the tokens the model reads are blue, the token it must predict is
  amber, text already passed but outside the window grey and text still to
  come white, so the window is seen sliding along the text.
* ``breakdown_figure``: a model's parameters block by block (embeddings, each
  layer, the final norm), stacked by kind.
* ``sizes_figure``: parameter counts of the tiny model, the loaded model and
  published models on one logarithmic axis, the only way a 0.4M and a 405B
  model fit on one chart.
* ``samples_html``: a training job's samples, one short block per step, the
  prompt greyed and newlines shown as ``↵`` so they line up for comparing.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import plotly.graph_objects as go

from core.pretrain.pairs import SelfSupervisedText
from core.pretrain.sizes import KINDS, ParameterBreakdown, short_count

KIND_COLOURS = {
    "embeddings": "#f59e0b",
    "attention": "#4f46e5",
    "MLP": "#10b981",
    "norms": "#94a3b8",
    "LoRA adapter": "#ec4899",
    "other": "#64748b",
}
# still to come, passed but outside the window, read by the model, predicted
WINDOW_COLOURS = {
    False: ("#ffffff", "#e2e8f0", "#c7d2fe", "#fbbf24"),
    True: ("#ffffff", "#cbd5e1", "#93c5fd", "#f59e0b"),
}
MAX_WINDOW_ROWS = 16
MAX_WINDOW_COLUMNS = 32


def window_figure(text: SelfSupervisedText, presentation: bool = False) -> go.Figure:
    """The first pairs as rows over the text's first tokens: context blue, target amber, the rest grey or white."""
    columns = min(len(text.tokens), MAX_WINDOW_COLUMNS)
    pairs = [p for p in text.pairs if p.position < columns][:MAX_WINDOW_ROWS]
    z, cell_text = [], []
    for pair in pairs:
        start = pair.position - len(pair.context)
        z.append(
            [
                3 if i == pair.position else 2 if start <= i < pair.position else 1 if i < start else 0
                for i in range(columns)
            ]
        )
        cell_text.append([t.display for t in text.tokens[:columns]])
    future, passed, read, target = WINDOW_COLOURS[presentation]
    scale = [
        [0, future],
        [0.25, future],
        [0.25, passed],
        [0.5, passed],
        [0.5, read],
        [0.75, read],
        [0.75, target],
        [1, target],
    ]
    labels = [f"example {n + 1}" for n in range(len(pairs))]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(columns)),
            y=labels,
            text=cell_text,
            texttemplate="%{text}",
            textfont={"family": "monospace", "size": 20 if presentation else 14},
            colorscale=scale,
            zmin=0,
            zmax=3,
            showscale=False,
            xgap=2,
            ygap=2,
            hovertemplate="%{y}, token %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        height=max(260, (44 if presentation else 32) * len(pairs) + 70),
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
        font={"size": 18 if presentation else 13},
        xaxis={"title": "position in the text", "dtick": 1, "side": "bottom"},
        yaxis={"autorange": "reversed"},
    )
    return fig


def breakdown_figure(breakdown: ParameterBreakdown, presentation: bool = False) -> go.Figure:
    """Parameters per block, stacked by kind: where a model's size actually sits."""
    blocks = ["embeddings", *[f"layer {i}" for i in range(len(breakdown.per_layer))]]
    rows = [{"embeddings": breakdown.by_kind.get("embeddings", 0)}, *breakdown.per_layer]
    outside = {k: n for k, n in breakdown.outside_layers.items() if k != "embeddings"}
    if outside:
        blocks.append("outside layers")  # the final norm, and any head that is not tied
        rows.append(outside)
    fig = go.Figure()
    for kind in KINDS:
        values = [row.get(kind, 0) for row in rows]
        if any(values):
            fig.add_bar(
                name=kind,
                x=blocks,
                y=values,
                marker_color=KIND_COLOURS[kind],
                hovertemplate=f"%{{x}}<br>{kind}: %{{y:,}} parameters<extra></extra>",
            )
    fig.update_layout(
        barmode="stack",
        height=420,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        font={"size": 18 if presentation else 13},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0, "traceorder": "normal"},
        yaxis={"title": "parameters", "tickformat": ".2s"},
        xaxis={"type": "category", "tickangle": -45 if len(blocks) > 12 else 0},
    )
    return fig


def sizes_figure(entries: list[tuple[str, float, str]], presentation: bool = False) -> go.Figure:
    """Horizontal bars of (label, parameters, group) on a log axis, smallest at the top; groups coloured."""
    entries = sorted(entries, key=lambda e: e[1])
    group_colours = {"yours": "#f59e0b", "loaded": "#4f46e5", "published": "#94a3b8"}
    fig = go.Figure(
        go.Bar(
            y=[label for label, _, _ in entries],
            x=[n for _, n, _ in entries],
            orientation="h",
            marker_color=[group_colours.get(group, "#64748b") for _, _, group in entries],
            text=[short_count(n) for _, n, _ in entries],
            textposition="outside",
            hovertemplate="%{y}: %{x:,.0f} parameters<extra></extra>",
        )
    )
    smallest, largest = min(n for _, n, _ in entries), max(n for _, n, _ in entries)
    low, high = math.floor(math.log10(smallest)), math.ceil(math.log10(largest))
    ticks = [10.0**e for e in range(low, high + 1)]
    fig.update_layout(
        height=max(320, (44 if presentation else 32) * len(entries) + 80),
        margin={"l": 10, "r": 40, "t": 10, "b": 40},
        font={"size": 18 if presentation else 13},
        xaxis={
            "type": "log",
            "title": "parameters (log scale: each step is ×10)",
            # room on the left of the smallest bar, and on the right for the largest label
            "range": [low - 0.2, math.log10(largest) + 1.0],
            "tickvals": ticks,
            "ticktext": [short_count(t) for t in ticks],  # 1B, not plotly's SI "1G"
        },
        yaxis={"type": "category", "autorange": "reversed"},
        showlegend=False,
    )
    return fig


def _escape(text: str) -> str:
    return html.escape(text).replace("$", "&#36;")  # never maths to Streamlit's markdown


def samples_html(samples: Sequence[dict]) -> str:
    """Samples as ``step N`` over the prompt (grey) and the model's continuation, newlines as ``↵``."""
    blocks = []
    for sample in samples:
        text = _escape(sample["text"]).replace("\n", "↵")
        blocks.append(
            f'<div style="color:#64748b;font-size:0.8em;margin-top:0.4em">step {sample["step"]}</div>'
            '<div style="font-family:monospace;font-size:0.9em;white-space:pre-wrap;word-break:break-all;'
            'background:#f8fafc;border:1px solid #e2e8f0;border-radius:6px;padding:4px 8px">'
            f'<span style="color:#94a3b8">{_escape(sample["prompt"])}</span>{text}</div>'
        )
    return f'<div class="lab-tokens">{"".join(blocks)}</div>'
