"""What the model actually reads: prompts turned into tokens.

A page must be able to show exactly what the model sees, so the chat template
is applied here (when asked) and special tokens stay visible. Prompts are
validated here too, once, for every caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from core.errors import InvalidInput
from core.models import LoadedModel
from core.prompts import Example, has_chat_template, prompt_text

MAX_PROMPT_CHARS = 200_000


class ShownToken:
    """What a token's text looks like on a page (``display_token``): mixed into every result that holds one."""

    token: str

    @property
    def display(self) -> str:
        return display_token(self.token)


@dataclass(frozen=True)
class Token(ShownToken):
    """One token: its id, its text as the tokenizer decodes it alone, and whether it is special."""

    id: int
    text: str
    special: bool = False

    @property
    def token(self) -> str:  # type: ignore[override]  # ShownToken's text, under this class's older name
        return self.text


@dataclass(frozen=True)
class PromptTokens:
    """A prompt as the model reads it: the final text (template applied) and its tokens."""

    text: str
    tokens: tuple[Token, ...]
    chat: bool = False

    @property
    def ids(self) -> list[int]:
        return [t.id for t in self.tokens]


def display_token(text: str) -> str:
    """Make whitespace visible so ``" Paris"`` and ``"Paris"`` can be told apart.

    Spaces become ``␣``, newlines ``↵`` and tabs ``⇥``; the empty string is
    shown as ``∅``.
    """
    if text == "":
        return "∅"
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥").replace("\r", "␍")


def validate_prompt(prompt: str, what: str = "prompt") -> str:
    """Reject prompts no model can use, with a sentence saying why."""
    if not isinstance(prompt, str):
        raise InvalidInput(f"The {what} must be text.")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"The {what} is not valid UTF-8 text (a broken byte at character {exc.start}). "
            "Paste it again from a UTF-8 source."
        ) from None
    if not prompt.strip():
        raise InvalidInput(f"The {what} is empty: type some text for the model to continue.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidInput(
            f"The {what} has {len(prompt):,} characters; LLM Lab accepts at most {MAX_PROMPT_CHARS:,}. Shorten it."
        )
    return prompt


def decode_bytes(raw: bytes, what: str = "text") -> str:
    """Decode UTF-8 input strictly (BOM allowed), or say clearly that it is not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"The {what} is not valid UTF-8 (byte {exc.start} cannot be decoded). Save it as UTF-8 and try again."
        ) from None


_TEXTS: WeakKeyDictionary[Any, dict[int, str]] = WeakKeyDictionary()


def token_text(tokenizer: Any, token_id: int) -> str:
    """One token's text as the tokenizer decodes it alone, memoised per tokenizer.

    Pages redraw the same few hundred tokens (bars, alternatives, chips) on
    every rerun of every session; decoding each anew was a tenth of a class's
    server time.
    """
    texts = _TEXTS.get(tokenizer)
    if texts is None:
        texts = _TEXTS.setdefault(tokenizer, {})
    text = texts.get(token_id)
    if text is None:
        text = texts[token_id] = tokenizer.decode([token_id])
    return text


def tokens_for(lm: LoadedModel, ids: list[int]) -> tuple[Token, ...]:
    special = set(lm.tokenizer.all_special_ids)
    return tuple(Token(i, token_text(lm.tokenizer, i), i in special) for i in ids)


def encode_prompt(lm: LoadedModel, prompt: str, chat: bool = False) -> PromptTokens:
    """Tokenize a prompt as the model will read it, checking it fits the model's context.

    Plain prompts get the tokenizer's default special tokens (a BOS for models
    that use one). Chat prompts are templated first; the template already holds
    its special tokens, so none are added again.
    """
    validate_prompt(prompt)
    if chat and not has_chat_template(lm.tokenizer):
        raise InvalidInput(
            f"{lm.display_name} has no chat template, so it cannot read chat messages. Switch chat mode off."
        )
    text = prompt_text(lm.tokenizer, Example(prompt), chat)
    ids = lm.tokenizer(text, add_special_tokens=not chat)["input_ids"]
    check_fits(lm, len(ids))
    return PromptTokens(text=text, tokens=tokens_for(lm, ids), chat=chat)


def check_fits(lm: LoadedModel, n_tokens: int) -> None:
    if n_tokens == 0:
        raise InvalidInput("The prompt produced no tokens: type some text for the model to continue.")
    if n_tokens > lm.context_length:
        raise InvalidInput(
            f"The prompt has {n_tokens:,} tokens but {lm.display_name} reads at most {lm.context_length:,}. Shorten it."
        )


def check_token_ids(lm: LoadedModel, ids: list[int], what: str = "The steered tokens") -> None:
    """Refuse ids the model has no row for (a shared link can carry any number)."""
    vocab = lm.vocab_size
    bad = next((i for i in ids if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < vocab), None)
    if bad is not None:
        raise InvalidInput(
            f"{what} include the id {bad}, which is not a token of {lm.display_name} (ids run from 0 to {vocab - 1:,})."
        )
