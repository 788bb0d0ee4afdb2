"""What the model actually reads: prompts turned into tokens.

A page must be able to show exactly what the model sees, so the chat template
is applied here (when asked) and special tokens stay visible. Prompts are
validated here too, once, for every caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidInput
from core.models import LoadedModel

MAX_PROMPT_CHARS = 200_000


@dataclass(frozen=True)
class Token:
    """One token: its id, its text as the tokenizer decodes it alone, and whether it is special."""

    id: int
    text: str
    special: bool = False

    @property
    def display(self) -> str:
        return display_token(self.text)


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


def token_for(lm: LoadedModel, token_id: int) -> Token:
    special = token_id in lm.tokenizer.all_special_ids
    return Token(token_id, lm.tokenizer.decode([token_id]), special)


def tokens_for(lm: LoadedModel, ids: list[int]) -> tuple[Token, ...]:
    special = set(lm.tokenizer.all_special_ids)
    decode = lm.tokenizer.decode
    return tuple(Token(i, decode([i]), i in special) for i in ids)


def chat_text(lm: LoadedModel, user_message: str, system: str | None = None) -> str:
    """The user message wrapped in the model's chat template, ready for the assistant's reply."""
    if not lm.has_chat_template:
        raise InvalidInput(
            f"{lm.display_name} has no chat template, so it cannot read chat messages. Switch chat mode off."
        )
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user_message}]
    return lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_prompt(lm: LoadedModel, prompt: str, chat: bool = False, system: str | None = None) -> PromptTokens:
    """Tokenize a prompt as the model will read it, checking it fits the model's context.

    Plain prompts get the tokenizer's default special tokens (a BOS for models
    that use one). Chat prompts are templated first; the template already holds
    its special tokens, so none are added again.
    """
    validate_prompt(prompt)
    text = chat_text(lm, prompt, system) if chat else prompt
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
