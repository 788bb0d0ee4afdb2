"""Plotly figures for the generation tree: tokens as nodes from left to right, the greedy path and beams marked.

``drawn_tree`` turns what a model grew (``ui.tree_view.GrownTree``) into one
tree of tokens: the greedy path, the beams or the samples, and the listed
children of the opened nodes, each node knowing why it is there.
``tree_figure`` lays it out (the prompt on the left, one column per token,
leaves one row each, a parent level with the middle of its children) and
draws it as a plain spec (``ui.charts.unchecked``): a click on a node gives
its path in ``customdata``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

from core.tokens import display_token
from core.tree import Beam, TreeNode
from ui.charts import unchecked, unique_labels
from ui.tree_view import BEAMS, SAMPLES, GrownTree, node_name

# (best beam, other beams, samples, greedy, listed, root, opened outline): soft for a screen, strong for a projector
PALETTE = {
    False: ("#4f46e5", "#a5b4fc", "#6366f1", "#f97316", "#94a3b8", "#0f172a", "#dc2626"),
    True: ("#1e3a8a", "#60a5fa", "#1d4ed8", "#ea580c", "#64748b", "#000000", "#dc2626"),
}
LABEL_CHARS = 14  # a long token (a chat template's marker) is cut in its label; the hover has it whole


@dataclass(eq=False)
class DrawnNode:
    """A token of the drawn tree and why it is there.

    ``prob`` is the model's p(token | prompt and the tokens above it) at
    temperature 1, ``logprob`` the sum of the log-probabilities from the
    prompt down to it. ``count`` and ``frequency``: the samples through it,
    and their share of its parent's. ``rank``: the best beam through it
    (1 is the best). ``listed``: only here as one of an opened node's
    likeliest children. ``ends``: the labels of the paths that end here.
    """

    path: tuple[int, ...]
    token: str
    prob: float
    logprob: float
    count: int = 0
    frequency: float = 0.0
    rank: int | None = None
    greedy: bool = False
    listed: bool = True
    opened: bool = False
    ends: list[str] = field(default_factory=list)
    children: list[DrawnNode] = field(default_factory=list)

    def child(self, token_id: int, token: str, prob: float) -> DrawnNode:
        """The child for ``token_id``, made (as a listed one) if it is not there yet."""
        found = next((c for c in self.children if c.path[-1] == token_id), None)
        if found is None:
            logprob = self.logprob + math.log(max(prob, 1e-300))
            found = DrawnNode((*self.path, token_id), token, prob, logprob)
            self.children.append(found)
        return found

    def line(self, path: tuple[int, ...]) -> list[DrawnNode]:
        """The nodes from just below this one down to ``path`` (shorter where the tree stops)."""
        nodes, node = [], self
        for token_id in path:
            node = next((c for c in node.children if c.path[-1] == token_id), None)
            if node is None:
                break
            nodes.append(node)
        return nodes

    def find(self, path: tuple[int, ...]) -> DrawnNode | None:
        nodes = self.line(path)
        return (nodes[-1] if nodes else self) if len(nodes) == len(path) else None

    def walk(self) -> Iterator[DrawnNode]:
        yield self
        for child in self.children:
            yield from child.walk()

    @property
    def display(self) -> str:
        return display_token(self.token) if self.path else "prompt"


def _add_path(root: DrawnNode, path: Beam) -> list[DrawnNode]:
    node, nodes = root, []
    for token_id, token, logprob in zip(path.ids, path.tokens, path.logprobs, strict=True):
        node = node.child(token_id, token, math.exp(logprob))
        node.listed = False
        nodes.append(node)
    return nodes


def _graft(into: DrawnNode, sampled: TreeNode) -> None:
    """Copy a sampled tree's children (with their counts) under ``into``."""
    for child in sampled.children:
        node = into.child(child.id, child.token, child.prob)
        node.count, node.frequency, node.listed = child.count, child.frequency, False
        _graft(node, child)


def drawn_tree(grown: GrownTree) -> DrawnNode:
    """One tree of everything ``grown`` holds, children ordered best beam, most sampled, likeliest first."""
    root = DrawnNode((), "", 1.0, 0.0, listed=False)
    if grown.sampled is not None:
        _graft(root, grown.sampled.root)
        root.count = grown.sampled.root.count
    if grown.search is not None:
        for rank, beam in enumerate(grown.search.beams, start=1):
            nodes = _add_path(root, beam)
            for node in nodes:
                node.rank = min(node.rank or rank, rank)
            (nodes[-1] if nodes else root).ends.append(f"#{rank}  {beam.logprob:.2f}")
    greedy = _add_path(root, grown.greedy)
    for node in greedy:
        node.greedy = True
    (greedy[-1] if greedy else root).ends.append(f"greedy  {grown.greedy.logprob:.2f}")
    for expansion in grown.opened:
        parent = root.find(expansion.prefix_ids)
        assert parent is not None, "an opened node is always in the tree (ui.tree_view._open)"
        parent.opened = True
        for c in expansion.children:
            parent.child(c.id, c.token, c.prob)
    for node in root.walk():
        node.children.sort(key=lambda c: (c.rank or math.inf, -c.count, -c.prob))
    return root


