"""Examples turned into the token ids and labels the Trainer learns from.

For an instruct model the prompt is wrapped in the model's chat template,
exactly as the rest of LLM Lab wraps a chat prompt at inference time, so
what the adapter learns is what a page will ask. The completion is the
assistant's reply *including the template's end-of-turn token*: that is how
the model learns to stop after ``positive`` instead of rambling on.

Prompt and completion are tokenized separately and concatenated, which is
also how generation sees them (the prompt's ids, then one new token at a
time). Labels are ``-100`` on the prompt, so the loss counts only the
completion tokens.
"""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput
from core.finetune.datasets import Example

IGNORE_INDEX = -100  # the label cross-entropy skips: prompt tokens and padding


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_ids(tokenizer: Any, example: Example) -> list[int]:
    """The ids the model reads before it starts its answer."""
    if has_chat_template(tokenizer):
        text = tokenizer.apply_chat_template(example.prompt_messages(), tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    if example.context:
        raise InvalidInput(
            "This model has no chat template, so it cannot learn from chat 'messages': "
            "use prompt/completion rows, or an instruct model."
        )
    return tokenizer(example.prompt, add_special_tokens=True)["input_ids"]


def completion_ids(tokenizer: Any, example: Example) -> list[int]:
    """The ids of the answer to learn, ending with the end-of-turn (or end-of-text) token."""
    if has_chat_template(tokenizer):
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
    raise the limit or shorten the row.
    """
    encoded = [encode_example(tokenizer, e) for e in examples]
    too_long = [n for n, row in enumerate(encoded, start=1) if len(row["input_ids"]) > max_length]
    if too_long:
        longest = max(len(row["input_ids"]) for row in encoded)
        rows = ", ".join(str(n) for n in too_long[:5]) + (" ..." if len(too_long) > 5 else "")
        raise InvalidInput(
            f"{len(too_long)} {split} example(s) (number {rows}) are longer than the maximum length of "
            f"{max_length} tokens, chat template included; the longest has {longest}. "
            "Raise the maximum length or shorten those rows."
        )
    return encoded
