"""Figures for the Scaling ladder page: the law, the curves against compute, the samples, one task across sizes.

* ``scaling_figure``: held-out bits per character against parameters on
  log-log axes, one marker per rung, the fitted power law as a straight line
  (dotted where it extrapolates) and SmolLM2-135M's own bits per character on
  the same text as a reference point, with a dotted level across.
* ``compute_figure``: each rung's loss against the compute it had spent
  (6·N·D), log-log, as in Kaplan et al.'s figures: a bigger rung starts
  higher in compute and ends lower in loss.
* ``samples_html``: one sample per rung, side by side, the same prompt and
  the same random draws, so only size differs.
* ``task_figure``: one task's accuracy or P(expected) against parameters.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import plotly.graph_objects as go

from core.ladder.fit import PowerLawFit
from core.ladder.library import CurvePoint, ReferenceScore, RungResult
from core.ladder.task import SizeScore
from core.pretrain.sizes import short_count

# smallest rung lightest: size reads as depth of colour
RUNG_COLOURS = ("#fdba74", "#fb923c", "#f97316", "#ea580c", "#9a3412")
REFERENCE_COLOUR = "#4f46e5"
KIND_COLOURS = {"rung": "#f97316", "embedded": "#4f46e5", "added": "#059669"}
BITS_PER_NAT = 1 / math.log(2)  # a rung's tokens are characters: nats per token / ln 2 = bits per character
SMOOTHING = 0.1  # weight of each new step in the training-loss curve's moving average


def rung_colour(number: int) -> str:
    return RUNG_COLOURS[min(number, len(RUNG_COLOURS)) - 1]


def _log_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    ticks = [10.0**e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]
    return ticks, [short_count(t) for t in ticks]


def _layout(presentation: bool, height: int = 420) -> dict:
    return {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "font": {"size": 18 if presentation else 13},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
    }


def scaling_figure(
    rungs: Sequence[RungResult],
    fit: PowerLawFit | None,
    reference: ReferenceScore | None,
    presentation: bool = False,
) -> go.Figure:
    """Bits per character against parameters, log-log: the rungs, the fitted law, SmolLM2 for scale."""
    fig = go.Figure()
    sizes = [r.parameters for r in rungs]
    fig.add_scatter(
        x=sizes,
        y=[r.bits_per_char for r in rungs],
        mode="markers+text",
        name="rungs (held-out)",
        text=[f"rung {r.number}" for r in rungs],
        textposition="top center",
        marker={"size": 16 if presentation else 13, "color": [rung_colour(r.number) for r in rungs]},
        hovertemplate="%{x:,} parameters<br>%{y:.3f} bits per character<extra></extra>",
    )
    right = max([*sizes, reference.parameters if reference else 0]) * 2
    left = min(sizes) / 2 if sizes else 1e4
    if fit is not None and sizes:
        inside = [min(sizes) / 1.3, max(sizes) * 1.3]
        label = f"fit: {fit.a:.3g} · N^−{fit.b:.3f}" + (f" + {fit.c:.2f}" if fit.c else "") + f" (r² = {fit.r2:.3f})"
        fig.add_scatter(x=inside, y=[fit.predict(n) for n in inside], mode="lines", name=label, line={"width": 3})
        if reference is not None:
            beyond = [inside[1], reference.parameters]
            fig.add_scatter(
                x=beyond,
                y=[fit.predict(n) for n in beyond],
                mode="lines",
                name="the same law, extrapolated",
                line={"dash": "dot", "color": "#94a3b8"},
            )
    if reference is not None:
        fig.add_scatter(
            x=[reference.parameters],
            y=[reference.bits_per_char],
            mode="markers+text",
            name=f"{reference.model} (trained on ~2T tokens)",
            text=[reference.model],
            textposition="bottom left",
            marker={"size": 16 if presentation else 13, "symbol": "star", "color": REFERENCE_COLOUR},
            hovertemplate="%{x:,} parameters<br>%{y:.3f} bits per character<extra></extra>",
        )
        fig.add_hline(y=reference.bits_per_char, line_dash="dot", line_color=REFERENCE_COLOUR, opacity=0.5)
    ticks, labels = _log_ticks(left, right)
    fig.update_layout(
        **_layout(presentation, 460),
        xaxis={"type": "log", "title": "parameters (log scale)", "tickvals": ticks, "ticktext": labels},
        yaxis={"type": "log", "title": "held-out loss (bits per character, log scale)"},
    )
    return fig


def _smoothed(values: list[float]) -> list[float]:
    out, running = [], None
    for value in values:
        running = value if running is None else (1 - SMOOTHING) * running + SMOOTHING * value
        out.append(running)
    return out


def compute_figure(curves: Sequence[tuple[int, int, Sequence[CurvePoint]]], presentation: bool = False) -> go.Figure:
    """Each rung's training loss (smoothed) and held-out loss against compute; ``curves``: (number, N, points)."""
    fig = go.Figure()
    for number, parameters, points in curves:
        colour = rung_colour(number)
        train = [p for p in points if p.loss is not None and p.flops > 0]
        name = f"rung {number} ({short_count(parameters)})"
        if train:
            fig.add_scatter(
                x=[p.flops for p in train],
                y=[v * BITS_PER_NAT for v in _smoothed([p.loss for p in train])],
                mode="lines",
                name=name,
                line={"color": colour, "width": 3},
                hovertemplate="%{x:.3g} FLOPs<br>training %{y:.3f} bits/char<extra>" + name + "</extra>",
            )
        held = [p for p in points if p.eval_loss is not None and p.flops > 0]
        if held:
            fig.add_scatter(
                x=[p.flops for p in held],
                y=[p.eval_loss * BITS_PER_NAT for p in held],
                mode="markers",
                name=f"{name} held-out",
                marker={"color": colour, "symbol": "diamond", "size": 10, "line": {"width": 1, "color": "#1e293b"}},
                showlegend=False,
                hovertemplate="%{x:.3g} FLOPs<br>held-out %{y:.3f} bits/char<extra>" + name + "</extra>",
            )
    fig.update_layout(
        **_layout(presentation),
        xaxis={"type": "log", "title": "training compute so far (6·N·D FLOPs, log scale)", "exponentformat": "power"},
        yaxis={"type": "log", "title": "loss (bits per character, log scale)"},
    )
    return fig


