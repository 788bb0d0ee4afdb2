"""The shot curve: accuracy and P(expected) against the number of examples in the prompt.

In-context learning, measured: one variant (its system message, template and
hint) asks the task's items with ``k = 0, 1, 2, 4, 8`` solved examples
before each question. The ``k`` examples are drawn once per ``k`` with the
seed (``pick_shots``: the labels taken in turn, and the first ``k`` of a
larger draw, so a curve adds examples rather than swapping them), then shown
in up to ``orders`` different orders: the first as drawn, the others random
permutations, all distinct (fewer when ``k!`` is smaller). Each point is the
mean over the orders, with their minimum and maximum: how much the order
alone moves the model.

With ``random_labels`` a second curve shows the same examples in the same
orders with each answer replaced by one drawn at random from the examples'
answers (for sentiment: positive or negative, right about half the time by
chance). If accuracy holds up, the model read the format of the examples,
not their labels.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from core.backends.base import Backend
from core.checks import whole
from core.distributions import SamplingSettings
from core.errors import InvalidInput
from core.json_records import JsonRecord
from core.promptlab.answers import Decoding, Progress, answer_runs, prepare
from core.promptlab.task import Task
from core.promptlab.variants import PromptVariant, RunScore, judged, run_score
from core.prompts import Example, pick_shots

MAX_ORDERS = 10
GOLD, RANDOM = "gold", "random_labels"


@dataclass(frozen=True)
class ShotRun:
    """One (curve, k, order): the examples' order as indices into the draw, and the run's figures."""

    curve: str  # GOLD or RANDOM
    shots: int
    order: tuple[int, ...]
    score: RunScore


@dataclass(frozen=True)
class ShotPoint(JsonRecord):
    """One ``k`` of a curve: means over the orders, with their minimum and maximum."""

    shots: int
    accuracy: float | None
    accuracy_min: float | None
    accuracy_max: float | None
    p_expected: float | None
    p_expected_min: float | None
    p_expected_max: float | None
    orders: int


@dataclass(frozen=True)
class ShotCurve:
    """A measured shot curve (and its random-labels twin, if asked for), with every run behind it."""

    task: str
    model: str  # the backend's label: the model, its adapter, where it runs
    variant: PromptVariant
    items: int
    seed: int
    orders: int
    points: tuple[ShotPoint, ...]
    random_labels: tuple[ShotPoint, ...] | None
    runs: tuple[ShotRun, ...]
    settings: dict[str, object] = field(default_factory=dict)

    def run_rows(self) -> list[dict[str, object]]:
        """One flat row per run: what a CSV holds."""
        return [
            {"curve": r.curve, "shots": r.shots, "order": " ".join(map(str, r.order)), **asdict(r.score)}
            for r in self.runs
        ]

    def to_json(self) -> dict[str, object]:
        return {
            "task": self.task,
            "model": self.model,
            "variant": self.variant.to_json(),
            "items": self.items,
            "seed": self.seed,
            "orders": self.orders,
            "settings": self.settings,
            "points": [p.to_json() for p in self.points],
            **({} if self.random_labels is None else {"random_labels": [p.to_json() for p in self.random_labels]}),
            "runs": self.run_rows(),
        }


def orderings(k: int, orders: int, seed: int) -> list[tuple[int, ...]]:
    """Up to ``orders`` distinct orders of ``k`` examples: as drawn first, then seeded random permutations."""
    identity = tuple(range(k))
    if math.factorial(k) <= orders:
        return list(itertools.permutations(identity))  # every order there is; the identity comes first
    rng = random.Random(f"orders:{seed}:{k}")
    found = [identity]
    while len(found) < orders:
        order = tuple(rng.sample(identity, k))
        if order not in found:
            found.append(order)
    return found


def with_random_labels(shots: Sequence[Example], labels: Sequence[str], seed: int) -> tuple[Example, ...]:
    """``shots`` with each answer replaced by one of ``labels`` drawn at random (seeded); prompts untouched."""
    rng = random.Random(f"random-labels:{seed}:{len(shots)}")
    return tuple(dataclasses.replace(shot, completion=rng.choice(list(labels))) for shot in shots)


def check_shot_counts(shots: Sequence[int], task: Task) -> list[int]:
    """The distinct numbers of examples, smallest first; each one the task can show and ``pick_shots`` accepts."""
    if not shots:
        raise InvalidInput("Give at least one number of examples for the shot curve, e.g. 0 1 2 4 8.")
    for k in shots:
        pick_shots(task.examples, task.check_shots(k, "The shot curve"), 0)  # a count out of range is refused
    return sorted(set(shots))


def _point(k: int, scores: Sequence[RunScore]) -> ShotPoint:
    def spread(values: list[float | None]) -> tuple[float | None, float | None, float | None]:
        known = [v for v in values if v is not None]
        return (sum(known) / len(known), min(known), max(known)) if known else (None, None, None)

    accuracy = spread([s.accuracy for s in scores])
    p = spread([s.p_expected for s in scores])
    return ShotPoint(k, *accuracy, *p, orders=len(scores))


def shot_curve(
    backend: Backend,
    task: Task,
    shots: Sequence[int] = (0, 1, 2, 4, 8),
    orders: int = 3,
    seed: int = 0,
    random_labels: bool = False,
    variant: PromptVariant | None = None,
    settings: SamplingSettings | None = None,
    max_new_tokens: int | None = None,
    chat: bool | None = None,
    normalised: bool = True,
    on_progress: Progress | None = None,
) -> ShotCurve:
    """Measure the curve; every prompt of every run is built and checked before the first is asked."""
    decoding = Decoding.of(backend, task, settings, max_new_tokens, chat)
    chat = decoding.chat
    variant = (variant or PromptVariant(template=task.default_template)).validate()
    ks = check_shot_counts(shots, task)
    whole(orders, "The number of orders", 1, MAX_ORDERS)
    decoding.check(backend)
    if not any(item.completion for item in task.items):
        raise InvalidInput("The shot curve needs items with expected answers: type them as 'input => expected'.")
    plans = []
    for k in ks:
        drawn = pick_shots(task.examples, k, seed)
        curves = [(GOLD, drawn)] + (
            [(RANDOM, with_random_labels(drawn, task.labels, seed))] if random_labels and k else []
        )
        for curve, examples in curves:
            for order in orderings(k, orders, seed):
                shown = [examples[j] for j in order]
                label = f"Variant {variant.name} with {k} example{'' if k == 1 else 's'}"
                asked = [variant.ask(item, shown, chat) for item in task.items]
                plans.append((curve, k, order, prepare(backend, asked, chat, label)))
    answers = answer_runs(backend, [prepared for *_, prepared in plans], decoding, seed, on_progress)
    runs = [
        ShotRun(curve, k, order, run_score(judged(task, answered, normalised)))
        for (curve, k, order, _), answered in zip(plans, answers, strict=True)
    ]

    def points(curve: str) -> tuple[ShotPoint, ...]:
        # k = 0 shows no examples, so it has no labels to randomise: the random-labels curve starts at the same point
        return tuple(_point(k, [r.score for r in runs if r.shots == k and (r.curve == curve or k == 0)]) for k in ks)

    return ShotCurve(
        task=task.name,
        model=backend.label,
        variant=dataclasses.replace(variant, shots=0),
        items=len(task.items),
        seed=seed,
        orders=orders,
        points=points(GOLD),
        random_labels=points(RANDOM) if random_labels else None,
        runs=tuple(runs),
        settings={**asdict(decoding.settings), "max_new_tokens": decoding.max_new_tokens, "chat": chat},
    )
