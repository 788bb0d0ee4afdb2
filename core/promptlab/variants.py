"""Prompt variants side by side: the same items, the same decoding and seed, different wordings.

A variant is what prompt engineering can change without touching the
model: a system message, an instruction template with ``{input}`` where
the item goes, ``k`` solved examples (drawn from the task's examples with
the run's seed, so two variants with the same ``k`` show the same ones) and
an answer-format hint after the question. Every variant's prompts are built
and checked before the first is asked, then each variant's items run as
batches (``core.promptlab.answers``) and are judged the same way: accuracy,
the mean probability of the expected answer (a miss by a hair shows), the
answer's length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from core.backends.base import Backend
from core.checks import whole
from core.distributions import SamplingSettings
from core.errors import InvalidInput
from core.json_records import JsonRecord
from core.promptlab.answers import Answered, Decoding, Prepared, Progress, answer_runs, prepare
from core.promptlab.task import INPUT, Task
from core.prompts import MAX_SHOTS, Example, pick_shots, with_shots

MAX_VARIANTS = 4
MAX_TEXT_CHARS = 4_000  # per system message, template or hint
NAMES = "ABCD"


@dataclass(frozen=True)
class PromptVariant(JsonRecord):
    """One way of asking: a system message, a template with ``{input}``, ``shots`` examples and a format hint."""

    name: str = "A"
    system: str = ""  # empty: no system message (the template's own default, if any, applies)
    template: str = INPUT  # the user's turn, with {input} where each item's text goes
    shots: int = 0  # solved examples before the question, as earlier turns
    hint: str = ""  # an answer-format hint after the question, e.g. "Answer with one word."

    def validate(self) -> PromptVariant:
        if INPUT not in self.template:
            raise InvalidInput(
                f"Variant {self.name}'s template has no {INPUT}: write {INPUT} where each item's text goes, "
                f"e.g. 'Review: {INPUT}'."
            )
        for what, text in (("system message", self.system), ("template", self.template), ("format hint", self.hint)):
            if len(text) > MAX_TEXT_CHARS:
                raise InvalidInput(
                    f"Variant {self.name}'s {what} has {len(text):,} characters; "
                    f"at most {MAX_TEXT_CHARS:,} are allowed."
                )
        whole(self.shots, f"Variant {self.name}'s number of examples", 0, MAX_SHOTS)
        return self

    def body(self, item: Example) -> Example:
        """The user's turn for ``item``: the template filled in, then the hint; the expected answer kept."""
        text = self.template.replace(INPUT, item.prompt)
        if self.hint.strip():
            text = f"{text}\n\n{self.hint.strip()}"
        return Example(text, item.completion, source=item.source)

    def ask(self, item: Example, shots: Sequence[Example], chat: bool) -> Example:
        """What the model reads for ``item``: the system message, each shot worded as the question is, the question."""
        context = (("system", self.system.strip()),) if self.system.strip() else ()
        question = dataclasses.replace(self.body(item), context=context)
        return with_shots(question, [self.body(shot) for shot in shots], chat)

    @property
    def title(self) -> str:
        """``A: 4 examples, system message, hint``: what a table's column says."""
        parts = [f"{self.shots} example{'' if self.shots == 1 else 's'}"]
        parts += ["system message"] if self.system.strip() else []
        parts += ["hint"] if self.hint.strip() else []
        return f"{self.name}: {', '.join(parts)}"


@dataclass(frozen=True)
class RunScore:
    """One run's figures over its items: accuracy (None: nothing to judge), mean P(expected), mean length."""

    accuracy: float | None
    p_expected: float | None
    mean_tokens: float


@dataclass(frozen=True)
class VariantAnswer:
    """One variant's answer to one item."""

    text: str
    correct: bool | None  # None where the item has no expected answer
    p_expected: float | None  # None there, and for an API (it does not score text it did not write)
    tokens: int


def judged(task: Task, answered: Sequence[Answered], normalised: bool) -> list[VariantAnswer]:
    """Each answer judged against its item (the task's items, in order)."""
    return [
        VariantAnswer(a.text, task.judge(item, a.text, normalised), a.p_expected, a.tokens)
        for item, a in zip(task.items, answered, strict=True)
    ]


def run_score(answers: Sequence[VariantAnswer]) -> RunScore:
    judged_ = [a.correct for a in answers if a.correct is not None]
    scored = [a.p_expected for a in answers if a.p_expected is not None]
    return RunScore(
        accuracy=sum(judged_) / len(judged_) if judged_ else None,
        p_expected=sum(scored) / len(scored) if scored else None,
        mean_tokens=sum(a.tokens for a in answers) / len(answers) if answers else 0.0,
    )


