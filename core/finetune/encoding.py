"""Examples turned into the token ids and labels the Trainer learns from.

Prompts and completions are formatted by ``core.prompts``, exactly as every
page asks them, and tokenized separately, then concatenated: that is also how
generation sees them (the prompt's ids, then one new token at a time).
Labels are ``-100`` on the prompt, so the loss counts only the completion.
"""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput
from core.prompts import Example, completion_ids, prompt_ids

IGNORE_INDEX = -100  # the label cross-entropy skips: prompt tokens and padding


def encode_example(tokenizer: Any, example: Example) -> dict[str, list[int]]:
    """``input_ids``, ``attention_mask`` and ``labels`` (prompt masked) for one example."""
    prompt = prompt_ids(tokenizer, example)
    completion = completion_ids(tokenizer, example)
    ids = prompt + completion
    return {
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "labels": [IGNORE_INDEX] * len(prompt) + completion,
    }


def encode_examples(
    tokenizer: Any, examples: tuple[Example, ...], max_length: int, split: str
) -> list[dict[str, list[int]]]:
    """Encode a split; refuse (not truncate) rows longer than ``max_length`` tokens.

    Cutting a row would cut its completion, often to nothing, and the model
    would learn to stop mid-answer; better to say so and let the person
    raise the limit or shorten the row. Rows are named by their line in the
    file they came from, where known.
    """
    encoded = [encode_example(tokenizer, e) for e in examples]
    too_long = [
        e.source or f"example {n}"
        for n, (e, row) in enumerate(zip(examples, encoded, strict=True), start=1)
        if len(row["input_ids"]) > max_length
    ]
    if too_long:
        longest = max(len(row["input_ids"]) for row in encoded)
        rows = ", ".join(too_long[:5]) + (" ..." if len(too_long) > 5 else "")
        raise InvalidInput(
            f"{len(too_long)} {split} example(s) ({rows}) are longer than the maximum length of "
            f"{max_length} tokens, chat template included; the longest has {longest}. "
            "Raise the maximum length or shorten those rows."
        )
    return encoded
