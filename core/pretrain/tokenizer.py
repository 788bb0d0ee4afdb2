"""The tokenizer a tiny model reads with: single characters, or the embedded model's own.

Characters make the smallest vocabulary (about a hundred symbols for English),
so nearly all of a tiny model's parameters go into the transformer itself,
and what it learns is easy to watch: first common letters, then words. The
embedded model's tokenizer (SmolLM2's 49,152 byte-level BPE tokens) shows
the other side: each token carries more text, but the embedding table alone
outweighs a tiny transformer.

Either way the result is a real transformers tokenizer saved beside the
model, so ``AutoTokenizer.from_pretrained(folder)`` (and so
``core.models.load_model(folder)``) loads it with no custom code. The
character tokenizer is built with the ``tokenizers`` library: a word-level
model whose words are single characters (a pre-tokenizer splits the text into
characters), the characters of the corpus as its vocabulary, and ``<unk>``
for any character it never saw.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Any

from core.errors import InvalidInput

CHAR, MODEL = "char", "model"
TOKENIZERS = {CHAR: "Characters", MODEL: "The embedded model's tokens (SmolLM2, 49,152)"}
UNK, BOS, EOS, PAD = "<unk>", "<bos>", "<eos>", "<pad>"
SPECIAL_TOKENS = (UNK, BOS, EOS, PAD)
MAX_CHAR_VOCAB = 1000  # the most frequent characters; rarer ones (a stray emoji) become <unk>


def char_vocabulary(text: str, max_size: int = MAX_CHAR_VOCAB) -> list[str]:
    """The corpus's characters, the ``max_size`` most frequent ones, in code-point order."""
    counts = Counter(text)
    kept = sorted(counts, key=lambda c: (-counts[c], c))[:max_size]
    return sorted(kept)


def build_char_tokenizer(text: str, context: int) -> Any:
    """A ``PreTrainedTokenizerFast`` with one token per character of ``text`` (plus the special tokens)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in char_vocabulary(text) if c not in SPECIAL_TOKENS]
    if not chars:
        raise InvalidInput("The text is empty: a character tokenizer needs some characters to learn.")
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *chars])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Each character is its own "word"; [\s\S] matches any one character, newlines included.
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()  # join characters back with nothing between them
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=context,
        clean_up_tokenization_spaces=False,  # spaces are tokens like any other: keep every one
    )


@lru_cache(maxsize=1)
def _embedded_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from core.embedded import embedded_gguf_path
    from core.models import convert_gguf

    return AutoTokenizer.from_pretrained(convert_gguf(embedded_gguf_path()), trust_remote_code=False)


def model_tokenizer(context: int) -> Any:
    """A private copy of the embedded model's tokenizer, without its chat template (a tiny model cannot chat)."""
    import copy

    tokenizer = copy.deepcopy(_embedded_tokenizer())
    tokenizer.chat_template = None
    tokenizer.model_max_length = context
    return tokenizer


def make_tokenizer(kind: str, text: str, context: int) -> Any:
    """The tokenizer of ``kind`` (``char`` or ``model``) for a model that reads ``context`` tokens of ``text``."""
    if kind == CHAR:
        return build_char_tokenizer(text, context)
    if kind == MODEL:
        return model_tokenizer(context)
    raise InvalidInput(f"Unknown tokenizer {kind!r}: choose {' or '.join(TOKENIZERS)}.")


def vocabulary_size(kind: str, text: str) -> int:
    """How many tokens the tokenizer of ``kind`` would have for ``text``, without building it (for a live count)."""
    if kind == CHAR:
        return len(SPECIAL_TOKENS) + sum(c not in SPECIAL_TOKENS for c in char_vocabulary(text))
    if kind == MODEL:
        return len(_embedded_tokenizer())
    raise InvalidInput(f"Unknown tokenizer {kind!r}: choose {' or '.join(TOKENIZERS)}.")
