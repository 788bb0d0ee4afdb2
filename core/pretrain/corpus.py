"""Texts to pretrain on: the built-in corpora, and uploaded files checked before any job starts.

Pretraining needs nothing but text: every position of it is a training
example whose answer is the next token. So a corpus is just a string. Two are
built in, so the page works offline on any machine: Python's own reference
documentation (the ``pydoc_data`` topics every Python installation ships,
about 465,000 characters of English about code) and a made-up language of
short sentences that LLM Lab writes from a tiny grammar, simple enough that a
small model learns it in a minute. An upload must be UTF-8 text; a binary file
or an empty one is refused with a sentence saying so.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import InvalidInput
from core.tokens import decode_bytes

MAX_CORPUS_BYTES = 20_000_000  # a page upload; training reads it all into memory, tokenized
BINARY_SNIFF_BYTES = 8192
# Text files hold a few control characters (tabs, newlines, form feeds); binary files hold many.
MAX_CONTROL_SHARE = 0.05
TEXT_CONTROLS = frozenset("\t\n\r\f\v")


@dataclass(frozen=True)
class Corpus:
    """A text to train on, and where it came from."""

    name: str  # a built-in's name, or the uploaded file's name
    text: str
    builtin: bool = False

    @property
    def characters(self) -> int:
        return len(self.text)


def python_docs_text() -> str:
    """Python's reference topics (``if``, ``for``, ``class``, operators...), as shipped with every Python."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name].strip() for name in sorted(topics))


# A tiny grammar: subject, verb, object and a few adjectives and places. Its sentences repeat their
# patterns, so a tiny model finds words, then word order, within a few hundred steps.
_SUBJECTS = ["the cat", "the dog", "a bird", "my sister", "the old man", "a small child", "the teacher", "our robot"]
_VERBS = ["sees", "likes", "follows", "draws", "finds", "carries", "hears", "paints"]
_OBJECTS = ["a red ball", "the moon", "a green frog", "the blue door", "a tall tree", "the river", "a warm cup"]
_PLACES = ["in the garden", "at night", "by the sea", "after school", "in the kitchen", "on the hill"]


def tiny_sentences_text(sentences: int = 6000, seed: int = 0) -> str:
    """Sentences like "the cat sees a red ball in the garden." from a fixed seed (about 211,000 characters)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(sentences):
        sentence = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        if rng.random() < 0.5:
            sentence += f" {rng.choice(_PLACES)}"
        lines.append(sentence + ".")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BuiltinCorpus:
    """A corpus that ships with LLM Lab: how the page names it, and how to make its text."""

    title: str
    description: str
    make: Callable[[], str]


BUILTIN_CORPORA: dict[str, BuiltinCorpus] = {
    "python-docs": BuiltinCorpus(
        "Python's documentation",
        "The reference topics every Python installation ships (`pydoc_data`): about 465,000 characters of "
        "English about code — statements, operators, types.",
        python_docs_text,
    ),
    "tiny-sentences": BuiltinCorpus(
        "Made-up sentences",
        "6,000 short sentences from a tiny grammar LLM Lab writes (“the cat sees a red ball in the garden.”): "
        "few words, strict patterns, so a tiny model learns them fast.",
        tiny_sentences_text,
    ),
}
DEFAULT_CORPUS = "python-docs"


def first_word(text: str, then_space: bool = True) -> str:
    """The corpus's first word (and a space): a prompt made only of characters the corpus has.

    Byte-level BPE tokenizers put the space at the start of the next word (``" cat"``), so
    for them the prompt stops before it (``then_space=False``).
    """
    match = re.match(r"\s*(\S{1,16})", text)
    word = match.group(1) if match else text[:1]
    return f"{word} " if then_space else word


def check_text(text: str, what: str) -> str:
    """Refuse a text that is empty or mostly control characters (a binary file decoded by luck)."""
    if not text.strip():
        raise InvalidInput(f"The {what} is empty: a model learns from text, so give it some.")
    sample = text[:BINARY_SNIFF_BYTES]
    controls = sum(1 for c in sample if (ord(c) < 32 and c not in TEXT_CONTROLS) or c == "\x7f")
    if "\x00" in sample or controls > MAX_CONTROL_SHARE * len(sample):
        raise InvalidInput(
            f"The {what} looks like a binary file, not text (it is full of control characters). "
            "Use a plain-text .txt file saved as UTF-8."
        )
    return text


def parse_text_upload(raw: bytes, name: str) -> Corpus:
    """An uploaded ``.txt`` file as a corpus, or ``InvalidInput`` saying what is wrong with it."""
    what = f"file {name}"
    if len(raw) > MAX_CORPUS_BYTES:
        raise InvalidInput(
            f"The {what} has {len(raw):,} bytes; at most {MAX_CORPUS_BYTES:,} are accepted. Use a shorter text."
        )
    if b"\x00" in raw[:BINARY_SNIFF_BYTES]:
        raise InvalidInput(
            f"The {what} looks like a binary file, not text (it holds zero bytes). "
            "Use a plain-text .txt file saved as UTF-8."
        )
    return Corpus(name, check_text(decode_bytes(raw, what), what))


def load_corpus(source: str) -> Corpus:
    """A built-in corpus by name, or a text file by path."""
    if source in BUILTIN_CORPORA:
        return Corpus(source, BUILTIN_CORPORA[source].make(), builtin=True)
    path = Path(source).expanduser()
    if not path.is_file():
        raise InvalidInput(
            f"No corpus called {source!r}: use {', '.join(BUILTIN_CORPORA)}, or the path to a UTF-8 .txt file."
        )
    return parse_text_upload(path.read_bytes(), path.name)
