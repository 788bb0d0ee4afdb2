"""Answers to many prompts, and the probability of each expected answer, as batches on the model's engine.

A prompt-lab run asks one variant's prompt for every item: the same system
message, template and examples, only the item changes. So on a local model
the shared opening (often nine tenths of the tokens, with eight examples) is
read once, and every item continues its cache; the items then go to the
model together (``LoadedModel.forward_many``), a chunk at a time, so the
batching engine runs them as batches, beside any other session's passes.

Per item, from the pass over its prompt:

* greedy decoding continues each item's cache one token at a time, every
  live item of a step in one call;
* the expected answer is scored on the same cache: its first token's
  log-probability is read off the prompt's last position, the others from
  one pass over the answer's tokens. ``P(expected)`` is the product of its
  tokens' probabilities, end-of-turn token included: the probability that
  the model says exactly that and stops.

Sampled decoding (a temperature above 0) goes through ``core.generation``
per item, with the seed, as the other pages generate; an API answers one
item at a time and scores nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from core.backends import LocalBackend
from core.backends.base import Backend
from core.distributions import SamplingSettings
from core.errors import InvalidInput
from core.generation import MAX_NEW_TOKENS, generate
from core.models import LoadedModel
from core.promptlab.task import Task
from core.prompts import Example, completion_ids, prompt_ids

CHUNK = 8  # items sent to the engine at once: their caches are held together (~20 MB per 100 tokens)
Progress = Callable[[int, int], None]  # (items answered so far, items in all)


@dataclass(frozen=True)
class Decoding:
    """How every item of a prompt-lab run is answered: sampling settings, longest answer, chat template or not."""

    settings: SamplingSettings
    max_new_tokens: int
    chat: bool

    @classmethod
    def of(
        cls,
        backend: Backend,
        task: Task,
        settings: SamplingSettings | None,
        max_new_tokens: int | None,
        chat: bool | None,
    ) -> Decoding:
        """What was asked for, else the defaults: greedy, the task's answer length, chat if the backend reads it."""
        return cls(
            settings or SamplingSettings(temperature=0),
            max_new_tokens or task.max_new_tokens,
            backend.reads_chat if chat is None else chat,
        )

    def check(self, backend: Backend) -> None:
        """Refuse these settings before any item is asked (``check_decoding``)."""
        check_decoding(backend, self.settings, self.max_new_tokens)


@dataclass(frozen=True)
class Prepared:
    """One prompt as the model will read it, and its expected answer's ids (empty without an expected answer).

    The ids are empty for an API, which tokenizes out of sight.
    """

    asked: Example
    prompt_ids: tuple[int, ...] = ()
    target_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Answered:
    """The model's answer to one prompt, and the log-probability of each expected token (None: not scored)."""

    text: str
    tokens: int
    expected_logprobs: tuple[float, ...] | None

    @property
    def p_expected(self) -> float | None:
        """The probability of the whole expected answer: the product of its tokens' probabilities."""
        return None if self.expected_logprobs is None else math.exp(math.fsum(self.expected_logprobs))


def check_decoding(backend: Backend, settings: SamplingSettings, max_new_tokens: int) -> None:
    """Refuse decoding settings before any item is asked (``generate`` would only refuse them on the first)."""
    if not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise InvalidInput(f"The number of new tokens must be between 1 and {MAX_NEW_TOKENS}; got {max_new_tokens}.")
    settings.validate(backend.lm.vocab_size if isinstance(backend, LocalBackend) else 10**9)


def prepare(backend: Backend, asked: Sequence[Example], chat: bool, label: str) -> list[Prepared]:
    """Tokenize every prompt and expected answer, refusing (for ``label``, e.g. "Variant A") any that cannot fit.

    Runs before anything is asked, so a prompt past the context window is
    refused with nothing run.
    """
    if not isinstance(backend, LocalBackend):
        if not chat:
            raise InvalidInput("An API applies its own chat template: plain-text prompts cannot be sent to it.")
        return [Prepared(example) for example in asked]
    lm = backend.lm
    out = []
    for number, example in enumerate(asked, start=1):
        ids = prompt_ids(lm.tokenizer, example, chat)
        target = completion_ids(lm.tokenizer, example, chat) if example.completion else []
        needed = len(ids) + max(len(target), 1)
        if needed > lm.context_length:
            raise InvalidInput(
                f"{label} makes a prompt of {len(ids):,} tokens (item {number}) and {lm.display_name} reads at most "
                f"{lm.context_length:,} with its answer: use fewer examples, a shorter system message or template, "
                "or shorter items."
            )
        out.append(Prepared(example, tuple(ids), tuple(target)))
    return out


