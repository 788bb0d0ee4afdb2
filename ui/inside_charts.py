"""Plotly figures for the inside view: the logit lens, a token's rise through the layers, attention maps.

Positions and layers go on numeric axes with token texts as tick labels, so
two positions holding the same token (" the" twice) stay two columns.
Token texts are escaped: plotly reads hover and cell text as HTML, and a
chat template's ``<|im_start|>`` would otherwise vanish as an unknown tag.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from core.attention import AttentionMaps
from core.lens import InsideComparison, LogitLens, reading_label
from core.tokens import display_token

LENS_SCALE = "Blues"
DIFFERENCE_SCALE = "RdBu_r"  # blue: the fine-tuned model attends less; red: more
VARIATION_SCALE = "Reds"
MAX_NUMBERED_POSITIONS = 14  # an attention map writes its weights in the cells up to this size
LINE_COLOURS = {"base model": "#4f46e5", "fine-tuned": "#dc2626"}


def _text(token: str, limit: int = 10) -> str:
    shown = display_token(token)
    return html.escape(shown if len(shown) <= limit else shown[: limit - 1] + "…")


def _font(presentation: bool) -> int:
    return 20 if presentation else 13


def _cell_chars(n_columns: int, presentation: bool) -> int:
    """How many monospace characters fit across one lens cell (the plot is about 750 px wide)."""
    char_width = 0.62 * (_font(presentation) - 1)
    return max(3, min(10, int(750 / n_columns / char_width)))


def _position_axis(tokens: Sequence[str], positions: Sequence[int], presentation: bool) -> dict:
    return {
        "tickmode": "array",
        "tickvals": list(positions),
        "ticktext": [_text(tokens[p], 14) for p in positions],
        "tickfont": {"family": "monospace", "size": _font(presentation) + 1},
        "tickangle": -40 if len(positions) > 8 else 0,
        "showgrid": False,
    }


def _layer_axis(n_layers: int, presentation: bool) -> dict:
    step = 1 if presentation or n_layers <= 32 else 2
    layers = list(range(0, n_layers + 1, step))
    return {
        "tickmode": "array",
        "tickvals": layers,
        "ticktext": ["emb" if n == 0 else str(n) for n in layers],
        "title": "layer",
        "tickfont": {"size": _font(presentation)},  # Streamlit's theme would set a small one
        "showgrid": False,
    }


def _top_hover(lens: LogitLens, layer: int, position: int) -> str:
    rows = "<br>".join(f"{_text(t.token, 24)}  {t.prob:.1%}" for t in lens.top(layer, position))
    return (
        f"<b>{reading_label(layer)}</b>, after “{_text(lens.input_tokens[position], 24)}” (position {position})"
        f"<br>{rows}"
    )


def _lens_layout(fig: go.Figure, lens: LogitLens, positions: Sequence[int], presentation: bool) -> go.Figure:
    """Layers up the side (embeddings at the bottom, the output on top), positions across."""
    row_height = 34 if presentation else 22
    fig.update_layout(
        height=max(420, row_height * (lens.n_layers + 1) + 140),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        font={"size": _font(presentation)},
        xaxis={**_position_axis(lens.input_tokens, positions, presentation), "title": "position (the token read)"},
        yaxis=_layer_axis(lens.n_layers, presentation),
    )
    return fig


def lens_figure(lens: LogitLens, positions: Sequence[int], presentation: bool = False) -> go.Figure:
    """Layers up, positions across; each cell names the reading's top token, coloured by its probability."""
    z = lens.top1_probs[:, list(positions)].tolist()
    fits = _cell_chars(len(positions), presentation)
    text = [[_text(row[p], fits) for p in positions] for row in lens.top1_tokens]
    hover = [[_top_hover(lens, layer, p) for p in positions] for layer in range(lens.n_layers + 1)]
    fig = _cells(positions, lens, z, text, hover, LENS_SCALE, "top token's<br>probability", _font(presentation) - 1)
    return _lens_layout(fig, lens, positions, presentation)


