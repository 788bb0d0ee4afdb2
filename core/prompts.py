"""What a model reads before it answers: examples, chat templates, few-shot shots, prompt and completion ids.

One home for every page and job that turns a task into tokens: the explorer's
chat prompts, fine-tuning's training rows, compare's columns and the prompt
lab's variants all format through here, so what an adapter learns is exactly
what a page later asks.

For an instruct model a prompt is wrapped in the model's chat template (the
system message, earlier turns and few-shot shots become chat turns); a model
without one reads plain text, its shots written as prompt/answer blocks.
A completion is the assistant's reply *including the template's end-of-turn
token*: that is how a model learns to stop after ``positive``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidInput

MAX_SHOTS = 16
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Example:
    """A user prompt and the answer expected to it (empty when none is known).

    ``context`` holds (role, content) turns that come before the prompt: a
    system message, earlier turns, few-shot shots. ``source`` says where it
    came from ("line 12"), for messages about it.
    """

    prompt: str
    completion: str = ""
    context: tuple[tuple[str, str], ...] = ()
    source: str = field(default="", compare=False)

    def prompt_messages(self) -> list[dict[str, str]]:
        """The chat messages up to and including the user prompt."""
        return [{"role": r, "content": c} for r, c in self.context] + [{"role": "user", "content": self.prompt}]

    def to_json(self) -> dict[str, Any]:
        if self.context:
            return {"messages": [*self.prompt_messages(), {"role": "assistant", "content": self.completion}]}
        return {"prompt": self.prompt, "completion": self.completion}


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def chat_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """``messages`` in the model's chat template, ending where the assistant's reply begins."""
    if not has_chat_template(tokenizer):
        raise InvalidInput("This model has no chat template, so it cannot read chat messages. Switch chat mode off.")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def prompt_text(tokenizer: Any, example: Example, chat: bool | None = None) -> str:
    """The text the model reads before answering; ``chat=None`` uses the template when the model has one."""
    if chat is None:
        chat = has_chat_template(tokenizer)
    if chat:
        return chat_text(tokenizer, example.prompt_messages())
    if example.context:
        raise InvalidInput(
            "This model has no chat template, so it cannot read chat 'messages' or a system message: "
            "use plain prompt/completion rows, or an instruct model."
        )
    return example.prompt


def prompt_ids(tokenizer: Any, example: Example, chat: bool | None = None) -> list[int]:
    """The ids the model reads before it starts its answer.

    A chat text holds its special tokens already, so none are added; a plain
    prompt gets the tokenizer's defaults (a BOS for models that use one).
    """
    if chat is None:
        chat = has_chat_template(tokenizer)
    return tokenizer(prompt_text(tokenizer, example, chat), add_special_tokens=not chat)["input_ids"]


def completion_ids(tokenizer: Any, example: Example, chat: bool | None = None) -> list[int]:
    """The ids of the answer, ending with the end-of-turn (or end-of-text) token; ``chat`` as in ``prompt_ids``."""
    if has_chat_template(tokenizer) if chat is None else chat:
        messages = example.prompt_messages()
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": example.completion}], tokenize=False
        )
        # The template's own rendering of the reply, e.g. "positive<|im_end|>"; the newline after it is
        # never generated (generation stops at the end-of-turn token), so it is not learned either.
        text = full[len(prompt) :].rstrip() if full.startswith(prompt) else example.completion
    else:
        text = example.completion
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if eos is not None and eos not in ids:
        ids.append(eos)
    return ids


def with_shots(example: Example, shots: Sequence[Example], chat: bool) -> Example:
    """``example`` with solved ``shots`` before it: earlier chat turns (``chat``), or prompt/answer blocks."""
    if not shots:
        return example
    if chat:
        turns: list[tuple[str, str]] = []
        for shot in shots:
            turns += [*shot.context, ("user", shot.prompt), ("assistant", shot.completion)]
        system = [t for t in example.context if t[0] == "system"]
        rest = [t for t in example.context if t[0] != "system"]
        return Example(example.prompt, example.completion, (*system, *turns, *rest))
    blocks = [f"{s.prompt}\n{s.completion}" for s in shots]
    return Example("\n\n".join([*blocks, example.prompt]) + "\n", example.completion, example.context)


def normalise(text: str) -> str:
    """Case, punctuation and spacing folded away: ``"Positive."`` matches ``"positive"``."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def shared_opening(prompts: Sequence[str], least: int = 24) -> str:
    """The words every prompt starts with (an instruction repeated), if at least ``least`` characters long.

    Cut after a space or a newline, so no word is split: compare hides it
    from its table, and the prompt lab offers it as the instruction of its
    default template, the rest of each prompt being the item's input.
    """
    if len(prompts) < 2:
        return ""
    common = prompts[0]
    for prompt in prompts[1:]:
        same = next(
            (i for i, (a, b) in enumerate(zip(common, prompt, strict=False)) if a != b), min(len(common), len(prompt))
        )
        common = common[:same]
    cut = max(common.rfind(" "), common.rfind("\n")) + 1
    return common[:cut] if cut >= least else ""


def pick_shots(pool: Sequence[Example], k: int, seed: int) -> tuple[Example, ...]:
    """``k`` examples from ``pool`` (a training split), a random draw from ``seed``.

    Where the completions are labels (a few values repeated, as in sentiment),
    the draw takes each label in turn: four shots that all say "positive"
    would teach the model to say "positive", not to classify.
    """
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= MAX_SHOTS:
        raise InvalidInput(f"The number of few-shot examples must be between 0 and {MAX_SHOTS}; got {k!r}.")
    if k > len(pool):
        raise InvalidInput(f"The training split has only {len(pool)} examples; ask for at most that many shots.")
    rng = random.Random(seed)
    shuffled = rng.sample(list(pool), len(pool))
    by_label: dict[str, list[Example]] = {}
    for example in shuffled:
        by_label.setdefault(normalise(example.completion), []).append(example)
    if len(by_label) > len(shuffled) // 2:  # free text, not labels
        return tuple(shuffled[:k])
    labels = list(by_label)
    rng.shuffle(labels)
    shots: list[Example] = []
    while len(shots) < k:
        for label in labels:
            if by_label[label] and len(shots) < k:
                shots.append(by_label[label].pop())
    return tuple(shots)
