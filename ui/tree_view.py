"""The generation tree page's settings, its link, and what one model grows for it.

The whole view (prompt, mode, every parameter, the opened node) is one
``TreeSettings``, so a link can carry it: ``from_query`` reads a link and
says in a sentence what it could not use (a bad value falls back to the
default; it never stops the page), ``to_query`` writes one. ``grow`` calls
``core.tree`` for one model and keeps the results in a memo shared by every
session: a class opening the teacher's link, or a student clicking nodes,
does not search the same beams again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from core.distributions import SamplingSettings
from core.errors import LabError
from core.models import LoadedModel
from core.result_cache import ResultCache
from core.tree import (
    MAX_BEAMS,
    MAX_DEPTH,
    MAX_LENGTH_PENALTY,
    MAX_SAMPLES,
    Beam,
    BeamSearch,
    Expansion,
    SampledTree,
    beam_search,
    check_beam_search,
    check_samples,
    expand,
    sample_tree,
)

BRANCHES, BEAMS, SAMPLES = "branches", "beams", "samples"
MODES = {BRANCHES: "🌿 Branches", BEAMS: "🔦 Beam search", SAMPLES: "🎲 Sample N"}
ROOT = "root"  # the opened node's name in a link when it is the prompt itself


@dataclass(frozen=True)
class TreeSettings:
    """Everything the page shows, as a link carries it.

    ``node`` is the opened node (token ids after the prompt): it and every
    node above it list their ``children`` likeliest next tokens. None opens
    nothing (the branches mode then opens the prompt itself).
    """

    prompt: str = "Once upon a time"
    chat: bool = False
    mode: str = BRANCHES
    depth: int = 4  # tokens of the greedy path, the beams and the samples
    children: int = 4  # listed under each opened node
    width: int = 3  # beams
    length_penalty: float = 0.0
    samples: int = 16
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0
    min_p: float = 0.0
    seed: int = 0
    node: tuple[int, ...] | None = None

    @property
    def sampling(self) -> SamplingSettings:
        return SamplingSettings(self.temperature, self.top_k or None, self.top_p, self.min_p)

    @property
    def opened(self) -> tuple[int, ...] | None:
        """The node whose children are listed: the prompt itself in the branches mode when none is chosen."""
        return () if self.node is None and self.mode == BRANCHES else self.node


# name in the link, how people call it, and the page's range (the sliders'): core's limits where core has them
NUMBERS: dict[str, tuple[str, str, float, float]] = {
    "depth": ("d", "depth", 1, MAX_DEPTH),
    "children": ("kids", "number of children listed", 2, 10),
    "width": ("w", "beam width", 1, MAX_BEAMS),
    "length_penalty": ("lp", "length penalty", 0.0, MAX_LENGTH_PENALTY),
    "samples": ("n", "number of samples", 1, MAX_SAMPLES),
    "temperature": ("t", "temperature", 0.0, 3.0),
    "top_k": ("k", "top-k", 0, 200),
    "top_p": ("p", "top-p", 0.01, 1.0),
    "min_p": ("minp", "min-p", 0.0, 1.0),
    "seed": ("seed", "seed", 0, 10**6),
}
# What each mode reads, in the page's order: a link carries only those, so it stays short and says what matters.
MODE_NUMBERS = {
    BRANCHES: ("depth", "children"),
    BEAMS: ("width", "depth", "length_penalty", "children"),
    SAMPLES: ("samples", "depth", "temperature", "top_k", "top_p", "min_p", "seed", "children"),
}


def _core_check(name: str, value: float) -> None:
    """Core's own sentence for a value it refuses (the same one the CLI gives)."""
    if name == "width":
        check_beam_search(value, 1, 0.0)
    elif name == "depth":
        check_beam_search(1, value, 0.0)
    elif name == "length_penalty":
        check_beam_search(1, 1, value)
    elif name == "samples":
        check_samples(value, 1)
    elif name in ("temperature", "top_p", "min_p"):
        SamplingSettings(**{name: value}).validate(10**9)


def _number(name: str, raw: str) -> tuple[float | None, str | None]:
    """The link's value for ``name``, or None and the sentence saying why it cannot be used."""
    _, label, low, high = NUMBERS[name]
    whole = isinstance(low, int)
    try:
        value: float = int(raw) if whole else float(raw)
    except ValueError:
        return None, f"The link's {label} {raw!r} is not {'a whole number' if whole else 'a number'}."
    try:
        _core_check(name, value)
    except LabError as exc:
        return None, str(exc)
    if math.isnan(value) or not low <= value <= high:
        return None, f"The link's {label} {raw} is outside this page's range ({low:g} to {high:g})."
    return value, None