def _cells(
    positions: Sequence[int],
    lens: LogitLens,
    z: list[list[float]],
    text: list[list[str]],
    hover: list[list[str]],
    scale: str,
    title: str,
    font: int,
) -> go.Figure:
    """A layers × positions heatmap of probabilities (0 to 1), a token written in each cell, a hover for each."""
    return go.Figure(
        go.Heatmap(
            x=list(positions),
            y=list(range(lens.n_layers + 1)),
            z=z,
            zmin=0,
            zmax=1,
            colorscale=scale,
            text=text,
            texttemplate="%{text}",
            textfont={"family": "monospace", "size": font},
            customdata=hover,
            hovertemplate="%{customdata}<extra></extra>",
            colorbar={"title": {"text": title, "side": "top"}, "tickformat": ".0%"},
            xgap=1,
            ygap=1,
        )
    )


def variation_figure(comparison: InsideComparison, positions: Sequence[int], presentation: bool = False) -> go.Figure:
    """How far the fine-tuned model's reading is from the base's in each cell, naming the fine-tuned top token.

    An arrow marks the cells where fine-tuning changed the top token; the hover gives both.
    """
    base, tuned = comparison.base.lens, comparison.tuned.lens
    z = comparison.total_variation[:, list(positions)].tolist()
    fits = _cell_chars(len(positions), presentation)
    text, hover = [], []
    for layer in range(base.n_layers + 1):
        text_row, hover_row = [], []
        for p in positions:
            before, after = base.top1_tokens[layer][p], tuned.top1_tokens[layer][p]
            text_row.append(_text(after, fits) if before == after else f"→{_text(after, fits - 1)}")
            hover_row.append(
                f"<b>{reading_label(layer)}</b>, position {p}: distance "
                f"{float(comparison.total_variation[layer, p]):.1%}"
                f"<br>base: {_text(before, 24)} {float(base.top1_probs[layer, p]):.1%}"
                f"<br>fine-tuned: {_text(after, 24)} {float(tuned.top1_probs[layer, p]):.1%}"
            )
        text.append(text_row)
        hover.append(hover_row)
    fig = _cells(positions, base, z, text, hover, VARIATION_SCALE, "distance", _font(presentation) - 2)
    return _lens_layout(fig, base, positions, presentation)


def tracked_figure(series: dict[str, list[float]], token: str, presentation: bool = False) -> go.Figure:
    """One token's probability at the last position after each layer: one line per model."""
    fig = go.Figure()
    for name, probs in series.items():
        fig.add_scatter(
            x=list(range(len(probs))),
            y=probs,
            name=name,
            mode="lines+markers+text",
            line={"color": LINE_COLOURS.get(name), "width": 4 if presentation else 2},
            marker={"size": 9 if presentation else 6},
            customdata=[reading_label(n) for n in range(len(probs))],
            hovertemplate=f"{name}<br>%{{customdata}}: %{{y:.2%}}<extra></extra>",
            text=[""] * (len(probs) - 1) + [f"{probs[-1]:.1%}"],  # the answer's final probability, written out
            textposition="middle left",
            textfont={"color": LINE_COLOURS.get(name)},
        )
    n_layers = len(next(iter(series.values()))) - 1
    fig.update_layout(
        height=380 if presentation else 320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        font={"size": _font(presentation)},
        title={"text": f"P({_text(token, 24)}) at the last position, after each layer", "x": 0},
        xaxis=_layer_axis(n_layers, presentation),
        yaxis={"tickformat": ".0%", "range": [0, 1.05], "title": None, "tickfont": {"size": _font(presentation)}},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 1, "xanchor": "right"},
        showlegend=len(series) > 1,
    )
    return fig


def _causal(pattern: torch.Tensor) -> list[list[float | None]]:
    """Rows as lists, with the cells after the diagonal blank (a causal model cannot look there)."""
    return [[float(w) if j <= i else None for j, w in enumerate(row)] for i, row in enumerate(pattern)]


