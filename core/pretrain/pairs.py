"""Self-supervised data: the (context -> next token) pairs a text yields, with no label written by hand.

A language model learns from raw text because the text is its own answer
key: at every position the tokens so far are the question and the token that
follows is the answer. A text of n tokens gives n - 1 such pairs; a model
with a context window of c tokens sees at most the last c of them. This is
what ``transformers`` computes when it is given ``labels=input_ids``: it
shifts the labels by one and scores every position at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInput
from core.tokens import Token, validate_prompt

MAX_PAIRS_SHOWN = 200  # a page's table; the CLI may ask for all


@dataclass(frozen=True)
class TrainingPair:
    """One self-supervised example: what the model reads, and the token it must predict."""

    position: int  # index of the target token in the text's tokens
    context: tuple[Token, ...]  # the tokens the model reads (the last `context_length` before the target)
    target: Token
    truncated: bool  # the text before the window was cut off: the model's context window is full


@dataclass(frozen=True)
class SelfSupervisedText:
    """A text as tokens, and the pairs it yields for a model that reads ``context_length`` tokens."""

    tokens: tuple[Token, ...]
    context_length: int
    pairs: tuple[TrainingPair, ...]

    @property
    def total_pairs(self) -> int:
        """Every pair the text yields (``pairs`` may hold only the first ones)."""
        return max(0, len(self.tokens) - 1)


def text_tokens(tokenizer: Any, text: str) -> tuple[Token, ...]:
    """``text`` as tokens with no special tokens added: exactly what a pretraining window holds."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    special = set(tokenizer.all_special_ids)
    return tuple(Token(i, tokenizer.decode([i]), i in special) for i in ids)


def training_pairs(
    tokenizer: Any, text: str, context_length: int, limit: int | None = MAX_PAIRS_SHOWN
) -> SelfSupervisedText:
    """The (context -> next token) pairs of ``text``, the first ``limit`` of them (None: all)."""
    validate_prompt(text, "text")
    if not isinstance(context_length, int) or isinstance(context_length, bool) or context_length < 1:
        raise InvalidInput(f"The context length must be a whole number of at least 1; got {context_length!r}.")
    tokens = text_tokens(tokenizer, text)
    if len(tokens) < 2:
        raise InvalidInput(
            f"The text is a single token ({tokens[0].display if tokens else '∅'}): it takes at least two, "
            "one to read and one to predict. Type a longer text."
        )
    end = len(tokens) if limit is None else min(len(tokens), limit + 1)
    pairs = tuple(
        TrainingPair(
            position=i,
            context=tokens[max(0, i - context_length) : i],
            target=tokens[i],
            truncated=i > context_length,
        )
        for i in range(1, end)
    )
    return SelfSupervisedText(tokens, context_length, pairs)