def _written(value: float) -> str:
    """A number as a link writes it: whole numbers in full (``:g`` would write a seed of 10**6 as 1e+06)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def node_name(path: tuple[int, ...]) -> str:
    """A node as a link (and a chart's click) names it: its token ids, or ``root`` for the prompt."""
    return ",".join(map(str, path)) if path else ROOT


def parse_node(raw: str) -> tuple[tuple[int, ...] | None, str | None]:
    if raw == ROOT:
        return (), None
    try:
        return tuple(int(i) for i in raw.split(",")), None
    except ValueError:
        return None, f"The link's node {raw!r} is not a list of token ids."


def from_query(query: Mapping[str, str]) -> tuple[TreeSettings, list[str]]:
    """The settings a link holds, and a sentence for each value it held that could not be used."""
    default = TreeSettings()
    found: dict[str, Any] = {}
    warnings: list[str] = []
    if "prompt" in query:
        found["prompt"] = query["prompt"]  # any text: core refuses an unusable one when the tree grows
    if "chat" in query:
        if query["chat"] in ("0", "1"):
            found["chat"] = query["chat"] == "1"
        else:
            warnings.append(f"The link's chat {query['chat']!r} is neither 1 nor 0. The prompt is read as plain text.")
    if "mode" in query:
        if query["mode"] in MODES:
            found["mode"] = query["mode"]
        else:
            modes = ", ".join(MODES)
            warnings.append(f"The link's mode {query['mode']!r} is not one of {modes}. Showing {default.mode}.")
    for name, (key, _, _, _) in NUMBERS.items():
        if key in query:
            value, why = _number(name, query[key])
            if why:
                warnings.append(f"{why} Using {_written(getattr(default, name))} instead.")
            else:
                found[name] = value
    if "node" in query:
        node, why = parse_node(query["node"])
        if why:
            warnings.append(f"{why} The tree opens from the prompt.")
        else:
            found["node"] = node
    return replace(default, **found), warnings


def to_query(settings: TreeSettings) -> dict[str, str]:
    """The link of this view: the prompt, the mode and only the numbers that mode reads."""
    query = {"prompt": settings.prompt, "chat": "1" if settings.chat else "0", "mode": settings.mode}
    for name in MODE_NUMBERS[settings.mode]:
        query[NUMBERS[name][0]] = _written(getattr(settings, name))
    if settings.node is not None:
        query["node"] = node_name(settings.node)
    return query


SETTING_NAMES = tuple(f.name for f in fields(TreeSettings))


@dataclass(frozen=True)
class GrownTree:
    """What one model grew for the page: core's result, the greedy path, and the opened nodes' children.

    ``opened`` lists the children of the opened node and of every node above
    it, from the prompt down; ``node`` is the opened node that was reached
    (the one asked for, or its nearest ancestor in this tree).
    """

    model: str
    settings: TreeSettings
    greedy: Beam
    search: BeamSearch | None
    sampled: SampledTree | None
    opened: tuple[Expansion, ...]
    node: tuple[int, ...] | None

    @property
    def paths(self) -> tuple[tuple[int, ...], ...]:
        """The continuations the tree is made of (before any opened node's children)."""
        grown = self.search.beams if self.search else self.sampled.samples if self.sampled else ()
        return (self.greedy.ids, *(p.ids for p in grown))

    def to_json(self) -> dict[str, Any]:
        """Core's result as core writes it, with the opened nodes' children (and greedy's path, for samples)."""
        s = self.settings
        if self.search is not None:
            result = self.search.to_json()
        elif self.sampled is not None:
            result = {**self.sampled.to_json(), "greedy": self.greedy.to_json()}
        else:
            result = {"model": self.model, "depth": s.depth, "greedy": self.greedy.to_json()}
        return {
            "prompt": s.prompt,
            "chat": s.chat,
            "mode": s.mode,
            **result,
            "opened": [e.to_json() for e in self.opened],
        }


GROWN: ResultCache[Any] = ResultCache(capacity=64)


def _memo(lm: LoadedModel, what: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    return GROWN.get_or_compute((lm.key, *what), compute)


def _open(
    lm: LoadedModel, s: TreeSettings, paths: tuple[tuple[int, ...], ...]
) -> tuple[list[Expansion], tuple[int, ...] | None]:
    """The children of the opened node and of each node above it; stops where the path leaves the tree."""
    node = s.opened
    if node is None:
        return [], None
    prefixes = {p[:i] for p in paths for i in range(len(p) + 1)}
    opened: list[Expansion] = []
    for depth in range(len(node) + 1):
        opened.append(expand(lm, s.prompt, node[:depth], s.children, s.chat))  # memoised per prefix by core
        if depth == len(node):
            break
        listed = {c.id for c in opened[-1].children}
        if node[: depth + 1] not in prefixes and node[depth] not in listed:  # a node this tree does not hold
            return opened, node[:depth]
    return opened, node


def grow(lm: LoadedModel, s: TreeSettings) -> GrownTree:
    """Run core for ``s`` on ``lm``: the greedy path, the beams or the samples, the opened nodes' children.

    Raises core's ``LabError`` (an empty prompt, the context full, settings
    out of range) before anything is drawn.
    """
    what = (s.prompt, s.chat, s.depth)
    search = sampled = None
    if s.mode == BEAMS:
        search = _memo(
            lm,
            ("beams", *what, s.width, s.length_penalty),
            lambda: beam_search(lm, s.prompt, s.width, s.depth, s.length_penalty, s.chat),
        )
        greedy = search.greedy
    else:
        greedy = _memo(lm, ("greedy", *what), lambda: beam_search(lm, s.prompt, 1, s.depth, 0.0, s.chat)).greedy
    if s.mode == SAMPLES:
        sampling = s.sampling.validate(lm.vocab_size)
        sampled = _memo(
            lm,
            ("samples", *what, s.samples, sampling, s.seed),
            lambda: sample_tree(lm, s.prompt, s.samples, s.depth, sampling, s.seed, s.chat),
        )
    grown = GrownTree(lm.display_name, s, greedy, search, sampled, (), None)
    opened, node = _open(lm, s, grown.paths)
    return replace(grown, opened=tuple(opened), node=node)