def _colour_range(patterns: Sequence[torch.Tensor], difference: bool, without_first: bool) -> dict:
    """One colour scale for all ``patterns``: 0 to 100 %, or to the largest weight on any token but the first.

    Many heads park most of their attention on the first token (an attention
    sink); leaving it out of the scale lets the rest be seen. A difference is
    centred on 0.
    """
    cells = [p[:, 1:] if without_first and p.shape[1] > 1 else p for p in patterns]
    largest = max(1e-6, max(float(c.abs().max()) for c in cells))
    if difference:
        return {"colorscale": DIFFERENCE_SCALE, "min": -largest, "max": largest, "mid": 0}
    return {"colorscale": "Viridis", "min": 0, "max": largest if without_first else 1}


def attention_figure(
    pattern: torch.Tensor,
    tokens: Sequence[str],
    difference: bool = False,
    without_first: bool = False,
    presentation: bool = False,
) -> go.Figure:
    """Rows: the token reading; columns: the token it reads from. ``difference``: a tuned-minus-base map."""
    n = len(tokens)
    labels = [_text(t, 14) for t in tokens]
    hover = [[f"“{labels[i]}” reads “{labels[j]}”" for j in range(n)] for i in range(n)]
    scale = _colour_range([pattern], difference, without_first)
    fig = go.Figure(
        go.Heatmap(
            x=list(range(n)),
            y=list(range(n)),
            z=_causal(pattern),
            customdata=hover,
            hovertemplate=f"%{{customdata}}: %{{z:{'+' if difference else ''}.1%}}<extra></extra>",
            # numbers in the cells while they fit
            texttemplate=f"%{{z:{'+' if difference else ''}.0%}}" if n <= MAX_NUMBERED_POSITIONS else None,
            textfont={"size": _font(presentation) - 1},
            colorscale=scale.pop("colorscale"),
            colorbar={"tickformat": "+.0%" if difference else ".0%"},
            xgap=1 if n <= 40 else 0,
            ygap=1 if n <= 40 else 0,
            **{f"z{k}": v for k, v in scale.items()},
        )
    )
    axis = _position_axis(tokens, range(n), presentation)
    fig.update_layout(
        height=min(900, max(380, (34 if presentation else 24) * n + 160)),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        font={"size": _font(presentation)},
        xaxis={**axis, "title": "the token read from", "side": "top"},
        yaxis={**axis, "tickangle": 0, "autorange": "reversed", "title": "the token reading"},
        plot_bgcolor="#f1f5f9",
    )
    return fig


def head_gallery_figure(
    maps: AttentionMaps, layer: int, base: AttentionMaps | None = None, without_first: bool = False
) -> go.Figure:
    """Every head of ``layer`` side by side (minus ``base``'s when given), on one colour scale."""
    rows = math.ceil(maps.n_heads / 6)
    cols = math.ceil(maps.n_heads / rows)  # rows of even length: 9 heads are 5 + 4, not 6 + 3
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[f"head {h}" for h in range(1, maps.n_heads + 1)],
        horizontal_spacing=0.02,
        vertical_spacing=0.15 / rows,
    )
    heads = range(1, maps.n_heads + 1)
    patterns = [maps.pattern(layer, h) - (base.pattern(layer, h) if base else 0) for h in heads]
    scale = _colour_range(patterns, base is not None, without_first)
    for h, pattern in zip(heads, patterns, strict=True):
        fig.add_trace(
            go.Heatmap(
                z=_causal(pattern),
                coloraxis="coloraxis",
                hovertemplate=f"head {h}: position %{{y}} reads %{{x}}: %{{z:.1%}}<extra></extra>",
            ),
            row=(h - 1) // cols + 1,
            col=(h - 1) % cols + 1,
        )
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed")
    fig.update_layout(
        height=190 * rows + 40,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        coloraxis={
            "colorscale": scale.pop("colorscale"),
            **{f"c{k}": v for k, v in scale.items()},
            "colorbar": {"tickformat": "+.0%" if base else ".0%"},
        },
        plot_bgcolor="#f1f5f9",
    )
    return fig
