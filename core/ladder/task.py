"""One task across model sizes: whether an ability "emerges" depends partly on how it is scored.

The same held-out items of a built-in task go to every model available — a
ladder's rungs, the embedded SmolLM2-135M, any model a teacher adds — with
the same greedy decoding, through the same code as the Compare page
(``core.compare``: ``Contender``, ``run_comparison``, and the backend's
``expected_logprobs``). Two scores per model:

* **accuracy**: the share of items whose generated answer hits the target.
  All or nothing per item, it sits at 0 for every small model and then jumps;
* **P(expected)**: the probability the model gives the whole expected answer
  (its end-of-answer token included), averaged over the items. It climbs
  smoothly with size, from far below 1 % for a rung that never saw a task,
  long before any answer is exactly right (Schaeffer et al. 2023, "Are
  Emergent Abilities of Large Language Models a Mirage?").

Models are loaded one at a time (``SizedModel.load``), so a big one added by
the teacher is not held in memory beside the others. A model that cannot
take the items (a context too short for the prompts) is reported as such,
not dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.backends.local import LocalBackend
from core.compare import Contender, run_comparison
from core.datasets import Dataset
from core.distributions import SamplingSettings
from core.errors import InvalidInput, LabError
from core.models import LoadedModel

MAX_ITEMS = 50


@dataclass(frozen=True)
class SizedModel:
    """A model to put on the task: a short name, a title for charts, what it is, and how to load it."""

    name: str
    title: str
    kind: str  # "rung", "embedded" or "added"
    load: Callable[[], LoadedModel]


@dataclass(frozen=True)
class ItemAnswer:
    """One model's answer to one item: its text, whether it hit, the probability of the expected answer."""

    text: str
    correct: bool
    p_expected: float | None


@dataclass(frozen=True)
class SizeScore:
    """One model on the task. ``error`` says why a model could not take it (then the scores are None)."""

    name: str
    title: str
    kind: str
    parameters: int | None
    accuracy: float | None
    p_expected: float | None  # mean over items of P(whole expected answer)
    answers: tuple[ItemAnswer, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class TaskAcrossSizes:
    """The task, its items, and every model's scores, smallest model first."""

    dataset: str
    target: str
    prompts: tuple[str, ...]
    expected: tuple[str, ...]
    scores: tuple[SizeScore, ...]


def _probability(logprob: float | None, tokens: int | None) -> float | None:
    """The whole answer's probability from its mean log-probability per token and its length."""
    return None if logprob is None or not tokens else math.exp(logprob * tokens)


def score_model(model: SizedModel, dataset: Dataset, n_items: int, seed: int = 0) -> SizeScore:
    """``model``'s accuracy and mean P(expected) on the first ``n_items`` held-out items, greedily decoded."""
    examples = list(dataset.eval[:n_items])
    try:
        lm = model.load()
        contender = Contender(model.name, model.title, LocalBackend(lm))
        comparison = run_comparison(
            [contender], examples, dataset, SamplingSettings(temperature=0), seed, dataset.max_new_tokens
        )
    except LabError as exc:
        return SizeScore(model.name, model.title, model.kind, None, None, None, error=str(exc))
    answers = tuple(
        ItemAnswer(a.text, bool(a.correct), _probability(a.target_logprob, a.target_tokens))
        for a in (row.answers[0] for row in comparison.rows)
    )
    scored = [a.p_expected for a in answers if a.p_expected is not None]
    return SizeScore(
        model.name,
        model.title,
        model.kind,
        lm.n_parameters,
        comparison.summaries()[0].accuracy,
        sum(scored) / len(scored) if scored else None,
        answers,
    )


def score_across_sizes(
    models: Sequence[SizedModel],
    dataset: Dataset,
    n_items: int,
    seed: int = 0,
    on_model: Callable[[SizeScore], None] | None = None,
) -> TaskAcrossSizes:
    """Put every model on the same items; ``on_model`` hears of each as it is done (a page shows progress)."""
    if not models:
        raise InvalidInput("There is no model to put on the task: choose a ladder or add a model.")
    if not isinstance(n_items, int) or not 1 <= n_items <= min(MAX_ITEMS, len(dataset.eval)):
        raise InvalidInput(
            f"The number of items must be from 1 to {min(MAX_ITEMS, len(dataset.eval))} "
            f"(the held-out items of {dataset.name}); got {n_items!r}."
        )
    scores = []
    for model in models:
        score = score_model(model, dataset, n_items, seed)
        scores.append(score)
        if on_model is not None:
            on_model(score)
    examples = dataset.eval[:n_items]
    return TaskAcrossSizes(
        dataset=dataset.name,
        target=dataset.target,
        prompts=tuple(e.prompt for e in examples),
        expected=tuple(e.completion for e in examples),
        scores=tuple(sorted(scores, key=lambda s: s.parameters or 0)),
    )
