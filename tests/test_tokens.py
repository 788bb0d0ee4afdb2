"""Prompts as the model reads them, and prompts no model can use."""

import pytest

from core.errors import InvalidInput
from core.tokens import decode_bytes, display_token, encode_prompt


def test_plain_prompt_tokens_round_trip(lm):
    prompt = encode_prompt(lm, "The capital of France is")
    assert "".join(t.text for t in prompt.tokens) == "The capital of France is"
    assert [t.display for t in prompt.tokens][-1] == "␣is"
    assert not any(t.special for t in prompt.tokens)


def test_chat_prompt_shows_the_template_and_its_special_tokens(lm):
    prompt = encode_prompt(lm, "What is the capital of France?", chat=True)
    assert prompt.text.startswith("<|im_start|>system")
    assert prompt.text.endswith("<|im_start|>assistant\n")
    specials = [t.text for t in prompt.tokens if t.special]
    assert "<|im_start|>" in specials and "<|im_end|>" in specials
    assert lm.tokenizer.decode(prompt.ids) == prompt.text


def test_display_makes_whitespace_visible():
    assert display_token(" Paris") == "␣Paris"
    assert display_token("\n\n") == "↵↵"
    assert display_token("") == "∅"


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("", "empty"),
        ("  \n\t ", "empty"),
        ("bad \udcff byte", "not valid UTF-8"),
        ("x" * 300_000, "at most"),
        (" the" * 9000, "reads at most 8,192"),
    ],
)
def test_unusable_prompts_raise_a_clear_error(lm, prompt, message):
    with pytest.raises(InvalidInput, match=message):
        encode_prompt(lm, prompt)


@pytest.mark.parametrize("prompt", ["Émoji 🦜 and 中文 and العربية", "tab\there\x07bell", "ünïcödé"])
def test_unusual_but_valid_text_is_accepted(lm, prompt):
    tokens = encode_prompt(lm, prompt)
    assert lm.tokenizer.decode(tokens.ids) == prompt


def test_bytes_must_be_utf8():
    assert decode_bytes("héllo".encode()) == "héllo"
    with pytest.raises(InvalidInput, match="not valid UTF-8"):
        decode_bytes(b"\xff\xfe\x00bad")
