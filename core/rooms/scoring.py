"""The model's side of a round: each guess read the way the model would write it, and how likely it was.

For a round's prompt and the class's guesses this module builds the reveal:
the class's histogram (guesses grouped by ``bucket_key``), the model's
probability for each bucket, the model's own top tokens, and the share of
the class that agreed with the model's first choice.

How a guess is scored
    A guess is first written the way the model would write it after the
    prompt (``model_surface``: usually with a leading space, " cold") and
    tokenized on its own, without special tokens, so typing "<|im_end|>"
    means those characters, not the end-of-turn token. Its probability is
    that of the model producing exactly those tokens next: the product of
    the token probabilities. A one-token guess is read straight off the
    next-token distribution (the number the explorer shows, from the same
    memoised pass); the guesses of several tokens are read together, one
    batch of passes continuing the prompt's kept cache
    (``core.probe.continuation_logprobs``), whose rows give the
    log-probability of each of their tokens in turn. The tokens are listed
    so a page can show that "ice cream" is " ice" + " cream".

Casing
    The class groups by case-folded text, but " Cold" and " cold" are
    different tokens to the model, and phones capitalise the first letter
    of whatever is typed. So the model's reading of a bucket is the most
    probable of its spellings: those the students typed, plus the
    all-lower-case and first-letter-capitalised forms. That is the spelling
    the model would itself choose, and its probability is the bucket's
    ``model_prob``; every student in the bucket is shown that number. The
    probability of each spelling typed is kept in ``variants``. (A sum over
    spellings would make a bucket's number grow with the number of ways
    students happened to type it.)

Agreement
    The model's top token is bucketed the same way (" Paris" → "paris"); a
    student agrees with the model when their bucket equals it. A multi-token
    guess such as "ice cream" never equals a single top token (" ice"): the
    model's first choice is one token, and the class is compared with that.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.distributions import next_token_distribution
from core.json_records import JsonRecord, json_name
from core.models import LoadedModel
from core.probe import continuation_logprobs
from core.rooms.guesses import bucket_key, model_surface, typed_form
from core.rooms.store import GuessRecord, RoundRecord
from core.tokens import token_text

TOP_K = 10


@dataclass(frozen=True)
class GuessReading(JsonRecord):
    """A text as the model would write it next: its tokens and the probability of all of them in a row."""

    json_derived = ("prob",)

    typed: str  # the typed form ("Cold")
    surface: str  # what the model would write (" Cold")
    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    logprob: float  # natural log of ``prob``

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)

    @property
    def multi_token(self) -> bool:
        return len(self.token_ids) > 1


@dataclass(frozen=True)
class BucketResult(JsonRecord):
    """One bar of the class's histogram, beside the model's probability for the same word.

    ``model_prob`` is that of ``reading``, the spelling the model prefers
    (see the module's note on casing); ``variants`` are the spellings the
    students typed, each with its count and the model's reading of it.
    """

    key: str
    label: str  # the spelling typed most often (on a tie, the one the model finds more likely)
    count: int
    share: float  # of the students who answered this round
    reading: GuessReading
    variants: tuple[tuple[GuessReading, int], ...]
    matches_model: bool  # this is the model's top token

    @property
    def model_prob(self) -> float:
        return self.reading.prob

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "token": self.label,
            "count": self.count,
            "share": self.share,
            "model_prob": self.model_prob,
            "model_text": self.reading.surface,
            "tokens": list(self.reading.tokens),
            "token_ids": list(self.reading.token_ids),
            "multi_token": self.reading.multi_token,
            "matches_model": self.matches_model,
            "variants": [{"text": v.typed, "count": n, "model_prob": v.prob} for v, n in self.variants],
        }


@dataclass(frozen=True)
class StudentResult(JsonRecord):
    """One student's guess after the reveal: name and guess as typed, and the model's probability for it."""

    name: str
    guess: str
    key: str
    model_prob: float
    agreed: bool  # the guess is the model's top token


@dataclass(frozen=True)
class ModelChoice(JsonRecord):
    """One of the model's most likely next tokens, with how many students guessed the same word."""

    token: str
    id: int
    prob: float
    key: str
    class_count: int


@dataclass(frozen=True)
class Reveal(JsonRecord):
    """A round's result: the class's histogram beside the model's probabilities, and who said what.

    ``buckets`` are ordered most guessed first (then the bucket guessed
    earliest, then alphabetically), so ``buckets[0]`` is the class's
    favourite. ``agreement`` is the share of the students who answered whose
    guess is the model's top token (0 when no one answered).
    """

    room: str
    round: int
    prompt_text: str = field(metadata=json_name("prompt"))
    revealed: bool
    model: str
    answers: int = field(metadata=json_name("students"))  # how many answered
    buckets: tuple[BucketResult, ...] = field(metadata=json_name("guesses"))
    students: tuple[StudentResult, ...] = field(metadata=json_name("answers"))  # who answered what
    model_top: tuple[ModelChoice, ...]
    agreement: float

    @property
    def favourite(self) -> BucketResult | None:
        return self.buckets[0] if self.buckets else None

    @property
    def model_choice(self) -> ModelChoice:
        return self.model_top[0]

    def bucket_for(self, guess: str) -> BucketResult | None:
        """The bucket a guess falls in (a phone uses it to show its own result)."""
        key = bucket_key(guess)
        return next((b for b in self.buckets if b.key == key), None)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "favourite": self.favourite.label if self.favourite else None}