def _percent(p: float) -> str:
    return f"{p:.0%}" if p >= 0.095 else f"{p:.1%}" if p >= 0.001 else f"{p:.0e}"


def _numbers(node: DrawnNode, mode: str) -> str:
    """A label's second line: the model's probability, and how many samples took the token."""
    return f"{node.count}× · p {_percent(node.prob)}" if mode == SAMPLES and node.count else _percent(node.prob)


def _short(text: str) -> str:
    """A label's token: cut when long, and escaped (plotly reads its text as HTML: ``<|im_end|>`` would vanish)."""
    return html.escape(text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…")


def _layout(root: DrawnNode) -> dict[int, tuple[int, float]]:
    """(column, row) of each node by ``id``: leaves one row each in order, a parent level with its children's middle."""
    where: dict[int, tuple[int, float]] = {}
    next_row = 0

    def place(node: DrawnNode, depth: int) -> float:
        nonlocal next_row
        if not node.children:
            row = float(next_row)
            next_row += 1
        else:
            rows = [place(c, depth + 1) for c in node.children]
            row = (rows[0] + rows[-1]) / 2
        where[id(node)] = (depth, row)
        return row

    place(root, 0)
    return where


def _edge_style(node: DrawnNode, mode: str, n: int, colours: tuple[str, ...]) -> tuple[str, float, str]:
    """(colour, width, dash) of the edge into ``node``: what it is there for decides."""
    best, other, sampled, _, listed, root, _ = colours
    if mode == SAMPLES and node.count:
        return sampled, round(1.5 + 12 * node.count / n, 1), "solid"
    if mode == BEAMS and node.rank is not None:
        return (best, 4.5, "solid") if node.rank == 1 else (other, 2.5, "solid")
    if node.greedy:
        return root, 1.5, "solid"
    return listed, 1.2, "dot"


def _node_colour(node: DrawnNode, mode: str, colours: tuple[str, ...]) -> str:
    best, other, sampled, greedy, listed, root, _ = colours
    if not node.path:
        return root
    if mode == BEAMS and node.rank is not None:
        return best if node.rank == 1 else other
    if mode == SAMPLES and node.count:
        return sampled
    return greedy if node.greedy else listed


def _hover(node: DrawnNode, text: str, mode: str, n: int) -> str:
    if not node.path:
        return "the prompt<br>click to list its likeliest next tokens"
    lines = [
        html.escape(f"…{text[-60:]}"),
        html.escape(f"p({node.display}) = {node.prob:.2%}  ·  Σ log p = {node.logprob:.2f}"),
    ]
    if mode == SAMPLES:
        lines.append(f"{node.count} of the {n} samples ({node.frequency:.0%} of its parent's)")
    if node.rank is not None:
        lines.append(f"on beam #{node.rank}")
    if node.greedy:
        lines.append("on the greedy path")
    lines.append("click to open: list its likeliest next tokens")
    return "<br>".join(lines)


def tree_figure(grown: GrownTree, root: DrawnNode, presentation: bool = False) -> go.Figure:
    """The tree, prompt on the left; a click on a node selects it (its path is the point's ``customdata``)."""
    mode = grown.settings.mode
    n = grown.sampled.root.count if grown.sampled else 0
    colours = PALETTE[presentation]
    where = _layout(root)
    font = 20 if presentation else 13
    row_px = 70 if presentation else 48  # a label's two lines above each node

    edges: dict[tuple[str, float, str], tuple[list[float | None], list[float | None]]] = {}
    greedy_x: list[float | None] = []
    greedy_y: list[float | None] = []
    nodes: list[tuple[DrawnNode, str]] = []  # with the text from the prompt to them

    def visit(node: DrawnNode, text: str) -> None:
        nodes.append((node, text))
        x0, y0 = where[id(node)]
        for child in node.children:
            x1, y1 = where[id(child)]
            xs, ys = edges.setdefault(_edge_style(child, mode, n, colours), ([], []))
            xs.extend((x0, x1, None))
            ys.extend((y0, y1, None))
            if child.greedy:
                greedy_x.extend((x0, x1, None))
                greedy_y.extend((y0, y1, None))
            visit(child, text + display_token(child.token))

    visit(root, "")
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "x": xs,
            "y": ys,
            "line": {"color": colour, "width": width, "dash": dash, "shape": "hvh"},  # elbows: labels stay clear
            "hoverinfo": "skip",
            "showlegend": False,
        }
        for (colour, width, dash), (xs, ys) in edges.items()
    ]
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "x": greedy_x,
            "y": greedy_y,
            "line": {"color": colours[3], "width": 3 if presentation else 2.2, "dash": "dash", "shape": "hvh"},
            "hoverinfo": "skip",
            "showlegend": False,
        }
    )
    labels = [_short(node.display) + (f"<br>{_numbers(node, mode)}" if node.path else "") for node, _ in nodes]
    opened = grown.node
    sizes = {True: 20, False: 15} if presentation else {True: 13, False: 10}  # an opened node is larger
    data.append(
        {
            "type": "scatter",
            "mode": "markers+text",
            "x": [where[id(node)][0] for node, _ in nodes],
            "y": [where[id(node)][1] for node, _ in nodes],
            "text": labels,
            "textposition": "top center",
            "textfont": {"size": font, "family": "monospace"},
            "marker": {
                "size": [sizes[node.opened] for node, _ in nodes],
                "color": [_node_colour(node, mode, colours) for node, _ in nodes],
                "line": {
                    "color": [colours[6] if node.path == opened else "#ffffff" for node, _ in nodes],
                    "width": [3 if node.path == opened else 1 for node, _ in nodes],
                },
            },
            "customdata": [node_name(node.path) for node, _ in nodes],
            "hovertext": [_hover(node, text, mode, n) for node, text in nodes],
            "hovertemplate": "%{hovertext}<extra></extra>",
            # a click selects a node; the others must not fade as plotly's selection does by default
            "selected": {"marker": {"opacity": 1}},
            "unselected": {"marker": {"opacity": 1}},
            "showlegend": False,
        }
    )
    ends = [node for node, _ in nodes if node.ends]
    data.append(
        {
            "type": "scatter",
            "mode": "text",
            "x": [where[id(node)][0] + 0.12 for node in ends],
            "y": [where[id(node)][1] for node in ends],
            "text": [" · ".join(node.ends) for node in ends],
            "textposition": "middle right",
            "textfont": {"size": font, "color": [colours[0] if node.rank else colours[3] for node in ends]},
            "hoverinfo": "skip",
            "showlegend": False,
        }
    )
    columns = max(x for x, _ in where.values())
    rows = max(y for _, y in where.values()) + 1
    layout: dict[str, Any] = {
        "height": max(320, int(rows * row_px) + 90),
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "font": {"size": font},
        "xaxis": {
            "range": [-0.35, columns + (1.6 if mode == BEAMS else 1.2)],  # room for the labels at the ends
            "tickvals": list(range(columns + 1)),
            "ticktext": ["prompt", *(f"+{i}" for i in range(1, columns + 1))],
            "side": "top",
            "showgrid": False,
            "zeroline": False,
            "fixedrange": True,
        },
        "yaxis": {"visible": False, "range": [rows - 0.4, -0.8], "fixedrange": True},  # downward: first child on top
        "clickmode": "event+select",
        "dragmode": False,
        "hoverlabel": {"font": {"size": font}},
        "plot_bgcolor": "#ffffff",
    }
    return unchecked({"data": data, "layout": layout})


