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

import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch

from core.backends.base import Backend
from core.distributions import SamplingSettings
from core.errors import InvalidInput
from core.finetune.datasets import Example, FinetuneDataset
from core.finetune.formatting import completion_ids, has_chat_template, prompt_ids
from core.generation import generate
from core.models import LoadedModel
from core.tokens import check_fits

ZERO_SHOT, FEW_SHOT = "zero_shot", "few_shot"
MAX_SHOTS = 16
MAX_PROMPTS = 200


@dataclass(frozen=True)
class Contender:
    """One column: a name for tables, a title for people, and what answers."""

    name: str
    title: str
    lm: LoadedModel | None = None
    backend: Backend | None = None
    shots: tuple[Example, ...] = ()


@dataclass(frozen=True)
class Answer:
    """One contender's answer to one prompt.

    ``correct`` is None where the prompt has no expected answer;
    ``target_logprob`` (nats per token of the expected answer) is None there
    and for an API, which does not score text it did not write.
    """

    column: str
    text: str
    correct: bool | None
    target_logprob: float | None
    tokens: int
    seconds: float


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


def normalise(text: str) -> str:
    """Case, punctuation and spacing folded away: ``"Positive."`` matches ``"positive"``."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def is_correct(dataset: FinetuneDataset, example: Example, answer: str, normalised: bool) -> bool:
    """The dataset's own check, with normalised matching where that check is an exact match."""
    if normalised and dataset.judges_exact:
        return normalise(answer) == normalise(example.completion)
    return dataset.hit(example, answer)


def pick_shots(dataset: FinetuneDataset, k: int, seed: int) -> tuple[Example, ...]:
    """``k`` training examples, the same ones for every prompt (a random draw from ``seed``).

    Where the completions are labels (a few values repeated, as in sentiment),
    the draw takes each label in turn: four shots that all say "positive"
    would teach the model to say "positive", not to classify.
    """
    if not isinstance(k, int) or not 0 <= k <= MAX_SHOTS:
        raise InvalidInput(f"The number of few-shot examples must be between 0 and {MAX_SHOTS}; got {k!r}.")
    if k > len(dataset.train):
        raise InvalidInput(f"The training split has only {len(dataset.train)} examples; ask for at most that many.")
    rng = random.Random(seed)
    pool = rng.sample(list(dataset.train), len(dataset.train))
    by_label: dict[str, list[Example]] = {}
    for example in pool:
        by_label.setdefault(normalise(example.completion), []).append(example)
    if len(by_label) > len(pool) // 2:  # free text, not labels
        return tuple(pool[:k])
    labels = list(by_label)
    rng.shuffle(labels)
    shots = []
    while len(shots) < k:
        for label in labels:
            if by_label[label] and len(shots) < k:
                shots.append(by_label[label].pop())
    return tuple(shots)


def few_shot_example(example: Example, shots: Sequence[Example]) -> Example:
    """``example`` with solved ``shots`` before it, as earlier chat turns.

    For a model without a chat template ``prompt_ids`` reads ``prompt`` as
    plain text, so the shots go into the text as prompt/answer blocks.
    """
    turns: list[tuple[str, str]] = []
    for shot in shots:
        turns += [*shot.context, ("user", shot.prompt), ("assistant", shot.completion)]
    return Example(example.prompt, example.completion, (*turns, *example.context))


def _plain_few_shot(example: Example, shots: Sequence[Example]) -> Example:
    blocks = [f"{s.prompt}\n{s.completion}" for s in shots]
    return Example("\n\n".join([*blocks, example.prompt]) + "\n", example.completion)


def contender_prompt(lm: LoadedModel, example: Example, shots: Sequence[Example]) -> list[int]:
    """The ids ``lm`` reads before answering ``example``, shots included."""
    if not shots:
        return prompt_ids(lm.tokenizer, example)
    if has_chat_template(lm.tokenizer):
        return prompt_ids(lm.tokenizer, few_shot_example(example, shots))
    return prompt_ids(lm.tokenizer, _plain_few_shot(example, shots))