def answer_all(
    backend: Backend,
    prepared: Sequence[Prepared],
    settings: SamplingSettings,
    seed: int,
    max_new_tokens: int,
    on_done: Callable[[int], None] | None = None,
) -> list[Answered]:
    """Every prompt's answer and expected-answer score; ``on_done`` hears how many items are done so far."""
    check_decoding(backend, settings, max_new_tokens)
    if not isinstance(backend, LocalBackend):
        out = []
        for p in prepared:
            reply = backend.reply(p.asked, settings, seed, max_new_tokens)
            scored = backend.expected_logprobs(p.asked) if p.asked.completion else None
            out.append(Answered(reply.text, reply.tokens, None if scored is None else tuple(scored)))
            if on_done is not None:
                on_done(len(out))
        return out
    lm = backend.lm
    shared, shared_past = _read_shared_opening(lm, [p.prompt_ids for p in prepared])
    out = []
    for start in range(0, len(prepared), CHUNK):
        chunk = prepared[start : start + CHUNK]
        out += _local_chunk(lm, chunk, shared, shared_past, settings, seed, max_new_tokens)
        if on_done is not None:
            on_done(len(out))
    return out


def answer_runs(
    backend: Backend,
    runs: Sequence[Sequence[Prepared]],
    decoding: Decoding,
    seed: int,
    on_progress: Progress | None = None,
) -> list[list[Answered]]:
    """Each run's answers, run after run; ``on_progress`` hears the items answered so far, over all the runs."""
    total = sum(len(run) for run in runs)
    answers, done_before = [], 0
    for run in runs:
        report = None if on_progress is None else (lambda done, d=done_before: on_progress(d + done, total))
        answers.append(answer_all(backend, run, decoding.settings, seed, decoding.max_new_tokens, report))
        done_before += len(run)
    return answers


def _read_shared_opening(lm: LoadedModel, prompts: Sequence[Sequence[int]]) -> tuple[int, Any]:
    """The tokens every prompt opens with (leaving each at least one of its own), read once: (length, cache)."""
    if len(prompts) < 2:
        return 0, None
    length = min(len(p) for p in prompts) - 1
    first = prompts[0]
    for p in prompts[1:]:
        length = next((i for i in range(length) if p[i] != first[i]), length)
    if length == 0:
        return 0, None
    ((_, past),) = lm.forward_many([(list(first[:length]), None, True)])
    return length, past


def _local_chunk(
    lm: LoadedModel,
    chunk: Sequence[Prepared],
    shared: int,
    shared_past: Any,
    settings: SamplingSettings,
    seed: int,
    max_new_tokens: int,
) -> list[Answered]:
    """One chunk: each prompt's rest after the shared opening, then greedy steps and the scoring, batched."""
    read = lm.forward_many([(list(p.prompt_ids[shared:]), shared_past, True) for p in chunk])
    after_prompt = [past for _, past in read]
    nexts = [torch.log_softmax(logits[-1].double(), dim=-1) for logits, _ in read]
    scores = [[float(nexts[i][p.target_ids[0]])] if p.target_ids else [] for i, p in enumerate(chunk)]
    # The answer's other tokens, read after its first ones on the prompt's cache: sent with the first greedy step.
    scoring = [
        (i, (list(p.target_ids[:-1]), after_prompt[i], False)) for i, p in enumerate(chunk) if len(p.target_ids) > 1
    ]
    generated: list[list[int]] = [[] for _ in chunk]
    pasts = list(after_prompt)
    live = list(range(len(chunk))) if settings.is_greedy else []
    eos = lm.eos_token_ids
    while live or scoring:
        for i in live:
            generated[i].append(int(torch.argmax(nexts[i])))
        live = [
            i
            for i in live
            if generated[i][-1] not in eos
            and len(generated[i]) < max_new_tokens
            and len(chunk[i].prompt_ids) + len(generated[i]) < lm.context_length
        ]
        requests = [([generated[i][-1]], pasts[i], True) for i in live] + [request for _, request in scoring]
        if not requests:
            break
        results = lm.forward_many(requests)
        for i, (logits, past) in zip(live, results, strict=False):
            nexts[i], pasts[i] = torch.log_softmax(logits[-1].double(), dim=-1), past
        for (i, _), (logits, _) in zip(scoring, results[len(live) :], strict=True):
            target = chunk[i].target_ids
            logprobs = torch.log_softmax(logits.double(), dim=-1)
            scores[i] += logprobs[torch.arange(len(target) - 1), torch.tensor(target[1:])].tolist()
        scoring = []
    if not settings.is_greedy:
        generated = [
            [s.chosen.id for s in generate(lm, list(p.prompt_ids), max_new_tokens, settings, seed=seed, alternatives=1)]
            for p in chunk
        ]
    return [
        Answered(
            lm.tokenizer.decode(ids, skip_special_tokens=True).strip(),
            len(ids),
            tuple(score) if p.target_ids else None,
        )
        for p, ids, score in zip(chunk, generated, scores, strict=True)
    ]
