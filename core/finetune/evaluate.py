"""Did fine-tuning change what the model *says*? Greedy answers judged against a dataset's target.

The loss says the model got better at the completions; this says whether its
own answers now hit the target (the exact label, pirate words, the persona's
name). Prompts are encoded exactly as in training, answers are greedy, so
the same model and adapter always give the same report.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.distributions import SamplingSettings
from core.finetune.datasets import Example, FinetuneDataset
from core.finetune.formatting import prompt_ids
from core.generation import generate
from core.models import LoadedModel


@dataclass(frozen=True)
class TargetSample:
    prompt: str
    expected: str
    answer: str
    hit: bool


@dataclass(frozen=True)
class TargetReport:
    """How many greedy answers hit the dataset's target."""

    model: str
    target: str
    samples: tuple[TargetSample, ...]

    @property
    def hits(self) -> int:
        return sum(s.hit for s in self.samples)

    @property
    def accuracy(self) -> float:
        return self.hits / len(self.samples) if self.samples else 0.0


def greedy_answer(lm: LoadedModel, example: Example, max_new_tokens: int) -> str:
    """The model's most likely answer to ``example``'s prompt, special tokens removed."""
    ids = prompt_ids(lm.tokenizer, example)
    steps = generate(lm, ids, max_new_tokens, SamplingSettings(temperature=0), alternatives=1)
    return lm.tokenizer.decode([s.chosen.id for s in steps], skip_special_tokens=True).strip()


def target_report(
    lm: LoadedModel, dataset: FinetuneDataset, examples: tuple[Example, ...] | None = None
) -> TargetReport:
    """Judge greedy answers to ``examples`` (default: the eval split) against the dataset's target."""
    samples = []
    for example in dataset.eval if examples is None else examples:
        answer = greedy_answer(lm, example, dataset.max_new_tokens)
        samples.append(TargetSample(example.prompt, example.completion, answer, dataset.hit(example, answer)))
    return TargetReport(lm.display_name, dataset.target, tuple(samples))