def _escape(text: str) -> str:
    return html.escape(text).replace("$", "&#36;")  # never maths to Streamlit's markdown


def sample_html(rung: RungResult) -> str:
    """One rung's sample: its size over the prompt (grey) and its continuation, newlines as ``↵``."""
    text = _escape(rung.sample).replace("\n", "↵")
    return (
        f'<div style="color:#64748b;font-size:0.85em">rung {rung.number} · {short_count(rung.parameters)} '
        "parameters</div>"
        '<div style="font-family:monospace;font-size:0.9em;white-space:pre-wrap;word-break:break-all;'
        f"background:#f8fafc;border:2px solid {rung_colour(rung.number)};border-radius:6px;padding:4px 8px;"
        f'min-height:7em"><span style="color:#94a3b8">{_escape(rung.sample_prompt)}</span>{text}</div>'
    )


ACCURACY, P_EXPECTED = "accuracy", "p_expected"
METRIC_TITLES = {ACCURACY: "Accuracy (exact)", P_EXPECTED: "P(expected answer)"}


def task_figure(scores: Sequence[SizeScore], metric: str, presentation: bool = False) -> go.Figure:
    """One task's ``metric`` (accuracy, or P(expected) on a log axis) against parameters, models by kind."""
    shown = [s for s in scores if s.parameters and getattr(s, metric) is not None]
    fig = go.Figure()
    fig.add_scatter(
        x=[s.parameters for s in shown],
        y=[getattr(s, metric) for s in shown],
        mode="lines+markers+text",
        text=[s.title for s in shown],
        textposition="top center",
        line={"color": "#cbd5e1"},
        marker={"size": 16 if presentation else 13, "color": [KIND_COLOURS.get(s.kind, "#64748b") for s in shown]},
        hovertemplate="%{text}<br>%{x:,} parameters<br>%{y:.3g}<extra></extra>",
        showlegend=False,
    )
    sizes = [s.parameters for s in shown] or [1e4, 1e8]
    ticks, labels = _log_ticks(min(sizes) / 2, max(sizes) * 2)
    if metric == P_EXPECTED:
        values = [s.p_expected for s in shown if s.p_expected] or [1e-3]
        low = math.floor(math.log10(max(min(values), 1e-300)))
        yaxis = {
            "type": "log",
            "title": "P(expected answer), mean over items (log scale)",
            "range": [low - 0.5, 0.1],
            "exponentformat": "power",  # 10⁻¹², not plotly's SI "1p"
        }
    else:
        yaxis = {"title": "accuracy (share of items exactly right)", "range": [-0.05, 1.1], "tickformat": ".0%"}
    fig.update_layout(
        **_layout(presentation, 420),
        xaxis={"type": "log", "title": "parameters (log scale)", "tickvals": ticks, "ticktext": labels},
        yaxis=yaxis,
    )
    return fig
