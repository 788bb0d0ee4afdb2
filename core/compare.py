"""Zero-shot, few-shot and fine-tuned answers to the same prompts, side by side.

Was fine-tuning worth it, or would a better prompt have done? The fair test
asks every contender the same prompts with the same decoding settings and
the same seed, and judges the answers the same way:

* **zero-shot**: the base model, the prompt alone;
* **few-shot**: the base model with ``k`` solved examples from the training
  split put before the prompt (as earlier chat turns for an instruct model);
* one column per **adapter**: the base model with that LoRA switched on
  (views of one base model, see ``core.adapter_host``);
* optionally an **API model** (zero-shot; it cannot score a target).

Per answer: whether it hits the target, the mean log-likelihood of the
expected answer (how close the model was, even when it missed), its length
and the time it took.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

from core.backends.base import Backend
from core.datasets import Dataset
from core.distributions import SamplingSettings
from core.errors import InvalidInput
from core.prompts import Example, normalise, with_shots

ZERO_SHOT, FEW_SHOT = "zero_shot", "few_shot"
MAX_PROMPTS = 200


@dataclass(frozen=True)
class Contender:
    """One column: a name for tables, a title for people, the backend that answers and its shots."""

    name: str
    title: str
    backend: Backend
    shots: tuple[Example, ...] = ()


@dataclass(frozen=True)
class Answer:
    """One contender's answer to one prompt.

    ``correct`` is None where the prompt has no expected answer;
    ``target_logprob`` (nats per token of the expected answer) is None there
    and for an API, which does not score text it did not write;
    ``target_tokens`` is how many tokens that mean is over, so
    ``exp(target_logprob * target_tokens)`` is the probability of the whole
    expected answer (comparable between models whose tokens differ).
    """

    column: str
    text: str
    correct: bool | None
    target_logprob: float | None
    tokens: int
    seconds: float
    target_tokens: int | None = None


@dataclass(frozen=True)
class ComparedPrompt:
    prompt: str
    expected: str | None
    answers: tuple[Answer, ...]


@dataclass(frozen=True)
class ColumnSummary:
    """One column's figures over every prompt."""

    column: str
    title: str
    accuracy: float | None
    mean_target_logprob: float | None
    mean_tokens: float
    mean_seconds: float


@dataclass(frozen=True)
class Comparison:
    """A finished comparison, ready for a table, a chart or an export."""

    dataset: str
    target: str
    columns: tuple[tuple[str, str], ...]  # (name, title)
    rows: tuple[ComparedPrompt, ...]
    settings: dict[str, object] = field(default_factory=dict)

    def summaries(self) -> list[ColumnSummary]:
        out = []
        for index, (name, title) in enumerate(self.columns):
            answers = [row.answers[index] for row in self.rows]
            judged = [a.correct for a in answers if a.correct is not None]
            scored = [a.target_logprob for a in answers if a.target_logprob is not None]
            out.append(
                ColumnSummary(
                    column=name,
                    title=title,
                    accuracy=sum(judged) / len(judged) if judged else None,
                    mean_target_logprob=sum(scored) / len(scored) if scored else None,
                    mean_tokens=sum(a.tokens for a in answers) / len(answers) if answers else 0.0,
                    mean_seconds=sum(a.seconds for a in answers) / len(answers) if answers else 0.0,
                )
            )
        return out

    def accuracy(self) -> dict[str, float | None]:
        return {s.column: s.accuracy for s in self.summaries()}

    def table_rows(self) -> list[dict[str, object]]:
        """One flat row per (prompt, column): what a CSV holds."""
        titles = dict(self.columns)
        return [
            {"prompt": row.prompt, "expected": row.expected, "title": titles[a.column], **asdict(a)}
            for row in self.rows
            for a in row.answers
        ]

    def to_json(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "target": self.target,
            "settings": self.settings,
            "columns": [{"name": n, "title": t} for n, t in self.columns],
            "accuracy": self.accuracy(),
            "summary": [asdict(s) for s in self.summaries()],
            "rows": [
                {"prompt": r.prompt, "expected": r.expected, "answers": [asdict(a) for a in r.answers]}
                for r in self.rows
            ],
        }