def guess_ids(lm: LoadedModel, surface: str) -> list[int]:
    """The tokens of ``surface`` on its own; typed special-token markers stay plain text."""
    return list(lm.tokenizer(surface, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def read_guesses(
    lm: LoadedModel, prompt_ids: tuple[int, ...], prompt_text: str, typed: Sequence[str]
) -> dict[str, GuessReading]:
    """The model's reading of each typed form as the continuation of the prompt, all read in one batch."""
    surfaces = {form: model_surface(prompt_text, form) for form in typed}
    ids = {form: guess_ids(lm, surface) for form, surface in surfaces.items()}
    logprobs = continuation_logprobs(lm, prompt_ids, list(ids.values()))
    return {
        form: GuessReading(form, surfaces[form], tuple(i), tuple(token_text(lm.tokenizer, t) for t in i), logprob)
        for (form, i), logprob in zip(ids.items(), logprobs, strict=True)
    }


def _spellings(typed: list[str]) -> list[str]:
    """The spellings the model is asked about for one bucket: those typed, lower case, and capitalised."""
    seen: dict[str, None] = {}
    for form in typed:
        lower = form.lower()
        for spelling in (form, lower, lower[:1].upper() + lower[1:]):
            seen.setdefault(spelling, None)
    return list(seen)


def score_guesses(lm: LoadedModel, record: RoundRecord, guesses: list[GuessRecord], top_k: int = TOP_K) -> Reveal:
    """Build the reveal of one round from its stored prompt and guesses (no store access here)."""
    dist = next_token_distribution(lm, list(record.prompt_ids))
    top = dist.top(top_k)
    top_key = bucket_key(top[0].token)

    typed_by_key: dict[str, Counter[str]] = {}
    first_seen: dict[str, float] = {}
    for guess in guesses:  # oldest first, as the store returns them
        form = typed_form(guess.text)
        key = bucket_key(guess.text)
        typed_by_key.setdefault(key, Counter())[form] += 1
        first_seen.setdefault(key, guess.created_at)

    every_form = [spelling for forms in typed_by_key.values() for spelling in _spellings(list(forms))]
    readings = read_guesses(lm, record.prompt_ids, record.prompt_text, list(dict.fromkeys(every_form)))
    reading = readings.__getitem__

    answers = len(guesses)
    buckets = []
    for key, forms in typed_by_key.items():
        count = sum(forms.values())
        best = max((reading(s) for s in _spellings(list(forms))), key=lambda r: r.logprob)
        buckets.append(
            BucketResult(
                key=key,
                label=max(forms, key=lambda form: (forms[form], reading(form).logprob)),
                count=count,
                share=count / answers,
                reading=best,
                variants=tuple((reading(form), n) for form, n in forms.most_common()),
                matches_model=key == top_key,
            )
        )
    buckets.sort(key=lambda b: (-b.count, first_seen[b.key], b.key))
    by_key = {b.key: b for b in buckets}
    students = tuple(
        StudentResult(
            name=g.name,
            guess=g.text,
            key=bucket_key(g.text),
            model_prob=by_key[bucket_key(g.text)].model_prob,
            agreed=bucket_key(g.text) == top_key,
        )
        for g in guesses
    )
    agreeing = by_key[top_key].count if top_key in by_key else 0
    model_top = tuple(
        ModelChoice(
            t.token,
            int(t.id or 0),
            t.prob,
            bucket_key(t.token),
            by_key[bucket_key(t.token)].count if bucket_key(t.token) in by_key else 0,
        )
        for t in top
    )
    return Reveal(
        room=record.room,
        round=record.number,
        prompt_text=record.prompt_text,
        revealed=record.revealed,
        model=lm.display_name,
        answers=answers,
        buckets=tuple(buckets),
        students=students,
        model_top=model_top,
        agreement=agreeing / answers if answers else 0.0,
    )