@dataclass(frozen=True)
class VariantsResult:
    """Every variant's answers to every item, ready for a table, a chart or an export."""

    task: str
    target: str
    variants: tuple[PromptVariant, ...]
    items: tuple[Example, ...]
    answers: tuple[tuple[VariantAnswer, ...], ...]  # answers[v][i]: variant v, item i
    asked: tuple[str, ...] = ()  # each variant's prompt for the first item, as the model reads it (local only)
    settings: dict[str, object] = field(default_factory=dict)

    def scores(self) -> list[RunScore]:
        return [run_score(answers) for answers in self.answers]

    def summary_rows(self) -> list[dict[str, object]]:
        return [
            {"variant": v.title, "accuracy": s.accuracy, "mean_p_expected": s.p_expected, "mean_tokens": s.mean_tokens}
            for v, s in zip(self.variants, self.scores(), strict=True)
        ]

    def table_rows(self) -> list[dict[str, object]]:
        """One flat row per (item, variant): what a CSV holds."""
        return [
            {"item": item.prompt, "expected": item.completion or None, "variant": v.name, **asdict(answers[i])}
            for i, item in enumerate(self.items)
            for v, answers in zip(self.variants, self.answers, strict=True)
        ]

    def to_json(self) -> dict[str, object]:
        return {
            "task": self.task,
            "target": self.target,
            "settings": self.settings,
            "variants": [{**v.to_json(), **asdict(s)} for v, s in zip(self.variants, self.scores(), strict=True)],
            "items": [
                {
                    "input": item.prompt,
                    "expected": item.completion or None,
                    "answers": {
                        v.name: asdict(answers[i]) for v, answers in zip(self.variants, self.answers, strict=True)
                    },
                }
                for i, item in enumerate(self.items)
            ],
        }


def check_variants(variants: Sequence[PromptVariant]) -> list[PromptVariant]:
    if not 1 <= len(variants) <= MAX_VARIANTS:
        raise InvalidInput(f"Compare 1 to {MAX_VARIANTS} prompt variants at a time; got {len(variants)}.")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise InvalidInput("Two variants have the same name: give each its own.")
    return [v.validate() for v in variants]


def run_variants(
    backend: Backend,
    task: Task,
    variants: Sequence[PromptVariant],
    settings: SamplingSettings | None = None,
    seed: int = 0,
    max_new_tokens: int | None = None,
    chat: bool | None = None,
    normalised: bool = True,
    on_progress: Progress | None = None,
) -> VariantsResult:
    """Ask every item with every variant, with the same decoding and seed; refuse bad input before any is asked."""
    decoding = Decoding.of(backend, task, settings, max_new_tokens, chat)
    decoding.check(backend)
    chat = decoding.chat
    variants = check_variants(variants)
    plans = []
    for v in variants:
        shots = pick_shots(task.examples, task.check_shots(v.shots, f"Variant {v.name}"), seed)
        plans.append(prepare(backend, [v.ask(item, shots, chat) for item in task.items], chat, f"Variant {v.name}"))
    answered = answer_runs(backend, plans, decoding, seed, on_progress)
    return VariantsResult(
        task=task.name,
        target=task.target,
        variants=tuple(variants),
        items=task.items,
        answers=tuple(tuple(judged(task, run, normalised)) for run in answered),
        asked=tuple(_read_text(backend, plan[0]) for plan in plans),
        settings={**asdict(decoding.settings), "seed": seed, "max_new_tokens": decoding.max_new_tokens, "chat": chat},
    )


def _read_text(backend: Backend, prepared: Prepared) -> str:
    """The text the model reads for one prompt (its template applied); for an API, the prompt it is sent."""
    lm = getattr(backend, "lm", None)
    if lm is None or not prepared.prompt_ids:
        return prepared.asked.prompt
    return lm.tokenizer.decode(list(prepared.prompt_ids))


def starting_variants(task: Task) -> tuple[PromptVariant, ...]:
    """Four variants to start from, each changing one thing more: as written, a hint, examples, a system message."""
    hint = task.suggested_hint() or "Answer briefly."
    template = task.default_template
    return (
        PromptVariant("A", template=template),
        PromptVariant("B", template=template, hint=hint),
        PromptVariant("C", template=template, shots=4, hint=hint),
        PromptVariant(
            "D",
            system="You answer with the expected answer only: no explanation.",
            template=template,
            shots=4,
            hint=hint,
        ),
    )