def answer(
    contender: Contender,
    example: Example,
    dataset: Dataset | None,
    settings: SamplingSettings,
    seed: int,
    max_new_tokens: int,
    normalised: bool = True,
) -> Answer:
    """One contender's answer to ``example``, judged and timed; the expected answer scored where it can be."""
    backend = contender.backend
    asked = with_shots(example, contender.shots, chat=backend.reads_chat)
    began = time.perf_counter()
    reply = backend.reply(asked, settings, seed, max_new_tokens)
    seconds = time.perf_counter() - began
    expected = example.completion or None
    logprob, correct, target_tokens = None, None, None
    if expected is not None:
        logprobs = backend.expected_logprobs(asked)
        logprob = sum(logprobs) / len(logprobs) if logprobs else None
        target_tokens = len(logprobs) if logprobs else None
        correct = (
            dataset.judge(example, reply.text, normalised) if dataset else normalise(reply.text) == normalise(expected)
        )
    return Answer(contender.name, reply.text, correct, logprob, reply.tokens, seconds, target_tokens)


def contenders(
    base: Backend,
    adapters: Sequence[tuple[str, Backend]] = (),
    shots: Sequence[Example] = (),
    api: Backend | None = None,
) -> list[Contender]:
    """The columns: zero-shot, few-shot (when there are shots), each (label, adapter view), then the API model."""
    out = [Contender(ZERO_SHOT, "Zero-shot", base)]
    if shots:
        out.append(Contender(FEW_SHOT, f"Few-shot ({len(shots)} examples)", base, tuple(shots)))
    out += [Contender(label, f"Fine-tuned: {label}", view) for label, view in adapters]
    if api is not None:
        out.append(Contender(f"api:{api.label}", f"API: {api.label}", api))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise InvalidInput("Two columns would have the same name: choose each adapter once.")
    return out


def compare_rows(
    columns: Sequence[Contender],
    examples: Sequence[Example],
    dataset: Dataset | None,
    settings: SamplingSettings,
    seed: int = 0,
    max_new_tokens: int = 32,
    normalised: bool = True,
) -> Iterator[ComparedPrompt]:
    """Answer every example with every contender, one prompt at a time (a page shows progress)."""
    if not examples:
        raise InvalidInput("There are no prompts to compare: pick some from the dataset or type one per line.")
    if len(examples) > MAX_PROMPTS:
        raise InvalidInput(f"Compare at most {MAX_PROMPTS} prompts at a time; got {len(examples)}.")
    for example in examples:
        answers = tuple(answer(c, example, dataset, settings, seed, max_new_tokens, normalised) for c in columns)
        yield ComparedPrompt(example.prompt, example.completion or None, answers)


def run_comparison(
    columns: Sequence[Contender],
    examples: Sequence[Example],
    dataset: Dataset | None,
    settings: SamplingSettings | None = None,
    seed: int = 0,
    max_new_tokens: int = 32,
    normalised: bool = True,
    on_row: Callable[[ComparedPrompt], None] | None = None,
) -> Comparison:
    """Answer every example with every contender; ``on_row`` hears of each prompt as it is done."""
    settings = settings or SamplingSettings(temperature=0)
    rows = []
    for row in compare_rows(columns, examples, dataset, settings, seed, max_new_tokens, normalised):
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return Comparison(
        dataset=dataset.name if dataset else "typed prompts",
        target=dataset.target if dataset else "the answer matches the expected text",
        columns=tuple((c.name, c.title) for c in columns),
        rows=tuple(rows),
        settings={**asdict(settings), "seed": seed, "max_new_tokens": max_new_tokens, "normalised": normalised},
    )
