"""What the prompt lab asks: a task's items, the examples it may show, and how an answer is judged.

A task comes from a dataset (built-in or uploaded: items from its held-out
split, examples from its training split, as compare does) or from lines
typed as ``input => expected``. Where every prompt opens with the same words
(the built-in sentiment task's "Classify the sentiment of this review as
positive or negative.\\n\\nReview: "), that opening becomes the default
template's instruction and each item keeps only the rest as its input, so a
variant can reword the instruction instead of wrapping a second one around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from core.datasets import Dataset, typed_items
from core.errors import InvalidInput
from core.prompts import MAX_SHOTS, Example, normalise, shared_opening

INPUT = "{input}"  # where a variant's template puts an item's text
MAX_ITEMS = 200
MAX_LABELS = 6  # at most this many distinct answers make the answers labels (sentiment's two)
TYPED_MAX_NEW_TOKENS = 32


@dataclass(frozen=True)
class Task:
    """Items to ask (each an input and its expected answer), the examples shots are drawn from, and a judge.

    ``instruction`` is the opening every prompt shared, cut off the items and
    examples (empty when they share none): ``default_template`` puts it back.
    """

    name: str
    items: tuple[Example, ...]
    examples: tuple[Example, ...]
    instruction: str = ""
    dataset: Dataset | None = None

    @property
    def default_template(self) -> str:
        """The template that asks each item exactly as the dataset wrote it."""
        return self.instruction + INPUT

    @property
    def target(self) -> str:
        return self.dataset.target if self.dataset else "the answer matches the expected text"

    @property
    def max_new_tokens(self) -> int:
        return self.dataset.max_new_tokens if self.dataset else TYPED_MAX_NEW_TOKENS

    @property
    def labels(self) -> tuple[str, ...]:
        """The examples' distinct answers, in order of first appearance (what random labels draw from)."""
        return tuple(dict.fromkeys(e.completion for e in self.examples if e.completion))

    def suggested_hint(self) -> str:
        """An answer-format hint that names the labels, where the answers are a few labels; else empty."""
        labels = tuple(dict.fromkeys(normalise(label) for label in self.labels))
        if not 2 <= len(labels) <= MAX_LABELS or len(labels) > len(self.examples) // 2:
            return ""
        return f"Answer with one word: {' or '.join(labels)}."

    def check_shots(self, k: int, who: str) -> int:
        """``k`` if the task has that many examples to show; ``who`` ("Variant B") asked for them."""
        if isinstance(k, int) and len(self.examples) < k <= MAX_SHOTS:  # beyond MAX_SHOTS: pick_shots says so
            where = "to show" if self.dataset is None else "in its training split"
            raise InvalidInput(
                f"{who} asks for {k} examples, but the task has only {len(self.examples)} {where}: "
                f"ask for at most {len(self.examples)}, or add examples."
            )
        return k

    def judge(self, item: Example, answer: str, normalised: bool = True) -> bool | None:
        """Whether ``answer`` hits ``item``'s target; None where the item has no expected answer."""
        if not item.completion:
            return None
        if self.dataset is not None:
            return self.dataset.judge(item, answer, normalised)
        return normalise(answer) == normalise(item.completion) if normalised else answer.strip() == item.completion


def _strip(examples: Sequence[Example], opening: str) -> tuple[Example, ...]:
    return tuple(replace(e, prompt=e.prompt[len(opening) :]) for e in examples)


def make_task(name: str, items: Sequence[Example], examples: Sequence[Example], dataset: Dataset | None = None) -> Task:
    """A task, refused with a sentence when there is nothing to ask; the shared opening becomes the instruction."""
    if not items:
        raise InvalidInput(
            "The task has no items to ask: choose a dataset, upload a file, or type one item per line "
            "as 'input => expected'."
        )
    if len(items) > MAX_ITEMS:
        raise InvalidInput(f"Ask at most {MAX_ITEMS} items at a time; got {len(items)}.")
    if any(not e.completion for e in examples):
        where = next(e.source or e.prompt[:40] for e in examples if not e.completion)
        raise InvalidInput(f"Example {where} has no answer: write each example as 'input => answer'.")
    opening = shared_opening([e.prompt for e in (*items, *examples)])
    if any(len(e.prompt) == len(opening) for e in (*items, *examples)):
        opening = ""  # an item that is all instruction would have no input left
    return Task(name, _strip(items, opening), _strip(examples, opening), opening, dataset)


def task_from_dataset(dataset: Dataset, limit: int | None = None) -> Task:
    """The held-out split's first ``limit`` items (all when None), with the training split as examples."""
    items = dataset.eval[:limit] if limit else dataset.eval
    return make_task(dataset.name, items, dataset.train, dataset)


def typed_task(items_text: str, examples_text: str = "") -> Task:
    """Items and examples typed one per line as ``input => expected`` (an item's answer may be left out)."""
    return make_task("typed items", typed_items(items_text), typed_items(examples_text))