def shares_figure(node: DrawnNode, presentation: bool = False) -> go.Figure:
    """After one node: the share of its samples that took each token, beside the model's probability of it."""
    children = [c for c in node.children if c.count or c.listed]
    labels = unique_labels([c.display for c in children], [c.path[-1] for c in children])
    soft, strong = PALETTE[presentation][1], PALETTE[presentation][0]
    font = 20 if presentation else 14
    bars = (
        ("share of the samples", [c.frequency for c in children], strong),
        ("model's probability (T = 1)", [c.prob for c in children], soft),
    )
    data = [
        {
            "type": "bar",
            "name": name,
            "orientation": "h",
            "y": labels,
            "x": values,
            "marker": {"color": colour},
            "text": [f"{v:.1%}" for v in values],
            "textposition": "outside",
            "hovertemplate": f"%{{y}}<br>{name}: %{{x:.2%}}<extra></extra>",
        }
        for name, values, colour in bars
    ]
    top = max([*(c.frequency for c in children), *(c.prob for c in children), 0.01])
    layout = {
        "barmode": "group",
        "height": max(260, (56 if presentation else 34) * len(children) + 90),
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "font": {"size": font},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        "xaxis": {"tickformat": ".0%", "range": [0, min(1.0, top * 1.3)]},
        "yaxis": {"autorange": "reversed", "type": "category", "tickfont": {"family": "monospace", "size": font + 2}},
    }
    return unchecked({"data": data, "layout": layout})


def png_config(name: str) -> dict[str, Any]:
    """The chart's toolbar: its camera icon saves a PNG named ``name``, at twice the size for slides."""
    return {
        "displaylogo": False,
        "modeBarButtonsToRemove": ["select2d", "lasso2d"],
        "toImageButtonOptions": {"format": "png", "filename": name, "scale": 2},
    }