def target_logprob(lm: LoadedModel, prompt: list[int], target: list[int]) -> float:
    """Mean log-probability (nats per token) of ``target`` right after ``prompt``, in one pass."""
    ids = prompt + target
    check_fits(lm, len(ids))
    logits, _ = lm.forward(ids)
    logprobs = torch.log_softmax(logits[len(prompt) - 1 : -1].double(), dim=-1)
    picked = logprobs[torch.arange(len(target)), torch.tensor(target)]
    return float(picked.mean())


def _answer_local(
    contender: Contender, example: Example, settings: SamplingSettings, seed: int, max_new_tokens: int
) -> tuple[str, int, list[int]]:
    lm = contender.lm
    assert lm is not None
    ids = contender_prompt(lm, example, contender.shots)
    steps = list(generate(lm, ids, max_new_tokens, settings, seed=seed, alternatives=1))
    text = lm.tokenizer.decode([s.chosen.id for s in steps], skip_special_tokens=True).strip()
    return text, len(steps), ids


def _answer_api(
    contender: Contender, example: Example, settings: SamplingSettings, seed: int, max_new_tokens: int
) -> tuple[str, int]:
    assert contender.backend is not None
    steps = list(contender.backend.generate_steps(example.prompt, True, max_new_tokens, settings, seed, 1))
    finished = steps[-1].finished if steps else False
    kept = steps[:-1] if finished and steps else steps  # the end-of-turn token is not part of the answer
    return "".join(s.chosen.token for s in kept).strip(), len(steps)


def answer(
    contender: Contender,
    example: Example,
    dataset: FinetuneDataset | None,
    settings: SamplingSettings,
    seed: int,
    max_new_tokens: int,
    normalised: bool = True,
) -> Answer:
    """One contender's answer to ``example``, judged and timed."""
    began = time.perf_counter()
    expected = example.completion or None
    logprob = None
    if contender.lm is not None:
        text, tokens, ids = _answer_local(contender, example, settings, seed, max_new_tokens)
        seconds = time.perf_counter() - began
        if expected is not None:
            logprob = target_logprob(contender.lm, ids, completion_ids(contender.lm.tokenizer, example))
    else:
        text, tokens = _answer_api(contender, example, settings, seed, max_new_tokens)
        seconds = time.perf_counter() - began
    correct = None
    if expected is not None:
        correct = is_correct(dataset, example, text, normalised) if dataset else normalise(text) == normalise(expected)
    return Answer(contender.name, text, correct, logprob, tokens, seconds)


def contenders(
    base: LoadedModel,
    adapters: Sequence[LoadedModel] = (),
    shots: Sequence[Example] = (),
    api: Backend | None = None,
) -> list[Contender]:
    """The columns: zero-shot, few-shot (when there are shots), each adapter, then the API model."""
    out = [Contender(ZERO_SHOT, "Zero-shot", lm=base)]
    if shots:
        out.append(Contender(FEW_SHOT, f"Few-shot ({len(shots)} examples)", lm=base, shots=tuple(shots)))
    for view in adapters:
        label = view.adapter.label if view.adapter else view.display_name
        out.append(Contender(label, f"Fine-tuned: {label}", lm=view))
    if api is not None:
        out.append(Contender(f"api:{api.label}", f"API: {api.label}", backend=api))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise InvalidInput("Two columns would have the same name: choose each adapter once.")
    return out


def compare_rows(
    columns: Sequence[Contender],
    examples: Sequence[Example],
    dataset: FinetuneDataset | None,
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
    dataset: FinetuneDataset | None,
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


def typed_examples(text: str) -> list[Example]:
    """Prompts typed one per line; ``prompt => expected`` adds an expected answer."""
    examples = []
    for line in text.splitlines():
        prompt, _, expected = line.partition("=>")
        if prompt.strip():
            examples.append(Example(prompt.strip(), expected.strip()))
    return examples
